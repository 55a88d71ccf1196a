"""Reconnect delays: full jitter under a growing, capped ceiling, never below the floor."""

from comet_py.backoff import Backoff
from tests.mpy.helpers import raises


class Fixed:
    """An rng whose uniform(a, b) returns a fixed share of the way from a to b."""

    def __init__(self, share):
        self.share = share

    def uniform(self, a, b):
        return a + (b - a) * self.share


def test_delays_stay_between_floor_and_ceiling_with_the_default_rng():
    b = Backoff()
    for attempt in range(12):
        ceiling = b.ceiling()
        delay = b.next_delay()
        assert 0.1 <= delay <= max(0.1, ceiling), (attempt, delay, ceiling)
    assert b.ceiling() == 30.0


def test_ceiling_doubles_up_to_the_cap_and_reset_starts_over():
    b = Backoff(rng=Fixed(1.0))
    assert [b.next_delay() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_floor_applies_to_small_draws():
    b = Backoff(rng=Fixed(0.0))
    assert b.next_delay() == 0.1


def test_many_failures_do_not_overflow():
    b = Backoff(rng=Fixed(1.0))
    b.attempts = 10000
    assert b.next_delay() == 30.0


def test_bad_parameters_fail():
    for kw in ({"base": 0}, {"base": 5, "cap": 1}, {"factor": 0.5}, {"floor": -1}, {"floor": 1}):
        raises(ValueError, Backoff, **kw)
