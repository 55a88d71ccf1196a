"""An in-memory browser for CPython tests of comet_py's glue (connection, coordinator, api).

``FakePage`` is a ``comet_py.platform.Platform``, as the module ``comet_py.browser`` is (now_ms,
page_is_https, page_visible, random_id, storage_get, storage_set, PageEvents, Socket, Channel,
locks_available, HeldLock; mypy checks both), plus ``held_lock_names`` (to inspect the fake)
and controls for tests (run, die, close, freeze, thaw, set_visible), so
``CometApi(platform=FakePage(origin))`` runs the real coordinator and connection code. Several pages on one ``Origin`` are several tabs of one browser profile:

- BroadcastChannel: a post reaches every *other* open channel object of that name on the origin
  (never the posting object itself), later, through the asyncio loop, in post order; the
  recipients are fixed when the message is posted, and a channel closed meanwhile gets nothing.
- Web Locks: one FIFO queue per name, exclusive; a grant runs its callback later (through the
  loop); ``steal`` takes the lock from its holder at once (the holder's request "rejects": its
  on_lost runs with an AbortError reason) and is granted ahead of the queue; ``release`` grants
  the next request; a page that dies loses its held locks and its queued requests.
- WebSocket: ``Socket`` connects to a ``FakeCometServer`` of the origin's network: the real
  comet_server code (``Hub``, ``Store(":memory:")``, ``ws.open_client``, ``ws.handle_command``)
  with in-memory transports instead of aiohttp, so every frame is what comet_server sends.
  The browser answers the server's keepalive pings itself, as browsers do.
- Time: ``VirtualTimeLoop`` is an asyncio loop on a virtual clock: when nothing is ready it jumps
  to the next timer instead of sleeping. ``now_ms`` and the server's clock (message_send_time,
  keepalive) read the same clock, so tests that wait several seconds of browser time
  (heartbeats, timeouts) take milliseconds and always interleave the same way.
  ``run(scenario)`` runs ``await scenario(origin)`` on a fresh one. (This is why the server runs
  in this process rather than as a comet_server subprocess: real sockets would need real time,
  and so real waits and timing-dependent interleavings.)

Pages can also ``die()`` (crash/close without pagehide), ``close()`` (pagehide, then die),
``freeze()``/``thaw()`` (a frozen page's inputs wait, its outputs are held back until thaw) and
``set_visible()`` (fires visibilitychange).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import selectors
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional
from urllib.parse import urlsplit

from comet_server import wire, ws
from comet_server.hub import Client, Hub
from comet_server.seams import StoreAPI
from comet_server.store import Store
from tests.support.memory_transport import RecordingTransport, close_of, is_close, text_of

if TYPE_CHECKING:
    from aiohttp import web

    from comet_py.platform import Platform

EPOCH_MS = 1_700_000_000_000.0
DEFAULT_HOST = "comet.test"
PING_ROUND_TRIP = 0.001   # seconds from the server's ping to the browser's pong


# -- time --------------------------------------------------------------------------------------

class VirtualClock:
    """Seconds since the test started, moved only by the loop (or by ``jump``)."""

    def __init__(self, epoch_ms: float = EPOCH_MS) -> None:
        self.epoch_ms = epoch_ms
        self.t = 0.0

    def now_ms(self) -> float:
        return self.epoch_ms + self.t * 1000.0

    def time(self) -> float:
        """Unix seconds (the server's wall clock)."""
        return self.now_ms() / 1000.0

    def jump(self, seconds: float) -> None:
        """Move time on at once (timers due meanwhile fire on the next loop pass, late)."""
        self.t += seconds


class _VirtualSelector(selectors.SelectSelector):
    """Never waits for real I/O: a select with a timeout moves the virtual clock instead."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: Optional[float] = None) -> list:
        if timeout is None:
            raise RuntimeError("virtual loop: nothing ready and no timer: the test would hang")
        if timeout > 0:
            self._clock.t += timeout
        return []


#: The page whose code is running: callbacks, timers and tasks scheduled meanwhile belong to it.
CURRENT_PAGE: contextvars.ContextVar[Optional["FakePage"]] = contextvars.ContextVar(
    "fake_browser_page", default=None)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """Virtual time, and per-page scheduling: a callback, timer or task step scheduled by a page's
    code runs through that page, so it never runs once the page died and waits while it is
    frozen (as a browser runs no code of a frozen or closed tab)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        super().__init__(selector=_VirtualSelector(clock))

    def time(self) -> float:
        return self.clock.t

    @staticmethod
    def _attribute(callback: Callable, args: tuple, context: Optional[contextvars.Context]) -> tuple:
        page = context.get(CURRENT_PAGE) if context is not None else CURRENT_PAGE.get()
        if page is None:
            return callback, args
        return page._input, (callback, *args)

    def call_soon(self, callback, *args, context=None):  # type: ignore[override]
        callback, args = self._attribute(callback, args, context)
        return super().call_soon(callback, *args, context=context)

    def call_at(self, when, callback, *args, context=None):  # type: ignore[override]
        callback, args = self._attribute(callback, args, context)
        return super().call_at(when, callback, *args, context=context)


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_event_loop()


def _schedule(fn: Callable, *args: Any, delay: float = 0.0) -> None:
    """The browser's own work (delivery, grants, network): belongs to no page."""
    if delay > 0:
        _loop().call_later(delay, fn, *args, context=contextvars.Context())
    else:
        _loop().call_soon(fn, *args, context=contextvars.Context())


# -- the origin: what the tabs of one browser share ----------------------------------------------

class Origin:
    """One origin of one browser: localStorage, BroadcastChannels, Web Locks, the network."""

    def __init__(self, *, seed: int = 1, clock: Optional[VirtualClock] = None,
                 channel_delay: float = 0.0) -> None:
        self.clock = clock or VirtualClock()
        self.rng = random.Random(seed)
        self.storage: dict[str, str] = {}
        self.channel_delay = channel_delay          # seconds a BroadcastChannel message travels
        self.pages: list[FakePage] = []
        self.network: dict[str, FakeCometServer] = {}
        self.server = self.add_server(DEFAULT_HOST)
        self.posts: list[tuple[str, str, dict]] = []  # (page, channel, decoded message), all posts
        self._channels: dict[str, list[FakeChannel]] = {}
        self._locks: dict[str, _LockState] = {}

    def add_server(self, host: str) -> "FakeCometServer":
        server = FakeCometServer(self, host)
        self.network[host] = server
        return server

    def page(self, name: Optional[str] = None, **kwargs: Any) -> "FakePage":
        page = FakePage(self, name or f"tab{len(self.pages) + 1}", **kwargs)
        self.pages.append(page)
        return page

    # BroadcastChannel -----------------------------------------------------------------------
    def _broadcast(self, sender: "FakeChannel", text: str) -> None:
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = {"raw": text}
        self.posts.append((sender.page.name, sender.name, decoded))
        for ch in list(self._channels.get(sender.name, [])):
            if ch is not sender and ch._open:
                if self.channel_delay:
                    _schedule(ch._receive, text, delay=self.channel_delay)
                else:
                    _schedule(ch._receive, text)

    # Web Locks ------------------------------------------------------------------------------
    def _lock_request(self, lock: "FakeHeldLock", steal: bool) -> None:
        st = self._locks.setdefault(lock.name, _LockState())
        if steal:
            old, st.holder = st.holder, lock
            if old is not None:
                old._stolen()
            _schedule(lock._grant)
        elif st.holder is None and not st.queue:
            st.holder = lock
            _schedule(lock._grant)
        else:
            st.queue.append(lock)

    def _lock_free(self, lock: "FakeHeldLock") -> None:
        st = self._locks.get(lock.name)
        if st is None:
            return
        if st.holder is lock:
            st.holder = None
            if st.queue:
                st.holder = st.queue.popleft()
                _schedule(st.holder._grant)
        elif lock in st.queue:
            st.queue.remove(lock)

    def lock_holder(self, name: str) -> Optional["FakePage"]:
        st = self._locks.get(name)
        return st.holder.page if st is not None and st.holder is not None else None

    def lock_queue(self, name: str) -> list["FakePage"]:
        st = self._locks.get(name)
        return [lk.page for lk in st.queue] if st is not None else []

    def held_lock_names(self) -> set[str]:
        return {name for name, st in self._locks.items() if st.holder is not None}

    # helpers for tests ------------------------------------------------------------------------
    async def settle(self, seconds: float = 0.05) -> None:
        """Let everything that is ready, and timers due within ``seconds``, run."""
        await asyncio.sleep(seconds)

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0,
                    what: str = "condition") -> float:
        """Wait (virtual time) until ``predicate()``; returns the seconds it took."""
        start = self.clock.t
        while not predicate():
            if self.clock.t - start > timeout:
                raise AssertionError(f"{what} not reached within {timeout} s (virtual)")
            await asyncio.sleep(0.01)
        return self.clock.t - start


