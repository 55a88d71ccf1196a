"""The browser glue (coordinator.py, connection.py, api.py) on a fake browser, in CPython.

Every test runs real CometApi instances, one per fake page ("tab") of one fake origin, on a
virtual-time asyncio loop (tests/support/fake_browser.py): BroadcastChannel and Web Locks are
in memory, the socket talks to an in-memory comet_server, and seconds of browser time take
milliseconds. Assertions are on what a page or the server can observe: isMaster(), state,
messages given to callbacks, and the frames and connections the server saw.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from comet_py.api import CometApi
from comet_py.coordinator import UUID_STORAGE_KEY
from comet_py.errors import ConnectionLost
from tests.support.fake_browser import DEFAULT_HOST, Origin, run

DEV = 7
OPTS = {"dev_id": DEV, "node": DEFAULT_HOST}
MASTER_LOCK = f"comet_py:{DEFAULT_HOST}|{DEV}|0"


class Tab:
    """One page with a started-or-not CometApi and everything its callbacks received."""

    def __init__(self, origin: Origin, *channels: str, **page_kwargs) -> None:
        self.origin = origin
        self.page = origin.page(**page_kwargs)
        self.api = CometApi(platform=self.page)
        self.got: dict[str, list] = {}
        self.everything: list = []        # a catch-all subscription: all this tab was given
        self.master_log: list[bool] = []  # on_master calls
        self.states: list[str] = []
        self.gaps: list = []              # detail["pipes"] of each gap event
        self.api.on_master(self.master_log.append)
        self.api.on_state(self._state)
        self.api.subscription(self.everything.append)
        for name in channels:
            self.listen(name)

    def _state(self, state: str, detail: dict) -> None:
        if state == "gap":
            self.gaps.append(detail.get("pipes"))
        else:
            self.states.append(state)

    def listen(self, name: str) -> str:
        self.got.setdefault(name, [])
        return self.page.run(self.api.subscription, name, self.got[name].append)

    def start(self) -> None:
        self.page.run(self.api.start, dict(OPTS))

    def do(self, fn, *args):
        return self.page.run(fn, *args)

    def data(self, name: str) -> list:
        return [(e.server_info.event, e.data) for e in self.got.get(name, [])]

    @property
    def tab_id(self) -> str:
        return self.api._coordinator.tab_id

    @property
    def is_master(self) -> bool:
        return self.api.isMaster()

    def __repr__(self) -> str:
        return f"<Tab {self.page.name} master={self.is_master} state={self.api.state}>"


def masters(tabs) -> list:
    return [t for t in tabs if t.is_master]


def browser_conns(origin: Origin) -> list:
    return origin.server.open_conns(DEV, browser=True)


async def settled_master(origin: Origin, tabs, timeout: float = 10.0) -> Tab:
    """Wait for exactly one master among ``tabs``, one browser connection (its own), and every
    tab connected; returns the master."""
    def ok() -> bool:
        m, conns = masters(tabs), browser_conns(origin)
        return (len(m) == 1 and len(conns) == 1 and conns[0].page == m[0].page.name
                and all(t.api.state == "connected" for t in tabs))
    await origin.until(ok, timeout, what=f"one connected master among {tabs}")
    return masters(tabs)[0]


async def start_tabs(origin: Origin, *specs, **page_kwargs) -> list[Tab]:
    tabs = [Tab(origin, *spec, **page_kwargs) for spec in specs]
    for t in tabs:
        t.start()
    await settled_master(origin, tabs)
    return tabs


def publish(origin: Origin, pipe: str, event: str, data) -> None:
    origin.server.publish(DEV, pipe, event, json.dumps(data))


def posts_of_kind(origin: Origin, kind: str) -> list[dict]:
    return [m for _page, _name, m in origin.posts if m.get("k") == kind]


# -- one tab -------------------------------------------------------------------------------------

def test_lone_tab_becomes_master_connects_and_delivers():
    async def scenario(o: Origin) -> None:
        tab = Tab(o, "web_chat")
        assert not tab.is_master and tab.api.state == "idle"
        tab.start()
        took = await o.until(lambda: tab.api.state == "connected", what="connected")
        assert took < 0.5
        assert tab.is_master and tab.master_log == [True]
        assert tab.states[:2] == ["connecting", "connected"]
        assert tab.api.isAuthorized() is False  # anonymous
        assert o.lock_holder(MASTER_LOCK) is tab.page

        [conn] = o.server.conns
        assert conn.page == tab.page.name and conn.dev_id == DEV and conn.open
        assert conn.pipes == ["web_chat"]
        assert conn.uuid == o.storage[UUID_STORAGE_KEY] and len(conn.uuid) == 32

        publish(o, "web_chat", "hello", {"n": 1})
        publish(o, "web_other", "hello", {"n": 2})   # not subscribed: the server sends nothing
        await o.settle()
        assert tab.data("web_chat") == [("hello", {"n": 1})]
        assert [e.server_info.pipe for e in tab.everything] == ["web_chat"]
        assert posts_of_kind(o, "msg") == []         # nobody to relay to

        tab.do(tab.api.stop)
        await o.settle()
        assert not tab.is_master and tab.api.state == "closed" and not conn.open
        assert o.lock_holder(MASTER_LOCK) is None
        assert o.held_lock_names() == set()

    run(scenario)


def test_lone_tab_asks_for_the_master_lock_first_and_connects_without_saying_hello():
    """Its socket opens in the master lock's callback, which comes before its tab lock's; a
    master's heartbeats announce it, so no hello goes out."""
    async def scenario(o: Origin) -> None:
        tab = Tab(o, "web_chat")
        tab.start()
        await o.until(lambda: tab.api.state == "connected", what="connected")
        names = [lock.name for lock in tab.page.lock_requests]
        assert names[0] == MASTER_LOCK and names[1].startswith(f"{MASTER_LOCK}:tab:")
        assert posts_of_kind(o, "hello") == []
        assert o.lock_holder(names[1]) is tab.page  # it still holds its tab lock

    run(scenario)


