"""Hostile WebSocket clients against comet_server (issue 8, items 3, 6 and 8).

The server runs in this process (its own event loop in a thread) so a test can read its log and
its Hub, with short keepalive settings: a ping after ``PING_INTERVAL`` s of silence, a connection
that answers nothing for ``PING_TIMEOUT`` s after a ping is dead. Clients are raw sockets where a
library would behave (answer pings, mask frames, close politely).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web

from comet_server.app import create_app
from comet_server.hub import Hub
from comet_server.store import Store
from tests.server.helpers import RawWS, connect, recv_json, recv_until, sync

REPO = Path(__file__).resolve().parents[2]
PING_INTERVAL = 0.5
PING_TIMEOUT = 0.5
#: generous liveness bound for "dropped within the keepalive bound" (interval + timeout = 1 s).
DROP_BOUND = 8.0


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class InProcServer:
    """comet_server's app on 127.0.0.1:<free port>, in a thread, with its Hub reachable."""

    def __init__(self, tmp: Path, **hub_kw) -> None:
        self.host = "127.0.0.1"
        self.db = str(tmp / "hostile.db")
        self.loop = asyncio.new_event_loop()
        self.hub: Hub | None = None
        self.hub_kw = hub_kw
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.port = self.call(self._start())

    async def _start(self) -> int:
        self.hub = Hub(Store(self.db), "CometQLPassword", server_name="comet_server test", **self.hub_kw)
        self._runner = web.AppRunner(create_app(self.hub, root=REPO), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    def call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn, *args):
        """Run a plain function on the server's loop thread (Hub is single-threaded)."""
        async def go():
            return fn(*args)
        return self.call(go())

    def stop(self) -> None:
        async def down():
            self.hub.close_all()
            await self._runner.cleanup()
            self.hub.store.close()
        self.call(down())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def ws_url(self, *, session: str = "", user_id: object = "", dev_id: object = 0, v: str = "4.08",
               uuid: str | None = None, prefix: str = "/ws/") -> str:
        return (f"ws://{self.host}:{self.port}{prefix}sesion={session}&myid={user_id}&devid={dev_id}"
                f"&v={v}&uuid={uuid or 'u' * 32}&api=js")

    def path(self, *, session: str = "", user_id: object = "", dev_id: object = 0) -> str:
        return f"/ws/sesion={session}&myid={user_id}&devid={dev_id}&v=4.08&uuid={'r' * 32}&api=js"

    def store(self) -> Store:
        return Store(self.db)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = InProcServer(tmp_path_factory.mktemp("hostile"), ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT)
    s.start()
    yield s
    s.stop()


_dev_seq = iter(range(2000, 10**6))


@pytest.fixture
def dev() -> int:
    return next(_dev_seq)


@pytest.fixture
def logs():
    h = _Records()
    lg = logging.getLogger("comet_server")
    old = lg.level
    lg.setLevel(logging.DEBUG)
    lg.addHandler(h)
    yield h
    lg.removeHandler(h)
    lg.setLevel(old)


def _wait(pred, bound: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > bound:
            raise AssertionError(f"not within {bound} s: {what}")
        time.sleep(0.02)
    return time.monotonic() - t0


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): what a crashed client or a dropped NAT mapping looks like."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _errors_with_traceback(logs: _Records) -> list[logging.LogRecord]:
    return [r for r in logs.records if r.exc_info and r.levelno >= logging.WARNING]


# ------------------------------------------------------------------------------------------------
# Item 3: pipe_log obeys the rules of subscription

@pytest.mark.parametrize("pipe", ["private_secret", "x", "c" * 65])
def test_pipe_log_refuses_what_subscription_refuses_with_the_same_error(srv, dev, pipe):
    st = srv.store()
    st.set_pipe_length(dev, pipe, 10)
    st.add_history(dev, pipe, "e", "the secret", 0, int(time.time()), 10)
    st.close()
    conn, info = connect(srv, dev_id=dev)
    with conn:
        assert info["authorized"] is False
        conn.send(f"subscription\n{pipe}")
        sub_err = sync(conn)
        assert len(sub_err) == 1 and sub_err[0]["event"] == "error"
        conn.send(f"pipe_log\n{pipe}\nMrk\n")
        got = sync(conn)
        assert [m["data"] for m in got] == [sub_err[0]["data"]]  # no history items, no end frame
        assert all("the secret" not in json.dumps(m) for m in got)


