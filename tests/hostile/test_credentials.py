"""Credentials and defaults (issue 8 item 7) and the command line that enforces them.

Servers are subprocesses (tests/support/server.ServerProcess) on 127.0.0.1; the one test of a
non-loopback --host uses 192.0.2.1 (TEST-NET-1, never assigned), so nothing can listen there.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
import warnings

import jwt
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from comet_server.store import Store
from tests.support.server import PASSWORD, PYTHON, ROOT, ServerProcess

DEV = 77


@pytest.fixture(scope="module")
def server():
    srv = ServerProcess(cometql=False, test_pages=False).start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def store(server):
    s = Store(server.db)
    yield s
    s.close()


def token(user_id: int, exp: float) -> str:
    with warnings.catch_warnings():  # CppComet's secret scheme is shorter than RFC 7518 asks
        warnings.simplefilter("ignore")
        return jwt.encode({"user_id": user_id, "exp": int(exp)}, PASSWORD + str(DEV), algorithm="HS256")


def ws(server, user_id="", key="", **kw):
    conn = ws_connect(server.ws_url(dev_id=DEV, user_id=user_id, session=key), ping_interval=None,
                      open_timeout=5, close_timeout=2, legacy=True, **kw)
    info = json.loads(conn.recv(timeout=5))
    assert info["event"] == "serverInfo"
    return conn, info


def frames_until_answer(conn, marker: str = "SYNC") -> list[dict]:
    """Every frame before the answer to a pipe_count round trip: 'nothing else arrived'."""
    conn.send(f"pipe_count\nweb_sync\n{marker}\n")
    got = []
    while True:
        m = json.loads(conn.recv(timeout=5))
        if m.get("pipe") == "_answer_pipe_count" and m.get("marker") == marker:
            return got
        got.append(m)


def http_status(server, path: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        c.request("GET", path)
        return c.getresponse().status
    finally:
        c.close()


# -- JWT ------------------------------------------------------------------------------------------

def test_nothing_a_jwt_login_yields_outlives_the_token(server, store):
    t = token(11, time.time() + 2)
    conn, info = ws(server, user_id=11, key=t)
    conn.close()
    assert info["authorized"] is True
    handed_out = info["data"]
    assert store.get_user_hash(DEV, 11) in (None, "")  # no permanent session was created
    time.sleep(3)  # the token has expired
    for key in {handed_out, t} - {""}:
        conn, later = ws(server, user_id=11, key=key)
        conn.close()
        assert later["authorized"] is False, "a key from a JWT login still works after exp"


def test_live_connection_of_a_jwt_login_is_closed_when_the_token_expires(server):
    conn, info = ws(server, user_id=12, key=token(12, time.time() + 2))
    assert info["authorized"] is True
    t0 = time.monotonic()
    with pytest.raises(ConnectionClosed) as ei:
        while True:
            conn.recv(timeout=10)
    assert time.monotonic() - t0 < 9
    assert ei.value.rcvd is not None and ei.value.rcvd.code == 1008
    assert "expired" in ei.value.rcvd.reason.lower()


def test_hash_login_is_not_closed_and_still_hands_out_its_hash(server, store):
    store.set_user_hash(DEV, 13, "hash13")
    conn, info = ws(server, user_id=13, key="hash13")
    with conn:
        assert info["authorized"] is True and info["data"] == "hash13"
        assert frames_until_answer(conn) == []


# -- @ (anonymous send) ---------------------------------------------------------------------------

def test_at_prefix_on_a_webauth_channel_is_refused_with_an_error_frame(server, store):
    store.set_user_hash(DEV, 21, "hash21")
    sender, _ = ws(server, user_id=21, key="hash21")
    reader, _ = ws(server)
    with sender, reader:
        reader.send("subscription\nwebauth_room\nweb_room")
        frames_until_answer(reader)
        sender.send("web_pipe2\n@webauth_room\ne\n*\nas-nobody")
        err = json.loads(sender.recv(timeout=5))
        assert err["event"] == "error" and err["pipe"] == "sys"
        assert "web_" in err["data"]["error"] and "@" in err["data"]["error"]
        assert frames_until_answer(reader) == []  # nothing was delivered
        sender.send("web_pipe2\n@web_room\ne\n*\nanon")  # '@' on web_ still works
        m = json.loads(reader.recv(timeout=5))
        assert m["pipe"] == "web_room" and m["user_id"] == 0 and m["data"] == "anon"


# -- demo files, Pyodide's console, --allowed-origins ---------------------------------------------

DEMO_ONLY = ("/demo/console/index.html", "/demo/console/console.py", "/demo/accounts.json")


def test_demo_console_and_accounts_only_in_demo_mode_and_never_pyodide_html(server):
    for path in DEMO_ONLY:
        assert http_status(server, path) == 404, path
    assert http_status(server, "/demo/console/") == 404
    assert http_status(server, "/demo/chat/index.html") == 200
    for name in ("console.html", "console-v2.html"):
        if (ROOT / "vendor" / "pyodide" / name).exists():
            assert http_status(server, f"/vendor/pyodide/{name}") == 404, name
    demo = ServerProcess(cometql=False, test_pages=False, demo=True).start()
    try:
        for path in DEMO_ONLY:
            assert http_status(demo, path) == 200, path
        assert http_status(demo, "/vendor/pyodide/console.html") == 404
    finally:
        demo.close()


def test_allowed_origins_refuses_other_pages_and_lets_non_browsers_in():
    srv = ServerProcess(cometql=False, test_pages=False,
                        extra_args=["--allowed-origins", "https://chat.example, http://127.0.0.1:8087/"]).start()
    try:
        with pytest.raises(InvalidStatus) as ei:
            ws(srv, origin="https://evil.example")
        assert ei.value.response.status_code == 403
        for origin in ("https://chat.example", "HTTP://127.0.0.1:8087", None):
            conn, info = ws(srv, origin=origin)
            conn.close()
            assert info["event"] == "serverInfo", origin
    finally:
        srv.close()


def test_without_allowed_origins_any_origin_connects(server):
    conn, info = ws(server, origin="https://anywhere.example")
    conn.close()
    assert info["authorized"] is False


# -- the default password and the command line ----------------------------------------------------

def run_cli(*args: str, env_password: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COMET_PASSWORD"}
    if env_password is not None:
        env["COMET_PASSWORD"] = env_password
    return subprocess.run([PYTHON, "-m", "comet_server", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=30)


def test_default_password_is_refused_for_a_non_loopback_host():
    for extra in ([], ["--password", PASSWORD]):
        r = run_cli("--host", "192.0.2.1", "--port", "0", "--cometql-port", "0", "--db", ":memory:", *extra)
        assert r.returncode != 0
        assert "--password" in r.stderr and "COMET_PASSWORD" in r.stderr and "public" in r.stderr, r.stderr
    # with a password of one's own (here from the environment) it gets as far as binding, which
    # fails only because 192.0.2.1 is no address of this machine
    r = run_cli("--host", "192.0.2.1", "--port", "0", "--cometql-port", "0", "--db", ":memory:",
                env_password="a-secret-of-my-own")
    assert r.returncode == 1 and "password" not in r.stderr.lower(), r.stderr


def test_default_password_on_loopback_starts_with_a_warning(server):
    log = server.log()
    assert "WARNING" in log and "default" in log and "COMET_PASSWORD" in log


def test_help_says_cppcomet_compatible_once():
    r = run_cli("--help")
    assert r.returncode == 0 and r.stdout.count("CppComet-compatible") <= 1, r.stdout
    for option in ("--demo", "--site", "--allowed-origins", "--header-timeout", "--max-connections",
                   "--max-connections-per-ip"):
        assert option in r.stdout