# -- three tabs ------------------------------------------------------------------------------------

def test_three_tabs_one_master_one_connection_union_of_channels():
    async def scenario(o: Origin) -> None:
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat", "web_two"], ["web_chat", "web_three"])
        assert masters([t1, t2, t3]) == [t1]             # the first in the lock queue
        assert o.lock_queue(MASTER_LOCK) == [t2.page, t3.page]
        await o.until(lambda: set(o.server.conns[0].pipes) == {"web_chat", "web_two", "web_three"},
                      what="the union subscribed")
        assert len(o.server.conns) == 1                  # one connection, ever

        publish(o, "web_chat", "all", {"n": 1})
        publish(o, "web_three", "one", {"n": 2})
        await o.settle()
        for t in (t1, t2, t3):
            assert t.data("web_chat") == [("all", {"n": 1})], t
        assert t3.data("web_three") == [("one", {"n": 2})]
        # The catch-all callback of every tab sees what the shared connection receives.
        for t in (t1, t2, t3):
            assert [e.server_info.pipe for e in t.everything] == ["web_chat", "web_three"], t

        # Ten seconds of heartbeats: nobody steals, nobody reconnects.
        await o.settle(10)
        assert [t.master_log for t in (t1, t2, t3)] == [[True], [], []]
        assert len(o.server.conns) == 1 and o.server.conns[0].open
        assert all(t.api.state == "connected" for t in (t1, t2, t3))

    run(scenario)


def test_every_tab_is_told_its_states_as_plain_strings():
    """The master's states come from the Session's State enum, a follower's from JSON: a page
    sees the same plain str in both."""
    async def scenario(o: Origin) -> None:
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"])
        for t in (t1, t2):
            assert t.states[-1] == "connected" and type(t.states[-1]) is str, t
            assert type(t.api.state) is str

    run(scenario)


def test_subscription_once_in_a_follower_takes_one_message_then_releases_the_channel():
    async def scenario(o: Origin) -> None:
        t1, t2 = await start_tabs(o, ["web_chat"], [])
        once: list = []
        t2.do(t2.api.subscription_once, "web_once", once.append)
        await o.until(lambda: "web_once" in o.server.conns[0].pipes, what="web_once subscribed")
        publish(o, "web_once", "e", 1)
        publish(o, "web_once", "e", 2)
        await o.settle()
        assert [(e.server_info.event, e.data) for e in once] == [("e", 1)]
        await o.until(lambda: "web_once" not in o.server.conns[0].pipes, what="web_once released")

    run(scenario)


