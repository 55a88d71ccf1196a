"""End to end on the real ``python -m comet_server``: CometQL statements act on WebSocket clients
(what a browser tab sees), through PyMySQL and the Debian mysql (MariaDB) command line."""

from __future__ import annotations

import json
import shutil
import time
import warnings

import jwt
import pymysql
import pytest
from websockets.exceptions import ConnectionClosed

from .conftest import DB, PASSWORD, connect_db, mysql_cli, ws_open, ws_recv, ws_sync


@pytest.fixture
def db(server, dev):
    conn = connect_db(server.cometql_port, dev)
    yield conn.cursor()
    conn.close()


def test_insert_into_pipes_messages_reaches_subscribers(server, dev, db):
    a, _ = ws_open(server, dev_id=dev)
    b, _ = ws_open(server, dev_id=dev, v="3.25")
    other, _ = ws_open(server, dev_id=dev + 1)
    try:
        for c in (a, b, other):
            c.send("subscription\nweb_room")
            ws_sync(c)
        text = 'it\'s "quoted" back\\slash é\nline2'
        n = db.execute("INSERT INTO pipes_messages (name, event, message) VALUES (%s, %s, %s)",
                       ("web_room", "new_msg", text))
        assert n == 2                                           # affected rows = deliveries
        m = ws_recv(a)
        assert m["pipe"] == "web_room" and m["event"] == "new_msg" and m["data"] == text
        assert "user_id" not in m and abs(m["message_send_time"] - time.time()) < 10
        legacy = ws_recv(b)                                     # v < 4 gets CppComet's legacy form
        assert legacy["data"] == text and legacy["event_name"] == "new_msg"
        assert ws_sync(other) == []                             # another dev_id sees nothing

        # pipes / users_in_pipes see the subscribers
        db.execute("SELECT * FROM pipes WHERE name IN ('web_room', 'web_empty')")
        assert db.fetchall() == (("web_room", 2), ("web_empty", 0))
        db.execute("SELECT name, user_id, ip FROM users_in_pipes WHERE name = 'web_room'")
        assert db.fetchall() == (("web_room", 0, "127.0.0.1"),) * 2
    finally:
        for c in (a, b, other):
            c.close()


def test_history_id_in_live_message_and_select(server, dev, db):
    db.execute("INSERT INTO pipes_settings (name, length) VALUES ('web_hist', 10)")
    a, _ = ws_open(server, dev_id=dev)
    try:
        a.send("subscription\nweb_hist")
        ws_sync(a)
        db.execute("INSERT INTO pipes_messages (name, event, message) VALUES ('web_hist', 'e', '{\"i\":1}')")
        m = ws_recv(a)
        db.execute("SELECT id, message FROM pipes_messages WHERE name = 'web_hist'")
        assert db.fetchall() == ((m["history_id"], '{"i":1}'),)
    finally:
        a.close()


def test_users_messages_live_only_to_that_user(server, dev, db):
    db.execute("INSERT INTO users_auth (id, hash) VALUES (3, 'hash3'), (4, 'hash4')")
    u3a, info = ws_open(server, dev_id=dev, user_id=3, session="hash3")
    assert info["authorized"] is True and info["data"] == "hash3"
    u3b, _ = ws_open(server, dev_id=dev, user_id=3, session="hash3")
    u4, _ = ws_open(server, dev_id=dev, user_id=4, session="hash4")
    anon, _ = ws_open(server, dev_id=dev)
    try:
        n = db.execute("INSERT INTO users_messages (id, event, message) VALUES (3, 'chat', '{\"text\":\"hi\"}')")
        assert n == 2
        for c in (u3a, u3b):
            m = ws_recv(c)
            assert (m["pipe"], m["event"], m["data"]) == ("msg", "chat", '{"text":"hi"}')
        assert ws_sync(u4) == [] and ws_sync(anon) == []
        db.execute("SELECT * FROM users_messages WHERE id = 3")
        assert db.fetchall() == ()                              # delivered live: nothing queued
        db.execute("SELECT * FROM users_time WHERE id IN (3, 5)")
        assert db.fetchall() == ((3, 0), (5, -1))
    finally:
        for c in (u3a, u3b, u4, anon):
            c.close()


