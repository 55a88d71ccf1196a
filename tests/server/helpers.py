"""Helpers for comet_server tests over real sockets (fixtures are in conftest.py).

* ``server`` (session): the real ``python -m comet_server`` as a subprocess on a free port with a
  temp SQLite db (CometQL off). ``server.restart()`` stops it with SIGTERM (asserting a clean exit)
  and starts it again on the same port and db. ``server.store()`` opens the same db file with its
  own ``Store`` (the server caches nothing another process can change).
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
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect as ws_connect

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from comet_server.store import Store  # noqa: E402

START_TIMEOUT = 20.0
RECV_TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProc:
    def __init__(self, tmp: Path, *, extra_args: tuple[str, ...] = ()) -> None:
        self.db = str(tmp / "comet_server.db")
        self.log_path = tmp / "server.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.ready_line = ""

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "comet_server", "--host", self.host, "--port", str(self.port),
               "--db", self.db, "--cometql-port", "0", "--log-level", "INFO", *self.extra_args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=str(self.log_path.parent), env=env, stdout=subprocess.PIPE,
                                     stderr=self._log)
        line = self._readline(START_TIMEOUT)
        if "comet_server listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}\n{self.log()}")
        self.ready_line = line

    def _readline(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        out: list[str] = []

        def read() -> None:
            out.append(self.proc.stdout.readline().decode("utf-8", "replace"))

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        return out[0] if out else ""

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._log.close()
        return rc

    def restart(self) -> None:
        rc = self.stop()
        assert rc == 0, f"server exit code {rc}\n{self.log()}"
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    # -- helpers -------------------------------------------------------------------------------
    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, *, session: str = "", user_id: object = "", dev_id: object = 0, v: str = "4.08",
               uuid: str | None = None, prefix: str = "/ws/") -> str:
        uuid = uuid if uuid is not None else "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=32))
        return (f"ws://{self.host}:{self.port}{prefix}sesion={session}&myid={user_id}&devid={dev_id}"
                f"&v={v}&uuid={uuid}&api=js")

    def store(self) -> Store:
        return Store(self.db)


# ---------------------------------------------------------------------------------------------
# client helpers

def connect(server: ServerProc, **kw):
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


def assert_server_alive(server: ServerProc) -> None:
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
