"""Connection limits of the listening ports: descriptor budget, total and per-IP caps, and a log
that says "this keeps happening" once per interval instead of once per event.

* ``raise_fd_limit()`` lifts the soft RLIMIT_NOFILE to the hard limit (many distributions start
  services at a soft 1,024 although the hard limit is far higher).
* ``ConnectionGate`` wraps an asyncio protocol factory (aiohttp's ``Server``, or any other): a
  connection over the total or the per-IP cap is answered with a fixed refusal and closed before
  the wrapped protocol ever sees it; admitted ones are counted until ``connection_lost``.
* ``GatedTCPSite`` is aiohttp's ``TCPSite`` with its server wrapped in a gate.
* ``accept_error_guard`` is an event-loop exception handler for asyncio's accept loop; see there.

The header timeout is aiohttp's own: ``RequestHandler`` arms its keep-alive timer when a
connection opens and after every response, does not re-arm it on incoming bytes, and closes the
connection when it fires while no complete request head has arrived (aiohttp 3.14,
``web_protocol.RequestHandler.connection_made`` / ``_process_keepalive``). So
``keepalive_timeout`` bounds both a half-sent request head and an idle keep-alive connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import socket
import time
from typing import Any, Callable

from aiohttp import web

from .ratelog import RateLimitedLog

__all__ = ["fd_limits", "raise_fd_limit", "auto_max_connections", "auto_max_per_ip", "ConnectionLimits", "ConnectionGate",
           "GatedTCPSite", "accept_error_guard", "HTTP_REFUSAL",
           "FD_RESERVE", "DEFAULT_HEADER_TIMEOUT", "DEFAULT_MAX_PER_IP", "LOG_INTERVAL"]

log = logging.getLogger("comet_server.limits")

#: descriptors kept back from the connection budget: SQLite (db, -wal, -shm), logs, listening
#: sockets and the accept that gets refused.
FD_RESERVE = 64
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_MAX_PER_IP = 4096
#: a recurring condition (refused connections, accept() failures) is logged at most this often.
LOG_INTERVAL = 10.0

HTTP_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: 21\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
                b"Too many connections\n")


def fd_limits() -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def raise_fd_limit() -> tuple[int, int]:
    """Set the soft RLIMIT_NOFILE to the hard limit; returns the (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
        target = hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            # e.g. macOS refuses RLIM_INFINITY for the soft limit; keep what we have
            log.debug("could not raise RLIMIT_NOFILE to %s", target, exc_info=True)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def auto_max_connections() -> int:
    """The default total cap: half of what the soft descriptor limit leaves after FD_RESERVE (a
    connection may hold a second descriptor while it sends a file)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(16, (soft - FD_RESERVE) // 2)


def auto_max_per_ip(max_total: int) -> int:
    """The default per-IP cap: a quarter of the total cap (one address never takes every slot),
    at most DEFAULT_MAX_PER_IP."""
    return min(DEFAULT_MAX_PER_IP, max(16, max_total // 4))


class ConnectionLimits:
    """Counts open connections in total and per peer address. ``0`` means no cap."""

    def __init__(self, max_total: int, max_per_ip: int) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.total = 0
        self.per_ip: dict[str, int] = {}

    def admit(self, ip: str) -> str | None:
        """Count a new connection; or return why it is refused (and count nothing)."""
        if self.max_total and self.total >= self.max_total:
            return f"total cap {self.max_total}"
        n = self.per_ip.get(ip, 0)
        if self.max_per_ip and n >= self.max_per_ip:
            return f"per-IP cap {self.max_per_ip}"
        self.total += 1
        self.per_ip[ip] = n + 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        n = self.per_ip.get(ip, 0) - 1
        if n > 0:
            self.per_ip[ip] = n
        else:
            self.per_ip.pop(ip, None)


class _GatedProtocol(asyncio.Protocol):
    """Admits or refuses one connection, then passes every event to the wrapped protocol."""

    __slots__ = ("_gate", "_inner", "_ip")

    def __init__(self, gate: "ConnectionGate") -> None:
        self._gate = gate
        self._inner: asyncio.Protocol | None = None
        self._ip = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gate = self._gate
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        reason = gate.limits.admit(ip)
        if reason is not None:
            gate.refused_log.report(f"refused:{reason}", "%s: refused connections from %s and others: %s",
                             gate.name, ip or "?", reason)
            if gate.refusal and isinstance(transport, asyncio.WriteTransport):
                try:
                    transport.write(gate.refusal)
                except Exception:  # noqa: BLE001 - the peer may already be gone
                    pass
            transport.close()
            return
        self._ip = ip
        inner = gate.factory()
        self._inner = inner
        inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        inner, self._inner = self._inner, None
        if inner is None:
            return
        self._gate.limits.release(self._ip)
        inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class ConnectionGate:
    """Protocol factory for ``loop.create_server``: ``factory``'s protocols behind ``limits``."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limits: ConnectionLimits, *,
                 name: str, refusal: bytes = b"", refused_log: RateLimitedLog | None = None) -> None:
        self.factory = factory
        self.limits = limits
        self.name = name
        self.refusal = refusal
        self.refused_log = refused_log or RateLimitedLog(log, interval=LOG_INTERVAL)

    def __call__(self) -> asyncio.Protocol:
        return _GatedProtocol(self)