def test_offline_queue_all_in_order_on_connect(server, dev, db):
    db.execute("INSERT INTO users_auth (id, hash) VALUES (9, 'hash9')")
    texts = [f"queued-{i:02d}" for i in range(15)]                # more than CppComet's 10
    for t in texts:
        assert db.execute("INSERT INTO users_messages (id, event, message) VALUES (9, 'q', %s)", (t,)) == 0
    db.execute("SELECT message FROM users_messages WHERE id = 9")
    assert [r[0] for r in db.fetchall()] == texts
    conn, info = ws_open(server, dev_id=dev, user_id=9, session="hash9")
    try:
        assert info["authorized"] is True
        got = [ws_recv(conn) for _ in texts]
        assert [m["data"] for m in got] == texts
        assert all(m["pipe"] == "msg" and m["event"] == "q" and m.get("fromQueue") is True for m in got)
        assert ws_sync(conn) == []
    finally:
        conn.close()
    db.execute("SELECT * FROM users_messages WHERE id = 9")
    assert db.fetchall() == ()
    # a second connect gets nothing again (no redelivery of same-second messages)
    conn, _ = ws_open(server, dev_id=dev, user_id=9, session="hash9")
    try:
        assert ws_sync(conn) == []
    finally:
        conn.close()


def test_delete_from_users_auth_disconnects_that_user(server, dev, db):
    db.execute("INSERT INTO users_auth (id, hash) VALUES (11, 'hash11'), (12, 'hash12')")
    u11, _ = ws_open(server, dev_id=dev, user_id=11, session="hash11")
    u12, _ = ws_open(server, dev_id=dev, user_id=12, session="hash12")
    try:
        assert db.execute("DELETE FROM users_auth WHERE id = 11") == 1
        with pytest.raises(ConnectionClosed):
            while True:
                u11.recv(timeout=5)
        assert ws_sync(u12) == []                               # the other user stays
        again, info = ws_open(server, dev_id=dev, user_id=11, session="hash11")
        again.close()
        assert info["authorized"] is False                      # the hash is gone
    finally:
        u11.close()
        u12.close()


def _jwt(dev: int, user_id: int) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode({"user_id": user_id, "exp": int(time.time()) + 3600}, PASSWORD + str(dev),
                          algorithm="HS256")


def test_revoked_jwt_is_refused_and_its_user_cut_off(server, dev, db):
    token = _jwt(dev, 5)
    conn, info = ws_open(server, dev_id=dev, user_id=5, session=token)
    assert info["authorized"] is True
    try:
        assert db.execute("INSERT INTO revoked_tokens (token) VALUES (%s)", (token,)) == 1
        with pytest.raises(ConnectionClosed):
            while True:
                conn.recv(timeout=5)
    finally:
        conn.close()
    conn, info = ws_open(server, dev_id=dev, user_id=5, session=token)
    conn.close()
    assert info["authorized"] is False and info["data"] == ""
    db.execute("DELETE FROM revoked_tokens WHERE token = %s", (token,))
    conn, info = ws_open(server, dev_id=dev, user_id=5, session=token)
    conn.close()
    assert info["authorized"] is True


def test_wrong_password_on_the_real_server(server):
    with pytest.raises(pymysql.MySQLError) as ei:
        connect_db(server.cometql_port, 1, password="nope")
    assert ei.value.args[0] == 16


# ---------------------------------------------------------------------------------------------
# the mysql command line client

needs_cli = pytest.mark.skipif(shutil.which("mysql") is None, reason="mysql (mariadb-client) not installed")


def rows(out: str) -> list[list[str]]:
    return [line.split("\t") for line in out.strip("\n").split("\n")] if out.strip() else []


