"""Reconnect delays: exponential growth, full jitter, a cap (sans-I/O).

Unlike the JS client (x3 per failure, no cap, no jitter, protocol.md §1.6),
delays stay under ``cap`` and are spread at random so that many browsers cut
off together do not all return in the same instant.

Defaults: attempt n waits uniform(0, min(30, 0.5 * 2**n)) seconds but never
less than 0.1 s: the first retry comes within 0.5 s, the ceiling reaches
30 s after 6 failures. ``reset()`` after a serverInfo starts over.
"""

import random
from typing import Any, Optional

__all__ = ["Backoff"]


class Backoff:
    def __init__(
        self,
        base: float = 0.5,
        factor: float = 2.0,
        cap: float = 30.0,
        rng: Optional[Any] = None,
        *,
        floor: float = 0.1,
    ) -> None:
        if not (0 < base <= cap and factor >= 1 and 0 <= floor <= base):
            raise ValueError("Backoff needs 0 < base <= cap, factor >= 1 and 0 <= floor <= base")
        self.base = base
        self.factor = factor
        self.cap = cap
        self.floor = floor
        # rng: anything with uniform(a, b), e.g. a seeded random.Random in tests; by default the
        # random module itself (MicroPython has no random.Random).
        self._uniform = rng.uniform if rng is not None else random.uniform
        self.attempts = 0

    def ceiling(self) -> float:
        """Upper bound of the next delay."""
        # Beyond ~64 doublings the cap wins anyway; avoid float overflow.
        if self.attempts >= 64:
            return self.cap
        return min(self.cap, self.base * self.factor**self.attempts)

    def next_delay(self) -> float:
        """Delay before the next attempt, in seconds (full jitter, floor, cap)."""
        delay = max(self.floor, self._uniform(0.0, self.ceiling()))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