def test_pipe_log_of_private_channel_works_for_its_authorized_user(srv, dev):
    st = srv.store()
    st.set_user_hash(dev, 5, "h5")
    st.set_pipe_length(dev, "private_mine", 10)
    st.add_history(dev, "private_mine", "e", "mine", 0, int(time.time()), 10)
    st.close()
    conn, info = connect(srv, dev_id=dev, user_id=5, session="h5")
    with conn:
        assert info["authorized"] is True
        conn.send("pipe_log\nprivate_mine\nMrk\n")
        end, items = recv_until(conn, lambda m: m["pipe"] == "_answer_pipe_log")
        assert [i["data"] for i in items] == ["mine"] and end["data"]["number_messages"] == 1


# ------------------------------------------------------------------------------------------------
# Item 8: protocol hygiene

@pytest.mark.parametrize("since", ["\u00b2", "1" * 5000, "-3", "1e5"])
def test_pipe_log_with_a_bad_position_gets_an_error_frame_not_internal_error(srv, dev, logs, since):
    conn, _ = connect(srv, dev_id=dev)
    with conn:
        conn.send(f"pipe_log\nweb_pos\nMrk\n{since}\n")
        got = sync(conn)
        assert len(got) == 1 and got[0]["event"] == "error", got
        assert got[0]["data"]["error"] != "Internal server error"
        assert "position" in got[0]["data"]["error"]
    assert _errors_with_traceback(logs) == []


def test_repeated_bad_input_writes_no_traceback_per_request(srv, dev, logs):
    conn, _ = connect(srv, dev_id=dev)
    with conn:
        for _ in range(200):
            conn.send("pipe_log\nweb_pos\nMrk\n\u00b2\n")
        frames = sync(conn)
        assert len(frames) == 200 and all(f["event"] == "error" for f in frames)
    assert len(_errors_with_traceback(logs)) <= 1


def test_unmasked_client_frame_gets_close_1002(srv, dev):
    raw = RawWS(srv.host, srv.port, srv.path(dev_id=dev))
    try:
        op, payload = raw.recv_frame()
        assert op == 1 and json.loads(payload)["event"] == "serverInfo"
        body = b"pipe_count\nweb_unmasked\nMU\n"
        raw.sock.sendall(bytes([0x81, len(body)]) + body)  # MASK bit 0 (RFC 6455 5.1: must close)
        op, payload = raw.recv_frame()
        assert op == 8 and int.from_bytes(payload[:2], "big") == 1002, (op, payload)
    finally:
        raw.close()


def test_unmasked_frame_sent_with_the_handshake_gets_close_1002(srv, dev):
    body = b"pipe_count\nweb_unmasked\nMU\n"
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    try:
        req = (f"GET {srv.path(dev_id=dev)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        sock.sendall(req + bytes([0x81, len(body)]) + body)  # the bad frame in the same segment
        data = b""
        close_1002 = re.compile(rb"\x88[\x02-\x7d]\x03\xea")  # a close frame, code 1002, any reason
        deadline = time.monotonic() + 5
        while not close_1002.search(data) and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        assert close_1002.search(data), data
        assert b'"marker":"MU"' not in data
    finally:
        sock.close()


def test_masked_frames_split_anywhere_still_work(srv, dev):
    raw = RawWS(srv.host, srv.port, srv.path(dev_id=dev))
    try:
        raw.recv_frame()
        body = b"pipe_count\nweb_split\nMS\n" + b" " * 200  # 16-bit length header
        mask = b"\x01\x02\x03\x04"
        frame = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(body)) + mask + bytes(
            b ^ mask[i % 4] for i, b in enumerate(body))
        for i in range(len(frame)):  # one byte per TCP write
            raw.sock.sendall(frame[i:i + 1])
            if i < 12:
                time.sleep(0.002)
        op, payload = raw.recv_frame()
        assert op == 1 and json.loads(payload)["marker"] == "MS"
    finally:
        raw.close()