@dataclass
class _LockState:
    holder: Optional["FakeHeldLock"] = None
    queue: deque = field(default_factory=deque)


# -- a page (tab) ---------------------------------------------------------------------------------

class FakePage:
    """One tab: the platform object a CometApi of that tab is given."""

    def __init__(self, origin: Origin, name: str, *, visible: bool = True, https: bool = False,
                 locks: bool = True, storage: bool = True) -> None:
        self.origin = origin
        self.name = name
        self.visible = visible
        self.https = https
        self.locks = locks
        self.storage = storage
        self.dead = False
        self.frozen = False
        self._held_in: list[tuple[Callable, tuple]] = []   # inputs waiting for thaw
        self._held_out: list[Callable[[], None]] = []      # outputs made while frozen
        self._listeners: list[tuple[str, str, Callable[..., None], Optional[str]]] = []
        self.channels: list[FakeChannel] = []
        self.sockets: list[FakeSocket] = []
        self.lock_requests: list[FakeHeldLock] = []

    # the platform interface (comet_py.browser's public names) -----------------------------
    def now_ms(self) -> float:
        return self.origin.clock.now_ms()

    def page_is_https(self) -> bool:
        return self.https

    def page_visible(self) -> bool:
        return self.visible

    def random_id(self, length: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self.origin.rng.choice(alphabet) for _ in range(length))

    def storage_get(self, key: str) -> Optional[str]:
        return self.origin.storage.get(key) if self.storage else None

    def storage_set(self, key: str, value: str) -> bool:
        if not self.storage:
            return False
        self.origin.storage[key] = value
        return True

    def PageEvents(self) -> "FakePageEvents":  # noqa: N802 (the browser module's class name)
        return FakePageEvents(self)

    def Socket(self, url: str, on_open: Callable[[], None], on_text: Callable[[str], None],  # noqa: N802
               on_close: Callable[[int, str], None]) -> "FakeSocket":
        return FakeSocket(self, url, on_open, on_text, on_close)

    def Channel(self, name: str, on_text: Callable[[str], None]) -> "FakeChannel":  # noqa: N802
        return FakeChannel(self, name, on_text)

    def locks_available(self) -> bool:
        return self.locks

    def HeldLock(self, name: str, on_granted: Callable[[], None],  # noqa: N802
                 on_lost: Optional[Callable[[str], None]] = None, *, steal: bool = False) -> "FakeHeldLock":
        if not self.locks:
            raise AttributeError("navigator.locks is undefined on this page")
        return FakeHeldLock(self, name, on_granted, on_lost, steal=steal)

    async def held_lock_names(self) -> set[str]:
        return self.origin.held_lock_names()

    # what a test does to the page ------------------------------------------------------------
    def _input(self, fn: Callable, *args: Any) -> None:
        """An event for this page's code: dropped when dead, held while frozen."""
        if self.dead:
            return
        if self.frozen:
            self._held_in.append((fn, args))
            return
        self._call(fn, args)

    def _call(self, fn: Callable, args: tuple) -> None:
        token = CURRENT_PAGE.set(self)
        try:
            fn(*args)
        finally:
            CURRENT_PAGE.reset(token)

    def run(self, fn: Callable, *args: Any) -> Any:
        """Run page code now (what a script of this page would do), e.g. ``page.run(api.start, opts)``."""
        if self.dead:
            raise RuntimeError(f"{self.name} is dead")
        token = CURRENT_PAGE.set(self)
        try:
            return fn(*args)
        finally:
            CURRENT_PAGE.reset(token)

    def _output(self, fn: Callable[[], None]) -> None:
        if self.dead:
            return
        if self.frozen:
            self._held_out.append(fn)
            return
        fn()

    def fire(self, target: str, event: str, **attrs: Any) -> None:
        """Dispatch a DOM event; ``attrs`` are its fields (``persisted=True`` for pageshow)."""
        for t, e, fn, field_name in list(self._listeners):
            if t == target and e == event:
                if field_name is None:
                    self._input(fn)
                else:
                    self._input(fn, attrs.get(field_name))

    def enter_bfcache(self) -> None:
        """Back/Forward away from the page: pagehide (persisted), then it runs no code."""
        self.fire("window", "pagehide", persisted=True)
        self.freeze()

    def leave_bfcache(self) -> None:
        """Back/Forward to it again: it runs again, and pageshow (persisted) fires."""
        self.thaw()
        self.fire("window", "pageshow", persisted=True)

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        self.fire("document", "visibilitychange")

    def die(self) -> None:
        """The tab crashes or is killed: no pagehide; its channels, sockets and locks go."""
        if self.dead:
            return
        self.dead = True
        self._held_in.clear()
        self._held_out.clear()
        for ch in list(self.channels):
            ch._detach()
        for sock in list(self.sockets):
            sock._abort()
        for lock in list(self.lock_requests):
            lock._kill()

    def close(self) -> None:
        """The tab is closed normally: pagehide runs, then the page is gone."""
        self.fire("window", "pagehide")
        self.die()

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False
        outs, self._held_out = self._held_out, []
        for fn in outs:
            fn()
        while self._held_in and not self.frozen and not self.dead:
            fn, args = self._held_in.pop(0)
            self._call(fn, args)


