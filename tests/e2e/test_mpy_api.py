"""comet_py's API on MicroPython pages (tests/pages/harness_mpy.html), in Debian Chromium, offline:
a lone tab receives and sends, three MicroPython tabs share one connection, and a Pyodide tab and
a MicroPython tab of one user share one master (the tab protocol is the same on both)."""

import time

import pytest

from tests.e2e.test_single_tab import seed, start
from tests.e2e.test_tabs import connections, masters, start_all, stop_all, wait_one_master
from tests.support.rawclient import RawClient, wait_subscribers

MPY_HARNESS = "/tests/pages/harness_mpy.html"


@pytest.fixture(scope="module")
def mpy_tabs(shared_context):
    """Three MicroPython tabs in one browser context (one user), reused by the module."""
    return [shared_context.open(MPY_HARNESS) for _ in range(3)]


@pytest.fixture
def publisher(comet_server, dev_id):
    client = RawClient(comet_server.ws_url(dev_id=dev_id))
    yield client
    client.close()


def test_a_micropython_tab_is_master_and_receives_a_channel_message(mpy_tabs, comet_server, dev_id, publisher):
    tab = mpy_tabs[0]
    start(tab, "a", dev_id, comet_server)
    try:
        assert tab.eval("a.isMaster(), a.isAuthorized()") == [True, False]
        tab.run("a.subscription('web_room', rec('room'))")
        wait_subscribers(publisher, "web_room", 1)
        publisher.publish("web_room", "said", {"text": "it's \"quoted\" \\ ok", "n": [1, 2.5, None]})
        got = tab.wait("tagged('room')")
        assert got[0]["data"] == {"text": "it's \"quoted\" \\ ok", "n": [1, 2.5, None]}
        info = got[0]["server_info"]
        assert (info["pipe"], info["event"], info["user_id"], info["history"]) == ("web_room", "said", 0, False)
        assert tab.eval("states_a[:2]") == ["connecting", "connected"]
    finally:
        tab.run("a.stop()")


def test_web_pipe_send_from_micropython_with_its_delivery_report(new_context, comet_server, dev_id):
    def seed_users(store):
        store.set_user_hash(dev_id, 11, "hashEleven")
        store.set_user_hash(dev_id, 12, "hashTwelve")
    seed(comet_server, seed_users)
    alice, bob = new_context().open(MPY_HARNESS), new_context().open()  # MicroPython sends to Pyodide
    start(alice, "me", dev_id, comet_server, user_id=11, user_key="hashEleven")
    start(bob, "me", dev_id, comet_server, user_id=12, user_key="hashTwelve")
    bob.run("me.subscription('web_talk', rec('talk'))")
    alice.run("me.subscription('#web_talk', rec('report'))")
    alice.wait("me.isAuthorized() is True")
    bob.wait("me._coordinator.role.session._channels == frozenset({'web_talk'})")
    alice.run("me.web_pipe_send('web_talk', 'hello', {'t': 'hi bob \\u00e9', 'k': [1, {'x': None}]})")
    got = bob.wait("tagged('talk')")
    assert got[0]["data"] == {"t": "hi bob \u00e9", "k": [1, {"x": None}]}
    assert got[0]["server_info"]["user_id"] == 11
    report = alice.wait("tagged('report')")
    assert report[0]["data"]["number_messages"] == 1
    alice.run("me.web_pipe_send('@web_talk', 'hello', 'who am I')")
    got = bob.wait("len(tagged('talk')) == 2 and tagged('talk')")
    assert got[1]["data"] == "who am I" and got[1]["server_info"]["user_id"] == 0


def test_hostile_web_pipe_send_data_is_refused_in_the_micropython_tab(mpy_tabs, comet_server, dev_id):
    tab = mpy_tabs[0]
    start(tab, "h", dev_id, comet_server)
    try:
        refused = {}
        for bad in ("float('nan')", "{1, 2}", "object()", "{'k': float('inf')}", "[[[[[[1]]]]]] * 3 + [{1: b'x'}]"):
            refused[bad] = tab.run(
                "try:\n"
                f"    h.web_pipe_send('web_x', 'e', {bad})\n"
                "    bad_result = 'sent'\n"
                "except Exception as exc:\n"
                "    bad_result = type(exc).__name__\n"
                "bad_result")
        # as on Pyodide (docs/api.md): TypeError, raised in the calling tab, nothing sent
        assert set(refused.values()) == {"TypeError"}, refused
        assert tab.eval("h.state") == "connected"  # refused in the tab, the connection lives on
    finally:
        tab.run("h.stop()")