def test_disconnect_while_pongs_are_written_is_not_an_error(srv, dev, logs):
    """A client that floods pings without reading, then resets: the server is mid-pong (waiting for
    its write buffer to drain) when the connection goes. That is an ordinary disconnect."""
    ping = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125  # zero mask: payload as is
    burst = ping * 2000
    for _ in range(3):
        sock = _never_reading_socket(srv, dev)
        sock.settimeout(0.05)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                sock.send(burst)
            except (socket.timeout, BlockingIOError):
                pass
        _reset(sock)
    conn, _ = connect(srv, dev_id=dev)  # the server still serves
    with conn:
        sync(conn)
    assert [r for r in logs.records if r.levelno >= logging.ERROR] == []


# ------------------------------------------------------------------------------------------------
# Item 6: personal messages are delivered at least once

def _queue(srv, dev: int, user: int, n: int) -> None:
    st = srv.store()
    st.set_user_hash(dev, user, f"h{user}")
    t = int(time.time())
    for i in range(n):
        st.queue_user_message(dev, user, "q", f"m{i:02d}", t)
    st.close()


def _queued(srv, dev: int, user: int) -> list[str]:
    st = srv.store()
    try:
        return [m.data for m in st.queued_user_messages(dev, user)]
    finally:
        st.close()


def _online(srv, dev: int, user: int) -> bool:
    return srv.run(srv.hub.is_online, dev, user)


def _read_text_frames(raw: RawWS, n: int) -> list[dict]:
    out = []
    while len(out) < n:
        op, payload = raw.recv_frame()
        if op == 1:
            out.append(json.loads(payload))
    return out


def test_queued_messages_survive_a_reset_right_after_the_handshake(srv, dev):
    _queue(srv, dev, 7, 50)
    raw = RawWS(srv.host, srv.port, srv.path(dev_id=dev, user_id=7, session="h7"))
    op, payload = raw.recv_frame()
    assert json.loads(payload)["event"] == "serverInfo"  # the queue is written right after it
    _reset(raw.sock)  # gone without reading the 50
    _wait(lambda: not _online(srv, dev, 7), DROP_BOUND, "user 7 offline")
    assert _queued(srv, dev, 7) == [f"m{i:02d}" for i in range(50)]
    conn, info = connect(srv, dev_id=dev, user_id=7, session="h7")
    with conn:
        assert info["authorized"] is True
        got = [recv_json(conn) for _ in range(50)]
        assert [m["data"] for m in got] == [f"m{i:02d}" for i in range(50)]
        assert all(m["pipe"] == "msg" and m["fromQueue"] is True for m in got)
        sync(conn)
        _wait(lambda: _queued(srv, dev, 7) == [], DROP_BOUND, "rows deleted once received")


def test_redelivered_message_keeps_its_id(srv, dev):
    _queue(srv, dev, 8, 5)
    raw = RawWS(srv.host, srv.port, srv.path(dev_id=dev, user_id=8, session="h8"))
    first = _read_text_frames(raw, 6)[1:]  # serverInfo, then the 5 (no pong: not confirmed)
    _reset(raw.sock)
    _wait(lambda: not _online(srv, dev, 8), DROP_BOUND, "user 8 offline")
    conn, _ = connect(srv, dev_id=dev, user_id=8, session="h8")
    with conn:
        again = [recv_json(conn) for _ in range(5)]
    ids = [m["uuid"] for m in first]
    assert len(set(ids)) == 5 and all(isinstance(i, str) and i.isdigit() for i in ids)
    assert [m["uuid"] for m in again] == ids
    assert [m["data"] for m in again] == [m["data"] for m in first]


def test_client_that_never_answers_pings_is_dropped_and_goes_offline(srv, dev):
    st = srv.store()
    st.set_user_hash(dev, 9, "h9")
    st.close()
    raw = RawWS(srv.host, srv.port, srv.path(dev_id=dev, user_id=9, session="h9"))
    try:
        raw.recv_frame()
        assert _online(srv, dev, 9)
        took = _wait(lambda: not _online(srv, dev, 9), DROP_BOUND, "silent user 9 dropped")
        assert took >= PING_INTERVAL * 0.8  # dropped by the keepalive, not at once
        assert srv.run(srv.hub.send_to_user, dev, 9, "later", "after the drop") == 0
        assert _queued(srv, dev, 9) == ["after the drop"]
    finally:
        raw.close()
    conn, _ = connect(srv, dev_id=dev, user_id=9, session="h9")
    with conn:
        assert recv_json(conn)["data"] == "after the drop"