#: accept() errors that mean "out of descriptors or memory": wait, then try again
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: how long the accept loop waits after such an error (connections queue in the backlog)
ACCEPT_BACKOFF = 0.5
#: accepts in a row before the accept loop lets other callbacks run
_ACCEPT_BATCH = 64


class GatedTCPSite(web.BaseSite):
    """aiohttp's TCPSite with its own accept loop and the runner's server behind a
    ConnectionGate (aiohttp 3.14: ``BaseSite.start`` registers the site, ``runner.cleanup``
    calls ``stop`` and then shuts the handlers down).

    The accept loop is ours rather than asyncio's (``loop.create_server``) because asyncio's
    reacts to EMFILE with one exception-handler call and one retry timer per attempt, up to
    ``backlog`` of each per readable event (see ``accept_error_guard``); and the retry timers
    that are still pending when the server closes each log a ValueError traceback
    (``_start_serving`` on a closed socket), thousands at shutdown after a flood. Here an
    accept() out of descriptors is logged once per interval and retried after ACCEPT_BACKOFF.
    The sockets are bound by ``loop.create_server(start_serving=False)``, so address
    resolution and socket options are asyncio's."""

    __slots__ = ("_host", "_port", "_gate", "_socks", "_tasks", "_accept_log")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits, *,
                 backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        server = runner.server
        assert server is not None
        self._gate = ConnectionGate(server, limits, name="HTTP/WebSocket", refusal=HTTP_REFUSAL)
        self._socks: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._accept_log = RateLimitedLog(log, interval=LOG_INTERVAL, level=logging.ERROR)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        if self._socks:
            return int(self._socks[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        bound = await loop.create_server(asyncio.Protocol, self._host, self._port, backlog=self._backlog,
                                         reuse_address=True, start_serving=False)
        try:  # keep our own copies of the bound, listening sockets
            self._socks = [socket.socket(ts.family, ts.type, fileno=os.dup(ts.fileno()))
                           for ts in bound.sockets]
        finally:
            bound.close()
        for sock in self._socks:
            sock.setblocking(False)
            sock.listen(self._backlog)  # start_serving=False binds but does not listen
            self._tasks.append(loop.create_task(self._accept_loop(sock)))

    async def stop(self) -> None:
        self._runner._check_site(self)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        for sock in self._socks:
            sock.close()
        self._tasks.clear()
        self._runner._unreg_site(self)

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._accept_log.report("accept", "accept() failed: %s; new connections wait in the listen "
                                     "backlog, retried every %.1f s", exc, ACCEPT_BACKOFF)
                else:
                    self._accept_log.report(f"accept:{exc.errno}", "accept() failed: %s", exc)
                await asyncio.sleep(ACCEPT_BACKOFF)
                continue
            loop.create_task(self._connect(conn))
            n += 1
            if n % _ACCEPT_BATCH == 0:
                await asyncio.sleep(0)  # sock_accept does not yield while connections are queued

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._gate, conn)
        except Exception:  # noqa: BLE001 - the peer left before the transport was made
            log.debug("accepted connection failed", exc_info=True)
            conn.close()


_ACCEPT_FAILED = "socket.accept() out of system resource"


def accept_error_guard(loop: asyncio.AbstractEventLoop,
                       report: RateLimitedLog | None = None) -> Callable[..., None]:
    """An event-loop exception handler that turns asyncio's per-attempt accept() failures into
    one log line per interval; every other context goes to the handler that was there before.

    Upstream behaviour (CPython 3.11.7, same in 3.12 and 3.13):
    ``asyncio.selector_events.BaseSelectorEventLoop._accept_connection`` calls
    ``call_exception_handler`` (a full traceback in the default handler) for every accept() that
    fails with EMFILE/ENFILE/ENOBUFS/ENOMEM, and stays in its ``for _ in range(backlog)`` loop,
    so one readable event logs up to ``backlog`` tracebacks, every second (its retry delay),
    for as long as descriptors are short. The retry itself (reader removed, re-added after 1 s)
    is the back-off, and connections wait in the kernel backlog meanwhile. Each attempt also
    schedules a retry timer; those still pending when the server closes fail with ValueError
    (``_start_serving`` on the closed socket), which this handler drops as well.
    Our HTTP port has its own accept loop (GatedTCPSite); this guards the others (CometQL)."""
    previous = loop.get_exception_handler()
    report = report or RateLimitedLog(log, interval=LOG_INTERVAL, level=logging.ERROR)

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_FAILED:
            exc = context.get("exception")
            report.report("accept", "accept() failed: %s; new connections wait in the listen backlog, "
                   "retried every second", exc)
            return
        callback = getattr(context.get("handle"), "_callback", None)
        if getattr(callback, "__name__", "") == "_start_serving" and isinstance(
                context.get("exception"), ValueError):
            return  # a retry timer of the above firing after its server was closed
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    return handler
