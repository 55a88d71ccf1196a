"""Process lifecycle: SIGTERM exits cleanly, state in SQLite survives a restart, --test-pages."""

from __future__ import annotations

import http.client

import pytest

from .helpers import REPO, connect, recv_json, recv_until, server_in, sync


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
    srv = server_in(tmp_path)
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
    srv = server_in(tmp_path, extra_args=("--test-pages",))
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


def test_subscriber_that_never_reads_is_closed_1013_and_others_keep_receiving(tmp_path):
    """A slow subscriber is cut off (close 1013) once its unsent output passes
    --max-client-buffer; the publisher's reports and a healthy subscriber are not held up."""
    import json as _json

    from .helpers import RawWS

    srv = server_in(tmp_path, extra_args=("--max-client-buffer", "65536"))
    srv.start()
    try:
        slow = RawWS(srv.host, srv.port, "/ws/sesion=&myid=&devid=1&v=4.08&uuid=slow", timeout=10)
        slow.recv_frame()
        slow.send_frame(0x1, b"subscription\nweb_flood")
        good, _ = connect(srv, dev_id=1)
        pub, _ = connect(srv, dev_id=1)
        with good, pub:
            good.send("subscription\nweb_flood")
            sync(good)
            sync(pub)  # both subscriptions processed (commands are handled in order per server)
            body = "z" * 60000
            counts = []
            for _ in range(400):  # up to ~24 MB: far more than the kernel buffers hold
                pub.send(f"web_pipe2\nweb_flood\ne\n*\n{body}")
                rep = recv_json(pub)
                assert recv_json(good)["data"] == body
                counts.append(rep["data"]["number_messages"])
                if counts[-1] == 1:
                    break
            assert counts[0] == 2 and counts[-1] == 1, counts  # the slow one was dropped
        # the slow client finds the data that was already queued, then a 1013 close frame
        code = None
        try:
            while True:
                op, payload = slow.recv_frame()
                if op == 8:
                    code = int.from_bytes(payload[:2], "big")
                    break
        except (ConnectionError, TimeoutError, OSError):
            pass
        slow.close()
        assert code == 1013
    finally:
        assert srv.stop() == 0, srv.log()
