"""Process lifecycle: SIGTERM exits cleanly, state in SQLite survives a restart, --test-pages."""

from __future__ import annotations

import http.client

import pytest

from conftest import REPO, ServerProc, connect, recv_json, recv_until, sync


def test_restart_keeps_history_and_auth_and_clients_reconnect(server, dev, store):
    store.set_pipe_length(dev, "web_keep", 5)
    store.set_user_hash(dev, 31, "h31")
    a, _ = connect(server, dev_id=dev, user_id=31, session="h31")
    with a:
        a.send("web_pipe2\nweb_keep\ne\n*\nsurvives")
        assert recv_json(a)["pipe"] == "_answer_to_web_keep"
    server.restart()  # asserts exit code 0 on SIGTERM
    b, info = connect(server, dev_id=dev, user_id=31, session="h31")
    with b:
        assert info["authorized"] is True
        b.send("pipe_log\nweb_keep\nM\n")
        end, items = recv_until(b, lambda m: m["pipe"] == "_answer_pipe_log")
        assert [m["data"] for m in items] == ["survives"] and items[0]["user_id"] == 31
    assert store.get_user_time(dev, 31) > 0


def test_sigterm_with_open_connections_exits_0(tmp_path):
    srv = ServerProc(tmp_path)
    srv.start()
    try:
        conn, _ = connect(srv, dev_id=1)
        conn.send("subscription\nweb_x\ntrack_y")
        sync(conn)
    finally:
        assert srv.stop() == 0, srv.log()
    conn.close()


def test_test_pages_served_only_with_flag(tmp_path, server):
    if not (REPO / "tests" / "pages" / "harness.html").exists():
        pytest.skip("no tests/pages/harness.html in this checkout")
    srv = ServerProc(tmp_path, extra_args=("--test-pages",))
    srv.start()
    try:
        c = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
        c.request("GET", "/tests/pages/harness.html")
        r = c.getresponse()
        r.read()
        assert r.status == 200 and r.getheader("Content-Type").startswith("text/html")
        c.request("GET", "/tests/server/conftest.py")
        r = c.getresponse()
        r.read()
        assert r.status == 404
        c.close()
    finally:
        assert srv.stop() == 0
    c = http.client.HTTPConnection(server.host, server.port, timeout=5)
    c.request("GET", "/tests/pages/harness.html")
    assert c.getresponse().status == 404
    c.close()


def test_ready_line_names_host_port_and_cometql(server):
    assert server.ready_line.strip() == (
        f"comet_server listening on http://{server.host}:{server.port}/ (ws /ws/, CometQL off)")