class FakePageEvents:
    def __init__(self, page: FakePage) -> None:
        self._page = page
        self._mine: list[tuple[str, str, Callable[..., None], Optional[str]]] = []

    def on(self, target: str, event: str, fn: Callable[..., None], *, field: Optional[str] = None) -> None:
        entry = (target, event, fn, field)
        self._mine.append(entry)
        self._page._listeners.append(entry)

    def close(self) -> None:
        for entry in self._mine:
            if entry in self._page._listeners:
                self._page._listeners.remove(entry)
        self._mine.clear()


class FakeChannel:
    """A BroadcastChannel carrying text (comet_py.browser.Channel)."""

    def __init__(self, page: FakePage, name: str, on_text: Callable[[str], None]) -> None:
        self.page = page
        self.name = name
        self._on_text = on_text
        self._open = not page.dead
        if self._open:
            page.origin._channels.setdefault(name, []).append(self)
            page.channels.append(self)

    def post(self, text: str) -> None:
        if self._open:
            self.page._output(lambda: self.page.origin._broadcast(self, text) if self._open else None)

    def _receive(self, text: str) -> None:
        if self._open:
            self.page._input(lambda: self._on_text(text) if self._open else None)

    def _detach(self) -> None:
        self._open = False
        members = self.page.origin._channels.get(self.name, [])
        if self in members:
            members.remove(self)
        if self in self.page.channels:
            self.page.channels.remove(self)

    def close(self) -> None:
        self._detach()


