"""A node killed with SIGKILL, and a Redis restart: what the surviving nodes and clients see."""

from __future__ import annotations

import os
import signal
import time

import pymysql
import pytest
import redis
from websockets.exceptions import ConnectionClosedError

from comet_server.redis_hub import ANNOUNCE_DELAY, PRESENCE_BOUND
from comet_server.redis_store import DEFAULT_PREFIX
from tests.support.rawclient import RawClient
from tests.support.server import random_uuid

from .conftest import ask, collect, drain, eventually, make_cluster, pipe_count, sql


def test_a_killed_nodes_presence_expires_once_within_the_bound():
    with make_cluster() as cluster:
        dev = 7001
        sql(cluster["a"], dev, "INSERT INTO users_auth (id, hash) VALUES (9, 'hash9')")
        watchers = {n: RawClient(cluster[n].ws_url(dev_id=dev)) for n in ("a", "c")}
        for w in watchers.values():
            w.subscribe("track_room", "user_status_9")
        victim = RawClient(cluster["b"].ws_url(dev_id=dev, user_id=9, session="hash9"))
        victim.subscribe("track_room")
        for w in watchers.values():
            eventually(lambda: pipe_count(w, "track_room") == 3, what="3 subscribers")
        time.sleep(0.3)
        for w in watchers.values():
            drain(w, 0)
        killed_at = time.monotonic()
        cluster["b"].kill()
        for w in watchers.values():
            w.wait_for(lambda m: m.get("pipe") == "user_status_9" and m["event"] == "offline",
                       timeout=PRESENCE_BOUND + 5)
        took = time.monotonic() - killed_at
        # the documented bound, plus generous slack for a loaded machine (CI): proves "seconds"
        assert took <= PRESENCE_BOUND + 3.0, took
        for n, w in watchers.items():
            frames = drain(w, 2 * PRESENCE_BOUND)  # nothing fires a second time
            offline = [f for f in frames if f.get("pipe") == "user_status_9"]
            left = [f for f in frames if f.get("pipe") == "track_room"]
            assert offline == [], n
            assert [(f["event"], f["data"]["user_id"]) for f in left] in ([], [("unsubscription", 9)]), n
            assert pipe_count(w, "track_room") == 2, n
            w.send("user_status\n9\n")
            status = w.wait_for(lambda m: m.get("pipe") == "_answer_user_status")
            assert status["data"]["online"] is False and status["data"]["last_online_time"] > 0


def test_unsubscription_of_a_killed_node_fires_once():
    with make_cluster(("a", "b")) as cluster:
        dev = 7002
        watcher = RawClient(cluster["a"].ws_url(dev_id=dev))
        watcher.subscribe("track_room")
        victim = RawClient(cluster["b"].ws_url(dev_id=dev))
        victim.subscribe("track_room")
        eventually(lambda: pipe_count(watcher, "track_room") == 2, what="2 subscribers")
        time.sleep(0.3)
        drain(watcher, 0)
        cluster["b"].kill()
        watcher.wait_for(lambda m: m.get("pipe") == "track_room" and m["event"] == "unsubscription",
                         timeout=PRESENCE_BOUND + 5)
        frames = drain(watcher, PRESENCE_BOUND)  # and nothing fires a second time
        assert [f["event"] for f in frames if f.get("pipe") == "track_room"] == []
        assert pipe_count(watcher, "track_room") == 1


