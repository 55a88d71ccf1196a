"""Helpers for comet_server tests over real sockets (fixtures are in conftest.py).

* ``server`` (session): the real ``python -m comet_server`` (tests/support/server.py) on a free
  port with a temp SQLite db (CometQL off). ``server.restart()`` stops it with SIGTERM (asserting a
  clean exit) and starts it again on the same port and db. ``server.store()`` opens the same db
  file with its own ``Store`` (the server caches nothing another process can change).
* helpers: ``connect(server, ...)`` returns ``(connection, serverInfo dict)``; ``recv_json``;
  ``recv_until``; ``sync`` (a pipe_count round trip that returns every frame received before its
  answer, so "nothing else arrived" is asserted without sleeping); ``RawWS`` (raw-socket client for
  frames a library will not send).

Isolation: every test uses its own random dev_id (``dev`` fixture), so channels, users and
counts never collide between tests that share the server.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import struct
import sys
import time
from pathlib import Path

from websockets.sync.client import connect as ws_connect

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.server import ServerProcess  # noqa: E402

RECV_TIMEOUT = 5.0


def server_in(tmp: Path, *, extra_args: tuple[str, ...] = ()) -> ServerProcess:
    """The server these tests share: CometQL off, no --test-pages, db and log in ``tmp``."""
    return ServerProcess(cometql=False, test_pages=False, directory=tmp, extra_args=list(extra_args))


# ---------------------------------------------------------------------------------------------
# client helpers

def connect(server: ServerProcess, **kw):
    """Open a WebSocket (no pings) and read the serverInfo frame."""
    conn = ws_connect(server.ws_url(**kw), ping_interval=None, open_timeout=RECV_TIMEOUT,
                      close_timeout=2, max_size=None, legacy=True)
    info = recv_json(conn)
    assert info["event"] == "serverInfo", info
    return conn, info


def recv_json(conn, timeout: float = RECV_TIMEOUT) -> dict:
    return json.loads(conn.recv(timeout=timeout))


def recv_until(conn, pred, timeout: float = RECV_TIMEOUT) -> tuple[dict, list[dict]]:
    """Frames until one matches ``pred``; returns (match, frames before it)."""
    before: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching frame; got {before}")
        m = recv_json(conn, timeout=left)
        if pred(m):
            return m, before
        before.append(m)


_marker_seq = iter(range(1, 10**9))


def sync(conn) -> list[dict]:
    """Round trip: everything the server wrote to ``conn`` before now, in order."""
    marker = f"sync{next(_marker_seq)}"
    conn.send(f"pipe_count\nweb_sync_probe\n{marker}\n")
    _, before = recv_until(conn, lambda m: m.get("pipe") == "_answer_pipe_count" and m.get("marker") == marker)
    return before


def assert_server_alive(server: ServerProcess) -> None:
    """Another client can still connect and get answers."""
    conn, info = connect(server, dev_id=1)
    try:
        assert info["authorized"] is False
        assert sync(conn) == []
    finally:
        conn.close()


class RawWS:
    """Minimal raw-socket WebSocket client: arbitrary frames out, frames in."""

    def __init__(self, host: str, port: int, path: str, *, timeout: float = RECV_TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            self.buf += chunk
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        self.buf = bytearray(rest)
        self.status_line = head.split(b"\r\n", 1)[0].decode()

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        mask = os.urandom(4)
        n = len(payload)
        b0 = (0x80 if fin else 0) | opcode
        if n < 126:
            hdr = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            r, _, _ = select.select([self.sock], [], [], self.timeout)
            if not r:
                raise TimeoutError("raw ws: no data")
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("raw ws: closed")
            self.buf += chunk

    def recv_frame(self) -> tuple[int, bytes]:
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n)
        payload = bytes(self.buf[off:off + n])
        del self.buf[:off + n]
        return b0 & 0x0F, payload

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
