"""Real tab lifecycles on the virtual-time fake browser: the back/forward cache, throttled
master timers, the network going away silently or coming back, and wall-clock jumps."""

from __future__ import annotations

import asyncio

from comet_py import connection as conn_mod
from tests.support.fake_browser import Origin, run
from tests.unit.test_coordinator import (
    DEV, MASTER_LOCK, Tab, browser_conns, masters, publish, settled_master, start_tabs,
)


# -- 1. back/forward cache ---------------------------------------------------------------------

def test_a_follower_back_from_the_bfcache_rejoins_and_gets_what_it_missed_once():
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_chat")
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat"])
        publish(o, "web_chat", "m", 1)
        await o.settle(0.5)
        t3.page.enter_bfcache()
        await o.settle(0.1)
        assert t3.api.state == "closed" and t3.states[-1] == "closed"
        assert not any(lk.held for lk in t3.page.lock_requests) and t3.page.channels == []
        for n in (2, 3):
            publish(o, "web_chat", "m", n)
        await o.settle(5)
        t3.page.leave_bfcache()
        await settled_master(o, [t1, t2, t3], timeout=5)
        assert masters([t1, t2, t3]) == [t1] and t3.master_log == []
        await o.settle(1)
        assert t3.data("web_chat") == [("m", 1), ("m", 2), ("m", 3)]   # missed ones, once, in order
        for t in (t1, t2):                                             # the others: nothing twice
            assert t.data("web_chat") == [("m", 1), ("m", 2), ("m", 3)], t
        publish(o, "web_chat", "m", 4)
        await o.settle(0.5)
        for t in (t1, t2, t3):                     # its old callbacks work, nothing re-registered
            assert t.data("web_chat")[-1] == ("m", 4) and len(t.data("web_chat")) == 4, t
        assert t3.states[-2:] == ["connecting", "connected"]
        assert len(browser_conns(o)) == 1

    run(scenario)


def test_the_master_goes_into_the_bfcache_another_takes_over_and_it_comes_back_a_follower():
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_chat")
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat"])
        publish(o, "web_chat", "before", 0)
        await o.settle(0.5)
        t1.page.enter_bfcache()
        await o.until(lambda: len(masters([t2, t3])) == 1 and t1.api.state == "closed", 3,
                      what="another master")
        assert t1.api.state == "closed" and not t1.is_master
        new = masters([t2, t3])[0]
        await o.until(lambda: len(browser_conns(o)) == 1 and browser_conns(o)[0].page == new.page.name,
                      3, what="the new master's connection")
        await o.settle(0.5)
        publish(o, "web_chat", "away", 1)
        await o.settle(2)
        t1.page.leave_bfcache()
        await settled_master(o, [t1, t2, t3], timeout=5)
        assert masters([t1, t2, t3]) == [new] and t1.master_log == [True, False]
        await o.settle(1)
        assert t1.data("web_chat") == [("before", 0), ("away", 1)]
        publish(o, "web_chat", "back", 2)
        await o.settle(0.5)
        for t in (t1, t2, t3):
            assert t.data("web_chat") == [("before", 0), ("away", 1), ("back", 2)], t
        assert len(browser_conns(o)) == 1

    run(scenario)


def test_a_lone_tab_back_from_the_bfcache_is_master_again():
    async def scenario(o: Origin) -> None:
        [t1] = await start_tabs(o, ["web_chat"])
        t1.page.enter_bfcache()
        await o.settle(1)
        assert t1.api.state == "closed" and browser_conns(o) == []
        t1.page.leave_bfcache()
        await settled_master(o, [t1], timeout=5)
        publish(o, "web_chat", "e", 1)
        await o.settle(0.5)
        assert t1.data("web_chat") == [("e", 1)] and t1.is_master

    run(scenario)


# -- 2. liveness by asking the master ----------------------------------------------------------