def test_after_a_redis_restart_the_nodes_recover_and_messages_flow():
    with make_cluster() as cluster:
        dev = 7003
        sub = RawClient(cluster["c"].ws_url(dev_id=dev))
        sub.subscribe("web_after")
        pub = RawClient(cluster["a"].ws_url(dev_id=dev))
        eventually(lambda: pipe_count(pub, "web_after") == 1, what="1 subscriber")
        cluster.redis.stop()
        time.sleep(0.5)
        # Redis away: a publish is refused with an error, on every path, and reaches nobody.
        pub.publish("web_after", "e", "during")
        answer = pub.wait_for(lambda m: m.get("pipe") in ("_answer_to_web_after", "sys"))
        assert answer["pipe"] == "sys" and answer["event"] == "error", answer
        with pytest.raises(pymysql.MySQLError):
            sql(cluster["b"], dev, "INSERT INTO pipes_messages (name, event, message) VALUES ('web_after', 'e', 'x')")
        cluster.redis.start()
        # Until the nodes are back, a publish is refused (error) or reaches the subscriber: never
        # a crash. Then every message flows again, once.
        deadline = time.monotonic() + 20
        i = 0
        while True:
            i += 1
            pub.publish("web_after", "e", f"probe{i}")
            answer = pub.wait_for(lambda m: m.get("pipe") in ("_answer_to_web_after", "sys"))
            if answer.get("pipe") == "_answer_to_web_after" and answer["data"]["number_messages"] == 1:
                break
            assert time.monotonic() < deadline, "no recovery"
            time.sleep(0.2)
        time.sleep(0.5)
        for k in range(5):
            pub.publish("web_after", "e", f"after{k}")
        frames = collect(sub, lambda fs: any(f.get("data") == "after4" for f in fs))
        got = [f["data"] for f in frames if f.get("pipe") == "web_after"]
        # the refused message never arrives; the probes that got through came before, once each
        probes = [d for d in got if d.startswith("probe")]
        assert got == probes + [f"after{k}" for k in range(5)] and len(set(probes)) == len(probes)
        for name, node in cluster.nodes.items():
            assert node.proc.poll() is None, name  # no node died
        # presence was re-established: a new subscriber on b is counted on a
        late = RawClient(cluster["b"].ws_url(dev_id=dev))
        late.subscribe("web_after")
        eventually(lambda: pipe_count(pub, "web_after") == 2, what="2 subscribers after the restart")


def test_a_node_restarted_under_its_id_right_after_a_kill_fires_the_leave_once():
    with make_cluster(("a", "b")) as cluster:
        dev = 7004
        sql(cluster["a"], dev, "INSERT INTO users_auth (id, hash) VALUES (5, 'hash5')")
        watcher = RawClient(cluster["a"].ws_url(dev_id=dev))
        watcher.subscribe("user_status_5")
        time.sleep(0.3)
        RawClient(cluster["b"].ws_url(dev_id=dev, user_id=5, session="hash5"))
        watcher.wait_for(lambda m: m.get("pipe") == "user_status_5" and m["event"] == "online")
        cluster["b"].kill()
        cluster["b"].start()  # same --node-id, before its liveness key expired
        watcher.wait_for(lambda m: m.get("pipe") == "user_status_5" and m["event"] == "offline",
                         timeout=PRESENCE_BOUND + 5)
        frames = drain(watcher, PRESENCE_BOUND)  # and nothing fires a second time
        assert [f["event"] for f in frames if f.get("pipe") == "user_status_5"] == []
        again = RawClient(cluster["b"].ws_url(dev_id=dev, user_id=5, session="hash5"))
        assert again.server_info["authorized"] is True
        watcher.wait_for(lambda m: m.get("pipe") == "user_status_5" and m["event"] == "online")


def _track(frames: list[dict], pipe: str, uuid: str) -> list[str]:
    """The track_* events about connection ``uuid`` among ``frames``, in order."""
    return [f["event"] for f in frames if f.get("pipe") == pipe and f["data"].get("uuid") == uuid]


def test_track_events_of_an_outage_reach_the_other_nodes_once_redis_is_back():
    """A join and a leave made while Redis is away reach the watchers on the same node at once,
    and the watchers on other nodes after the outage: once each, nobody twice."""
    with make_cluster(("a", "b")) as cluster:
        dev = 7005
        far = RawClient(cluster["a"].ws_url(dev_id=dev))
        near = RawClient(cluster["b"].ws_url(dev_id=dev))
        for w in (far, near):
            w.subscribe("track_lobby")
        uuid = random_uuid()
        joiner = RawClient(cluster["b"].ws_url(dev_id=dev, uuid=uuid))
        eventually(lambda: pipe_count(far, "track_lobby") == 2, what="2 watchers")
        time.sleep(0.3)
        drain(far, 0), drain(near, 0)
        for event, act in (("subscription", lambda: joiner.subscribe("track_lobby")), ("unsubscription", joiner.close)):
            cluster.redis.stop()
            time.sleep(0.5)
            act()
            near.wait_for(lambda m: _track([m], "track_lobby", uuid) == [event])  # the local watcher at once
            cluster.redis.start()
            far.wait_for(lambda m: _track([m], "track_lobby", uuid) == [event], timeout=ANNOUNCE_DELAY + 15)
            assert _track(drain(far, ANNOUNCE_DELAY + 1), "track_lobby", uuid) == []  # once
            assert _track(drain(near, 0), "track_lobby", uuid) == []  # nothing again for the local one
            users = ask(far, "track_pipe_users\ntrack_lobby\n{marker}\n")["data"]
            assert (uuid in [u["uuid"] for u in users]) == (event == "subscription"), users