def test_live_message_to_a_silently_dead_connection_is_not_lost(srv, dev):
    st = srv.store()
    st.set_user_hash(dev, 10, "h10")
    st.close()
    raw = RawWS(srv.host, srv.port, srv.path(dev_id=dev, user_id=10, session="h10"))
    try:
        raw.recv_frame()
        assert srv.run(srv.hub.send_to_user, dev, 10, "live", "to a dead socket") == 1
        _wait(lambda: not _online(srv, dev, 10), DROP_BOUND, "silent user 10 dropped")
    finally:
        raw.close()
    conn, _ = connect(srv, dev_id=dev, user_id=10, session="h10")
    with conn:
        m = recv_json(conn)
        assert m["data"] == "to a dead socket" and m["pipe"] == "msg"


def test_idle_client_that_answers_pings_stays_connected(srv, dev):
    st = srv.store()
    st.set_user_hash(dev, 11, "h11")
    st.close()
    conn, _ = connect(srv, dev_id=dev, user_id=11, session="h11")  # websockets answers pings
    with conn:
        time.sleep((PING_INTERVAL + PING_TIMEOUT) * 3)
        assert _online(srv, dev, 11)
        assert sync(conn) == []
        assert srv.run(srv.hub.send_to_user, dev, 11, "e", "still here") == 1
        assert recv_json(conn)["data"] == "still here"
        _wait(lambda: _queued(srv, dev, 11) == [], DROP_BOUND, "live row deleted once received")


# ------------------------------------------------------------------------------------------------
# Issue 13: the connection layer after the upgrade (comet_server/ws_connection.py)

def _close_code(raw: RawWS) -> int | None:
    """Frames until a close frame: its code (None if the connection ends without one)."""
    try:
        while True:
            op, payload = raw.recv_frame()
            if op == 8:
                return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    except (ConnectionError, TimeoutError, OSError):
        return None


