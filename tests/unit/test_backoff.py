import random

import pytest

from comet_py.backoff import Backoff


def test_delays_grow_with_jitter_under_the_cap():
    b = Backoff(rng=random.Random(1))
    delays = [b.next_delay() for _ in range(40)]
    assert all(0.1 <= d <= 30.0 for d in delays)
    assert delays[0] <= 0.5  # first retry is fast
    assert max(delays[10:]) > 5  # it does grow
    assert len(set(delays[6:])) == len(delays[6:])  # capped yet jittered, not a fixed ladder


def test_ceiling_doubles_then_caps_and_reset_starts_over():
    b = Backoff(rng=random.Random(2))
    ceilings = []
    for _ in range(8):
        ceilings.append(b.ceiling())
        b.next_delay()
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    b.reset()
    assert b.ceiling() == 0.5 and b.attempts == 0


def test_huge_attempt_counts_do_not_overflow():
    b = Backoff(rng=random.Random(3))
    b.attempts = 10_000
    assert 0.1 <= b.next_delay() <= 30.0


def test_floor():
    class Zero(random.Random):
        def uniform(self, a, b):
            return 0.0

    assert Backoff(rng=Zero()).next_delay() == 0.1


def test_bad_parameters():
    with pytest.raises(ValueError):
        Backoff(base=0)
    with pytest.raises(ValueError):
        Backoff(base=10, cap=5)
