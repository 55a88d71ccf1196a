"""Login, database selection and the security fixes, through PyMySQL and a raw MySQL-protocol
socket (a client that ignores error packets, which no library does)."""

from __future__ import annotations

import hashlib
import socket
import struct

import pymysql
import pytest

from .conftest import DB, PASSWORD, connect_db

CLIENT_PROTOCOL_41 = 0x200
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_CONNECT_WITH_DB = 0x8


def scramble(password: str, nonce: bytes) -> bytes:
    if not password:
        return b""
    p1 = hashlib.sha1(password.encode()).digest()
    p2 = hashlib.sha1(nonce + hashlib.sha1(p1).digest()).digest()
    return bytes(a ^ b for a, b in zip(p1, p2))


class RawMySQL:
    """Just enough of the client side of the MySQL protocol to misbehave."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        seq, hs = self.read_packet()
        assert hs[0] == 10
        end = hs.index(b"\0", 1)
        self.server_version = hs[1:end].decode()
        p = end + 1 + 4
        part1 = hs[p:p + 8]
        p += 8 + 1
        self.capabilities = struct.unpack("<H", hs[p:p + 2])[0]
        p += 2 + 1 + 2
        self.capabilities |= struct.unpack("<H", hs[p:p + 2])[0] << 16
        p += 2
        auth_len = hs[p]
        p += 1 + 10
        part2 = hs[p:p + max(13, auth_len - 8)]
        self.nonce = (part1 + part2).rstrip(b"\0")[:20]

    def read_packet(self) -> tuple[int, bytes]:
        while len(self.buf) < 4:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by server")
            self.buf += chunk
        n = int.from_bytes(self.buf[:3], "little")
        seq = self.buf[3]
        while len(self.buf) < 4 + n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by server")
            self.buf += chunk
        payload = self.buf[4:4 + n]
        self.buf = self.buf[4 + n:]
        return seq, payload

    def send_packet(self, seq: int, payload: bytes) -> None:
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes([seq]) + payload)

    def login(self, user: str, password: str, database: str | None = DB) -> bytes:
        caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
        if database:
            caps |= CLIENT_CONNECT_WITH_DB
        auth = scramble(password, self.nonce)
        payload = struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23
        payload += user.encode() + b"\0" + bytes([len(auth)]) + auth
        if database:
            payload += database.encode() + b"\0"
        payload += b"mysql_native_password\0"
        self.send_packet(1, payload)
        return self.read_packet()[1]

    def command(self, cmd: int, body: bytes = b"") -> bytes:
        self.send_packet(0, bytes([cmd]) + body)
        return self.read_packet()[1]

    def query(self, sql: str) -> bytes:
        return self.command(0x03, sql.encode())

    def closed(self) -> bool:
        """True when the server closed the connection (EOF or reset) without sending anything."""
        try:
            self.sock.settimeout(3)
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return data == b""

    def close(self) -> None:
        self.sock.close()


def err_code(packet: bytes) -> int:
    assert packet[0] == 0xFF, packet
    return struct.unpack("<H", packet[1:3])[0]


def test_handshake_version_and_no_tls(cq):
    raw = RawMySQL(cq.port)
    try:
        assert raw.server_version == "5.7.99-comet_server"
        assert raw.server_version.split(".")[0].isdigit()
        assert not raw.capabilities & 0x800          # CLIENT_SSL not advertised
    finally:
        raw.close()


def test_wrong_password_is_16_and_closes(cq):
    with pytest.raises(pymysql.MySQLError) as ei:
        connect_db(cq.port, 1, password="wrong")
    assert ei.value.args[0] == 16
    with pytest.raises(pymysql.MySQLError) as ei:
        connect_db(cq.port, "bob")                    # not a dev_id
    assert ei.value.args[0] == 16
    with pytest.raises(pymysql.MySQLError) as ei:
        connect_db(cq.port, 1, password="")
    assert ei.value.args[0] == 16
    with pytest.raises(pymysql.MySQLError) as ei:
        connect_db(cq.port, 100001)                   # beyond the dev_ids a WebSocket URL can name
    assert ei.value.args[0] == 16
    connect_db(cq.port, 100000).close()


@pytest.mark.parametrize("user,password", [("1", "wrong"), ("bob", PASSWORD), ("1", "")])
def test_client_ignoring_the_auth_error_gets_nothing(cq, user, password):
    raw = RawMySQL(cq.port)
    try:
        assert err_code(raw.login(user, password)) == 16
        raw.send_packet(0, b"\x03SELECT * FROM users_auth WHERE id = 1")
        assert raw.closed()                           # no result set, no error: the socket is gone
    finally:
        raw.close()


def test_bad_database_at_connect_is_15_and_closes(cq):
    with pytest.raises(pymysql.MySQLError) as ei:
        connect_db(cq.port, 1, database="nope")
    assert ei.value.args[0] == 15
    raw = RawMySQL(cq.port)
    try:
        assert err_code(raw.login("1", PASSWORD, "nope")) == 15
        raw.send_packet(0, b"\x03SELECT * FROM users_time WHERE id = 1")
        assert raw.closed()
    finally:
        raw.close()


def test_change_user_is_refused_and_closes(cq):
    raw = RawMySQL(cq.port)
    try:
        assert raw.login("1", PASSWORD)[0] == 0x00     # OK
        assert raw.query("SELECT * FROM users_time WHERE id = 1")[0] == 2   # column count 2
        raw.buf = b""                                   # drop the rest of the result set
        raw.sock.settimeout(0.3)
        try:
            while raw.sock.recv(65536):
                pass
        except socket.timeout:
            pass
        raw.sock.settimeout(5)
        body = b"2\0" + bytes([0]) + DB.encode() + b"\0"
        assert err_code(raw.command(0x11, body)) == 16     # COM_CHANGE_USER
        raw.send_packet(0, b"\x03SELECT * FROM users_time WHERE id = 1")
        assert raw.closed()
    finally:
        raw.close()


def test_pymysql_change_user_is_refused(cq, dev):
    conn = connect_db(cq.port, dev)
    try:
        # PyMySQL has no change_user; mysql-connector does. Simulate its packet on PyMySQL's socket.
        conn._execute_command(0x11, b"2\0\0" + DB.encode() + b"\0")
        with pytest.raises(pymysql.MySQLError) as ei:
            conn._read_ok_packet()
        assert ei.value.args[0] == 16
    finally:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - the server already closed it
            pass


def test_haproxy_check_logs_in_but_every_query_is_403(cq):
    raw = RawMySQL(cq.port)
    try:
        assert raw.login("haproxy_check", "", None)[0] == 0x00
        assert err_code(raw.query("SELECT * FROM users_time WHERE id = 1")) == 403
        assert err_code(raw.query("SELECT 1")) == 403
        assert err_code(raw.command(0x02, DB.encode())) == 403          # COM_INIT_DB
        assert raw.command(0x0E)[0] == 0x00                             # COM_PING still answers
    finally:
        raw.close()
    with pytest.raises(pymysql.MySQLError) as ei:                       # with a password: refused
        connect_db(cq.port, "haproxy_check", password="x", database=None)
    assert ei.value.args[0] == 16


def test_garbage_instead_of_a_handshake_does_not_hurt(cq, dev):
    s = socket.create_connection(("127.0.0.1", cq.port), timeout=5)
    try:
        s.recv(65536)
        s.sendall(b"\x05\x00\x00\x01hello" + b"\xff" * 100)
        s.settimeout(3)
        try:
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        s.close()
    # a huge packet header (multi-packet payload) is refused without reading 16 MiB
    raw = RawMySQL(cq.port)
    try:
        assert raw.login("1", PASSWORD)[0] == 0x00
        raw.sock.sendall(b"\xff\xff\xff\x00\x03" + b"x" * 1000)
        assert raw.closed()
    finally:
        raw.close()
    conn = connect_db(cq.port, dev)                                      # the server is fine
    try:
        cur = conn.cursor()
        assert cur.execute("SELECT * FROM users_time WHERE id = 1") == 1
    finally:
        conn.close()


def test_com_field_list_one_packet_per_column(cq):
    raw = RawMySQL(cq.port)
    try:
        assert raw.login("1", PASSWORD)[0] == 0x00
        raw.send_packet(0, b"\x04users_auth\x00")
        cols = [raw.read_packet()[1] for _ in range(2)]
        assert [c.split(b"\x02id")[0] != c for c in cols] == [True, False]
        assert b"hash" in cols[1]
        end = raw.read_packet()[1]
        assert end[0] == 0xFE                           # EOF / OK-as-EOF
        raw.send_packet(0, b"\x04nope\x00")
        assert err_code(raw.read_packet()[1]) == 15
    finally:
        raw.close()