def test_follower_subscription_reaches_the_server_through_the_union():
    async def scenario(o: Origin) -> None:
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], [])
        conn = browser_conns(o)[0]
        await o.until(lambda: conn.pipes == ["web_chat"], what="web_chat subscribed")

        late = t3.listen("web_late")
        await o.until(lambda: "web_late" in conn.pipes, 2, what="a follower's new channel on the server")
        publish(o, "web_late", "e", "late")
        await o.settle()
        assert t3.data("web_late") == [("e", "late")]

        t3.do(t3.api.unsubscription, late)
        await o.until(lambda: "web_late" not in conn.pipes, 2, what="the channel released")
        assert conn.pipes == ["web_chat"]

        # A channel stays while any tab listens: the master drops web_chat, a follower keeps it.
        t1.do(t1.api.unsubscriptionAll)
        await o.settle(1)
        assert conn.pipes == ["web_chat"]
        t2.do(t2.api.unsubscriptionAll)
        await o.until(lambda: conn.pipes == [], 2, what="no channel left")
        assert conn.commands("subscription")[-1] == ""

    run(scenario)


def test_count_users_in_pipe_resolves_in_the_asking_tab_only():
    async def scenario(o: Origin) -> None:
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat"])
        o.server.external(DEV, ("web_chat", "web_x"))
        o.server.external(DEV, ("web_chat",))
        calls: dict[str, list] = {t.page.name: [] for t in (t1, t2, t3)}

        def counter(t):
            return lambda res: calls[t.page.name].append((res.server_info.pipe, res.data.user_in_pipe))

        # All three ask at once; each tab's first call has the same req id (1) in its own tab.
        futs = [t1.do(t1.api.count_users_in_pipe, "web_chat", counter(t1)),
                t2.do(t2.api.count_users_in_pipe, "web_x", counter(t2)),
                t3.do(t3.api.count_users_in_pipe, "web_none", counter(t3))]
        results = await asyncio.wait_for(asyncio.gather(*futs), 5)
        await o.settle()
        assert results == [3, 1, 0]
        assert calls == {t1.page.name: [("web_chat", 3)], t2.page.name: [("web_x", 1)],
                         t3.page.name: [("web_none", 0)]}
        counts = o.server.received("pipe_count")
        assert [page for page, _ in counts] == [t1.page.name] * 3
        assert sorted(f.split("\n")[1] for _, f in counts) == ["web_chat", "web_none", "web_x"]
        # Answers travel to their tab only, and no tab's callbacks see the answer frames.
        assert sorted(m["to"] for m in posts_of_kind(o, "answer")) == sorted([t2.tab_id, t3.tab_id])
        for t in (t1, t2, t3):
            assert all(not e.server_info.pipe.startswith("_answer") for e in t.everything), t

    run(scenario)


@pytest.mark.parametrize("sender", [0, 2], ids=["master-sends", "follower-sends"])
def test_web_pipe_send_reaches_server_report_to_sender_echo_to_others(sender):
    async def scenario(o: Origin) -> None:
        tabs = await start_tabs(o, *[["web_chat", "#web_chat"]] * 3)
        outside = o.server.external(DEV, ("web_chat",))
        me = tabs[sender]
        others = [t for t in tabs if t is not me]

        me.do(me.api.web_pipe_send, "web_chat", "say", {"t": "hi"})
        await o.until(lambda: me.got["#web_chat"], 2, what="the delivery report")
        await o.settle(1)

        [(page, frame)] = o.server.received("web_pipe2")
        assert page == tabs[0].page.name                  # through the master's connection
        _, pipe, event, auth, text = frame.split("\n", 4)
        assert (pipe, event, auth, json.loads(text)) == ("web_chat", "say", "*", {"t": "hi"})
        [delivered] = [f for f in outside.sent if f["pipe"] == "web_chat"]
        assert json.loads(delivered["data"]) == {"t": "hi"}

        [report] = me.got["#web_chat"]
        assert report.data["number_messages"] == 1       # the outside subscriber
        assert report.server_info.pipe == "_answer_to_web_chat"
        for t in others:
            assert t.got["#web_chat"] == [], t
            assert t.data("web_chat") == [("say", {"t": "hi"})], t
        assert me.data("web_chat") == []                  # the server never echoes to the sender

    run(scenario)