def throttle_hidden_timers(o: Origin, tab: Tab) -> None:
    """Intensive throttling: while the page is hidden its coordinator's ticks (heartbeats,
    probes) run once a minute; its message and event handlers still run at once."""
    coord = tab.api._coordinator
    real_tick = coord._tick
    last = {"t": o.clock.t}

    def tick() -> None:
        if tab.page.visible or o.clock.t - last["t"] >= 60:
            last["t"] = o.clock.t
            real_tick()
        else:
            coord._schedule_tick()
    coord._tick = tick


def test_a_master_whose_timers_are_throttled_but_answers_probes_is_never_robbed():
    async def scenario(o: Origin) -> None:
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat"])
        for t in (t1, t2, t3):
            throttle_hidden_timers(o, t)
        for t in (t1, t2, t3):
            t.page.set_visible(False)
        for _ in range(4):                          # tab switches among the followers
            await o.settle(45)
            t2.page.set_visible(True)
            await o.settle(5)
            t2.page.set_visible(False)
            await o.settle(45)
            t3.page.set_visible(True)
            await o.settle(5)
            t3.page.set_visible(False)
        assert masters([t1, t2, t3]) == [t1] and t2.master_log == [] and t3.master_log == []
        assert len(o.server.conns) == 1
        assert o.lock_holder(MASTER_LOCK) is t1.page

    run(scenario)


def test_a_frozen_master_is_still_replaced_when_a_throttled_follower_becomes_visible():
    async def scenario(o: Origin) -> None:
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"])
        for t in (t1, t2):
            throttle_hidden_timers(o, t)
            t.page.set_visible(False)
        await o.settle(30)
        t1.page.freeze()                            # no handler runs: probes go unanswered
        await o.settle(90)
        t2.page.set_visible(True)
        took = await o.until(lambda: t2.is_master and t2.api.state == "connected", 10, what="steal")
        assert took < 5, took

    run(scenario)


# -- 3. the network --------------------------------------------------------------------------------

def test_online_reconnects_at_once_instead_of_waiting_for_the_backoff():
    async def scenario(o: Origin) -> None:
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"])
        o.server.go_down()
        await o.settle(40)                          # several failed attempts: the backoff grew
        o.server.come_up()
        t1.page.fire("window", "online")
        took = await o.until(lambda: all(t.api.state == "connected" for t in (t1, t2)), 30,
                             what="reconnected")
        assert took < 0.5, took

    run(scenario)


def test_a_silently_dead_network_is_reported_disconnected_within_seconds_then_recovers():
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_chat")
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"])
        first = browser_conns(o)[0]
        publish(o, "web_chat", "m", 0)
        await o.settle(0.5)
        o.server.blackhole = True                   # frames vanish; no socket closes
        took = await o.until(lambda: all(t.api.state == "disconnected" for t in (t1, t2)), 30,
                             what="disconnected reported")
        limit = (conn_mod.IDLE_PROBE_MS + conn_mod.PROBE_TIMEOUT_MS) / 1000 + 1.5
        assert took <= limit, took
        publish(o, "web_chat", "m", 1)              # stored, delivered to nobody
        o.server.blackhole = False
        o.server.lose(first)                        # the old TCP path is gone for the server too
        t1.page.fire("window", "online")
        await settled_master(o, [t1, t2], timeout=5)
        await o.settle(1)
        for t in (t1, t2):
            assert t.data("web_chat") == [("m", 0), ("m", 1)], t

    run(scenario)


def test_offline_event_checks_the_connection_at_once():
    async def scenario(o: Origin) -> None:
        [t1] = await start_tabs(o, ["web_chat"])
        await o.settle(0.5)                         # frames just arrived: no idle probe soon
        o.server.blackhole = True
        t1.page.fire("window", "offline")
        took = await o.until(lambda: t1.api.state == "disconnected", 10, what="disconnected")
        assert took <= conn_mod.PROBE_TIMEOUT_MS / 1000 + 1.5, took

    run(scenario)


def test_a_quiet_but_healthy_connection_is_never_dropped():
    async def scenario(o: Origin) -> None:
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"])
        await o.settle(120)                         # nothing from the server but probe answers
        assert len(o.server.conns) == 1 and all(t.states.count("disconnected") == 0 for t in (t1, t2))
        probes = o.server.received("pipe_count")
        assert 10 <= len(probes) <= 30, len(probes)

    run(scenario)