@needs_cli
def test_mysql_cli_every_table(server, dev):
    port = server.cometql_port
    ws, _ = ws_open(server, dev_id=dev)
    try:
        ws.send("subscription\nweb_cli")
        ws_sync(ws)
        r = mysql_cli(port, "INSERT INTO pipes_messages (name, event, message) VALUES ('web_cli', 'ev', 'it''s \\\"q\\\"')",
                      dev_id=dev)
        assert r.returncode == 0, r.stderr
        m = ws_recv(ws)
        assert (m["event"], m["data"]) == ("ev", 'it\'s "q"')
    finally:
        ws.close()
    script = """
        INSERT INTO pipes_settings (name, length) VALUES ('web_cli', 5);
        INSERT INTO pipes_messages (name, event, message) VALUES ('web_cli', 'e1', 'one');
        INSERT INTO users_auth (id, hash) VALUES (3, 'cliHash');
        INSERT INTO users_data (id, data) VALUES (3, '{"a":1}');
        INSERT INTO users_messages (id, event, message) VALUES (3, 'chat', 'queued');
        INSERT INTO revoked_tokens (token) VALUES ('not.a.jwt');
    """
    r = mysql_cli(port, script, dev_id=dev)
    assert r.returncode == 0, r.stderr
    checks = {
        "SELECT name, length FROM pipes_settings WHERE name = 'web_cli'": [["name", "length"], ["web_cli", "5"]],
        "SELECT event, message FROM pipes_messages WHERE name = 'web_cli'": [["event", "message"], ["e1", "one"]],
        "SELECT * FROM users_auth WHERE id = 3": [["id", "hash"], ["3", "cliHash"]],
        "SELECT * FROM users_data WHERE id = 3": [["id", "data"], ["3", '{"a":1}']],
        "SELECT id, event, message FROM users_messages WHERE id = 3": [["id", "event", "message"],
                                                                        ["3", "chat", "queued"]],
        "SELECT * FROM users_time WHERE id IN (3)": [["id", "time"], ["3", "-1"]],
        "SELECT * FROM revoked_tokens": [["token"], ["not.a.jwt"]],
        "SELECT * FROM pipes WHERE name = 'web_cli'": [["name", "users"], ["web_cli", "0"]],
        "SELECT * FROM users_in_pipes WHERE name = 'web_cli'": [],
        "SELECT DATABASE()": [["DATABASE()"], [DB]] ,
        "SELECT @@version_comment LIMIT 1": None,
    }
    for sql, expected in checks.items():
        r = mysql_cli(port, sql, dev_id=dev)
        assert r.returncode == 0, (sql, r.stderr)
        if expected is not None and sql != "SELECT DATABASE()":
            assert rows(r.stdout) == expected, (sql, r.stdout)
    r = mysql_cli(port, "SHOW TABLES", dev_id=dev)
    assert rows(r.stdout)[0] == [f"Tables_in_{DB}"] and ["users_auth"] in rows(r.stdout)
    r = mysql_cli(port, "DESCRIBE users_auth", dev_id=dev)
    assert rows(r.stdout)[1][:4] == ["id", "int(11)", "NO", "PRI"]
    for sql in ("DELETE FROM users_messages WHERE id = 3", "DELETE FROM users_data WHERE id = 3",
                "DELETE FROM users_auth WHERE id = 3", "DELETE FROM pipes_messages WHERE name = 'web_cli'",
                "DELETE FROM pipes_settings WHERE name = 'web_cli'",
                "DELETE FROM revoked_tokens WHERE token = 'not.a.jwt'"):
        r = mysql_cli(port, sql, dev_id=dev)
        assert r.returncode == 0, (sql, r.stderr)
    r = mysql_cli(port, "SELECT * FROM users_auth WHERE id = 3; SELECT * FROM revoked_tokens", dev_id=dev)
    assert r.returncode == 0 and r.stdout.strip() == ""