def test_a_micropython_master_keeps_its_locks_when_memory_is_collected_as_it_is_granted(mpy_tabs, comet_server, dev_id):
    """Issue 15: MicroPython collects garbage as a Python callback returns to JS (when its
    threshold was reached during the call), and a JsProxy only returned, referenced nowhere
    else, then reached JS as undefined: the Web Lock's grant callback gave back no promise, so
    the lock was released at once (a master lost its role; a follower's tab lock went, and the
    master forgot that tab). Here on_master, called inside the grant, collects."""
    tab = mpy_tabs[0]
    opts = {"dev_id": dev_id, "node": f"127.0.0.1:{comet_server.port}"}
    tab.run("import gc\n"
            "g = CometApi()\n"
            "flips_g = []\n"
            "def on_master_g(is_master):\n"
            "    flips_g.append(is_master)\n"
            "    gc.collect()  # as any callback that allocates enough may cause\n"
            "g.on_master(on_master_g)\n"
            f"g.start({opts!r})")
    try:
        tab.wait("flips_g")
        time.sleep(1.5)  # a released lock shows within ms: lost, then asked for and granted again
        assert tab.eval("flips_g") == [True]
        tab.wait("g.state == 'connected'")
        names = tab.eval("[g._coordinator._tab_lock_name(g._coordinator.tab_id), 'comet_py:' + g._coordinator.key]")
        held = tab.page.evaluate("async () => (await navigator.locks.query()).held.map(l => l.name)")
        assert set(names) <= set(held), (names, held)
        assert tab.eval("g.isMaster(), g.state") == [True, "connected"]
    finally:
        tab.run("g.stop()")


def test_three_micropython_tabs_share_one_connection_and_one_master(mpy_tabs, comet_server, dev_id, publisher):
    start_all(mpy_tabs, dev_id, comet_server, channel="web_union")
    try:
        master = wait_one_master(mpy_tabs, comet_server, dev_id, others=1)
        wait_subscribers(publisher, "web_union", 1)
        publisher.publish("web_union", "e", "to all")
        for tab in mpy_tabs:
            assert [m["data"] for m in tab.wait("tagged('got')")] == ["to all"]
        for _ in range(5):  # sampled: never two masters, never a second connection
            assert masters(mpy_tabs).count(True) == 1
            assert connections(comet_server, dev_id) == 2  # the master's and the publisher's
            time.sleep(0.1)
        assert master.eval("c.isMaster()") is True
    finally:
        stop_all(mpy_tabs)


def test_a_pyodide_tab_and_a_micropython_tab_share_one_master(mpy_tabs, shared_context, comet_server, dev_id, publisher):
    py = shared_context.open()  # harness.html: Pyodide, same context, so same origin and user
    pair = [py, mpy_tabs[1]]
    start_all(pair, dev_id, comet_server, channel="web_mixed")
    try:
        master = wait_one_master(pair, comet_server, dev_id, others=1)
        follower = pair[1] if master is pair[0] else pair[0]
        follower.run("c.subscription('web_mixed.only', rec('only'))")
        wait_subscribers(publisher, "web_mixed", 1)
        # The follower's hello and subscriptions reach the master over BroadcastChannel some time
        # after its start() returned: wait until messages reach both tabs (liveness only), then
        # count from a clean log.
        deadline = time.monotonic() + 20
        while not all(tab.eval("len(tagged('got'))") for tab in pair):
            assert time.monotonic() < deadline, [tab.eval("tagged('got')") for tab in pair]
            publisher.publish("web_mixed", "probe", "probe")
            time.sleep(0.2)
        time.sleep(0.3)
        for tab in pair:
            tab.run("log.clear()")
        publisher.publish("web_mixed", "e", {"n": 1})
        publisher.publish("web_mixed", "only", "for the follower")
        for tab in pair:
            assert tab.wait("len(tagged('got')) == 2 and [m['data'] for m in tagged('got')]") == [{"n": 1}, "for the follower"]
        assert [m["data"] for m in follower.wait("tagged('only')")] == ["for the follower"]
        assert master.eval("tagged('only')") == []
        assert connections(comet_server, dev_id) == 2
        # the master leaves: the other interpreter takes over the one connection
        master.run("c.stop()")
        follower.wait("c.isMaster() and c.state == 'connected'", timeout_ms=30_000)
        deadline = time.monotonic() + 20
        while connections(comet_server, dev_id) != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert connections(comet_server, dev_id) == 2
        publisher.publish("web_mixed", "e", "after")
        assert follower.wait("len(tagged('got')) == 3 and tagged('got')[-1]['data']") == "after"
    finally:
        stop_all(pair)
        py.page.close()
