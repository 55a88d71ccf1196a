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
- WebSocket: ``Socket`` connects to a ``FakeCometServer`` of the origin's network, which speaks
  comet_server's v4 frames (docs/design.md §3) for serverInfo, subscription, web_pipe2,
  pipe_count and pipe_log (channels listed in ``history_pipes`` keep a history with history_ids).
- Time: ``VirtualTimeLoop`` is an asyncio loop on a virtual clock: when nothing is ready it jumps
  to the next timer instead of sleeping. ``now_ms`` reads the same clock, so tests that wait
  several seconds of browser time (heartbeats, timeouts) take milliseconds and always interleave
  the same way. ``run(scenario)`` runs ``await scenario(origin)`` on a fresh one. (This is why
  the server is in memory rather than a comet_server subprocess: real sockets would need real
  time, and so real waits and timing-dependent interleavings.)

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

if TYPE_CHECKING:
    from comet_py.platform import Platform

EPOCH_MS = 1_700_000_000_000.0
DEFAULT_HOST = "comet.test"


# -- time --------------------------------------------------------------------------------------

class VirtualClock:
    """Seconds since the test started, moved only by the loop (or by ``jump``)."""

    def __init__(self, epoch_ms: float = EPOCH_MS) -> None:
        self.epoch_ms = epoch_ms
        self.t = 0.0

    def now_ms(self) -> float:
        return self.epoch_ms + self.t * 1000.0

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
        self.conn = server._accept(self)
        self.ready_state = self.OPEN
        self.page._input(self._opened)
        server._greet(self.conn)

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
            _schedule(conn.server._disconnect, conn)
        self.ready_state = self.CLOSED


if TYPE_CHECKING:
    def _is_a_platform(page: FakePage) -> Platform:
        return page  # mypy: FakePage is what comet_py.browser is to the Coordinator


# -- the server -----------------------------------------------------------------------------------

def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _field(raw: str, start: int, stop_at: str = "&") -> str:
    end = raw.find(stop_at, start)
    return raw[start:] if end < 0 else raw[start:end]


@dataclass(eq=False)
class ServerConn:
    server: "FakeCometServer"
    socket: Optional[FakeSocket]      # None: a connection from outside this browser
    page: str
    dev_id: int
    user_id: int
    user_key: str
    uuid: str
    authorized: bool
    open: bool = True
    pipes: list = field(default_factory=list)          # current subscription, in order
    received: list = field(default_factory=list)       # every text frame it got
    sent: list = field(default_factory=list)           # every frame written to it (decoded)

    def commands(self, name: str) -> list[str]:
        """Argument parts of the frames of one command it received."""
        return [t.partition("\n")[2] for t in self.received if t.partition("\n")[0] == name]