@needs_cli
@pytest.mark.parametrize("sql,code", [
    ("SELECT * FROM users_auth WHERE id = 1 OR id = 2", 2),
    ("SELECT * FROM pipes_messages WHERE name = 'web_x' ORDER BY id", 2),
    ("SELEKT 1", 3),
    ("INSERT INTO users_time (id, time) VALUES (1, 1)", 10),
    ("INSERT INTO pipes_messages (name, event, message) VALUES ('web_x', 'e', 'm' ", 3),
    ("INSERT INTO pipes_messages (name, event, message) VALUES ('web.x', 'e', 'm')", 12),
    ("SELECT * FROM pipes_messages", 13),
    ("SELECT nope FROM users_auth WHERE id = 1", 14),
    ("SELECT * FROM nope WHERE id = 1", 15),
    ("INSERT INTO pipes_messages (name, event, message) VALUES ('ab', 'e', 'm')", 17),
])
def test_mysql_cli_error_codes(server, dev, sql, code):
    r = mysql_cli(server.cometql_port, sql, dev_id=dev)
    assert r.returncode != 0
    assert f"ERROR {code} (" in r.stderr, r.stderr


@needs_cli
def test_mysql_cli_login_errors(server):
    r = mysql_cli(server.cometql_port, "SELECT 1", password="wrong")
    assert "ERROR 16 (" in r.stderr, r.stderr
    r = mysql_cli(server.cometql_port, "SELECT 1", database="nope")
    assert "ERROR 15 (" in r.stderr, r.stderr
    r = mysql_cli(server.cometql_port, "SELECT * FROM users_time WHERE id = 1", database=None)
    assert "ERROR 15 (" in r.stderr, r.stderr
    r = mysql_cli(server.cometql_port, "USE CometQL_v1; SELECT * FROM users_time WHERE id = 1", database=None)
    assert r.returncode == 0 and rows(r.stdout) == [["id", "time"], ["1", "-1"]], r.stderr
    r = mysql_cli(server.cometql_port, "status", database=None)
    assert r.returncode == 0, r.stderr
    assert "5.7.99-comet_server" in r.stdout


@needs_cli
def test_mysql_cli_interactive_session(server, dev):
    """An interactive mysql session (on a pty): the welcome banner, auto-rehash (SHOW DATABASES,
    SHOW TABLES, COM_FIELD_LIST per table), a query, ``status``."""
    import os
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.execvp("mysql", ["mysql", "-h127.0.0.1", f"-P{server.cometql_port}", f"-u{dev}", f"-p{PASSWORD}",
                            "--skip-ssl", f"-D{DB}", "--auto-rehash"])
    out = b""

    def read_until(token: bytes, timeout: float = 10) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while token not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    return
    try:
        read_until(b"[CometQL_v1]> ")
        assert b"Reading table information" in out and b"5.7.99-comet_server" in out
        os.write(fd, b"SELECT * FROM users_time WHERE id = 42;\n")
        read_until(b"1 row in set")
        assert b"|   42 |   -1 |" in out
        os.write(fd, b"status\n")
        read_until(b"TCP port")
        assert b"SSL:\t\t\tNot in use" in out
        os.write(fd, b"exit\n")
        read_until(b"Bye")
        assert b"Bye" in out
    finally:
        os.close(fd)
        os.waitpid(pid, 0)


def test_server_survives_hostile_queries(server, dev, db):
    for sql in ["SELECT * FROM users_time WHERE " + "(" * 2000 + "id = 1" + ")" * 2000,
                "x" * 200000, "\u0000\u0001", "SELECT 9" + "9" * 60000,
                "INSERT INTO pipes_messages (name, event, message) VALUES " + ",".join(["('web_x','e','m')"] * 1001)]:
        with pytest.raises(pymysql.MySQLError):
            db.execute(sql)
        assert db.execute("SELECT * FROM users_time WHERE id = 1") == 1
    assert server.proc.poll() is None
    assert json.loads(json.dumps({"alive": True}))["alive"]


def test_shutdown_with_open_cometql_connections_is_clean():
    from .conftest import cometql_server
    srv = cometql_server()
    srv.start()
    try:
        conn = connect_db(srv.cometql_port, 1)
        conn.cursor().execute("SELECT * FROM users_time WHERE id = 1")
        assert srv.stop() == 0
        with pytest.raises(pymysql.MySQLError):
            conn.cursor().execute("SELECT * FROM users_time WHERE id = 1")
        log = srv.log()
        assert "Traceback" not in log and "ERROR" not in log, log
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
        srv.tmp.cleanup()