def test_a_node_frozen_past_the_bound_announces_its_subscribers_again():
    """SIGSTOP longer than PRESENCE_BOUND: the survivor sees the node's connections leave; once
    the node runs again they are still connected, so they join again, and the counts agree."""
    with make_cluster(("a", "b")) as cluster:
        dev = 7006
        watcher = RawClient(cluster["a"].ws_url(dev_id=dev))
        watcher.subscribe("track_lobby")
        uuid = random_uuid()
        sleeper = RawClient(cluster["b"].ws_url(dev_id=dev, uuid=uuid))
        sleeper.subscribe("track_lobby")
        eventually(lambda: pipe_count(watcher, "track_lobby") == 2, what="2 subscribers")
        time.sleep(0.3)
        drain(watcher, 0)
        os.kill(cluster["b"].proc.pid, signal.SIGSTOP)
        try:
            watcher.wait_for(lambda m: _track([m], "track_lobby", uuid) == ["unsubscription"], timeout=PRESENCE_BOUND + 5)
            assert pipe_count(watcher, "track_lobby") == 1
        finally:
            os.kill(cluster["b"].proc.pid, signal.SIGCONT)
        watcher.wait_for(lambda m: _track([m], "track_lobby", uuid) == ["subscription"], timeout=10)
        assert _track(drain(watcher, 2), "track_lobby", uuid) == []
        assert pipe_count(watcher, "track_lobby") == 2


def _status(frames: list[dict], user_id: int) -> list[str]:
    return [f["event"] for f in frames if f.get("pipe") == f"user_status_{user_id}"]


def test_offline_of_an_outage_reaches_every_watcher_once_and_logins_wait_for_redis():
    """A user who leaves while Redis is away: the watcher on the same node hears ``offline`` at
    once, the watcher on another node once Redis is back; each once, and users_time agrees. A
    login meanwhile cannot be checked: it is refused with a clean close (1013, try again later),
    and the same login after the outage brings the user ``online`` for both watchers, once."""
    with make_cluster(("a", "b")) as cluster:
        dev = 7007
        sql(cluster["a"], dev, "INSERT INTO users_auth (id, hash) VALUES (8, 'hash8')")
        far = RawClient(cluster["a"].ws_url(dev_id=dev))
        near = RawClient(cluster["b"].ws_url(dev_id=dev))
        for w in (far, near):
            w.subscribe("user_status_8")
        # A node writes its subscriber entry only once Redis has confirmed its subscription
        # (design.md §5): both entries there, both nodes hear the channel.
        subs = redis.Redis.from_url(cluster.redis.url)
        eventually(lambda: subs.hlen(f"{DEFAULT_PREFIX}{dev}:subs:user_status_8") == 2,
                   what="both watchers' subscriptions confirmed by Redis")
        subs.close()
        user = RawClient(cluster["b"].ws_url(dev_id=dev, user_id=8, session="hash8"))
        for w in (far, near):
            w.wait_for(lambda m: _status([m], 8) == ["online"])
        cluster.redis.stop()
        time.sleep(0.5)
        user.close()
        near.wait_for(lambda m: _status([m], 8) == ["offline"])  # the local watcher at once
        with pytest.raises(ConnectionClosedError) as refused:
            RawClient(cluster["b"].ws_url(dev_id=dev, user_id=8, session="hash8"))
        closed = refused.value.rcvd
        assert closed is not None and (closed.code, closed.reason) == (1013, "Try again later")
        cluster.redis.start()
        far.wait_for(lambda m: _status([m], 8) == ["offline"], timeout=ANNOUNCE_DELAY + 15)
        assert _status(drain(far, ANNOUNCE_DELAY + 1), 8) == []  # once
        assert _status(drain(near, 0), 8) == []  # nothing again for the local one
        rows = sql(cluster["a"], dev, "SELECT id, time FROM users_time WHERE id = 8")[1]
        assert rows and rows[0][1] > 0, rows
        RawClient(cluster["a"].ws_url(dev_id=dev, user_id=8, session="hash8"))
        for w in (far, near):
            w.wait_for(lambda m: _status([m], 8) == ["online"])
            assert _status(drain(w, 1), 8) == []
