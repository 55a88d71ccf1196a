"""A single Redis write that fails inside a node (Redis away for one call): what the node's own
watchers and the other nodes' watchers hear once the next heartbeat has rewritten its presence."""

from __future__ import annotations

import asyncio
import itertools
import json

import redis

from comet_server.redis_hub import RedisHub
from comet_server.redis_store import RedisStore
from tests.server.test_hub import mk

DEV, USER = 6, 9
prefixes = itertools.count()


def statuses(transport) -> list[str]:
    return [m["event"] for m in transport.messages() if m.get("pipe") == f"user_status_{USER}"]


def test_an_online_that_reached_only_local_watchers_reaches_the_others_once_and_the_locals_not_again(redis_url):
    asyncio.run(_online_once(redis_url))  # the heartbeat arms its announce timer on a running loop


async def _online_once(redis_url: str) -> None:
    prefix = f"outage{next(prefixes)}:"
    here, there = (RedisHub(RedisStore(redis_url, prefix=prefix), "CometQLPassword", node_id=n, server_name="t")
                   for n in ("here", "there"))
    try:
        for hub in (here, there):
            hub._heartbeat_once(first=True)
        near, near_t = mk(here, dev_id=DEV, uuid="near")
        far, far_t = mk(there, dev_id=DEV, uuid="far")
        here.set_subscription(near, [f"user_status_{USER}"])
        there.set_subscription(far, [f"user_status_{USER}"])
        published: list[tuple[str, dict]] = []
        away = [True]

        def failing_while_away(call):
            def wrapped(*args, **kw):
                if away[0]:
                    raise redis.ConnectionError("Redis away")
                return call(*args, **kw)
            return wrapped

        def recorded(publish):
            def wrapped(channel, msg, count_key=None):
                published.append((channel, dict(msg)))
                return publish(channel, msg, count_key)
            return wrapped

        here._publish = failing_while_away(recorded(here._publish))
        here._redis_link_user = failing_while_away(here._redis_link_user)
        # Redis goes away between the login check and the user's link: the user is linked here only
        mk(here, dev_id=DEV, user_id=USER, authorized=True, uuid="user")
        assert statuses(near_t) == ["online"]  # the local watcher at once, Redis or not
        away[0] = False

        here._heartbeat_once()  # Redis answers again: presence rewritten
        assert here._announce_timer is not None
        here._announce_timer.cancel()
        here._announce_missed()  # what that timer runs ANNOUNCE_DELAY later
        for channel, msg in published:  # Redis's pub/sub, played: "there" receives every publish
            there._on_message(channel, json.dumps(msg))
        assert statuses(near_t) == ["online"]  # not a second time
        assert statuses(far_t) == ["online"]  # once
        assert there.store.get_user_time(DEV, USER) == 0 and there.user_connection_count(DEV, USER) == 1
    finally:
        here.close_all()
        there.close_all()
