"""Hostile input on the cluster's own paths: what arrives from Redis, and the CLI options."""

from __future__ import annotations

import pytest

from comet_server import __main__ as server_main
from comet_server.redis_hub import RedisHub
from comet_server.redis_store import RedisStore
from tests.server.test_hub import mk


@pytest.fixture
def hub(redis_url):
    h = RedisHub(RedisStore(redis_url, prefix="hostile:"), "CometQLPassword", node_id="here", server_name="test")
    yield h
    h.close_all()


BAD = [
    ("hostile:1:ch:web_x", "not json"),
    ("hostile:1:ch:web_x", "[]"),
    ("hostile:1:ch:web_x", '"a string"'),
    ("hostile:1:ch:web_x", '{"n": "other"}'),
    ("hostile:1:ch:web_x", '{"n": "other", "o": 5}'),
    ("hostile:x:ch:web_x", '{"n": "other", "o": {"pipe": "web_x"}}'),
    ("hostile:1", '{"n": "other", "o": {}}'),
    ("elsewhere", '{"n": "other", "o": {}}'),
    ("hostile:1:uch:notanumber", '{"n": "other", "k": "kick"}'),
    ("hostile:1:uch:3", '{"n": "other", "k": "msg", "o": {"no": "uuid"}}'),
    ("hostile:1:uch:3", '{"n": "other", "k": "unknown"}'),
    ("hostile:1:ch:web_x", '{"n": "other", "o": {"pipe": "web_other", "data": "x"}}'),
    ("hostile:1:zz:web_x", '{"n": "other", "o": {"pipe": "web_x"}}'),
]


@pytest.mark.parametrize("channel,payload", BAD)
def test_a_malformed_cluster_message_is_dropped_and_the_next_one_delivered(hub, channel, payload):
    client, transport = mk(hub, dev_id=1, uuid="sub")
    hub.set_subscription(client, ["web_x"])
    hub._on_message(channel, payload)  # never raises: the reader task goes on
    before = [m for m in transport.messages() if m.get("pipe") == "web_x"]
    assert before == []
    hub._on_message("hostile:1:ch:web_x", '{"n": "other", "o": {"data": "ok", "event": "e", "pipe": "web_x"}}')
    after = [m for m in transport.messages() if m.get("pipe") == "web_x"]
    assert after[-1]["data"] == "ok" and len(after) == len(before) + 1
    assert not client.closed


def test_the_nodes_own_echo_is_not_delivered_twice(hub):
    client, transport = mk(hub, dev_id=1, uuid="sub")
    hub.set_subscription(client, ["web_x"])
    assert hub.publish(1, "web_x", "e", "once") == 1
    hub._on_message("hostile:1:ch:web_x", '{"n": "here", "o": {"data": "once", "event": "e", "pipe": "web_x"}}')
    assert [m["data"] for m in transport.messages() if m.get("pipe") == "web_x"] == ["once"]


@pytest.mark.parametrize("argv", [
    ["--redis", "redis://127.0.0.1:1/0", "--node-id", "bad id"],
    ["--redis", "redis://127.0.0.1:1/0", "--node-id", "x" * 65],
    ["--redis", "redis://127.0.0.1:1/0", "--node-id", "a/b"],
    ["--node-id", "alone"],
])
def test_bad_node_ids_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as e:
        server_main.main(argv)
    assert e.value.code == 2
    assert "--node-id" in capsys.readouterr().err
