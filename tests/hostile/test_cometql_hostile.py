"""Hostile clients on the CometQL (MySQL protocol) port of a real ``python -m comet_server``.

Each attack runs against a fresh server process (an attack that works leaves the process
spinning, so the next test must not inherit it). After every attack the HTTP and WebSocket
port of the same process must still answer: that is what a user of the site would notice.
Raw sockets are used where a MySQL library would refuse to send the bad input.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pymysql
import pytest

from tests.cometql.conftest import DB, PASSWORD, cometql_server, connect_db, ws_open, ws_recv, ws_sync
from tests.support.server import ServerProcess

#: the login deadline the test servers run with (production default: 10 s)
TEST_LOGIN_TIMEOUT = 1.0
PREAUTH_MAX_PACKET = 64 * 1024

# client capability bits (MySQL protocol)
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_CONNECT_ATTRS = 0x100000
CLIENT_PLUGIN_AUTH_LENENC = 0x200000
CAPS = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC
UTF8MB4 = 45


@pytest.fixture
def fresh_server():
    srv = cometql_server({"DEFAULT_LOGIN_TIMEOUT": TEST_LOGIN_TIMEOUT})
    srv.start()
    yield srv
    assert srv.proc is not None
    if srv.proc.poll() is None:
        try:
            srv.stop(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        if srv.proc.poll() is None:      # a spinning server ignores SIGTERM
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
    srv.tmp.cleanup()


# --------------------------------------------------------------------------------------------
# helpers


def packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload) | (seq << 24)) + payload


def read_packet(sock: socket.socket) -> bytes:
    head = recv_exactly(sock, 4)
    n = struct.unpack("<I", head)[0] & 0xFFFFFF
    return recv_exactly(sock, n)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def open_raw(srv: ServerProcess) -> socket.socket:
    """A TCP connection to the CometQL port, with the server greeting already read."""
    sock = socket.create_connection(("127.0.0.1", srv.cometql_port), timeout=5)
    greeting = read_packet(sock)
    assert greeting[0] == 10, greeting[:20]        # protocol version 10
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or reset); None if still open."""
    start = time.monotonic()
    deadline = start + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start


def handshake_head(caps: int = CAPS, charset: int = UTF8MB4) -> bytes:
    return struct.pack("<IIB", caps, 1 << 24, charset) + bytes(23)


def assert_site_alive(srv: ServerProcess, timeout: float = 3.0) -> float:
    """HTTP GET /info and a WebSocket command round trip on the same process; returns the
    WebSocket round trip in seconds."""
    assert srv.proc is not None and srv.proc.poll() is None, srv.log()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        conn.request("GET", "/info")
        resp = conn.getresponse()
        assert resp.status == 200 and b'"status":"ok"' in resp.read()
    finally:
        conn.close()
    ws, _ = ws_open(srv, dev_id=7)
    try:
        start = time.monotonic()
        ws_sync(ws)
        return time.monotonic() - start
    finally:
        ws.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def assert_no_traceback(srv: ServerProcess) -> None:
    assert "Traceback" not in srv.log(), srv.log()


# --------------------------------------------------------------------------------------------
# 1. nothing before login can hurt the server


def test_handshake_with_unterminated_user_name_is_refused(fresh_server):
    # 37 bytes: 32 fixed + a user name without its NUL (mysql-mimic 3.0.5 read_str_null spun
    # forever at the end of the buffer, freezing HTTP and WebSocket too)
    payload = handshake_head() + b"12345"
    assert len(payload) == 37
    sock = open_raw(fresh_server)
    sock.sendall(packet(1, payload))
    assert closed_within(sock, 3.0) is not None, "connection left open"
    sock.close()
    assert_site_alive(fresh_server)


def test_com_query_instead_of_handshake_is_refused(fresh_server):
    sock = open_raw(fresh_server)
    sock.sendall(packet(1, b"\x03SELECT * FROM users_time WHERE id IN (1, 2, 3, 4, 5, 6)"))
    assert closed_within(sock, 3.0) is not None, "connection left open"
    sock.close()
    assert_site_alive(fresh_server)


