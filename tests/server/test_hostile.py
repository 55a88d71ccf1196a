"""Hostile or broken input: what the client gets, and that the server keeps serving others."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from .helpers import RawWS, assert_server_alive, connect, recv_json, sync


def _closed_code(conn) -> int | None:
    with pytest.raises(ConnectionClosed) as ei:
        for _ in range(10):
            conn.recv(timeout=5)
    rcvd = ei.value.rcvd
    return rcvd.code if rcvd is not None else None


@pytest.mark.parametrize("path, code", [
    ("/ws/", 401),
    ("/ws/sesion=abc", 401),
    ("/ws/sesion=x&myid=1", 406),
    ("/ws/sesion=x&myid=1&devid=1", 418),
    ("/ws/sesion=x&myid=1&devid=1&v=abc&uuid=u", 418),
])
def test_bad_url_gets_legacy_error_frame_then_close_1008(server, path, code):
    conn = ws_connect(f"ws://{server.host}:{server.port}{path}", ping_interval=None, legacy=True)
    with conn:
        err = recv_json(conn)
        assert err["pipe"] == "sys" and err["event"] == "error" and err["event_name"] == "error"
        assert err["api_data"] == "for major_version < 4"
        data = json.loads(err["data"])  # legacy form: data is a JSON string
        assert data["error_code"] == code and data["error"].startswith(f"Error code {code}(")
        assert data["info"] == "Closed due to error. See last message."
        assert _closed_code(conn) == 1008
    assert_server_alive(server)


@pytest.mark.parametrize("prefix", ["/ws/", "//ws/", "/comet-server/ws/", "//comet-server/ws/"])
def test_all_ws_prefixes_give_serverinfo(server, dev, prefix):
    conn, info = connect(server, dev_id=dev, prefix=prefix)
    with conn:
        assert info["authorized"] is False


def test_url_parsed_by_position_not_by_key_name(server, dev, store):
    store.set_user_hash(dev, 21, "h21")
    url = f"ws://{server.host}:{server.port}/ws/x=h21&xxxx=21&xxxxx={dev}&x=4.08&uuid={'u' * 40}"
    with ws_connect(url, ping_interval=None, legacy=True) as conn:
        info = recv_json(conn)
        assert info["authorized"] is True and info["data"] == "h21"
        conn.send("subscription\ntrack_pos")
        sync(conn)
        with ws_connect(server.ws_url(dev_id=dev), ping_interval=None, legacy=True) as other:
            recv_json(other)
            other.send("track_pipe_users\ntrack_pos\nM")
            assert recv_json(other)["data"] == [{"user_id": 21, "uuid": "u" * 32}]


def test_non_numeric_myid_and_devid_become_0(server):
    url = f"ws://{server.host}:{server.port}/ws/sesion=undefined&myid=undefined&devid=-5&v=4.08&uuid=x"
    with ws_connect(url, ping_interval=None, legacy=True) as conn:
        info = recv_json(conn)
        assert info["authorized"] is False


def test_unknown_command_gets_error_frame_and_connection_still_works(server, dev):
    conn, _ = connect(server, dev_id=dev)
    with conn:
        conn.send("hello server")
        err = recv_json(conn)
        assert err["data"] == {"error": "Unknown command", "number_messages": -1} and err["pipe"] == "sys"
        conn.send("")
        assert recv_json(conn)["data"]["error"] == "Unknown command"
        assert sync(conn) == []
    assert_server_alive(server)


def test_oversize_frame_closes_with_1009(server, dev):
    conn, _ = connect(server, dev_id=dev)
    with conn:
        conn.send("web_pipe2\nweb_big\ne\n*\n".ljust(65536, "x"))  # 65536 bytes: one too many
        assert _closed_code(conn) == 1009
    assert_server_alive(server)


def test_frame_just_under_limit_is_accepted(server, dev):
    conn, _ = connect(server, dev_id=dev)
    with conn:
        head = "web_pipe2\nweb_big\ne\n*\n"
        body = "y" * (65535 - len(head))
        conn.send(head + body)
        rep = recv_json(conn)
        assert rep["data"]["message"] == body


def test_ping_gets_pong_and_connection_still_works(server, dev):
    conn, _ = connect(server, dev_id=dev)
    with conn:
        pong = conn.ping(b"hi")
        assert pong.wait(5)
        assert sync(conn) == []


def test_invalid_utf8_text_frame_closes_with_1007(server, dev):
    raw = RawWS(server.host, server.port, f"/ws/sesion=&myid=&devid={dev}&v=4.08&uuid=raw")
    try:
        assert raw.status_line.startswith("HTTP/1.1 101")
        op, payload = raw.recv_frame()
        assert op == 1 and json.loads(payload)["event"] == "serverInfo"
        raw.send_frame(0x1, b"subscription\n\xff\xfe web_x")
        op, payload = raw.recv_frame()
        assert op == 8 and int.from_bytes(payload[:2], "big") == 1007
    finally:
        raw.close()
    assert_server_alive(server)


def test_binary_frame_with_valid_utf8_is_treated_as_text(server, dev):
    raw = RawWS(server.host, server.port, f"/ws/sesion=&myid=&devid={dev}&v=4.08&uuid=raw")
    try:
        raw.recv_frame()
        raw.send_frame(0x2, b"pipe_count\nweb_bin\nMB\n")
        op, payload = raw.recv_frame()
        assert op == 1 and json.loads(payload)["marker"] == "MB"
        raw.send_frame(0x2, b"\xff\xff")
        op, payload = raw.recv_frame()
        assert op == 8 and int.from_bytes(payload[:2], "big") == 1007
    finally:
        raw.close()


def test_two_frames_in_one_tcp_write_are_both_answered(server, dev):
    raw = RawWS(server.host, server.port, f"/ws/sesion=&myid=&devid={dev}&v=4.08&uuid=raw")
    try:
        raw.recv_frame()
        import os
        import struct

        def frame(p: bytes) -> bytes:
            m = os.urandom(4)
            return struct.pack("!BB", 0x81, 0x80 | len(p)) + m + bytes(b ^ m[i % 4] for i, b in enumerate(p))
        raw.sock.sendall(frame(b"pipe_count\nweb_c\nMrkCoal001\n") + frame(b"pipe_count\nweb_c\nMrkCoal002\n"))
        markers = [json.loads(raw.recv_frame()[1])["marker"] for _ in range(2)]
        assert markers == ["MrkCoal001", "MrkCoal002"]
    finally:
        raw.close()


def test_abrupt_tcp_close_mid_frame_does_not_hurt_others(server, dev):
    raw = RawWS(server.host, server.port, f"/ws/sesion=&myid=&devid={dev}&v=4.08&uuid=raw")
    raw.recv_frame()
    raw.sock.sendall(b"\x81\xfe\xff")  # header of a frame that never comes
    raw.close()
    assert_server_alive(server)


def test_garbage_commands_never_break_the_connection(server, dev):
    conn, _ = connect(server, dev_id=dev)
    with conn:
        garbage = ["subscription", "subscription\n\n\n", "web_pipe2", "web_pipe2\n", "web_pipe2\n@\ne\n*\nx",
                   "pipe_log", "pipe_log\n", "pipe_count", "track_pipe_users\n", "user_data", "user_data\n\n",
                   "user_status", "user_status\n-1", "user_status\n99999999999999999999999", "\x00\x01",
                   "subscription\n" + "\u2603" * 100, "web_pipe2\nweb_x\n" + "e" * 100 + "\n*\nm"]
        for g in garbage:
            conn.send(g)
        sync(conn)  # every frame above answered (or ignored) and the connection still works
    assert_server_alive(server)