class FakeHeldLock:
    """comet_py.browser.HeldLock on the origin's lock manager."""

    def __init__(self, page: FakePage, name: str, on_granted: Callable[[], None],
                 on_lost: Optional[Callable[[str], None]] = None, *, steal: bool = False) -> None:
        self.page = page
        self.name = name
        self.held = False
        self._released = False
        self._gone = False           # stolen or killed: this request is over
        self._on_granted = on_granted
        self._on_lost = on_lost
        page.lock_requests.append(self)
        page.origin._lock_request(self, steal)

    def _grant(self) -> None:
        self.page._input(self._granted)

    def _granted(self) -> None:
        if self._gone:
            return
        if self._released:
            self._finish()
            return
        self.held = True
        self._on_granted()

    def _stolen(self) -> None:
        """Another request stole the lock: this one is no longer the holder (origin did it)."""
        self._gone = True
        if self in self.page.lock_requests:
            self.page.lock_requests.remove(self)
        was_held, self.held = self.held, False
        if was_held and not self._released and self._on_lost is not None:
            on_lost = self._on_lost
            reason = "AbortError: Lock broken by another request with the 'steal' option."
            _schedule(self.page._input, on_lost, reason)

    def _finish(self) -> None:
        self._gone = True
        if self in self.page.lock_requests:
            self.page.lock_requests.remove(self)
        self.page.origin._lock_free(self)

    def _kill(self) -> None:
        self.held = False
        self._finish()

    def release(self) -> None:
        """Held: the next request is granted. Queued: it leaves the queue. Granted but its
        callback not run yet: let go at once (browser.HeldLock's callback would return at once)."""
        if self._released:
            return
        self._released = True
        self.held = False
        if not self._gone:
            self._finish()