@pytest.mark.parametrize("n_tabs", [1, 3])
def test_the_sending_tab_never_gets_its_own_web_pipe_send_however_many_tabs(n_tabs):
    # The same for a lone tab as for many: the sender gets the delivery report, not the message
    # (CppComet never echoes a send to its connection); the browser's other tabs get it once.
    async def scenario(o: Origin) -> None:
        tabs = await start_tabs(o, *[["web_chat", "#web_chat"]] * n_tabs)
        outside = o.server.external(DEV, ("web_chat",))
        me, others = tabs[0], tabs[1:]
        assert me.is_master
        me.do(me.api.web_pipe_send, "web_chat", "say", {"t": "mine"})
        await o.until(lambda: me.got["#web_chat"], 2, what="the delivery report")
        publish(o, "web_chat", "after", "sentinel")     # arrives after any echo would have
        await o.until(lambda: ("after", "sentinel") in me.data("web_chat"), 2, what="the sentinel")
        await o.settle(1)
        assert me.data("web_chat") == [("after", "sentinel")]
        for t in others:
            assert t.data("web_chat") == [("say", {"t": "mine"}), ("after", "sentinel")], t
        assert [json.loads(f["data"]) for f in outside.sent if f["pipe"] == "web_chat"] == [{"t": "mine"}, "sentinel"]

    run(scenario)


