"""In-process tests of comet_server.hub.Hub with fake transports (design.md §2.2)."""

from __future__ import annotations

import asyncio

import pytest

from comet_server.hub import Client, Hub
from comet_server.store import Store
from tests.support.memory_transport import RecordingTransport


class PingRecordingClient(Client):
    """A Client without aiohttp: its pings are recorded, ``answer_pings`` plays the pongs."""

    __slots__ = ("pings",)

    def send_ping(self, payload: bytes) -> None:
        self.pings.append(payload)

    def answer_pings(self) -> None:
        for p in self.pings:
            self.on_pong(bytearray(p))
        self.pings.clear()


def mk(hub: Hub, *, dev_id=0, user_id=0, authorized=False, uuid="u", legacy=False):
    t = RecordingTransport()
    c = PingRecordingClient.__new__(PingRecordingClient)
    c.pings = []
    c.__init__(hub, None, t, dev_id=dev_id, user_id=user_id, authorized=authorized, uuid=uuid, legacy=legacy)
    hub.register(c)
    return c, t


@pytest.fixture
def hub():
    return Hub(Store(":memory:"), "CometQLPassword", server_name="test")


def test_publish_serialises_once_and_counts_deliveries(hub):
    a, ta = mk(hub, uuid="a")
    b, tb = mk(hub, uuid="b")
    c, tc = mk(hub, uuid="c", legacy=True)
    for x in (a, b, c):
        hub.set_subscription(x, ["web_x"])
    n = hub.publish(0, "web_x", "ev", "it's", user_id=3, exclude=a)
    assert n == 2
    assert ta.frames == []
    assert tb.messages()[0]["data"] == "it's" and tb.messages()[0]["user_id"] == 3
    assert tc.messages()[0]["event_name"] == "ev"
    assert hub.subscriber_count(0, "web_x") == 3
    assert hub.pipes(0) == {"web_x": 3}
    assert hub.connection_count() == 3 and hub.connection_count(0) == 3 and hub.connection_count(1) == 0


def test_same_bytes_object_written_to_every_subscriber(hub):
    clients = [mk(hub, uuid=str(i)) for i in range(3)]
    for c, _ in clients:
        hub.set_subscription(c, ["web_y"])
    hub.publish(0, "web_y", "e", "d")
    frames = [t.frames[-1] for _, t in clients]
    assert frames[0] is frames[1] is frames[2]


def test_track_events_only_on_real_change(hub):
    a, ta = mk(hub, uuid="a")
    b, tb = mk(hub, uuid="b")
    hub.set_subscription(a, ["track_r"])
    hub.set_subscription(b, ["track_r"])
    assert [m["event"] for m in ta.messages()] == ["subscription"]
    assert tb.messages() == []
    hub.set_subscription(b, ["track_r", "web_z"])  # track_r unchanged
    assert len(ta.messages()) == 1
    hub.unregister(b)
    assert [m["event"] for m in ta.messages()] == ["subscription", "unsubscription"]
    assert ta.messages()[1]["data"] == {"user_id": 0, "uuid": "b"}


def test_history_id_added_to_live_message(hub):
    hub.store.set_pipe_length(0, "web_h", 5)
    a, ta = mk(hub)
    hub.set_subscription(a, ["web_h"])
    hub.publish(0, "web_h", "e", "1")
    hub.publish(0, "web_h", "e", "2")
    m = ta.messages()
    assert int(m[0]["history_id"]) < int(m[1]["history_id"])
    assert [h.data for h in hub.store.get_history(0, "web_h")] == ["1", "2"]


def test_send_to_user_live_queue_and_presence(hub):
    watcher, tw = mk(hub, uuid="w")
    hub.set_subscription(watcher, ["user_status_5"])
    assert hub.send_to_user(0, 5, "e", "queued1") == 0
    assert hub.send_to_user(0, 5, "e", "queued2") == 0
    u, tu = mk(hub, user_id=5, authorized=True)
    msgs = tu.messages()
    assert [m["data"] for m in msgs] == ["queued1", "queued2"] and all(m["fromQueue"] for m in msgs)
    assert [m.data for m in hub.store.queued_user_messages(0, 5)] == ["queued1", "queued2"]  # not yet confirmed
    u.answer_pings()
    assert hub.store.queued_user_messages(0, 5) == []
    assert tw.messages()[-1]["event"] == "online"
    assert hub.is_online(0, 5) and hub.store.get_user_time(0, 5) == 0
    assert hub.send_to_user(0, 5, "e", "live") == 1
    assert tu.messages()[-1]["uuid"] == hub.store.queued_user_messages(0, 5)[0].id
    u.answer_pings()
    assert hub.store.queued_user_messages(0, 5) == []
    hub.unregister(u)
    assert tw.messages()[-1]["event"] == "offline"
    assert hub.store.get_user_time(0, 5) > 0


