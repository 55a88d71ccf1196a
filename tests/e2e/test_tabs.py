"""One connection per browser: election, relay and failover with real tabs of one context.

Tabs are pages of one Playwright browser context in Debian Chromium. Each test starts CometApi
instances (``c``) under a fresh dev_id in some of the module's tabs and stops them at the end,
so the tabs (and their Pyodide) are reused. Failover tests open fresh tabs for the ones they kill.
"""

import json
import threading
import time
import urllib.request

import pytest

from comet_server.store import Store
from tests.support.rawclient import RawClient, wait_subscribers

pytestmark = pytest.mark.browser
TABS = 6


def connections(server, dev_id):
    with urllib.request.urlopen(f"{server.url}/stats?dev_id={dev_id}") as r:
        return json.load(r)["connections"]


def start_all(tabs, dev_id, server, channel=None):
    opts = {"dev_id": dev_id, "node": f"127.0.0.1:{server.port}"}
    for tab in tabs:
        code = f"c = CometApi(); c.start({opts!r})"
        if channel:
            code += f"\nc.subscription({channel!r}, rec('got'))"
        tab.run("log.clear()\n" + code)


def masters(tabs):
    return [tab.eval("c.isMaster()") for tab in tabs]


def wait_one_master(tabs, server, dev_id, timeout=20.0, others=0):
    """Exactly one master tab, and the server counts exactly one connection for this dev_id
    (plus ``others``: the test's own protocol clients)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flags = masters(tabs)
        if flags.count(True) == 1 and connections(server, dev_id) == 1 + others and tabs[flags.index(True)].eval("c.state") == "connected":
            return tabs[flags.index(True)]
        time.sleep(0.1)
    raise AssertionError(f"masters {masters(tabs)}, connections {connections(server, dev_id)}")


def stop_all(tabs):
    for tab in tabs:
        try:
            tab.run("c.stop()")
        except Exception:
            pass  # a tab a test killed


HARNESS = {"locks": "/tests/pages/harness.html", "nolocks": "/tests/pages/harness.html?nolocks",
           # MicroPython tabs (issue 15), with Web Locks
           "mpy": "/tests/pages/harness_mpy.html"}


@pytest.fixture(scope="module")
def tabs(shared_context):
    return [shared_context.open() for _ in range(TABS)]


@pytest.fixture(scope="module")
def nolocks_tabs(shared_context):
    """Tabs of a browser without the Web Locks API (removed before comet_py loads)."""
    opened = [shared_context.open(HARNESS["nolocks"]) for _ in range(3)]
    assert opened[0].eval("js.navigator.locks is None")
    return opened


@pytest.fixture
def publisher(comet_server, dev_id):
    client = RawClient(comet_server.ws_url(dev_id=dev_id))
    yield client
    client.close()


class SteadyPublisher(threading.Thread):
    """Publishes 0, 1, 2... into a channel at a steady rate until stopped."""

    def __init__(self, server, dev_id, pipe, rate=100):
        super().__init__(daemon=True)
        self.client = RawClient(server.ws_url(dev_id=dev_id))
        self.pipe, self.interval, self.sent = pipe, 1.0 / rate, 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.client.publish(self.pipe, "n", self.sent)
            self.sent += 1
            time.sleep(self.interval)

    def stop(self):
        self.halt.set()
        self.join()
        self.client.close()
        return self.sent


@pytest.mark.parametrize("count", [1, 3, 6])
def test_one_server_connection_and_one_master_for_n_tabs(tabs, comet_server, dev_id, count):
    check_one_connection(tabs[:count], comet_server, dev_id)


@pytest.mark.parametrize("count", [1, 3])
def test_without_web_locks_the_fallback_election_still_gives_one_connection(nolocks_tabs, comet_server, dev_id, count):
    check_one_connection(nolocks_tabs[:count], comet_server, dev_id)


def check_one_connection(group, comet_server, dev_id):
    start_all(group, dev_id, comet_server, channel="web_union")
    try:
        wait_one_master(group, comet_server, dev_id)
        for _ in range(5):  # sampled: never two masters, never a second connection
            assert masters(group).count(True) == 1
            assert connections(comet_server, dev_id) == 1
            time.sleep(0.1)
    finally:
        stop_all(group)


def test_follower_subscriptions_reach_the_server_and_each_tab_gets_only_its_own(tabs, comet_server, dev_id, publisher):
    start_all(tabs[:3], dev_id, comet_server)
    try:
        master = wait_one_master(tabs[:3], comet_server, dev_id, others=1)
        followers = [t for t in tabs[:3] if t is not master]
        followers[0].run("c.subscription('web_split.red', rec('red'))")
        followers[1].run("c.subscription('web_split.blue', rec('blue'))")
        wait_subscribers(publisher, "web_split", 1)
        for i, event in enumerate(["red", "blue", "red", "blue"]):
            publisher.publish("web_split", event, i)
        assert [m["data"] for m in followers[0].wait("len(tagged('red')) == 2 and tagged('red')")] == [0, 2]
        assert [m["data"] for m in followers[1].wait("len(tagged('blue')) == 2 and tagged('blue')")] == [1, 3]
        publisher.publish("web_split", "red", "last")
        followers[0].wait("len(tagged('red')) == 3")
        assert followers[1].eval("len(tagged('blue'))") == 2  # nothing twice, nothing foreign
        assert master.eval("log") == []
    finally:
        stop_all(tabs[:3])


def test_calls_from_a_follower_answer_only_that_tab(tabs, comet_server, dev_id, publisher):
    store = Store(comet_server.db)
    store.set_pipe_length(dev_id, "web_calls", 50)
    store.close()
    publisher.publish("web_calls", "old", "from history")
    start_all(tabs[:3], dev_id, comet_server)
    try:
        master = wait_one_master(tabs[:3], comet_server, dev_id, others=1)
        asker, other = [t for t in tabs[:3] if t is not master]
        for tab in tabs[:3]:
            tab.run("c.subscription('web_calls', rec('calls')); c.subscription('#web_calls', rec('report'))")
        publisher.subscribe("web_calls")
        wait_subscribers(publisher, "web_calls", 2)
        assert asker.run("await c.count_users_in_pipe('web_calls')") == 2
        master.run("c.subscription('track_calls', rec('track'))")  # sent before the asker's call
        users = asker.run("await c.getTrackPipeUsers('track_calls')")
        assert [u["user_id"] for u in users] == [0] and len(users[0]["uuid"]) == 32
        assert asker.run("await c.get_pipe_log('web_calls')") == 1
        history = asker.wait("[m for m in tagged('calls') if m['server_info']['history']]")
        assert [m["data"] for m in history] == ["from history"]
        asker.run("c.web_pipe_send('web_calls', 'new', {'from': 'follower'})")
        got = publisher.wait_for(lambda m: m.get("event") == "new")
        assert json.loads(got["data"]) == {"from": "follower"}
        assert asker.wait("tagged('report')")[0]["data"]["number_messages"] == 1
        time.sleep(0.5)  # room for a misrouted answer to show up
        for tab in (master, other):
            assert tab.eval("tagged('report')") == []
            assert not [m for m in tab.eval("tagged('calls')") if m["server_info"]["history"]]
    finally:
        stop_all(tabs[:3])


def test_presence_is_dropped_when_the_only_listening_follower_closes(shared_context, tabs, comet_server, dev_id, publisher):
    extra = shared_context.open()
    group = tabs[:2] + [extra]
    start_all(group, dev_id, comet_server)
    try:
        wait_one_master(group, comet_server, dev_id, others=1)
        publisher.subscribe("track_lobby")
        extra.run("c.subscription('track_lobby', rec('lobby'))")
        joined = publisher.wait_for(lambda m: m.get("pipe") == "track_lobby" and m.get("event") == "subscription")
        extra.page.close()
        left = publisher.wait_for(lambda m: m.get("pipe") == "track_lobby" and m.get("event") == "unsubscription", timeout=15)
        assert left["data"]["uuid"] == joined["data"]["uuid"]
    finally:
        stop_all(tabs[:2])


def kill(tab, how):
    page = tab.page
    if how == "closed":
        page.close(run_before_unload=False)
    elif how == "navigated":
        page.goto("about:blank")
    elif how == "crashed":
        # The renderer process dies (CDP "Page.crash" would never answer; a typed debug URL does).
        page.context.new_cdp_session(page).send("Page.navigate", {"url": "chrome://crash", "transitionType": "typed"})
    elif how == "frozen":
        # The renderer's main thread spins: no timers, no messages, the lock still held.
        page.evaluate("setTimeout(() => { const t = Date.now() + 8000; while (Date.now() < t) {} }, 0)")
    elif how == "stolen":
        raise AssertionError("handled by the caller")


@pytest.mark.parametrize("mode, how", [
    ("locks", "closed"), ("locks", "navigated"), ("locks", "crashed"), ("locks", "frozen"), ("locks", "stolen"),
    ("nolocks", "closed"), ("nolocks", "crashed"), ("nolocks", "frozen"),
    ("mpy", "closed"), ("mpy", "crashed"), ("mpy", "frozen"),
])
def test_failover_keeps_every_message_once(shared_context, comet_server, dev_id, mode, how):
    store = Store(comet_server.db)
    store.set_pipe_length(dev_id, "web_steady", 1000)
    store.close()
    group = [shared_context.open(HARNESS[mode]) for _ in range(3)]
    start_all(group, dev_id, comet_server, channel="web_steady")
    steady = None
    try:
        master = wait_one_master(group, comet_server, dev_id)
        others = [t for t in group if t is not master]
        steady = SteadyPublisher(comet_server, dev_id, "web_steady")
        steady.start()
        for tab in others:
            tab.wait("len(tagged('got')) >= 10")
        if how == "stolen":
            others[0].run("c._coordinator._master_lock.release(); c._coordinator._request_master_lock(steal=True)")
        else:
            kill(master, how)
        new_master = wait_one_master(others, comet_server, dev_id, timeout=30, others=1)
        for tab in others:
            tab.wait(f"len(tagged('got')) >= {steady.sent + 10}", timeout_ms=30_000)
        sent = steady.stop()
        steady = None
        for tab in others:
            tab.wait(f"len(tagged('got')) >= {sent}", timeout_ms=20_000)
            got = [m["data"] for m in tab.eval("tagged('got')")]
            assert got == list(range(sent)), f"{how}: lost {sorted(set(range(sent)) - set(got))[:10]}, dups {len(got) - len(set(got))}"
        if how in ("frozen", "stolen"):
            # The old master wakes (or is robbed), notices, steps down: one connection remains.
            master.wait("c.isMaster() is False", timeout_ms=20_000)
            assert connections(comet_server, dev_id) == 1  # the new master's (the publisher left)
            assert new_master.eval("c.isMaster()") is True
    finally:
        if steady is not None:
            steady.stop()
        stop_all(group)
        for tab in group:
            if not tab.page.is_closed():
                tab.page.close()