TRUNCATED_HANDSHAKES = {
    "empty payload": b"",
    "capabilities only": struct.pack("<I", CAPS),
    "no reserved bytes": struct.pack("<IIB", CAPS, 0, UTF8MB4),
    "unknown collation": handshake_head(charset=0) + b"1\x00\x00",
    "user, no auth length": handshake_head() + b"1\x00",
    "auth length past the end": handshake_head() + b"1\x00\xfc\xff\xff" + b"x" * 10,
    "lenenc auth 8-byte length": handshake_head() + b"1\x00\xfe" + b"\xff" * 8,
    "short auth, secure conn": handshake_head(CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION) + b"1\x00\x14ab",
    "database without NUL then attrs": handshake_head(CAPS | CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS)
                                      + b"1\x00\x00CometQL_v1",
    "connect attrs longer than packet": handshake_head(CAPS | CLIENT_CONNECT_ATTRS)
                                      + b"1\x00\x00mysql_native_password\x00\xfd\xff\xff\xff\x03abc",
    "user name not utf-8": handshake_head() + b"\xff\xfe\x00\x00",
}


def test_truncated_and_malformed_handshakes_are_refused(fresh_server):
    for name, payload in TRUNCATED_HANDSHAKES.items():
        sock = open_raw(fresh_server)
        sock.sendall(packet(1, payload))
        assert closed_within(sock, 3.0) is not None, f"{name}: connection left open"
        sock.close()
        assert_site_alive(fresh_server)
    # a truncated packet header, then EOF
    sock = open_raw(fresh_server)
    sock.sendall(b"\x05\x00")
    sock.shutdown(socket.SHUT_WR)
    assert closed_within(sock, 3.0) is not None
    sock.close()
    assert_site_alive(fresh_server)
    assert_no_traceback(fresh_server)


def test_oversized_preauth_packets_are_refused_without_buffering(fresh_server):
    pid = fresh_server.proc.pid
    before = rss_kib(pid)
    socks = [open_raw(fresh_server) for _ in range(12)]
    chunk = b"\0" * (256 * 1024)
    closed_after: list[int | None] = []
    for sock in socks:
        sock.sendall(struct.pack("<I", 0xFFFFFE | (1 << 24)))     # a 16 MB handshake packet ...
        sent = 0
        try:
            while sent < 0xFFFFFE - len(chunk):                    # ... minus its last bytes
                sock.settimeout(2.0)
                sock.sendall(chunk)
                sent += len(chunk)
            closed_after.append(None)
        except OSError:           # reset / broken pipe / send blocked: the server stopped reading
            closed_after.append(sent)
    time.sleep(0.3)
    after = rss_kib(pid)
    still_open = [i for i, s in enumerate(socks) if closed_within(s, 2.0) is None]
    for s in socks:
        s.close()
    print(f"\nRSS before {before // 1024} MiB, after 12 x 16 MB partial packets {after // 1024} MiB; "
          f"bytes accepted per socket before the server stopped reading: {closed_after}")
    assert not still_open, f"sockets {still_open} still open after a >64 KiB pre-auth packet"
    assert after - before < 32 * 1024, f"RSS grew by {(after - before) // 1024} MiB"
    assert_site_alive(fresh_server)


def test_idle_and_slow_preauth_sockets_are_closed_at_the_deadline(fresh_server):
    idle = open_raw(fresh_server)
    start = time.monotonic()
    t = closed_within(idle, TEST_LOGIN_TIMEOUT + 4)
    idle.close()
    assert t is not None, "idle pre-auth socket still open"
    assert t >= TEST_LOGIN_TIMEOUT * 0.8
    print(f"\nidle pre-auth socket closed after {time.monotonic() - start:.2f} s "
          f"(deadline {TEST_LOGIN_TIMEOUT} s)")

    # slowloris: a valid-looking handshake dribbled one byte at a time
    slow = open_raw(fresh_server)
    payload = packet(1, handshake_head() + b"1\x00")
    start = time.monotonic()
    closed = False
    for b in payload:
        try:
            slow.sendall(bytes([b]))
        except OSError:
            closed = True
            break
        if closed_within(slow, 0.25) is not None:
            closed = True
            break
    assert closed or closed_within(slow, TEST_LOGIN_TIMEOUT + 3) is not None
    assert time.monotonic() - start < TEST_LOGIN_TIMEOUT + 4
    slow.close()
    assert_site_alive(fresh_server)


# --------------------------------------------------------------------------------------------
# after login: malformed command packets get an error, never a spin or a traceback

COM_FIELD_LIST = 0x04
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_STMT_FETCH = 0x1C


def _raw_command(conn: pymysql.connections.Connection, payload: bytes) -> bytes | None:
    """Send one command packet as-is; the first response packet (None if there is none)."""
    conn._next_seq_id = 0
    conn._write_bytes(packet(0, payload))
    sock = conn._sock
    sock.settimeout(0.5)
    try:
        return read_packet(sock)
    except socket.timeout:
        return None
    finally:
        sock.settimeout(10)


