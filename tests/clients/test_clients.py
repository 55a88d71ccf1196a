"""Every MySQL client a CppComet backend already uses works against comet_server's CometQL with
only the host and port changed: it publishes, sends a personal message, reads users_time, gets
CometQL's error 13, and runs a prepared INSERT, and a WebSocket subscriber gets the exact text."""

from __future__ import annotations

import random

import pytest

from tests.cometql.conftest import DB, PASSWORD, connect_db, ws_open, ws_recv, ws_sync

from .conftest import require
from .drivers import CLIENTS, Client

# Each one is its own INSERT, so a subscriber can tell which one broke.
PAYLOADS = [
    "it's",
    'say "hi"',
    "back\\slash",
    "it\\'s",                                   # backslash + apostrophe
    "line1\nline2",
    "col1\tcol2",
    "emoji 😀🎉 и ü",
    "all at once: ' \" \\ \\' \n \t 😀 \\\\ ''",
    '{"text": "it\'s \\"quoted\\"", "n": 1}',    # JSON, as most backends send it
]

PREPARING = [c for c in CLIENTS if c.prepares]


def _params(clients: list[Client]) -> list:
    return [pytest.param(c, id=c.name, marks=[pytest.mark.slow_install] if c.slow_install else []) for c in clients]


def request(server, dev: int, op: str, **args) -> dict:
    return {"host": "127.0.0.1", "port": server.cometql_port, "user": str(dev), "password": PASSWORD,
            "database": DB, "op": op, **args}


def ok(result: dict) -> dict:
    assert "error" not in result, result["error"]
    return result


def published(server, dev: int, client: Client, op: str, payloads: list[str] = PAYLOADS,
              **args) -> tuple[list[dict], dict]:
    """Run ``op`` (publish / prepared_publish) with every payload; the frames one subscriber got."""
    pipe = f"web_{client.name.replace('-', '_')}"
    ws, _ = ws_open(server, dev_id=dev)
    try:
        ws.send(f"subscription\n{pipe}")
        ws_sync(ws)
        result = client.run(request(server, dev, op, pipe=pipe, event="ev_" + op, messages=payloads, **args))
        if "error" in result:
            return [], result
        frames = [ws_recv(ws) for _ in payloads]
        assert ws_sync(ws) == []                                # nothing more
    finally:
        ws.close()
    assert all(f["pipe"] == pipe and f["event"] == "ev_" + op for f in frames), frames
    return frames, result


@pytest.mark.parametrize("client", _params(CLIENTS))
def test_publish_reaches_subscriber_byte_exact(client, server, dev):
    require(client)
    frames, result = published(server, dev, client, "publish")
    ok(result)
    assert [f["data"] for f in frames] == PAYLOADS
    # comet_server counts the connections the message reached (one subscriber here); CppComet says 0.
    assert result["affected"] == [1] * len(PAYLOADS)


@pytest.mark.parametrize("client", _params(PREPARING))
def test_prepared_insert_reaches_subscriber_byte_exact(client, server, dev):
    require(client)
    frames, result = published(server, dev, client, "prepared_publish")
    ok(result)
    assert [f["data"] for f in frames] == PAYLOADS
    assert result["affected"] == [1] * len(PAYLOADS)       # as for the same INSERT sent as text


LATIN1_CLIENTS = [c for c in CLIENTS if c.name in ("php-mysqli", "mysql-cli")]


@pytest.mark.parametrize("client", _params(LATIN1_CLIENTS))
def test_utf8_bytes_on_a_latin1_connection_arrive_intact(client, server, dev):
    """The mysql CLI under LANG=C, and legacy PHP apps, declare latin1 and send UTF-8 bytes.
    CppComet passes the bytes through, so the subscriber gets the text the backend had."""
    require(client)
    texts = ["emoji 😀🎉 и ü", "plain ascii it's", "café"]
    frames, result = published(server, dev, client, "publish", texts, charset="latin1")
    ok(result)
    assert [f["data"] for f in frames] == texts


def _authorized_user(server, dev: int) -> tuple[int, str]:
    user_id = random.randint(100, 10**6)
    conn = connect_db(server.cometql_port, dev)
    try:
        conn.cursor().execute("INSERT INTO users_auth (id, hash) VALUES (%s, %s)", (user_id, f"h{user_id}"))
    finally:
        conn.close()
    return user_id, f"h{user_id}"


