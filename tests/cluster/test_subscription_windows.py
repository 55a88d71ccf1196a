"""The moment between a node's SUBSCRIBE and Redis's confirmation of it, when messages from other
nodes do not reach the node yet:

* a history read (pipe_log) right after a subscription waits for the confirmation, so a message
  published in between is in the answer or in the live feed, never lost. A comet_py master relies
  on it when it moves to another node and recovers by history marker
  (tests/e2e/test_cluster_failover.py is the whole path);
* a personal message sent from another node to a user who has just connected here (counted online
  already, the user channel not confirmed yet) is delivered when the confirmation comes, not only
  at the user's next connect.
"""

from __future__ import annotations

import itertools

import pytest

from comet_server import ws
from comet_server.redis_hub import MAX_PENDING_READS, RedisHub
from comet_server.redis_store import RedisStore
from tests.server.test_hub import mk

DEV, PIPE = 4, "web_h"
prefixes = itertools.count()


@pytest.fixture
def pair(redis_url):
    """Two nodes of one cluster (no pub/sub readers: the test plays Redis's confirmations)."""
    prefix = f"reads{next(prefixes)}:"
    here, there = (RedisHub(RedisStore(redis_url, prefix=prefix), "CometQLPassword", node_id=n, server_name="t")
                   for n in ("here", "there"))
    here.store.set_pipe_length(DEV, PIPE, 10)
    yield here, there
    here.close_all()
    there.close_all()


def answers(transport) -> list[dict]:
    return [m for m in transport.messages() if m.get("pipe") == "_answer_pipe_log"]


def logged(transport) -> list[str]:
    return [m["data"] for m in transport.messages() if m.get("history")]


def test_a_read_right_after_subscribing_waits_for_the_subscription_and_misses_nothing(pair):
    here, there = pair
    there.publish(DEV, PIPE, "e", "before")
    client, transport = mk(here, dev_id=DEV, uuid="reader")
    here.set_subscription(client, [PIPE])  # SUBSCRIBE sent, not confirmed yet
    ws.cmd_pipe_log(here, client, f"{PIPE}\nmk\n")
    assert answers(transport) == []  # held back
    there.publish(DEV, PIPE, "e", "in between")  # Redis would not have delivered it to "here"
    here._subscription_confirmed(here._pipe_channel(DEV, PIPE))
    assert [a["data"]["number_messages"] for a in answers(transport)] == [2]
    assert logged(transport) == ["before", "in between"]


def test_a_read_of_a_channel_not_subscribed_or_already_confirmed_is_answered_at_once(pair):
    here, there = pair
    there.publish(DEV, PIPE, "e", "one")
    client, transport = mk(here, dev_id=DEV, uuid="reader")
    ws.cmd_pipe_log(here, client, f"{PIPE}\nm1\n")  # not subscribed: nothing to wait for
    assert [a["marker"] for a in answers(transport)] == ["m1"]
    here.set_subscription(client, [PIPE])
    here._subscription_confirmed(here._pipe_channel(DEV, PIPE))
    ws.cmd_pipe_log(here, client, f"{PIPE}\nm2\n")
    assert [a["marker"] for a in answers(transport)] == ["m1", "m2"]


def test_reads_held_for_a_channel_nobody_here_wants_any_more_are_answered(pair):
    here, _ = pair
    client, transport = mk(here, dev_id=DEV, uuid="reader")
    here.set_subscription(client, [PIPE])
    ws.cmd_pipe_log(here, client, f"{PIPE}\nmk\n")
    assert answers(transport) == []
    here.set_subscription(client, [])  # unsubscribed before the confirmation came
    assert [a["marker"] for a in answers(transport)] == ["mk"]


def test_a_flood_of_reads_while_unconfirmed_is_bounded_and_every_read_is_answered_once(pair):
    here, _ = pair
    client, transport = mk(here, dev_id=DEV, uuid="flood")
    here.set_subscription(client, [PIPE])
    for i in range(MAX_PENDING_READS + 40):
        ws.cmd_pipe_log(here, client, f"{PIPE}\nm{i}\n")
    assert len(answers(transport)) == 40  # past the bound: answered at once, not held
    assert len(here._pending_reads[here._pipe_channel(DEV, PIPE)]) == MAX_PENDING_READS
    here._subscription_confirmed(here._pipe_channel(DEV, PIPE))
    markers = [a["marker"] for a in answers(transport)]
    assert sorted(markers) == sorted(f"m{i}" for i in range(MAX_PENDING_READS + 40))


def test_a_held_read_of_a_client_that_left_sends_nothing(pair):
    here, _ = pair
    client, transport = mk(here, dev_id=DEV, uuid="gone")
    other, _ = mk(here, dev_id=DEV, uuid="stays")  # keeps the channel wanted
    here.set_subscription(client, [PIPE])
    here.set_subscription(other, [PIPE])
    ws.cmd_pipe_log(here, client, f"{PIPE}\nmk\n")
    client.kick()
    sent = len(transport.frames)
    here._subscription_confirmed(here._pipe_channel(DEV, PIPE))
    assert len(transport.frames) == sent and answers(transport) == []


def personal(transport) -> list[str]:
    return [m["data"] for m in transport.messages() if m.get("pipe") == "msg"]


def test_a_personal_message_sent_before_the_user_channel_is_confirmed_arrives_with_the_confirmation(pair):
    here, there = pair
    there.send_to_user(DEV, 5, "e", "queued while offline")
    client, transport = mk(here, dev_id=DEV, user_id=5, authorized=True, uuid="user5")
    assert personal(transport) == ["queued while offline"]  # the queue, at connect
    assert there.user_connection_count(DEV, 5) == 1  # online for the whole cluster at once
    assert there.send_to_user(DEV, 5, "e", "in the window") == 1  # "here" is not subscribed yet
    assert personal(transport) == ["queued while offline"]
    here._subscription_confirmed(here._user_channel(DEV, 5))
    # the missed one now, and not a second copy of the one written at connect (still unconfirmed)
    assert personal(transport) == ["queued while offline", "in the window"]
    client.answer_pings()  # the page confirms what it read: those rows leave the queue
    here._subscription_confirmed(here._user_channel(DEV, 5))  # confirmed again (Redis reconnect)
    assert personal(transport) == ["queued while offline", "in the window"]  # nothing twice