def test_malformed_commands_after_login_get_errors(fresh_server):
    conn = connect_db(fresh_server.cometql_port, 5)
    try:
        cases = {
            "empty command": b"",
            "COM_FIELD_LIST table without NUL": bytes([COM_FIELD_LIST]) + b"pipes_messages",
            "COM_STMT_EXECUTE short": bytes([COM_STMT_EXECUTE]) + b"\x01\x00",
            "COM_STMT_EXECUTE unknown stmt": bytes([COM_STMT_EXECUTE]) + b"\x09\x00\x00\x00\x00\x01\x00\x00\x00",
            "COM_STMT_RESET short": bytes([COM_STMT_RESET]) + b"\x01",
            "COM_STMT_FETCH short": bytes([COM_STMT_FETCH]) + b"\x01\x00\x00\x00\x05",
            "COM_QUERY not utf-8": b"\x03SELECT '\xff\xfe'",
        }
        for name, payload in cases.items():
            resp = _raw_command(conn, payload)
            assert resp is not None, f"{name}: no answer"
            if payload[:1] == bytes([COM_FIELD_LIST]):      # lenient: answered with the columns
                assert resp.startswith(b"\x03def"), (name, resp[:40])
                while resp[0] != 0xFE:
                    resp = read_packet(conn._sock)
            else:
                assert resp[0] == 0xFF, (name, resp[:40])     # an ERR packet
        # commands without an answer must not break the connection either
        for payload in (bytes([COM_STMT_CLOSE]) + b"\x01", bytes([COM_STMT_SEND_LONG_DATA]) + b"\x01\x00"):
            assert _raw_command(conn, payload) is None
        conn._next_seq_id = 0
        cur = conn.cursor()
        cur.execute("SELECT id FROM users_time WHERE id = 3")
        assert cur.fetchall() == ((3,),)
    finally:
        conn.close()
    assert_site_alive(fresh_server)
    assert_no_traceback(fresh_server)


# --------------------------------------------------------------------------------------------
# 2. prepared statements bind values, never SQL


@pytest.fixture(scope="module")
def shared_server():
    srv = cometql_server({"DEFAULT_LOGIN_TIMEOUT": TEST_LOGIN_TIMEOUT})
    srv.start()
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        try:
            srv.stop(timeout=5)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
    srv.tmp.cleanup()


def connector(srv: ServerProcess, dev_id: int, *, use_pure: bool = True):
    mysql_connector = pytest.importorskip("mysql.connector")
    return mysql_connector.connect(host="127.0.0.1", port=srv.cometql_port, user=str(dev_id),
                                   password=PASSWORD, database=DB, use_pure=use_pure, autocommit=True,
                                   connection_timeout=5)


INJECTION = "x'), ('web_other', 'injected', 'pwned"
TRICKY_TEXTS = [
    INJECTION,
    "back\\slash",
    "it\\'s",                       # backslash + apostrophe
    "trailing backslash \\",
    "\\",
    "'",
    "''",
    '"double" quotes',
    "nul\x00byte",
    "line1\nline2\r\n\ttab",
    "ünïcödé ✓ emoji 😀",
    "a ? question mark -- not a comment # nor this /* nor this */",
    "x\\%y\\_z",
    "\x1a ctrl-z",
    "",
]


def test_prepared_values_are_bound_not_pasted(shared_server, dev=4321):
    srv = shared_server
    target, _ = ws_open(srv, dev_id=dev)
    other, _ = ws_open(srv, dev_id=dev)
    conn = connector(srv, dev)
    try:
        target.send("subscription\nweb_target")
        other.send("subscription\nweb_other")
        ws_sync(target)
        ws_sync(other)
        cur = conn.cursor(prepared=True)
        for text in TRICKY_TEXTS:
            cur.execute("INSERT INTO pipes_messages (name, event, message) VALUES (?, ?, ?)",
                        ("web_target", "evt", text))
            m = ws_recv(target)
            assert m["pipe"] == "web_target" and m["event"] == "evt", m
            assert m["data"] == text, (text, m["data"])
        assert ws_sync(other) == [], "a bound value published to another channel"
        assert ws_sync(target) == []
    finally:
        conn.close()
        target.close()
        other.close()