@pytest.mark.parametrize("client", _params(CLIENTS))
def test_personal_message_reaches_only_that_user(client, server, dev):
    require(client)
    user_id, key = _authorized_user(server, dev)
    target, info = ws_open(server, dev_id=dev, user_id=user_id, session=key)
    other, _ = ws_open(server, dev_id=dev)
    text = PAYLOADS[-2]
    try:
        assert info["authorized"] is True
        result = ok(client.run(request(server, dev, "personal", user_id=user_id, event="chat", message=text)))
        m = ws_recv(target)
        assert (m["pipe"], m["event"], m["data"]) == ("msg", "chat", text)
        assert ws_sync(other) == []
        assert result["affected"] == [1]                     # delivered to its one connection
    finally:
        target.close()
        other.close()


# What the integer columns of a plain SELECT come back as (the README documents this table).
USERS_TIME_TYPE = {
    "php-mysqli": "str", "php-pdo": "int", "php-pdo-emulated": "int", "node-mysql2": "int", "node-mysql": "int",
    "connector-pure": "int", "connector-c": "int", "pymysql": "int", "aiomysql": "int",
    "mysqlclient": "int", "mysql-cli": "str", "libmariadb-c": "str",
}


@pytest.mark.parametrize("client", _params(CLIENTS))
def test_users_time_online_and_unknown(client, server, dev):
    require(client)
    user_id, key = _authorized_user(server, dev)
    unknown = user_id + 1
    ws, _ = ws_open(server, dev_id=dev, user_id=user_id, session=key)
    try:
        rows = ok(client.run(request(server, dev, "users_time", ids=[user_id, unknown])))["rows"]
    finally:
        ws.close()
    assert [[int(v) for v in row] for row in rows] == [[user_id, 0], [unknown, -1]]   # 0 = online now
    assert {type(v).__name__ for row in rows for v in row} == {USERS_TIME_TYPE[client.name]}




@pytest.mark.parametrize("client", _params(CLIENTS))
def test_error_13_select_without_key(client, server, dev):
    require(client)
    result = client.run(request(server, dev, "query", sql="SELECT * FROM users_time"))
    assert "error" in result, result
    err = result["error"]
    assert err["errno"] == 13, err
    assert "primary key" in err["message"], err
    if client.name.startswith("php-pdo"):                  # getCode() is the SQLSTATE, not the CometQL code
        assert err["class"] == "PDOException" and err["code"] == "HY000" and err["errorInfo"][1] == 13
    if client.name == "php-mysqli":               # PHP 8.1+ throws by default
        assert err["class"] == "mysqli_sql_exception" and err["code"] == 13


@pytest.mark.parametrize("args", [{"native_types": True}, {"op": "prepared_users_time"}],
                         ids=["MYSQLI_OPT_INT_AND_FLOAT_NATIVE", "prepared"])
def test_mysqli_integers_as_php_ints(server, dev, args):
    """The two ways a mysqli user gets PHP ints instead of strings (README)."""
    client = next(c for c in CLIENTS if c.name == "php-mysqli")
    require(client)
    rows = ok(client.run({**request(server, dev, "users_time", ids=[1]), **args}))["rows"]
    assert rows == [[1, -1]]


@pytest.mark.parametrize("client", _params(CLIENTS))
def test_nobody_reached_gives_zero_affected_rows(client, server, dev):
    """No subscriber, offline user: 0 affected rows, and no error (the message is queued)."""
    require(client)
    published = ok(client.run(request(server, dev, "publish", pipe="web_nobody_here", event="e", messages=["x"])))
    queued = ok(client.run(request(server, dev, "personal", user_id=424242, event="e", message="queued")))
    assert (published["affected"], queued["affected"]) == ([0], [0])
    conn = connect_db(server.cometql_port, dev)
    try:
        cur = conn.cursor()
        cur.execute("SELECT message FROM users_messages WHERE id = 424242")
        assert cur.fetchall() == (("queued",),)
    finally:
        conn.close()


@pytest.mark.parametrize("client", _params(CLIENTS))
def test_show_status_as_in_cppcomets_php_example(client, server, dev):
    require(client)
    rows = ok(client.run(request(server, dev, "query", sql="SHOW STATUS")))["rows"]
    status = {name: value for name, value in rows}
    assert int(status["Uptime"]) >= 0 and int(status["Threads_connected"]) >= 1, status
