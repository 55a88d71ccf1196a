"""relay.py with real coordinators on the fake browser. The relay's own state machine (tabs
simulated in memory on a fake BroadcastChannel) is tested in tests/mpy/test_mpy_relay.py, which
pytest runs here under CPython and the MicroPython lane runs under MicroPython."""

from __future__ import annotations

from tests.support.fake_browser import Origin, run
from tests.unit.test_coordinator import DEV, MASTER_LOCK, publish, settled_master, start_tabs


def test_a_new_master_recovers_a_pipe_only_a_follower_listens_to_and_catches_up_a_lagging_tab():
    """What recovers after a failover: every tab records the history_id of each relayed message,
    callback or not, so the new master's Session.recover (coordinator._promote) covers pipes only
    followers listen to; a tab that saw less says so in its hello and gets a CatchUp of its own."""
    async def scenario(o: Origin) -> None:
        o.server.keep_history(DEV, "web_h")
        t1, t2, t3, t4 = await start_tabs(o, ["web_a"], ["web_a"], ["web_h"], ["web_h"])
        assert o.lock_queue(MASTER_LOCK)[0] == t2.page          # t2, without web_h, is next
        publish(o, "web_h", "m", 1)
        await o.settle(0.5)
        t4.page.enter_bfcache()
        publish(o, "web_h", "m", 2)                              # t4 is away: it lags behind
        await o.settle(0.5)
        t1.page.die()
        publish(o, "web_h", "m", 3)                              # nobody gets this one live
        t4.page.leave_bfcache()
        await settled_master(o, [t2, t3, t4], timeout=5)
        await o.settle(1)
        assert t2.is_master and t2.data("web_h") == []
        assert t3.data("web_h") == [("m", 1), ("m", 2), ("m", 3)]   # once each, in order
        assert t4.data("web_h") == [("m", 1), ("m", 2), ("m", 3)]

    run(scenario)


# -- parsing -------------------------------------------------------------------------------------