def test_an_oversized_web_pipe_send_raises_in_the_calling_tab_and_sends_nothing():
    async def scenario(o: Origin) -> None:
        tabs = await start_tabs(o, ["web_chat"], ["web_chat"])
        room = 65535 - len('web_pipe2\nweb_chat\nbig\n*\n""'.encode())   # the largest frame that fits
        for t in tabs:                                                     # master and follower
            with pytest.raises(ValueError, match="message too large: the frame would be 65536 bytes"):
                t.do(t.api.web_pipe_send, "web_chat", "big", "é" * (room // 2) + "x" * (room % 2 + 1))
        await o.settle(1)
        assert o.server.received("web_pipe2") == []
        tabs[1].do(tabs[1].api.web_pipe_send, "web_chat", "big", "x" * room)
        await o.until(lambda: o.server.received("web_pipe2"), 2, what="the largest message sent")
        assert len(o.server.received("web_pipe2")[0][1].encode()) == 65535

    run(scenario)

def test_follower_get_pipe_log_items_reach_that_tab_only():
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_log")
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat"])
        publish(o, "web_log", "h", 1)
        publish(o, "web_log", "h", 2)
        items: list = []
        n = await asyncio.wait_for(t3.do(t3.api.get_pipe_log, "web_log", items.append), 5)
        await o.settle()
        assert n == 2
        assert [(e.data, e.server_info.history) for e in items] == [(1, True), (2, True)]
        assert [page for page, _ in o.server.received("pipe_log")] == [t1.page.name]
        assert t1.everything == [] and t2.everything == []
        assert "web_log" in browser_conns(o)[0].pipes    # the callback subscribed it too

    run(scenario)

# -- failover ----------------------------------------------------------------------------------------

def test_master_dies_next_in_queue_takes_over_resubscribes_and_recovers():
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_chat")
        t1, t2, t3 = await start_tabs(o, ["web_chat", "web_one"], ["web_chat"], ["web_chat", "web_three"])
        assert masters([t1, t2, t3]) == [t1] and o.lock_queue(MASTER_LOCK) == [t2.page, t3.page]
        old = browser_conns(o)[0]
        publish(o, "web_chat", "m", 1)
        await o.settle()

        # A read in flight when the master crashes, then a message nobody receives live.
        pending = t3.do(t3.api.count_users_in_pipe, "web_chat")
        t1.page.die()
        publish(o, "web_chat", "m", 2)

        took = await o.until(lambda: t2.is_master and t2.api.state == "connected", what="t2 master")
        assert took < 1.0
        await o.until(lambda: not old.open, 1, what="the dead tab's connection closed")
        [new] = browser_conns(o)
        assert new.page == t2.page.name
        # The union of the live tabs (not the dead tab's web_one).
        await o.until(lambda: set(new.pipes) == {"web_chat", "web_three"}, 2, what="union resubscribed")
        assert await asyncio.wait_for(pending, 5) == 1
        await o.settle(1)
        for t in (t2, t3):   # the missed message came back from the history, once
            assert t.data("web_chat") == [("m", 1), ("m", 2)], t

        publish(o, "web_chat", "m", 3)
        publish(o, "web_three", "x", 4)
        t3.listen("#web_chat")
        t3.do(t3.api.web_pipe_send, "web_chat", "from3", "hey")
        await o.settle(1)
        assert t2.data("web_chat")[2:] == [("m", 3), ("from3", "hey")]
        assert t3.data("web_chat")[2:] == [("m", 3)]
        assert t3.data("web_three") == [("x", 4)]
        assert len(t3.got["#web_chat"]) == 1
        assert [t.master_log for t in (t2, t3)] == [[True], []]

        await o.settle(10)   # and it stays that way
        assert masters([t2, t3]) == [t2] and len(browser_conns(o)) == 1

    run(scenario)


def test_follower_send_while_there_is_no_master_goes_out_once_through_the_next():
    async def scenario(o: Origin) -> None:
        t1, t2, t3 = await start_tabs(o, *[["web_chat", "#web_chat"]] * 3)
        t1.page.die()
        t3.do(t3.api.web_pipe_send, "web_chat", "x", "during")
        await settled_master(o, [t2, t3], timeout=2)
        await o.settle(3)
        assert o.server.received("web_pipe2") == [(t2.page.name, 'web_pipe2\nweb_chat\nx\n*\n"during"')]
        assert t2.data("web_chat") == [("x", "during")] and t3.data("web_chat") == []
        assert len(t3.got["#web_chat"]) == 1 and t2.got["#web_chat"] == []

    run(scenario)


@pytest.mark.parametrize("how", ["stop", "pagehide"])
def test_master_leaving_hands_over(how):
    async def scenario(o: Origin) -> None:
        t1, t2, t3 = await start_tabs(o, ["web_chat", "web_one"], ["web_chat"], ["web_chat"])
        old = browser_conns(o)[0]
        if how == "stop":
            t1.do(t1.api.stop)
            assert not t1.is_master and t1.api.state == "closed" and t1.master_log == [True, False]
        else:
            t1.page.close()
        new_master = await settled_master(o, [t2, t3], timeout=1.0)
        assert new_master is t2 and not old.open
        [new] = browser_conns(o)
        await o.until(lambda: new.pipes == ["web_chat"], 1, what="web_one released")
        publish(o, "web_chat", "after", 1)
        await o.settle()
        assert t2.data("web_chat") == t3.data("web_chat") == [("after", 1)]
        assert t1.data("web_chat") == []   # its callbacks stay, but it left
        assert t3.master_log == []

    run(scenario)


@pytest.mark.parametrize("how", ["crash", "stop", "pagehide"])
def test_follower_leaving_releases_its_channels(how):
    async def scenario(o: Origin) -> None:
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat", "web_two"], ["web_chat"])
        conn = browser_conns(o)[0]
        await o.until(lambda: set(conn.pipes) == {"web_chat", "web_two"}, 1, what="web_two subscribed")
        if how == "crash":
            t2.page.die()
        elif how == "stop":
            t2.do(t2.api.stop)
        else:
            t2.page.close()
        took = await o.until(lambda: conn.pipes == ["web_chat"], 5, what="web_two released")
        assert took < 0.5
        publish(o, "web_chat", "still", 1)
        await o.settle()
        assert t1.data("web_chat") == t3.data("web_chat") == [("still", 1)]
        assert masters([t1, t3]) == [t1] and conn.open and len(o.server.conns) == 1

    run(scenario)


def test_frozen_master_is_replaced_by_a_visible_follower_and_steps_down_on_thaw():
    async def scenario(o: Origin) -> None:
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat", "web_three"])
        t2.page.set_visible(False)     # a background tab never steals
        t1.page.freeze()
        took = await o.until(lambda: t3.is_master and t3.api.state == "connected", 10, what="t3 steals")
        assert 2.5 < took < 6
        assert not t2.is_master and o.lock_holder(MASTER_LOCK) is t3.page
        t1.page.thaw()
        await o.until(lambda: not t1.is_master, 2, what="the robbed master steps down")
        await settled_master(o, [t1, t2, t3], timeout=5)
        assert masters([t1, t2, t3]) == [t3] and t1.master_log == [True, False]
        [conn] = browser_conns(o)
        assert conn.page == t3.page.name
        await o.until(lambda: set(conn.pipes) == {"web_chat", "web_three"}, 2, what="union")
        before = [len(t.got["web_chat"]) for t in (t1, t2, t3)]
        publish(o, "web_chat", "after", 1)
        await o.settle(0.5)
        assert [len(t.got["web_chat"]) - b for t, b in zip((t1, t2, t3), before)] == [1, 1, 1]
        await o.settle(10)
        assert masters([t1, t2, t3]) == [t3] and len(browser_conns(o)) == 1

    run(scenario)


def test_a_read_in_flight_in_a_robbed_master_fails_connection_lost_and_asking_again_works():
    async def scenario(o: Origin) -> None:
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"])
        o.server.unanswered.add("pipe_count")
        fut = t1.do(t1.api.count_users_in_pipe, "web_chat")
        await o.settle()
        t1.page.freeze()
        await o.until(lambda: t2.is_master and t2.api.state == "connected", 10, what="t2 steals")
        t1.page.thaw()
        await o.until(lambda: not t1.is_master, 2, what="the robbed master steps down")
        await o.until(fut.done, 2, what="the read in flight is answered")
        with pytest.raises(ConnectionLost):
            fut.result()
        o.server.unanswered.clear()
        again = await asyncio.wait_for(t1.do(t1.api.count_users_in_pipe, "web_chat"), 5)
        assert again == 1  # the new master's connection, which carries both tabs' channels
        assert [page for page, _ in o.server.received("pipe_count")] == [t1.page.name, t2.page.name]

    run(scenario)


# -- without Web Locks ---------------------------------------------------------------------------------

class MasterCount:
    """The most tabs that believed they were master at the same time."""

    def __init__(self, tabs) -> None:
        self.now = 0
        self.most = 0
        self.promotions = 0
        for t in tabs:
            self.add(t)

    def add(self, tab) -> None:
        tab.api.on_master(self._changed)

    def _changed(self, is_master: bool) -> None:
        self.now += 1 if is_master else -1
        self.promotions += is_master
        self.most = max(self.most, self.now)


@pytest.mark.parametrize("delay", [0.0, 0.03], ids=["instant", "30ms-channel"])
def test_fallback_election_exactly_one_master_and_handover(delay):
    async def scenario(o: Origin) -> None:
        tabs = [Tab(o, "web_chat", locks=False) for _ in range(3)]
        count = MasterCount(tabs)
        for t in tabs:   # all at the same instant
            t.start()
        first = await settled_master(o, tabs, timeout=5)
        await o.settle(5)
        assert count.most == 1 and count.promotions == 1
        assert len(o.server.conns) == 1 and o.held_lock_names() == set()
        followers = [t for t in tabs if t is not first]
        assert await asyncio.wait_for(followers[0].do(followers[0].api.count_users_in_pipe, "web_chat"), 5) == 1
        publish(o, "web_chat", "e", 1)
        await o.settle(0.5)
        assert [t.data("web_chat") for t in tabs] == [[("e", 1)]] * 3

        first.do(first.api.stop)
        second = await settled_master(o, followers, timeout=5)
        await o.settle(5)
        assert count.most == 1 and count.promotions == 2
        assert masters(followers) == [second] and len(browser_conns(o)) == 1
        publish(o, "web_chat", "e", 2)
        await o.settle(0.5)
        assert [t.data("web_chat") for t in followers] == [[("e", 1), ("e", 2)]] * 2

    run(scenario, channel_delay=delay)


def test_fallback_master_crash_and_follower_crash():
    async def scenario(o: Origin) -> None:
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat", "web_three"], locks=False)
        first = masters([t1, t2, t3])[0]
        rest = [t for t in (t1, t2, t3) if t is not first]
        count = MasterCount(rest)
        first.page.die()                  # no bye: the others notice the silence
        second = await settled_master(o, rest, timeout=5)
        assert count.most == 1
        conn = browser_conns(o)[0]
        union = {"web_chat", "web_three"} if t3 in rest else {"web_chat"}
        await o.until(lambda: set(conn.pipes) == union, 2, what="union after the fallback failover")

        # A follower that crashes is expired (no lock tells the master): its channels go.
        follower = [t for t in rest if t is not second][0]
        follower.listen("web_gone")
        await o.until(lambda: "web_gone" in conn.pipes, 2, what="web_gone subscribed")
        follower.page.die()
        took = await o.until(lambda: "web_gone" not in conn.pipes, 15, what="web_gone expired")
        assert took < 10
        assert masters(rest) == [second] and conn.open

    run(scenario)


def test_fallback_late_joiner_and_frozen_master():
    async def scenario(o: Origin) -> None:
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"], locks=False)
        count = MasterCount([t1, t2])
        first = masters([t1, t2])[0]
        t3 = Tab(o, "web_chat", "web_three", locks=False)
        count.add(t3)
        t3.start()
        await o.settle(3)
        assert masters([t1, t2, t3]) == [first] and count.promotions == 0
        conn = browser_conns(o)[0]
        assert set(conn.pipes) == {"web_chat", "web_three"} and len(o.server.conns) == 1

        # The master freezes: the others elect a new one; on thaw it hears the stronger
        # leader and steps down.
        first.page.freeze()
        await o.until(lambda: len(masters([t for t in (t1, t2, t3) if t is not first])) == 1, 5,
                      what="a new master while the old one is frozen")
        first.page.thaw()
        await o.until(lambda: not first.is_master, 3, what="the old master steps down")
        second = await settled_master(o, [t1, t2, t3], timeout=5)
        assert second is not first
        await o.settle(5)
        assert masters([t1, t2, t3]) == [second] and len(browser_conns(o)) == 1
        publish(o, "web_chat", "e", 1)
        await o.settle(0.5)
        assert [t.data("web_chat")[-1:] for t in (t1, t2, t3)] == [[("e", 1)]] * 3
        assert count.promotions == 1 and count.most == 1   # the frozen one never stopped believing

    run(scenario)


# -- the connection under the master -------------------------------------------------------------------

def test_server_drops_the_connection_master_reconnects_followers_follow_and_nothing_is_lost():
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_chat")
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat", "web_three"])
        publish(o, "web_chat", "m", 1)
        await o.settle()
        first = browser_conns(o)[0]
        o.server.go_down()
        await o.until(lambda: all(t.api.state == "disconnected" for t in (t1, t2, t3)), 2,
                      what="every tab sees the disconnection")
        publish(o, "web_chat", "m", 2)          # stored in the history, delivered to nobody
        o.server.come_up()
        await settled_master(o, [t1, t2, t3], timeout=30)
        [again] = browser_conns(o)
        assert again is not first and again.page == t1.page.name and masters([t1, t2, t3]) == [t1]
        assert set(again.pipes) == {"web_chat", "web_three"}
        await o.settle(1)
        for t in (t1, t2, t3):
            assert t.data("web_chat") == [("m", 1), ("m", 2)], t
            assert t.states.count("disconnected") == 1 and t.states[-1] == "connected", (t, t.states)
            assert t.gaps == [["web_three"]], t    # no history there: reported, not recovered

    run(scenario)


# -- pages that pause -------------------------------------------------------------------------------------

def test_a_follower_frozen_for_long_does_not_steal_on_thaw():
    async def scenario(o: Origin) -> None:
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"])
        t2.page.freeze()
        await o.settle(20)
        t2.page.thaw()
        await o.settle(5)
        assert masters([t1, t2]) == [t1] and t2.master_log == [] and len(o.server.conns) == 1
        publish(o, "web_chat", "e", 1)
        await o.settle(0.5)
        assert t2.data("web_chat") == [("e", 1)]

    run(scenario)


def test_hidden_follower_steals_from_a_frozen_master_once_visible():
    async def scenario(o: Origin) -> None:
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"])
        t2.page.set_visible(False)
        t1.page.freeze()
        await o.settle(8)
        assert not t2.is_master                 # hidden: it waits
        t2.page.set_visible(True)               # visibilitychange: it checks at once
        took = await o.until(lambda: t2.is_master and t2.api.state == "connected", 1, what="steal")
        assert took < 0.3

    run(scenario)


# -- the fake browser itself (what the tests above rely on) ---------------------------------------------

def test_fake_broadcast_channel_semantics():
    async def scenario(o: Origin) -> None:
        a, b = o.page("a"), o.page("b")
        got: dict[str, list] = {"a1": [], "a2": [], "b": []}
        a1 = a.Channel("c", got["a1"].append)
        a.Channel("c", got["a2"].append)
        b_ch = b.Channel("c", got["b"].append)
        b.Channel("other", got["b"].append)
        a1.post('{"n":1}')
        a1.post('{"n":2}')
        assert got == {"a1": [], "a2": [], "b": []}          # asynchronous
        await o.settle(0)
        assert got == {"a1": [], "a2": ['{"n":1}', '{"n":2}'], "b": ['{"n":1}', '{"n":2}']}
        a1.post('{"n":3}')
        b_ch.close()                                          # closed before delivery: nothing
        await o.settle(0)
        assert got["b"] == ['{"n":1}', '{"n":2}'] and got["a2"][-1] == '{"n":3}'

    run(scenario)


def test_fake_web_locks_semantics():
    async def scenario(o: Origin) -> None:
        a, b, c = o.page("a"), o.page("b"), o.page("c")
        log: list = []

        def lock(page, steal=False):
            return page.HeldLock("L", lambda: log.append(("granted", page.name)),
                                 lambda why: log.append(("lost", page.name, why.split(":")[0])), steal=steal)

        la, lb, lc = lock(a), lock(b), lock(c)
        assert log == []
        await o.settle(0)
        assert log == [("granted", "a")] and la.held and not lb.held
        la.release()
        await o.settle(0)
        assert log[-1] == ("granted", "b") and o.lock_queue("L") == [c]
        steal = lock(a, steal=True)
        await o.settle(0)
        assert log[-2:] == [("lost", "b", "AbortError"), ("granted", "a")] and not lb.held and steal.held
        assert o.lock_queue("L") == [c]
        a.die()                                              # a dead page's locks go to the next
        await o.settle(0)
        assert log[-1] == ("granted", "c") and lc.held and o.held_lock_names() == {"L"}
        lc.release()
        assert await c.held_lock_names() == set()

    run(scenario)


# -- handover ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["master-stops", "master-pagehide", "master-robbed", "fallback-master-stops"])
def test_no_tab_but_the_stopped_one_ever_reports_closed(how):
    async def scenario(o: Origin) -> None:
        locks = not how.startswith("fallback")
        tabs = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat"], locks=locks)
        first = masters(tabs)[0]
        rest = [t for t in tabs if t is not first]
        if how == "master-robbed":
            first.page.freeze()
            await o.until(lambda: len(masters(rest)) == 1, 10, what="a steal")
            first.page.thaw()
            await settled_master(o, tabs, timeout=5)
            watched = tabs                 # the robbed master did not stop either
        else:
            if how == "master-pagehide":
                first.page.close()
            else:
                first.do(first.api.stop)
            await settled_master(o, rest, timeout=5)
            watched = rest
        await o.settle(2)
        assert [t.states.count("closed") for t in watched] == [0] * len(watched), \
            [t.states for t in watched]

    run(scenario)