# -- WebSocket ----------------------------------------------------------------------------------

class FakeSocket:
    """comet_py.browser.Socket to a FakeCometServer. Opens, receives and closes asynchronously."""

    CONNECTING, OPEN, CLOSED = 0, 1, 3

    def __init__(self, page: FakePage, url: str, on_open: Callable[[], None],
                 on_text: Callable[[str], None], on_close: Callable[[int, str], None]) -> None:
        self.page = page
        self.url = url
        self.ready_state = self.CONNECTING
        self._closed = False         # the owner's view (no more callbacks)
        self._on_open = on_open
        self._on_text = on_text
        self._on_close = on_close
        self.conn: Optional[ServerConn] = None
        page.sockets.append(self)
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"SyntaxError: invalid WebSocket URL {url!r}")
        page._output(lambda: _schedule(self._connect, parts.netloc))

    def _connect(self, host: str) -> None:
        if self.ready_state != self.CONNECTING:
            return
        server = self.page.origin.network.get(host)
        if server is None or not server.up or server.blackhole:
            self._server_closed(1006, "")
            return
        conn = server._accept(self)   # the serverInfo frame is already on its way
        if conn is None:
            self._server_closed(1006, "")
            return
        self.conn = conn
        self.ready_state = self.OPEN
        self.page._input(self._opened)

    def _opened(self) -> None:
        if not self._closed:
            self._on_open()

    def _frame(self, text: str) -> None:
        """A frame from the server (called through the loop)."""
        if self.ready_state == self.OPEN:
            self.page._input(self._text, text)

    def _text(self, text: str) -> None:
        if not self._closed:
            self._on_text(text)

    def _server_closed(self, code: int, reason: str) -> None:
        if self.ready_state == self.CLOSED:
            return
        self.ready_state = self.CLOSED
        self.page._input(self._closed_event, code, reason)

    def _closed_event(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._forget()
        self._on_close(code, reason)

    def _forget(self) -> None:
        if self in self.page.sockets:
            self.page.sockets.remove(self)

    @property
    def is_open(self) -> bool:
        return not self._closed and self.ready_state == self.OPEN

    def send(self, text: str) -> bool:
        conn = self.conn
        if not self.is_open or conn is None:
            return False
        self.page._output(lambda: _schedule(conn.server._receive, conn, text))
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._forget()
        self._abort()

    def _abort(self) -> None:
        """The browser side goes away (close() or the page died): the server sees a close."""
        self._closed = True
        self._forget()
        if self.ready_state == self.OPEN and self.conn is not None:
            conn = self.conn
            _schedule(conn._end)
        self.ready_state = self.CLOSED


if TYPE_CHECKING:
    def _is_a_platform(page: FakePage) -> Platform:
        return page  # mypy: FakePage is what comet_py.browser is to the Coordinator


# -- the server -----------------------------------------------------------------------------------

class MemoryTransport(RecordingTransport):
    """The server end of one connection: the transport a real comet_server ``Client`` writes its
    pre-built frames to, and the connection layer it pings and closes through (``closed``,
    ``send_ping``, ``send_close``). A text frame is recorded, decoded, in ``conn.sent`` and goes through
    the loop to the page's socket; a close frame sets the code the page sees when the transport
    closes. While the server is ``blackhole``d, frames and pings to a page vanish."""

    def __init__(self, conn: "ServerConn") -> None:
        super().__init__()
        self.conn = conn
        self._close: tuple[int, str] = (1006, "")  # no close frame: the connection just ends

    @property
    def _closed(self) -> bool:
        """``closing`` under the name hub._abort_if_open reads (and ServerConn._end sets)."""
        return self.closing

    @_closed.setter
    def _closed(self, value: bool) -> None:
        self.closing = value

    def _cut(self) -> bool:
        return self.conn.server.blackhole and self.conn.socket is not None

    # the asyncio transport ------------------------------------------------------------------------
    def write(self, frame: bytes) -> None:
        super().write(frame)
        if is_close(frame):
            self._close = close_of(frame)
            return
        if self._cut():
            return
        text = text_of(frame)
        self.conn.sent.append(json.loads(text))
        if self.conn.socket is not None:
            _schedule(self.conn.socket._frame, text)

    def close(self) -> None:
        """The server closes the connection: the page sees the close (code of the close frame)."""
        if self.closing:
            return
        self.conn._end()
        if self.conn.socket is not None and not self._cut():
            _schedule(self.conn.socket._server_closed, *self._close)

    def abort(self) -> None:
        self._close = (1006, "")
        self.close()

    # the connection layer (what ws_connection.WsConnection is to a Client) ------------------------
    @property
    def closed(self) -> bool:
        return self.closing

    def send_ping(self, payload: bytes) -> None:
        """The browser answers a ping itself, even for a frozen page: a pong comes back after a
        round trip (the server counts only what arrives after its ping)."""
        if not self.closing and not self._cut():
            _schedule(self.conn.server._pong, self.conn, payload, delay=PING_ROUND_TRIP)

    def send_close(self, code: int, reason: str = "") -> None:
        if not self.closing:
            self.write(wire.close_frame(code, reason))
        self.close()


class ServerConn:
    """One connection as the server sees it: the real comet_server ``Client`` (``client``) and
    what went over it, for assertions."""

    def __init__(self, server: "FakeCometServer", socket: Optional[FakeSocket], page: str) -> None:
        self.server = server
        self.socket = socket            # None: a connection from outside this browser
        self.page = page
        self.received: list[str] = []   # every text frame it got
        self.sent: list[dict] = []      # every text frame written to it, decoded
        self.transport = MemoryTransport(self)
        self.client: Optional[Client] = None          # None: the server refused the URL
        self._expiry: Optional[asyncio.TimerHandle] = None

    def _open(self, url: wire.WsUrl) -> None:
        # The transport stands in for the connection layer too (ws_connection.WsConnection).
        self.client, self._expiry = ws.open_client(self.server.hub, url, {}, "", self.transport,
                                                   self.transport)

    def _end(self) -> None:
        """The connection is over for the server (from either side)."""
        self.transport._closed = True
        if self.client is not None:
            ws.close_client(self.server.hub, self.client, self._expiry)

    @property
    def open(self) -> bool:
        return self.client is not None and not self.client.closed

    @property
    def dev_id(self) -> int:
        return self._client().dev_id

    @property
    def uuid(self) -> str:
        return self._client().uuid

    @property
    def pipes(self) -> list[str]:
        """Its current subscription, in order (none once closed)."""
        return list(self._client().pipes)

    def _client(self) -> Client:
        assert self.client is not None, "the server refused this connection"
        return self.client

    def commands(self, name: str) -> list[str]:
        """Argument parts of the frames of one command it received."""
        return [t.partition("\n")[2] for t in self.received if t.partition("\n")[0] == name]

    def __repr__(self) -> str:
        return f"<ServerConn {self.page} {self.client!r}>"


class FakeCometServer:
    """The real comet_server in memory: one ``Hub`` over ``Store(":memory:")``, whose clients'
    transports are ``MemoryTransport``s, whose text frames go through ``ws.handle_command``, and
    whose connections open through ``ws.open_client`` (serverInfo, authorization, registration),
    all on the virtual clock (message_send_time, keepalive pings).

    ``store`` is the real Store: ``store.set_user_hash(dev_id, user_id, key)`` authorizes a user,
    ``keep_history(dev_id, pipe)`` gives a channel a history (history_ids, pipe_log).
    """

    PASSWORD = "CometQLPassword"   # the JWT secret is PASSWORD + str(dev_id), as in comet_server

    def __init__(self, origin: Origin, host: str) -> None:
        self.origin = origin
        self.host = host
        self.up = True
        self.blackhole = False   # the network path is cut silently: frames vanish both ways
        self.unanswered: set[str] = set()   # commands taken (recorded) but never answered
        self.hub = Hub(Store(":memory:"), self.PASSWORD, clock=origin.clock.time)
        self.conns: list[ServerConn] = []          # every connection ever accepted

    @property
    def store(self) -> StoreAPI:
        return self.hub.store

    def keep_history(self, dev_id: int, pipe: str, length: int = 100) -> None:
        """The channel keeps its newest ``length`` messages (pipes_settings); a shorter length
        drops the older ones at once."""
        self.store.set_pipe_length(dev_id, pipe, length)

    # state for assertions -------------------------------------------------------------------
    def open_conns(self, dev_id: Optional[int] = None, *, browser: bool = False) -> list[ServerConn]:
        """Open connections (of one dev_id; ``browser``: only those of pages, not external)."""
        return [c for c in self.conns if c.open and (dev_id is None or c.dev_id == dev_id)
                and not (browser and c.socket is None)]

    def subscribers(self, dev_id: int, pipe: str) -> list[ServerConn]:
        return [c for c in self.open_conns(dev_id) if pipe in c.pipes]

    def received(self, command: Optional[str] = None) -> list[tuple[str, str]]:
        """(page name, frame) of every frame received, in order (optionally one command)."""
        out = []
        for c in self.conns:
            for t in c.received:
                if command is None or t.partition("\n")[0] == command:
                    out.append((c.page, t))
        return out

    # what tests do -----------------------------------------------------------------------------
    def publish(self, dev_id: int, pipe: str, event: str, data: str, *,
                user_id: Optional[int] = None) -> tuple[int, Optional[str]]:
        """A message into a channel, as CometQL/HTTP publish do (``user_id``: as web_pipe2 does);
        returns (deliveries, history_id)."""
        return self.hub.publish_logged(dev_id, pipe, event, data, user_id=user_id)

    def external(self, dev_id: int, pipes: tuple = (), *, user_id: int = 0) -> ServerConn:
        """A connection from outside this browser (another user, authorized when ``user_id``):
        a subscriber that records the frames it gets in ``sent``; ``command(conn, text)`` makes
        it send a frame."""
        key = f"external{user_id}" if user_id else ""
        if user_id:
            self.store.set_user_hash(dev_id, user_id, key)
        conn = ServerConn(self, None, "external")
        conn._open(wire.WsUrl(session=key, user_id=user_id, dev_id=dev_id, major=4, minor=8, uuid="x" * 32))
        self.conns.append(conn)
        if pipes:
            self.command(conn, "subscription\n" + "\n".join(pipes))
        return conn

    def command(self, conn: ServerConn, text: str) -> None:
        self._receive(conn, text)

    def drop(self, conn: ServerConn, code: int = 1006, reason: str = "") -> None:
        """The server closes one connection: with a close frame, or (1006) none."""
        if code == 1006:
            conn.transport.abort()
        else:
            conn._client().kick(code, reason)

    def lose(self, conn: ServerConn) -> None:
        """The network path to the connection is gone for the server; its page notices nothing."""
        conn._end()

    def go_down(self) -> None:
        self.up = False
        for c in self.open_conns():
            self.drop(c)

    def come_up(self) -> None:
        self.up = True

    # the socket side ---------------------------------------------------------------------------
    def _accept(self, sock: FakeSocket) -> Optional[ServerConn]:
        """A page's socket connects: None when the upgrade fails (no WebSocket at that path)."""
        parts = urlsplit(sock.url)
        raw = parts.path + ("?" + parts.query if parts.query else "")
        if not ws.is_ws_path(raw):
            return None
        conn = ServerConn(self, sock, sock.page.name)
        url = wire.parse_ws_url(raw)
        if isinstance(url, wire.UrlError):
            text, code, reason = ws.refusal(self.hub, url)
            conn.transport.write(wire.text_frame(text.encode("utf-8")))
            conn.transport.write(wire.close_frame(code, reason))
            conn.transport.close()
            return conn
        conn._open(url)
        self.conns.append(conn)
        return conn

    def _pong(self, conn: ServerConn, payload: bytes) -> None:
        if conn.open and not conn.transport._cut():
            client = conn._client()
            client.last_rx = _loop().time()   # as ws._serve does for every frame
            client.on_pong(payload)

    def _receive(self, conn: ServerConn, text: str) -> None:
        if not conn.open or conn.transport._cut():
            return
        client = conn._client()
        if len(text.encode("utf-8")) >= ws.MAX_MSG_SIZE:  # aiohttp's max_msg_size: closed unread
            client.kick(1009)
            return
        conn.received.append(text)
        client.last_rx = _loop().time()
        if text.partition("\n")[0].strip() in self.unanswered:
            return
        ws.handle_command(self.hub, client, text)


# -- running a scenario -----------------------------------------------------------------------------

def run(scenario: Callable[[Origin], Awaitable[Any]], *, seed: int = 1, **origin_kwargs: Any) -> Any:
    """``await scenario(origin)`` on a fresh virtual-time loop and origin; returns its result."""
    clock = VirtualClock()
    origin = Origin(seed=seed, clock=clock, **origin_kwargs)
    loop = VirtualTimeLoop(clock)
    asyncio.set_event_loop(loop)
    # Tasks of a page that died never finish: nothing to report about them.
    loop.set_exception_handler(
        lambda lp, ctx: None if "destroyed but it is pending" in str(ctx.get("message"))
        else lp.default_exception_handler(ctx))
    try:
        return loop.run_until_complete(scenario(origin))
    finally:
        for t in asyncio.all_tasks(loop):
            t.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        asyncio.set_event_loop(None)
        loop.close()
        for server in origin.network.values():
            server.store.close()
