"""Rate-limited logging for anything that logs per input (a command, a query, a connection).

A client that repeats a bad input must not be able to fill the disk with log lines (item 8 of
issue 8): each kind of event is logged the first time in an interval, with its traceback when it
has one; the repeats are only counted and reported, as one line, with the next event after the
interval.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

__all__ = ["RateLimitedLog", "DEFAULT_INTERVAL"]

#: seconds between two log lines of the same kind of event.
DEFAULT_INTERVAL = 60.0


class RateLimitedLog:
    """``report(key, msg, *args)`` logs at most once per ``interval`` per ``key``."""

    def __init__(self, logger: logging.Logger, *, interval: float = DEFAULT_INTERVAL,
                 level: int = logging.WARNING, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.level = level
        self._clock = clock
        # key -> [start of its current interval, events suppressed since]
        self._state: dict[str, list[float]] = {}

    def report(self, key: str, msg: str, *args: Any, exc_info: bool = False,
               level: int | None = None) -> bool:
        """Log this event unless one of the same ``key`` was logged less than ``interval`` ago
        (then only count it). True when it was logged."""
        now = self._clock()
        lvl = self.level if level is None else level
        st = self._state.get(key)
        if st is not None and now - st[0] < self.interval:
            st[1] += 1
            return False
        if st is not None and st[1]:
            self.logger.log(lvl, "%s: %d more in the last %.0f s (not logged one by one)",
                            key, int(st[1]), now - st[0])
        if len(self._state) > 1000:  # keys come from our code, but stay bounded anyway
            self._state.clear()
        self._state[key] = [now, 0]
        self.logger.log(lvl, msg, *args, exc_info=exc_info)
        return True

    def suppressed(self, key: str) -> int:
        """How many events of ``key`` were counted but not logged in its current interval."""
        st = self._state.get(key)
        return int(st[1]) if st else 0