def _never_reading_socket(srv, dev) -> socket.socket:
    """A raw socket past the upgrade, with a 4 KiB receive buffer: a peer that will not read
    lets the server's writes pile up quickly."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((srv.host, srv.port))
    sock.sendall((f"GET {srv.path(dev_id=dev)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    sock.recv(200)
    return sock


def _opened(srv, dev) -> RawWS:
    raw = RawWS(srv.host, srv.port, srv.path(dev_id=dev))
    op, payload = raw.recv_frame()
    assert op == 1 and json.loads(payload)["event"] == "serverInfo"
    return raw


def _count(srv, dev) -> int:
    return srv.run(srv.hub.connection_count, dev)


def test_the_connection_leaves_aiohttp_after_the_upgrade(srv, dev):
    """Guards ws_connection.detach (aiohttp 3.14.5 internals): after the upgrade aiohttp's Server
    no longer holds the connection, the transport's protocol is a WsConnection, and the
    connection still works."""
    from comet_server.ws_connection import WsConnection

    server = srv._runner.server
    raws = [_opened(srv, dev) for _ in range(3)]
    try:
        def held_by_aiohttp():
            # detach leaves the RequestHandler without a transport; aiohttp's Server drops it
            # once the handler task has finished (just after the handler returned)
            ours = {id(c.transport) for c in srv.hub._clients if c.dev_id == dev}
            return [h for h in server._connections
                    if getattr(h, "transport", None) is None or id(h.transport) in ours]
        _wait(lambda: srv.run(held_by_aiohttp) == [], DROP_BOUND, "aiohttp let go of the upgraded connections")
        protos = srv.run(lambda: [type(c.transport.get_protocol()) for c in srv.hub._clients if c.dev_id == dev])
        assert protos == [WsConnection] * 3
        raws[0].send_frame(0x1, b"pipe_count\nweb_x\nMD\n")
        op, payload = raws[0].recv_frame()
        assert json.loads(payload)["marker"] == "MD"
    finally:
        for r in raws:
            r.close()
    _wait(lambda: _count(srv, dev) == 0, DROP_BOUND, "closed connections unregistered")


def test_fragmented_command_is_joined_and_pings_between_fragments_are_answered(srv, dev):
    raw = _opened(srv, dev)
    try:
        body = "pipe_count\nweb_frag\nMF\n".encode()
        raw.send_frame(0x1, body[:5], fin=False)
        raw.send_frame(0x9, b"between")  # a control frame may come between fragments
        raw.send_frame(0x0, body[5:12], fin=False)
        raw.send_frame(0x0, body[12:], fin=True)
        frames = sorted([raw.recv_frame(), raw.recv_frame()])  # pongs of one read follow its answers
        assert frames[1] == (0xA, b"between")
        assert frames[0][0] == 1 and json.loads(frames[0][1])["marker"] == "MF"
        # a character split between two fragments is still valid UTF-8
        text = "web_pipe2\nweb_é\nev\n*\n".encode()  # invalid channel name: an error frame
        cut = text.index("é".encode()) + 1
        raw.send_frame(0x1, text[:cut], fin=False)
        raw.send_frame(0x0, text[cut:], fin=True)
        op, payload = raw.recv_frame()
        assert op == 1 and json.loads(payload)["event"] == "error"
    finally:
        raw.close()


@pytest.mark.parametrize("total, code", [(65535, None), (65536, 1009)])
def test_the_size_limit_counts_all_fragments_of_a_message(srv, dev, total, code):
    raw = _opened(srv, dev)
    try:
        body = b"x" * total  # an unknown command: an error frame when it is read
        raw.send_frame(0x1, body[:40000], fin=False)
        raw.send_frame(0x0, body[40000:], fin=True)
        if code is None:
            op, payload = raw.recv_frame()
            assert op == 1 and json.loads(payload)["data"]["error"] == "Unknown command"
        else:
            assert _close_code(raw) == code
    finally:
        raw.close()


BAD_FRAMES = {
    "reserved opcode 3": (bytes([0x83, 0x80]) + b"\0\0\0\0", 1002),
    "reserved opcode 0xB": (bytes([0x8B, 0x80]) + b"\0\0\0\0", 1002),
    "RSV1 set (no extension agreed)": (bytes([0xC1, 0x80 | 2]) + b"\0\0\0\0" + b"hi", 1002),
    "continuation without a start": (bytes([0x80, 0x80 | 2]) + b"\0\0\0\0" + b"hi", 1002),
    "fragmented ping": (bytes([0x09, 0x80 | 2]) + b"\0\0\0\0" + b"hi", 1002),
    "ping over 125 bytes": (bytes([0x89, 0x80 | 126]) + struct.pack("!H", 126) + b"\0\0\0\0" + b"p" * 126, 1002),
    "text start inside a fragmented message": (
        bytes([0x01, 0x80 | 2]) + b"\0\0\0\0" + b"ab" + bytes([0x81, 0x80 | 2]) + b"\0\0\0\0" + b"cd", 1002),
    "invalid UTF-8 text": (bytes([0x81, 0x80 | 2]) + b"\0\0\0\0" + b"\xff\xfe", 1007),
    "invalid UTF-8 binary": (bytes([0x82, 0x80 | 2]) + b"\0\0\0\0" + b"\xc3\x28", 1007),
    "invalid UTF-8 across fragments": (
        bytes([0x01, 0x80 | 1]) + b"\0\0\0\0" + b"\xe2" + bytes([0x80, 0x80 | 1]) + b"\0\0\0\0" + b"\x28", 1007),
    "invalid UTF-8 in a close reason": (bytes([0x88, 0x80 | 4]) + b"\0\0\0\0" + b"\x03\xe8\xff\xfe", 1007),
    "close with a 1-byte payload": (bytes([0x88, 0x80 | 1]) + b"\0\0\0\0" + b"\x03", 1002),
    "64-bit length": (bytes([0x81, 0x80 | 127]) + (2**63 - 1).to_bytes(8, "big") + b"\0\0\0\0", 1009),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_frames_close_with_the_rfc_code_and_leave_the_server_serving(srv, dev, name):
    frame, code = BAD_FRAMES[name]
    raw = _opened(srv, dev)
    try:
        raw.sock.sendall(frame + bytes([0x81, 0x80 | 19]) + b"\0\0\0\0" + b"pipe_count\nweb_x\nMZ")
        assert _close_code(raw) == code
        assert b'"MZ"' not in raw.buf  # nothing after the bad frame was run
    finally:
        raw.close()
    _wait(lambda: _count(srv, dev) == 0, DROP_BOUND, "failed connection unregistered")
    conn, _ = connect(srv, dev_id=dev)
    with conn:
        sync(conn)


def test_close_handshake_echoes_the_code_and_unregisters(srv, dev):
    raw = _opened(srv, dev)
    try:
        raw.send_frame(0x1, b"subscription\nweb_bye")
        sync_marker = b"pipe_count\nweb_bye\nMB\n"
        raw.send_frame(0x1, sync_marker)
        raw.recv_frame()
        raw.send_frame(0x8, (4000).to_bytes(2, "big") + b"bye")
        op, payload = raw.recv_frame()
        assert (op, payload[:2]) == (8, (4000).to_bytes(2, "big"))
        with pytest.raises(ConnectionError):
            raw.recv_frame()  # the server closes the TCP connection after the handshake
    finally:
        raw.close()
    _wait(lambda: _count(srv, dev) == 0, DROP_BOUND, "closed connection unregistered")
    assert srv.run(srv.hub.subscriber_count, dev, "web_bye") == 0


def test_ping_flood_from_a_client_that_reads_nothing_is_cut_off(srv, dev):
    """Pongs pile up in the write buffer of a peer that never reads: past --max-client-buffer the
    connection is closed, as a slow subscriber is; the loop stays responsive throughout."""
    old = srv.hub.max_client_buffer
    sock = _never_reading_socket(srv, dev)
    srv.run(setattr, srv.hub, "max_client_buffer", 64 * 1024)
    try:
        ping = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125
        sock.settimeout(0.05)
        deadline = time.monotonic() + DROP_BOUND
        while _count(srv, dev) and time.monotonic() < deadline:
            try:
                sock.send(ping * 500)
            except (socket.timeout, BlockingIOError):
                pass
            except OSError:
                break
        assert _count(srv, dev) == 0, "a ping flood that reads nothing stayed connected"
    finally:
        srv.run(setattr, srv.hub, "max_client_buffer", old)
        _reset(sock)
    conn, _ = connect(srv, dev_id=dev)
    with conn:
        sync(conn)


def test_client_vanishing_mid_frame_is_unregistered(srv, dev):
    raw = _opened(srv, dev)
    raw.sock.sendall(bytes([0x81, 0x80 | 126]) + struct.pack("!H", 5000) + b"\0\0\0\0" + b"half")
    time.sleep(0.05)
    _reset(raw.sock)
    _wait(lambda: _count(srv, dev) == 0, DROP_BOUND, "reset connection unregistered")


def test_a_frame_trickled_byte_by_byte_does_not_keep_a_silent_client_alive(srv, dev):
    """Only complete frames count as signs of life, so a peer that sends one byte of a frame
    now and then is dropped by the keepalive like a silent one."""
    raw = _opened(srv, dev)
    try:
        raw.sock.sendall(bytes([0x81, 0x80 | 126]) + struct.pack("!H", 5000) + b"\0\0\0\0")
        t0 = time.monotonic()
        while _count(srv, dev) and time.monotonic() - t0 < DROP_BOUND:
            try:
                raw.sock.sendall(b"x")
            except OSError:
                break
            time.sleep(0.1)
        assert _count(srv, dev) == 0, "a trickled frame kept the connection alive"
    finally:
        raw.close()


def test_a_closed_connection_is_released_at_once_not_after_the_abort_delay(srv, dev):
    """The abort timer of a connection we close is cancelled when the connection is lost, so its
    objects are freed then, not CLOSE_ABORT_DELAY (5 s) later."""
    import gc
    import weakref

    from comet_server.ws_connection import CLOSE_ABORT_DELAY

    raw = _opened(srv, dev)

    def kick():
        (client,) = [c for c in srv.hub._clients if c.dev_id == dev]
        ref = weakref.ref(client.transport.get_protocol().p)  # websockets' Protocol: weakly referable
        client.kick(1008, "bye")
        return ref

    ref = srv.run(kick)
    assert _close_code(raw) == 1008
    raw.close()
    t0 = time.monotonic()
    while time.monotonic() - t0 < CLOSE_ABORT_DELAY * 0.6:
        if srv.run(lambda: (gc.collect(), ref())[1]) is None:
            break
        time.sleep(0.05)
    assert ref() is None, "the closed connection was still held"


def test_shutdown_closes_detached_connections_with_1001(tmp_path):
    s = InProcServer(tmp_path)
    s.start()
    raw = RawWS(s.host, s.port, s.path(dev_id=5))
    raw.recv_frame()
    s.stop()
    try:
        assert _close_code(raw) == 1001
    finally:
        raw.close()
