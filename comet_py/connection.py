"""Drives a sans-I/O Session over a browser WebSocket: connect, reconnect with backoff, tick.

Only the master tab has one. It knows nothing of tabs: Session events other than Send and
Reconnect go to ``on_event`` (the coordinator), which routes them to this tab or the others.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

from .session import Reconnect, Send, Session

log = logging.getLogger("comet_py")
TICK_SECONDS = 1.0


class Connection:
    def __init__(self, session: Session, platform: Any, on_event: Callable[[Any], None]) -> None:
        self.session = session
        self._platform = platform
        self._on_event = on_event
        self._socket: Any = None
        self._reconnect: Optional[asyncio.TimerHandle] = None
        self._ticker: Optional[asyncio.TimerHandle] = None
        self._stopped = False

    def start(self) -> None:
        self._schedule_tick()
        self._connect()

    def _connect(self) -> None:
        self._reconnect = None
        if self._stopped:
            return
        self._handle(self.session.connecting())
        url = self.session.url()
        try:
            self._socket = self._platform.Socket(url, self._opened, self._received, self._closed)
        except Exception as exc:  # e.g. a URL the browser refuses
            log.error("comet_py: cannot open %s: %s", url, exc)
            self._socket = None
            self._handle(self.session.closed())

    def _opened(self) -> None:
        self._handle(self.session.opened())

    def _received(self, text: str) -> None:
        self._handle(self.session.received(text))

    def _closed(self, code: int, reason: str) -> None:
        log.info("comet_py: connection closed (%s %s)", code, reason)
        self._socket = None
        if not self._stopped:
            self._handle(self.session.closed())

    def _handle(self, events: list) -> None:
        for event in events:
            if isinstance(event, Send):
                if self._socket is None or not self._socket.send(event.frame):
                    log.debug("comet_py: not sent, socket not open: %.60r", event.frame)
            elif isinstance(event, Reconnect):
                if not self._stopped and self._reconnect is None:
                    self._reconnect = asyncio.get_event_loop().call_later(event.delay, self._connect)
            else:
                self._on_event(event)

    def _schedule_tick(self) -> None:
        self._ticker = asyncio.get_event_loop().call_later(TICK_SECONDS, self._tick)

    def _tick(self) -> None:
        if self._stopped:
            return
        self._handle(self.session.tick(self._platform.now_ms() / 1000.0))
        self._schedule_tick()

    def call(self, events: list) -> None:
        """Carry out what a Session method returned (set_channels, web_pipe, request...)."""
        self._handle(events)

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
