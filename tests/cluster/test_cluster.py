"""Three nodes and one Redis: the same results as one node, wherever clients and backends talk."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.rawclient import RawClient

from .conftest import ask, collect, drain, eventually, events, pipe_count, sql

NODES = ("a", "b", "c")


def login(cluster, dev: int, user_id: int, hash_: str = "") -> str:
    """Give ``user_id`` a users_auth hash (through node a's CometQL: it is shared)."""
    hash_ = hash_ or f"h{user_id}x{dev}"
    sql(cluster["a"], dev, "INSERT INTO users_auth (id, hash) VALUES (%s, %s)", (user_id, hash_))
    return hash_


def connect(cluster, node: str, dev: int, clients: list, *, user_id: int = 0, session: str = "") -> RawClient:
    c = RawClient(cluster[node].ws_url(dev_id=dev, user_id=user_id or "", session=session))
    clients.append(c)
    return c


def settle_subscribers(cluster, dev: int, pipe: str, count: int, clients: list) -> None:
    """Every node counts ``count`` subscribers on ``pipe``; then a moment for the SUBSCRIBEs."""
    probes = {n: connect(cluster, n, dev, clients) for n in NODES}
    for n, probe in probes.items():
        eventually(lambda: pipe_count(probe, pipe) == count, what=f"{pipe} count {count} on {n}")
    time.sleep(0.3)


def test_chat_across_nodes_arrives_once_in_order(cluster, dev, clients):
    users = {n: connect(cluster, n, dev, clients) for n in NODES}
    for c in users.values():
        c.subscribe("web_chat")
    settle_subscribers(cluster, dev, "web_chat", 3, clients)
    sent = []
    for i in range(30):
        sender = NODES[i % 3]
        text = f"{sender}-{i}"
        users[sender].publish("web_chat", "say", text)
        answer = users[sender].wait_for(lambda m: m.get("pipe") == "_answer_to_web_chat")
        # delivery reports count the whole cluster: the two other users, never the sender
        assert answer["data"]["number_messages"] == 2
        sent.append((sender, text))
    for node, c in users.items():
        expected = [t for s, t in sent if s != node]
        frames = collect(c, lambda fs: len(events(fs, "web_chat")) >= len(expected))
        got = [f["data"] for f in frames if f.get("pipe") == "web_chat"]
        assert got == [t for s, t in sent if s != node], node  # once each, in publish order


def tab_events(frames: list[dict]) -> list[str]:
    """track_room events of user 41's tabs (the watchers' own, user 0, arrive in a racy number)."""
    return [f["event"] for f in frames if f.get("pipe") == "track_room" and f["data"]["user_id"] == 41]


def test_presence_and_counts_agree_on_every_node(cluster, dev, clients):
    session = login(cluster, dev, 41)
    watchers = {n: connect(cluster, n, dev, clients) for n in NODES}
    for w in watchers.values():
        w.subscribe("track_room", "user_status_41")
    settle_subscribers(cluster, dev, "track_room", 3, clients)
    tab_a = connect(cluster, "a", dev, clients, user_id=41, session=session)
    tab_c = connect(cluster, "c", dev, clients, user_id=41, session=session)
    tab_a.subscribe("track_room")
    tab_c.subscribe("track_room")
    settle_subscribers(cluster, dev, "track_room", 5, clients)
    for n, w in watchers.items():
        users = ask(w, "track_pipe_users\ntrack_room\n{marker}\n")["data"]
        assert sorted(u["user_id"] for u in users) == [0, 0, 0, 41, 41], n
        w.send("user_status\n41\n")
        status = w.wait_for(lambda m: m.get("pipe") == "_answer_user_status")
        assert status["data"]["online"] is True, n
        _, rows = sql(cluster[n], dev, "SELECT * FROM users_in_pipes WHERE name = 'track_room'")
        assert sorted(r[1] for r in rows) == [0, 0, 0, 41, 41], n
        _, rows = sql(cluster[n], dev, "SELECT * FROM users_time WHERE id = 41")
        assert rows[0][1] == 0, n  # 0 = online now
    for w in watchers.values():  # the two tabs joined: one "online" only (the first tab)
        frames = collect(w, lambda fs: events(fs, "user_status_41") and len(tab_events(fs)) >= 2)
        assert events(frames, "user_status_41") == ["online"]
        assert tab_events(frames) == ["subscription"] * 2
    tab_a.close()
    for n, w in watchers.items():
        w.wait_for(lambda m: m.get("pipe") == "track_room" and m["event"] == "unsubscription")
    for w in watchers.values():  # still online: the tab on c is open
        assert not [f for f in drain(w, 0.5) if f.get("pipe") == "user_status_41"]
    tab_c.close()
    for n, w in watchers.items():
        frames = collect(w, lambda fs: events(fs, "user_status_41") and tab_events(fs))
        assert events(frames, "user_status_41") == ["offline"], n
        assert tab_events(frames) == ["unsubscription"], n
        assert pipe_count(w, "track_room") == 3


def test_cometql_insert_on_a_reaches_a_subscriber_on_c(cluster, dev, clients):
    sub = connect(cluster, "c", dev, clients)
    sub.subscribe("web_news")
    settle_subscribers(cluster, dev, "web_news", 1, clients)
    n, _ = sql(cluster["a"], dev, "INSERT INTO pipes_messages (name, event, message) VALUES ('web_news', 'ev', 'from a')")
    assert n == 1  # the subscriber on c counts
    frame = sub.wait_for(lambda m: m.get("pipe") == "web_news")
    assert (frame["event"], frame["data"]) == ("ev", "from a")
    assert not [f for f in drain(sub, 0.5) if f.get("pipe") == "web_news"]


def test_history_markers_increase_across_nodes(cluster, dev, clients):
    sql(cluster["b"], dev, "INSERT INTO pipes_settings (name, length) VALUES ('web_log', 10)")
    ids = []
    for i, node in enumerate(("a", "b", "c", "a")):
        c = connect(cluster, node, dev, clients)
        c.publish("web_log", "e", f"m{i}")
        ids.append(int(c.wait_for(lambda m: m.get("pipe") == "_answer_to_web_log")["data"]["history_id"]))
    assert ids == sorted(ids) and len(set(ids)) == 4
    reader = connect(cluster, "c", dev, clients)
    reader.send(f"pipe_log\nweb_log\nmk\n{ids[1]}")
    answer = reader.wait_for(lambda m: m.get("event") == "pipe_log")
    assert answer["data"]["number_messages"] == 2
    got = [f["data"] for f in collect(reader, lambda fs: len([f for f in fs if f.get("history")]) >= 2)
           if f.get("history")]
    assert got == ["m2", "m3"]


def test_personal_message_reaches_the_user_on_b_only_then_queues_until_reconnect_on_c(cluster, dev, clients):
    session = login(cluster, dev, 52)
    watcher = connect(cluster, "a", dev, clients)
    watcher.subscribe("user_status_52")
    time.sleep(0.3)  # node a subscribes in Redis (pipe_count answers for web_ and track_ only)
    user_b = connect(cluster, "b", dev, clients, user_id=52, session=session)
    watcher.wait_for(lambda m: m.get("pipe") == "user_status_52" and m["event"] == "online")
    time.sleep(0.3)  # node b subscribes to the user's channel
    n, _ = sql(cluster["a"], dev, "INSERT INTO users_messages (id, event, message) VALUES (52, 'pm', 'hello b')")
    assert n == 1
    frame = user_b.wait_for(lambda m: m.get("pipe") == "msg")
    assert (frame["event"], frame["data"]) == ("pm", "hello b") and "fromQueue" not in frame
    time.sleep(0.5)  # the client's pong confirms it: the queue row goes
    _, rows = sql(cluster["c"], dev, "SELECT * FROM users_messages WHERE id = 52")
    assert rows == []
    user_b.close()
    watcher.wait_for(lambda m: m.get("pipe") == "user_status_52" and m["event"] == "offline")
    n, _ = sql(cluster["a"], dev, "INSERT INTO users_messages (id, event, message) VALUES (52, 'pm', 'while away')")
    assert n == 0  # offline everywhere: queued
    user_c = connect(cluster, "c", dev, clients, user_id=52, session=session)
    frame = user_c.wait_for(lambda m: m.get("pipe") == "msg")
    assert (frame["data"], frame.get("fromQueue")) == ("while away", True)


def test_users_auth_delete_on_a_kicks_the_user_on_c(cluster, dev, clients):
    session = login(cluster, dev, 63)
    user_c = connect(cluster, "c", dev, clients, user_id=63, session=session)
    assert user_c.server_info["authorized"] is True
    time.sleep(0.3)
    n, _ = sql(cluster["a"], dev, "DELETE FROM users_auth WHERE id = 63")
    assert n == 1
    with pytest.raises(ConnectionClosed) as closed:
        user_c.wait_for(lambda m: False, timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    again = connect(cluster, "b", dev, clients, user_id=63, session=session)
    assert again.server_info["authorized"] is False  # the hash is gone on every node


def test_each_node_names_itself_in_info_and_its_ready_line(cluster):
    """Behind one name, a user tells the nodes apart by GET /info (CppComet's "node" key) and by
    serverInfo."""
    for name in ("a", "b", "c"):
        node = cluster[name]
        with urllib.request.urlopen(f"{node.url}/info", timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "ok", "node": f"node-{name}"}
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert node.ready_line.strip().endswith(f", cluster node node-{name})")
        # and a client by serverInfo's "server" (comet_py still sees a comet_server)
        info = RawClient(node.ws_url(dev_id=1)).server_info
        assert info["server"].startswith("comet_server ") and info["server"].endswith(f" node node-{name}"), info