def test_prepared_parameter_types(shared_server, dev=4322):
    import datetime
    import decimal

    srv = shared_server
    conn = connector(srv, dev)
    cur = conn.cursor(prepared=True)
    cur.execute("INSERT INTO users_auth (id, hash) VALUES (?, ?)", (77, "hash77"))
    user, info = ws_open(srv, dev_id=dev, user_id=77, session="hash77")
    assert info["authorized"] is True
    try:
        ws_sync(user)
        sql = "INSERT INTO users_messages (id, event, message) VALUES (?, ?, ?)"
        cases = [
            (12345678901234, "12345678901234"),
            (-5, "-5"),
            (1.5, "1.5"),
            (decimal.Decimal("-12.50"), "-12.50"),
            (b"bytes \x00 \\ ' blob", "bytes \x00 \\ ' blob"),
            ("utf-8 ✓".encode(), "utf-8 ✓"),
            (datetime.date(2024, 2, 29), "2024-02-29"),
            (datetime.datetime(2024, 2, 29, 13, 14, 15), "2024-02-29 13:14:15"),
            (datetime.datetime(2024, 2, 29, 13, 14, 15, 123456), "2024-02-29 13:14:15.123456"),
            (datetime.timedelta(days=1, hours=1, minutes=2, seconds=3), "25:02:03"),
            (datetime.time(1, 2, 3), "01:02:03"),
            (True, "1"),
        ]
        for value, expected in cases:
            cur.execute(sql, (77, "typed", value))
            m = ws_recv(user)
            assert m["event"] == "typed" and m["data"] == expected, (value, m)
        # the id bound as an int, and NULL refused with CometQL's error 12
        with pytest.raises(Exception) as e:
            cur.execute(sql, (77, "typed", None))
        assert getattr(e.value, "errno", None) == 12, e.value
        # SELECT with a bound key, executed twice (types are sent only once by some clients)
        for _ in range(2):
            cur.execute("SELECT id, time FROM users_time WHERE id = ?", (77,))
            rows = cur.fetchall()
            assert [r[0] for r in rows] == [77] and rows[0][1] == 0     # 0 = online now
        assert ws_sync(user) == []
    finally:
        conn.close()
        user.close()


# --------------------------------------------------------------------------------------------
# 4. no single query blocks the event loop

HOSTILE_QUERIES = {
    "LIKE 12 %": "SHOW VARIABLES LIKE '%%%%%%a%%%%%%zz'",
    "LIKE 16 %": "SHOW VARIABLES LIKE '%%%%%%%%a%%%%%%%%zz'",
    "LIKE in INFORMATION_SCHEMA": "SELECT table_name FROM information_schema.tables "
                                  "WHERE table_name LIKE '%%%%%%%%%%a%%%%%%%%%%zz'",
    "SHOW TABLES LIKE": "SHOW TABLES LIKE '%%%%%%%%%%%%%%%%%%%%a%%%%%%%%%%%%%%%%zz'",
    "15k-term arithmetic": "SELECT " + "*".join(["9"] * 15000),
    "huge numbers": "SELECT " + "9" * 4000 + " * " + "9" * 4000,
    "deep parentheses": "SELECT " + "(" * 20000 + "1" + ")" * 20000,
    "long IN list": "SELECT * FROM users_time WHERE id IN (" + ",".join(["1"] * 30000) + ")",
    "REGEXP": "SELECT table_name FROM information_schema.tables WHERE table_name REGEXP '(a*)*b'",
}


@pytest.mark.parametrize("name", list(HOSTILE_QUERIES))
def test_hostile_query_does_not_block_the_event_loop(shared_server, name):
    srv = shared_server
    sql = HOSTILE_QUERIES[name]
    conn = connect_db(srv.cometql_port, 6)
    ws, _ = ws_open(srv, dev_id=6)
    outcome: dict = {}

    def run() -> None:
        start = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                outcome["rows"] = cur.fetchall()
        except pymysql.MySQLError as e:
            outcome["error"] = e.args[0]
        outcome["seconds"] = time.monotonic() - start

    try:
        worst = 0.0
        t = threading.Thread(target=run)
        t.start()
        while t.is_alive():
            start = time.monotonic()
            ws_sync(ws)
            worst = max(worst, time.monotonic() - start)
            time.sleep(0.005)
        t.join()
        print(f"\n{name}: answered in {outcome.get('seconds', 0) * 1000:.1f} ms "
              f"({'error %s' % outcome['error'] if 'error' in outcome else 'rows'}); "
              f"worst WebSocket round trip meanwhile {worst * 1000:.1f} ms")
        assert "rows" in outcome or "error" in outcome
        assert worst < 1.0, f"WebSocket round trip took {worst:.2f} s during {name!r}"
        assert outcome["seconds"] < 1.0
    finally:
        conn.close()
        ws.close()