def test_after_a_sleep_no_tab_steals_or_drops_and_a_dead_socket_is_replaced():
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_chat")
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat"])
        publish(o, "web_chat", "m", 0)
        await o.settle(0.5)
        for t in (t1, t2, t3):
            t.page.freeze()                         # the laptop sleeps: nothing runs...
        o.clock.jump(3600)                          # ...and the wall clock jumps an hour
        for t in (t3, t2, t1):                      # followers' timers may run first
            t.page.thaw()
        await o.settle(10)
        assert masters([t1, t2, t3]) == [t1] and len(o.server.conns) == 1
        assert all(t.states.count("disconnected") == 0 for t in (t1, t2, t3))

        # Second sleep: this time the socket died silently while asleep.
        for t in (t1, t2, t3):
            t.page.freeze()
        o.server.blackhole = True
        o.clock.jump(3600)
        for t in (t3, t2, t1):
            t.page.thaw()
        await o.settle(0.5)
        o.server.blackhole = False
        o.server.lose(browser_conns(o)[0])
        publish(o, "web_chat", "m", 1)
        await o.until(lambda: len(browser_conns(o)) == 1 and all(t.api.state == "connected"
                                                                for t in (t1, t2, t3))
                      and any(t.states.count("disconnected") for t in (t1,)), 15, what="replaced")
        await o.settle(1)
        assert masters([t1, t2, t3]) == [t1]
        for t in (t1, t2, t3):
            assert t.data("web_chat") == [("m", 0), ("m", 1)], t

    run(scenario)


def test_a_request_in_flight_across_a_sleep_is_answered_not_timed_out():
    async def scenario(o: Origin) -> None:
        [t1] = await start_tabs(o, ["web_chat"])
        o.server.blackhole = True                   # the request goes out and is lost
        pending = t1.do(t1.api.count_users_in_pipe, "web_chat")
        await o.settle(1.5)                         # its timeout is running
        t1.page.freeze()
        o.clock.jump(3600)
        t1.page.thaw()
        await o.settle(0.2)
        o.server.blackhole = False
        o.server.lose(browser_conns(o)[0])          # the socket died in the sleep
        assert await asyncio.wait_for(pending, 15) == 1   # resent on the new connection

    run(scenario)


def test_a_tab_away_longer_than_the_history_reaches_gets_a_gap_of_its_own():
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_chat")
        t1, t2 = await start_tabs(o, ["web_chat"], ["web_chat"])
        publish(o, "web_chat", "m", 1)
        await o.settle(0.5)
        t2.page.enter_bfcache()
        for n in (2, 3, 4):
            publish(o, "web_chat", "m", n)
        await o.settle(1)
        o.server.keep_history(DEV, "web_chat", 2)   # the server keeps only the newest two
        t2.page.leave_bfcache()
        await settled_master(o, [t1, t2], timeout=5)
        await o.settle(1)
        assert t2.data("web_chat") == [("m", 1), ("m", 3), ("m", 4)]
        assert t2.gaps == [["web_chat"]] and t1.gaps == []   # told it, and only it

    run(scenario)


def test_a_tab_back_while_the_master_changes_gets_its_older_messages_before_the_newer():
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_chat")
        t1, t2, t3 = await start_tabs(o, ["web_chat"], ["web_chat"], ["web_chat"])
        publish(o, "web_chat", "m", 1)
        await o.settle(0.5)
        t3.page.enter_bfcache()
        publish(o, "web_chat", "m", 2)              # t1, t2 get it; t3 is away
        await o.settle(0.5)
        t1.page.die()                               # the master crashes...
        publish(o, "web_chat", "m", 3)              # ...nobody gets this one live
        t3.page.leave_bfcache()                     # t3's hello reaches t2 before it connects
        await settled_master(o, [t2, t3], timeout=5)
        await o.settle(1)
        assert t2.data("web_chat") == [("m", 1), ("m", 2), ("m", 3)]
        assert t3.data("web_chat") == [("m", 1), ("m", 2), ("m", 3)]

    run(scenario)