def test_pong_confirms_only_what_was_written_before_its_ping(hub):
    u, tu = mk(hub, user_id=6, authorized=True)
    hub.send_to_user(0, 6, "e", "one")
    first = list(u.pings)
    hub.send_to_user(0, 6, "e", "two")
    u.on_pong(b"not a ping of ours")
    u.on_pong(first[0])
    assert [m.data for m in hub.store.queued_user_messages(0, 6)] == ["two"]
    hub.unregister(u)  # gone before confirming "two": it stays queued, with its id
    v, tv = mk(hub, user_id=6, authorized=True)
    again = tv.messages()
    assert [(m["data"], m["fromQueue"]) for m in again] == [("two", True)]
    assert again[0]["uuid"] == tu.messages()[-1]["uuid"]


def test_slow_client_is_kicked_not_blocking(hub):
    async def run():
        a, ta = mk(hub, uuid="a")
        b, tb = mk(hub, uuid="b")
        hub.set_subscription(a, ["web_s"])
        hub.set_subscription(b, ["web_s"])
        ta.buffer = hub.max_client_buffer + 1
        hub.publish(0, "web_s", "e", "x")
        assert a.closed and ta.closing and ta.frames[-1][0] == 0x88
        assert hub.subscriber_count(0, "web_s") == 1
        assert hub.publish(0, "web_s", "e", "y") == 1
    asyncio.run(run())


def test_trust_channel_is_always_logged(hub):
    a, ta = mk(hub)
    hub.set_subscription(a, ["trust_x"])
    hub.publish(0, "trust_x", "e", "d")
    assert "history_id" in ta.messages()[0]
    assert [h.data for h in hub.store.get_history(0, "trust_x")] == ["d"]
    for i in range(120):
        hub.publish(0, "trust_x", "e", str(i))
    assert len(hub.store.get_history(0, "trust_x")) == 100


def test_cometql_style_publish_has_no_user_id(hub):
    a, ta = mk(hub)
    hub.set_subscription(a, ["any_pipe"])
    assert hub.publish(0, "any_pipe", "evt", '{"rand":"0.5"}') == 1
    m = ta.messages()[0]
    assert set(m) == {"data", "event", "message_send_time", "pipe"}


def test_disconnect_user_closes_all_its_connections(hub):
    async def run():
        u1, t1 = mk(hub, user_id=9, authorized=True)
        u2, t2 = mk(hub, user_id=9, authorized=True)
        assert hub.disconnect_user(0, 9) == 2
        assert u1.closed and u2.closed and t1.closing and t2.closing
        assert not hub.is_online(0, 9) and hub.connection_count() == 0
    asyncio.run(run())


def test_every_time_the_server_stamps_reads_the_hubs_clock():
    from comet_server import ws

    now = [1_000_000_000.9]
    hub = Hub(Store(":memory:"), "CometQLPassword", server_name="test", clock=lambda: now[0])
    hub.store.set_pipe_length(0, "web_h", 5)
    watcher, tw = mk(hub, uuid="w")
    hub.set_subscription(watcher, ["web_h", "user_status_5", "track_t"])
    u, tu = mk(hub, user_id=5, authorized=True)          # online, at 1_000_000_000
    now[0] += 60
    ws.handle_command(hub, u, "web_pipe2\nweb_h\nev\n*\nhi")
    ws.handle_command(hub, u, "subscription\ntrack_t")
    ws.handle_command(hub, u, "pipe_count\nweb_h\nMrk")
    ws.handle_command(hub, u, "no_such_command")
    hub.send_to_user(0, 5, "e", "personal")
    now[0] += 60
    hub.unregister(u)                                    # offline, users_time at 1_000_000_120
    # online; the message and track_t's subscription; track_t's unsubscription and offline
    assert [m["message_send_time"] for m in tw.messages()] == [
        1_000_000_000, 1_000_000_060, 1_000_000_060, 1_000_000_120, 1_000_000_120]
    assert {m["message_send_time"] for m in tu.messages()} == {1_000_000_060}
    assert [h.time for h in hub.store.get_history(0, "web_h")] == [1_000_000_060]
    assert hub.store.get_user_time(0, 5) == 1_000_000_120