class FakeCometServer:
    """comet_server in memory: the v4 frames of docs/design.md §3 for the commands comet_py uses.

    Authorization: ``users[(dev_id, user_id)] = user_key`` makes that pair authorized. Channels in
    ``history_pipes`` keep their messages with increasing ``history_id``s, as comet_server does
    for channels whose history is enabled, and answer pipe_log.
    """

    name = "comet_server 0.0-fake"

    def __init__(self, origin: Origin, host: str) -> None:
        self.origin = origin
        self.host = host
        self.up = True
        self.blackhole = False   # the network path is cut silently: frames vanish both ways
        self.unanswered: set[str] = set()   # commands taken (recorded) but never answered
        self.users: dict[tuple[int, int], str] = {}
        self.history_pipes: set[str] = set()
        self.history: dict[tuple[int, str], list[dict]] = {}
        self.conns: list[ServerConn] = []          # every connection ever accepted
        self._next_history_id = 0

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
                user_id: Optional[int] = None, exclude: Optional[ServerConn] = None) -> tuple[int, Optional[str]]:
        """A message into a channel (as CometQL/HTTP publish, or web_pipe2 with ``user_id``)."""
        obj: dict[str, Any] = {"data": data, "event": event, "message_send_time": self._now(), "pipe": pipe}
        if user_id is not None:
            obj["user_id"] = user_id
        history_id = None
        if pipe in self.history_pipes:
            self._next_history_id += 1
            history_id = str(self._next_history_id)
            obj["history_id"] = history_id
            self.history.setdefault((dev_id, pipe), []).append(dict(obj))
        n = 0
        for c in self.subscribers(dev_id, pipe):
            if c is not exclude:
                self._send(c, obj)
                n += 1
        return n, history_id

    def external(self, dev_id: int, pipes: tuple = (), *, user_id: int = 0) -> ServerConn:
        """A connection from outside this browser (another user): a subscriber that records the
        frames it gets in ``sent``; ``command(conn, text)`` makes it send a frame."""
        conn = ServerConn(self, None, "external", dev_id, user_id, "", "x" * 32, bool(user_id),
                          pipes=list(pipes))
        self.conns.append(conn)
        return conn

    def command(self, conn: ServerConn, text: str) -> None:
        self._receive(conn, text)

    def drop(self, conn: ServerConn, code: int = 1006, reason: str = "") -> None:
        """The server closes one connection."""
        self._disconnect(conn)
        if conn.socket is not None:
            _schedule(conn.socket._server_closed, code, reason)

    def go_down(self) -> None:
        self.up = False
        for c in self.open_conns():
            self.drop(c)

    def come_up(self) -> None:
        self.up = True

    # the socket side ---------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self.origin.clock.now_ms() / 1000)

    def _accept(self, sock: FakeSocket) -> ServerConn:
        raw = urlsplit(sock.url).path
        # Positional, as comet_server: /ws/sesion=<key>&myid=<id>&devid=<dev>&v=<v>&uuid=<uuid>&api=js
        key = _field(raw, raw.find("=") + 1)
        parts = raw.split("&")
        myid = parts[1][len("myid="):] if len(parts) > 1 else ""
        dev = parts[2][len("devid="):] if len(parts) > 2 else ""
        uuid = parts[4][len("uuid="):] if len(parts) > 4 else ""
        dev_id = int(dev) if dev.isdigit() else 0
        user_id = int(myid) if myid.isdigit() else 0
        authorized = bool(user_id) and self.users.get((dev_id, user_id)) == key
        conn = ServerConn(self, sock, sock.page.name, dev_id, user_id if authorized else 0, key, uuid, authorized)
        self.conns.append(conn)
        return conn

    def _greet(self, conn: ServerConn) -> None:
        self._send(conn, {"authorized": conn.authorized, "data": "", "event": "serverInfo",
                          "message_send_time": self._now(), "pipe": "sys", "server": self.name})

    def _send(self, conn: ServerConn, obj: dict) -> None:
        if not conn.open or (self.blackhole and conn.socket is not None):
            return
        conn.sent.append(obj)
        if conn.socket is not None:
            _schedule(conn.socket._frame, _dumps(obj))

    def _disconnect(self, conn: ServerConn) -> None:
        conn.open = False

    def _error(self, conn: ServerConn, text: str) -> None:
        self._send(conn, {"data": {"error": text, "number_messages": -1}, "event": "error",
                          "message_send_time": self._now(), "pipe": "sys"})

    def _receive(self, conn: ServerConn, text: str) -> None:
        if not conn.open or (self.blackhole and conn.socket is not None):
            return
        conn.received.append(text)
        cmd, _, args = text.partition("\n")
        if cmd.strip() in self.unanswered:
            return
        handler = getattr(self, "_cmd_" + cmd.strip(), None)
        if handler is None:
            self._error(conn, "Unknown command")
        else:
            handler(conn, args)

    def _cmd_subscription(self, conn: ServerConn, args: str) -> None:
        names: list[str] = []
        for name in args.replace("\r", "\n").split("\n"):
            name = name.strip()
            if len(name) >= 2 and name not in names:
                names.append(name)
        conn.pipes = names

    def _cmd_web_pipe2(self, conn: ServerConn, args: str) -> None:
        parts = args.split("\n", 3)
        if len(parts) < 4:
            self._error(conn, "[pipe_msg2] Invalid arguments. Expected web_pipe2\\n<pipe>\\n<event>\\n<auth_type>\\n<message>")
            return
        pipe, event, _auth_type, message = parts
        anonymous = pipe.startswith("@")
        name = pipe[1:] if anonymous else pipe
        if not name.startswith(("web_", "webauth_")):
            self._error(conn, "[pipe_msg2] Invalid channel name. The channel should begin with web_")
            return
        user_id = 0 if anonymous else conn.user_id
        n, history_id = self.publish(conn.dev_id, name, event, message, user_id=user_id, exclude=conn)
        report: dict = {"event": event, "message": message, "number_messages": n, "user_id": user_id}
        if history_id is not None:
            report["history_id"] = history_id
        self._send(conn, {"data": report, "event": "answer", "message_send_time": self._now(),
                          "pipe": "_answer_to_" + name})

    def _cmd_pipe_count(self, conn: ServerConn, args: str) -> None:
        parts = args.split("\n")
        pipe, marker = parts[0], parts[1] if len(parts) > 1 else ""
        if not pipe.startswith(("web_", "track_")):
            self._error(conn, "[pipe_count] Invalid channel name. The channel should start with web_")
            return
        self._send(conn, {"data": {"user_in_pipe": len(self.subscribers(conn.dev_id, pipe))},
                          "event": "user_in_pipe", "marker": marker, "message_send_time": self._now(),
                          "pipe": "_answer_pipe_count"})

    def _cmd_track_pipe_users(self, conn: ServerConn, args: str) -> None:
        parts = args.split("\n")
        pipe, marker = parts[0], parts[1] if len(parts) > 1 else ""
        if not pipe.startswith("track_"):
            self._error(conn, "[track_pipe_users] Invalid channel name. The channel should start with track_")
            return
        users = [{"user_id": c.user_id, "uuid": c.uuid} for c in self.subscribers(conn.dev_id, pipe)]
        self._send(conn, {"_info": "answer for track_pipe_users", "data": users, "event": "answer",
                          "marker": marker, "message_send_time": self._now(), "pipe": "_answer"})

    def _cmd_pipe_log(self, conn: ServerConn, args: str) -> None:
        parts = args.split("\n")
        pipe, marker = parts[0], parts[1] if len(parts) > 1 else ""
        items = self.history.get((conn.dev_id, pipe), [])
        for it in items:
            self._send(conn, {"data": it["data"], "event": it["event"], "fromQueue": True, "history": True,
                              "history_id": it["history_id"], "message_send_time": it["message_send_time"],
                              "pipe": pipe, "user_id": it.get("user_id", 0)})
        self._send(conn, {"data": {"number_messages": len(items)}, "event": "pipe_log", "marker": marker,
                          "message_send_time": self._now(), "pipe": "_answer_pipe_log"})


# -- running a scenario -----------------------------------------------------------------------------

def run(scenario: Callable[[Origin], Awaitable[Any]], *, seed: int = 1, **origin_kwargs: Any) -> Any:
    """``await scenario(origin)`` on a fresh virtual-time loop and origin; returns its result."""
    clock = VirtualClock()
    loop = VirtualTimeLoop(clock)
    asyncio.set_event_loop(loop)
    # Tasks of a page that died never finish: nothing to report about them.
    loop.set_exception_handler(
        lambda lp, ctx: None if "destroyed but it is pending" in str(ctx.get("message"))
        else lp.default_exception_handler(ctx))
    try:
        origin = Origin(seed=seed, clock=clock, **origin_kwargs)
        return loop.run_until_complete(scenario(origin))
    finally:
        for t in asyncio.all_tasks(loop):
            t.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        asyncio.set_event_loop(None)
        loop.close()
