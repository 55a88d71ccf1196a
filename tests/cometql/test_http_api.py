"""POST /api/publish on the real server: the same effect and the same error codes as the
CometQL INSERTs, seen by WebSocket clients."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from .conftest import PASSWORD, connect_db, ws_open, ws_recv, ws_sync


def publish(server, body, *, user: str | int = 1, password: str = PASSWORD, raw: bytes | None = None,
            auth: bool = True) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/publish", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    if auth:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_publish_to_pipe(server, dev):
    a, _ = ws_open(server, dev_id=dev)
    try:
        a.send("subscription\nweb_http")
        ws_sync(a)
        assert publish(server, {"pipe": "web_http", "event": "new", "message": "it's \"x\""}, user=dev) == \
            (200, {"ok": True, "delivered": 1})
        m = ws_recv(a)
        assert (m["pipe"], m["event"], m["data"]) == ("web_http", "new", "it's \"x\"")
        # non-string message: its compact JSON text, like a backend would INSERT it
        assert publish(server, {"pipe": "web_http", "event": "obj", "message": {"a": [1, "é"]}}, user=dev)[0] == 200
        assert ws_recv(a)["data"] == '{"a":[1,"é"]}'
    finally:
        a.close()


def test_publish_to_user_live_and_queued(server, dev):
    cur = connect_db(server.cometql_port, dev).cursor()
    cur.execute("INSERT INTO users_auth (id, hash) VALUES (4, 'h4')")
    assert publish(server, {"user_id": 4, "event": "e", "message": "offline"}, user=dev) == \
        (200, {"ok": True, "delivered": 0, "queued": True})
    conn, info = ws_open(server, dev_id=dev, user_id=4, session="h4")
    try:
        assert info["authorized"] is True
        m = ws_recv(conn)
        assert (m["pipe"], m["data"], m.get("fromQueue")) == ("msg", "offline", True)
        assert publish(server, {"user_id": 4, "event": "e", "message": "live"}, user=dev) == \
            (200, {"ok": True, "delivered": 1, "queued": False})
        assert ws_recv(conn)["data"] == "live"
    finally:
        conn.close()
        cur.connection.close()


@pytest.mark.parametrize("body,status,code", [
    ({"pipe": "ab", "event": "e", "message": "m"}, 400, 17),
    ({"pipe": "web.x", "event": "e", "message": "m"}, 400, 12),
    ({"pipe": "w" * 65, "event": "e", "message": "m"}, 400, 11),
    ({"pipe": "web_x", "event": "bad event", "message": "m"}, 400, 12),
    ({"pipe": "web_x", "message": "m"}, 400, 12),
    ({"pipe": "web_x", "event": "e"}, 400, 12),
    ({"user_id": 0, "event": "e", "message": "m"}, 400, 12),
    ({"user_id": True, "event": "e", "message": "m"}, 400, 12),
    ({"pipe": "web_x", "user_id": 1, "event": "e", "message": "m"}, 400, 14),
    ({"event": "e", "message": "m"}, 400, 14),
    ({"pipe": "web_x", "event": "e", "message": "m", "extra": 1}, 400, 14),
    ([1, 2], 400, 14),
])
def test_publish_errors(server, body, status, code):
    got_status, got = publish(server, body)
    assert (got_status, got["ok"], got["code"]) == (status, False, code), got
    assert got["error"]


def test_publish_auth_and_bad_json(server):
    assert publish(server, {"pipe": "web_x", "event": "e", "message": "m"}, password="wrong")[1]["code"] == 16
    status, body = publish(server, {"pipe": "web_x", "event": "e", "message": "m"}, auth=False)
    assert (status, body["code"]) == (401, 16)
    assert publish(server, {"pipe": "web_x", "event": "e", "message": "m"}, user="bob")[0] == 401
    assert publish(server, None, raw=b"{not json") == (400, {"ok": False, "error": "The body is not valid JSON",
                                                             "code": 3})
    status, body = publish(server, None, raw=b"x" * (2 * 1024 * 1024))
    assert (status, body["code"]) == (413, 11)
