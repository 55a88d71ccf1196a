"""A node killed between any two of its Redis writes leaves nothing its successor cannot sweep.

A node's presence lives in several Redis keys (its connection records, the user links, the
subscriber entries) written one round trip at a time. These tests run one connection's life
(connect as a user, subscribe, change channels, close) and stop the node dead after its N-th
round trip, for every N. A successor under the same node id then starts: the user must not
stay online, no subscriber entry may stay behind, and ``offline`` fires once exactly when the
user was linked at the moment of death.
"""

from __future__ import annotations

import itertools

import pytest

from comet_server.redis_hub import RedisHub
from comet_server.redis_store import RedisStore
from tests.server.test_hub import mk

DEV, USER, NODE = 3, 5, "here"
prefixes = itertools.count()


class Killed(BaseException):
    """The node dies here (BaseException: the hub's own RedisError handlers do not see it)."""


def kill_after(hub: RedisHub, n: int | None) -> list[int]:
    """Raise Killed right after the hub's ``n``-th Redis round trip (its command did reach
    Redis). Returns the live count of round trips."""
    done = [0]

    def tick() -> None:
        done[0] += 1
        if n is not None and done[0] >= n:
            raise Killed

    direct = hub.r.execute_command

    def execute_command(*a, **kw):
        out = direct(*a, **kw)
        tick()
        return out

    make_pipeline = hub.r.pipeline

    def pipeline(*a, **kw):
        p = make_pipeline(*a, **kw)
        run = p.execute

        def execute(*a2, **kw2):
            out = run(*a2, **kw2)
            tick()
            return out

        p.execute = execute
        return p

    hub.r.execute_command = execute_command
    hub.r.pipeline = pipeline
    return done


def one_connection_life(hub: RedisHub) -> None:
    client, _ = mk(hub, dev_id=DEV, user_id=USER, authorized=True, uuid="x")
    hub._confirmed.add(hub._pipe_channel(DEV, "web_a"))  # web_a joins at once, track_b waits
    hub.set_subscription(client, ["web_a", "track_b"])
    hub._subscription_confirmed(hub._pipe_channel(DEV, "track_b"))
    hub.set_subscription(client, ["track_b"])
    hub.unregister(client)


def new_hub(redis_url: str, prefix: str) -> RedisHub:
    return RedisHub(RedisStore(redis_url, prefix=prefix), "CometQLPassword", node_id=NODE, server_name="test")


def round_trips(redis_url: str) -> int:
    hub = new_hub(redis_url, f"crash{next(prefixes)}:")
    done = kill_after(hub, None)
    one_connection_life(hub)
    return done[0]


def test_the_scenario_writes_presence_in_several_round_trips(redis_url):
    assert round_trips(redis_url) >= 8  # or the test below proves little


def test_a_node_killed_after_any_round_trip_leaves_no_trace_once_its_successor_starts(redis_url):
    total = round_trips(redis_url)
    for n in range(1, total + 1):
        prefix = f"crash{next(prefixes)}:"
        hub = new_hub(redis_url, prefix)
        kill_after(hub, n)
        with pytest.raises(Killed):
            one_connection_life(hub)
        successor = new_hub(redis_url, prefix)
        r = successor.r
        linked_at_death = bool(r.hlen(f"{prefix}{DEV}:user:{USER}"))
        events: list[str] = []
        successor._presence = lambda dev_id, user_id, state: events.append(state)
        successor._heartbeat_once(first=True)

        where = f"killed after round trip {n} of {total}"
        assert successor.user_connection_count(DEV, USER) == 0, where
        assert successor.subscriber_count(DEV, "web_a") == 0, where
        assert successor.subscriber_count(DEV, "track_b") == 0, where
        assert successor.pipes(DEV) == {}, where
        assert not r.exists(f"{prefix}conns:{NODE}"), where
        assert events == (["offline"] if linked_at_death else []), where
