"""Drives a sans-I/O Session over a browser WebSocket: connect, reconnect with backoff, tick.

Only the master tab has one. It knows nothing of tabs: Session events other than Send and
Reconnect go to ``on_event`` (the master role), which routes them to this tab or the others.

Liveness: with the network gone, a socket may stay "open" for minutes while nothing arrives.
When nothing was received for IDLE_PROBE_MS while connected (or at once on ``offline``), a
cheap request goes out (``pipe_count`` of a ``web_`` channel: CppComet and comet_server both
answer it); when no frame at all comes within PROBE_TIMEOUT_MS, the socket is closed and the
tabs see ``disconnected``. A gap between our own ticks (throttled timers, a laptop's sleep)
restarts the wait once instead of counting against the server.
"""

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import aio
from .session import Answer, Dispatch, Event, Reconnect, Send, Session, State

if TYPE_CHECKING:  # only for annotations: not imported in the browser
    from .platform import Platform

log = logging.getLogger("comet_py")
TICK_SECONDS = 1.0
IDLE_PROBE_MS = 5_000     # connected and nothing received this long: ask the server something
PROBE_TIMEOUT_MS = 3_000  # no frame this long after asking: the connection is dead
STALL_MS = 3_000          # our own ticks this far apart: we were throttled or asleep
LIVENESS_PIPE = "web_comet_py_alive"
_LIVENESS = ("comet_py:liveness", 0)  # the probe's token: its answer is ours, not a tab's


class Connection:
    def __init__(self, session: Session, platform: "Platform", on_event: Callable[[Event], None],
                 on_message: Callable[[dict[str, Any]], None] | None = None) -> None:
        """``on_message(message)``: the hot path, what ``on_event(Dispatch(message))`` would do
        for an ordinary live message to every tab (the default does just that)."""
        self.session = session
        self._platform = platform
        self._on_event = on_event
        self._on_message = on_message or (lambda message: on_event(Dispatch(message)))
        self._socket: Any = None
        self._reconnect: Optional[asyncio.TimerHandle] = None
        self._ticker: Optional[asyncio.TimerHandle] = None
        self._stopped = False
        self._last_rx_ms = platform.now_ms()    # a frame was last received then (or we started)
        self._heard_since_tick = False           # one was received since the last tick
        self._last_tick_ms: Optional[float] = None
        self._probe_at: Optional[float] = None   # a liveness probe is out since then
        self._probe_restarted = False            # its wait was restarted after a stall of ours
        self._skipped_ms = 0.0                   # our stalls beyond STALL_MS: not waiting time

    def start(self) -> None:
        self._schedule_tick()
        self._connect()

    def _connect(self) -> None:
        self._reconnect = None
        if self._stopped:
            return
        self.handle(self.session.connecting())
        url = self.session.url()
        try:
            self._socket = self._platform.Socket(url, self._opened, self._received, self._closed)
        except Exception as exc:  # e.g. a URL the browser refuses
            log.error("comet_py: cannot open %s: %s", url, exc)
            self._socket = None
            self.handle(self.session.closed())

    def _opened(self) -> None:
        self._heard()
        self.handle(self.session.opened())

    def _received(self, text: str) -> None:
        # _heard(), inline: this runs for every frame.
        self._heard_since_tick = True
        self._probe_at = None
        self._probe_restarted = False
        found = self.session.received_fast(text)
        if type(found) is dict:
            self._on_message(found)
        elif found:
            self.handle(found)  # type: ignore[arg-type]  # a list: mypy does not narrow on type()

    def _heard(self) -> None:
        # No clock read per frame (a JS call in the browser): the next tick stamps the time.
        # Liveness is only checked on ticks, so a probe goes out on the same tick as with the
        # exact time (with ticks 1 s apart; one tick later at most when they drift).
        self._heard_since_tick = True
        self._probe_at = None
        self._probe_restarted = False

    def _closed(self, code: int, reason: str) -> None:
        log.info("comet_py: connection closed (%s %s)", code, reason)
        self._socket = None
        self._probe_at = None
        if not self._stopped:
            self.handle(self.session.closed())

    def handle(self, events: list[Event]) -> None:
        """Carry out Session events: its own methods' and what the tabs' calls returned."""
        for event in events:
            # if/isinstance, not match: MicroPython has no match statement
            if isinstance(event, Send):
                if self._socket is None or not self._socket.send(event.frame):
                    log.debug("comet_py: not sent, socket not open: %.60r", event.frame)
            elif isinstance(event, Answer) and event.token == _LIVENESS:
                pass  # any frame proved the connection alive; the value does not matter
            elif isinstance(event, Reconnect):
                if not self._stopped and self._reconnect is None:
                    self._reconnect = aio.call_later(event.delay, self._connect)
            else:
                self._on_event(event)

    def _schedule_tick(self) -> None:
        self._ticker = aio.call_later(TICK_SECONDS, self._tick)

    def _tick(self) -> None:
        if self._stopped:
            return
        now = self._platform.now_ms()
        if self._heard_since_tick:
            self._heard_since_tick = False
            self._last_rx_ms = now
        last, self._last_tick_ms = self._last_tick_ms, now
        stalled = last is not None and not 0 <= now - last <= STALL_MS
        if stalled and last is not None:
            # A sleep or a throttled timer: the Session's request timeouts do not run meanwhile.
            self._skipped_ms += max(0.0, now - last - STALL_MS)
        self._check_alive(now, stalled)
        if not self._stopped:
            self.handle(self.session.tick((now - self._skipped_ms) / 1000.0))
            self._schedule_tick()

    def _live(self) -> bool:
        return self._socket is not None and self._socket.is_open and self.session.state == State.CONNECTED

    def _probe(self, now: float) -> None:
        self._probe_at = now
        self.handle(self.session.request("pipe_count", LIVENESS_PIPE, _LIVENESS))

    def _check_alive(self, now: float, stalled: bool = False, force: bool = False) -> None:
        if not self._live():
            self._probe_at = None
            return
        if self._probe_at is None:
            if force or stalled or now - self._last_rx_ms >= IDLE_PROBE_MS:
                self._probe(now)
            return
        if stalled and not self._probe_restarted:
            # The answer may be waiting behind our own pause: ask again and wait afresh.
            self._probe_restarted = True
            self._probe(now)
            return
        if stalled or now - self._probe_at >= PROBE_TIMEOUT_MS:
            log.warning("comet_py: no frame from the server for %.0f ms after a probe; reconnecting",
                        now - self._probe_at)
            self._fail()

    def _fail(self) -> None:
        """The connection is dead though the socket did not say so: drop it, reconnect."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._probe_at = None
        self.handle(self.session.closed())

    def network_back(self) -> None:
        """``online``: a reconnect waiting for its backoff goes now; a live one is checked."""
        if self._stopped:
            return
        if self._reconnect is not None:
            self._reconnect.cancel()
            self._connect()
        elif self._live() and self._probe_at is None:
            self._probe(self._platform.now_ms())

    def network_lost(self) -> None:
        """``offline``: check the connection now rather than after IDLE_PROBE_MS."""
        if not self._stopped:
            self._check_alive(self._platform.now_ms(), force=True)

    def stop(self) -> None:
        if self._stopped:
            return
        events = self.session.stop()
        self._stopped = True
        for handle in (self._reconnect, self._ticker):
            if handle is not None:
                handle.cancel()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        for event in events:
            if not isinstance(event, (Send, Reconnect)):
                self._on_event(event)
