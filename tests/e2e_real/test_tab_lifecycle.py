"""comet_py in Chromium as users run it: background tabs with intensive throttling, Back and
Forward through the back/forward cache, a network that goes away, a frozen master, a worker.

The hidden-master scenario runs for 90 s; the other scenarios run meanwhile in their own tabs
(other dev_ids) of the same window, and its assertions come last. Figures are printed (-s).
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.support.rawclient import RawClient
from tests.support.real_browser import PLAYWRIGHT_DISABLERS

pytestmark = [pytest.mark.real_browser, pytest.mark.browser]

HIDDEN_SECONDS = 90


def numbers(tab, channel):
    """The ``n`` of every message the tab's callbacks got on ``channel``, in arrival order."""
    out = []
    for m in tab.eval(f"tagged({channel!r})"):
        data = m["data"] if isinstance(m["data"], dict) else json.loads(m["data"])
        out.append(data["n"])
    return out


def wait_numbers(tab, channel, expected, timeout=20.0):
    deadline = time.monotonic() + timeout
    while sorted(set(numbers(tab, channel))) != sorted(expected):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert numbers(tab, channel) == expected or sorted(numbers(tab, channel)) == sorted(expected), \
        f"got {numbers(tab, channel)}, expected each of {expected} once"


def states(tab):
    return [e["s"] for e in tab.eval("tagged('state')")]


def first_state_after(tab, state, t_ms):
    """Date.now() when the tab first reported ``state`` at or after ``t_ms``."""
    return next((e["t"] for e in tab.eval("tagged('state')") if e["s"] == state and e["t"] >= t_ms), None)


def assert_closed_while_away(tab):
    """The state log says 'closed' after the first 'connected' (pagehide) and ends connected."""
    seen = states(tab)
    assert "connected" in seen and "closed" in seen[seen.index("connected"):] and seen[-1] == "connected", \
        f"states {seen}"


def connected_again(tab, since_ms):
    """The tab reports 'connected' anew after its pageshow (not a stale state from before)."""
    tab.wait(f"[e for e in tagged('state') if e['s'] == 'connected' and e['t'] >= {since_ms}]")


def figure(text):
    print(f"\n[real_browser] {text}", flush=True)


class HiddenMaster:
    """Three tabs of one dev_id; the master hidden from the start; 1 msg/s from a backend."""

    def __init__(self, lane):
        self.lane = lane
        self.dev_id = lane.dev_id()
        self.tabs = [lane.open() for _ in range(3)]
        self.master, self.follower, self.idle = self.tabs
        self.watcher = RawClient(lane.server.ws_url(dev_id=self.dev_id))
        self.watcher.subscribe("track_lobby")
        lane.start(self.tabs, self.dev_id, channels=("web_feed", "track_lobby"))
        lane.one_master(self.tabs, self.dev_id, others=1)
        lane.front(self.follower)  # the master (and the idle tab) go to the background
        # A plain chained setTimeout(100) in the idle hidden tab: intensive throttling shows here.
        self.idle.page.evaluate("""() => { window.__gaps = []; let last = window.__lastRun = performance.now();
            const step = () => { const now = performance.now(); window.__gaps.push(now - last); last = window.__lastRun = now; setTimeout(step, 100); };
            setTimeout(step, 100); }""")
        self.hidden_at = time.monotonic()
        self.delivered: list[int] = []
        self.stopping = threading.Event()
        self.publisher = threading.Thread(target=self._publish, daemon=True)
        self.publisher.start()

    def _publish(self):
        for n in range(HIDDEN_SECONDS):
            if self.stopping.is_set():
                return
            self.delivered.append(self.lane.publish(self.dev_id, "web_feed", "item", {"n": n}))
            time.sleep(max(0.0, self.hidden_at + n + 1 - time.monotonic()))

    def watcher_frames(self):
        frames = []
        while True:
            try:
                frames.append(json.loads(self.watcher.ws.recv(timeout=1.0)))
            except TimeoutError:
                return self.watcher.frames + frames


@pytest.fixture(scope="module")
def hidden_master(lane):
    scenario = HiddenMaster(lane)
    yield scenario
    scenario.stopping.set()
    scenario.publisher.join()
    scenario.watcher.close()
    lane.stop(scenario.tabs)


def test_tabs_share_one_window_and_only_the_front_one_is_visible(lane, hidden_master):
    cmdline = lane.chromium.command_line()
    assert "--enable-features=IntensiveWakeUpThrottling" in cmdline
    assert not [flag for flag in PLAYWRIGHT_DISABLERS if flag in cmdline]
    browser_cdp = lane.chromium.browser.new_browser_cdp_session()
    windows = {browser_cdp.send("Browser.getWindowForTarget",
                                {"targetId": t.cdp.send("Target.getTargetInfo")["targetInfo"]["targetId"]})["windowId"]
               for t in hidden_master.tabs}
    browser_cdp.detach()
    assert len(windows) == 1
    assert [t.visibility() for t in hidden_master.tabs] == ["hidden", "visible", "hidden"]
    assert len(lane.visible_tabs()) == 1


def test_back_forward_cache_restores_a_follower_and_the_master(lane, hidden_master):
    dev_id = lane.dev_id()
    lane.keep_history(dev_id, "web_bf")
    tabs = [lane.open() for _ in range(3)]
    master, follower, third = tabs
    lane.start(tabs, dev_id, channels=("web_bf",))
    assert lane.one_master(tabs, dev_id) is master
    lane.publish(dev_id, "web_bf", "m", {"n": 0})
    for tab in tabs:
        wait_numbers(tab, "web_bf", [0])

    def away_and_back(tab, while_away):
        lane.front(tab)
        tab.page.goto(lane.server.url + "/tests/pages/away.html")
        while_away()
        tab.page.go_back(wait_until="commit")
        deadline = time.monotonic() + 15
        while not tab.pageshows() or tab.pageshows()[-1][0] is not True:
            assert time.monotonic() < deadline, \
                f"not restored from the back/forward cache: {tab.bfcache_not_used[-1:]}"
            time.sleep(0.1)
        # the same document as before (a reload would have started a new one)
        assert len(tab.pageshows()) == 2
        return tab.pageshows()[-1][1]

    # A follower goes away and comes back; it missed message 1.
    shown = away_and_back(follower, lambda: lane.publish(dev_id, "web_bf", "m", {"n": 1}))
    connected_again(follower, shown)
    figure(f"bfcache: restored follower connected {first_state_after(follower, 'connected', shown) - shown} ms after pageshow")
    lane.publish(dev_id, "web_bf", "m", {"n": 2})
    for tab in tabs:
        wait_numbers(tab, "web_bf", [0, 1, 2])
    assert lane.one_master(tabs, dev_id) is master
    assert_closed_while_away(follower)

    # The master goes away: another tab takes over; back, it is one follower among the others.
    def master_away():
        new_master = lane.one_master([follower, third], dev_id)
        lane.publish(dev_id, "web_bf", "m", {"n": 3})
        wait_numbers(new_master, "web_bf", [0, 1, 2, 3])
    shown = away_and_back(master, master_away)
    connected_again(master, shown)
    figure(f"bfcache: restored master (now a follower) connected {first_state_after(master, 'connected', shown) - shown} ms after pageshow")
    assert lane.one_master(tabs, dev_id) is not master
    lane.publish(dev_id, "web_bf", "m", {"n": 4})
    for tab in tabs:
        wait_numbers(tab, "web_bf", [0, 1, 2, 3, 4])
    assert_closed_while_away(master)
    lane.close(tabs, front=hidden_master.follower)


def test_cut_network_is_reported_and_online_reconnects_at_once(lane, hidden_master):
    dev_id = lane.dev_id()
    lane.keep_history(dev_id, "web_out")
    proxy = lane.proxy()
    tabs = [lane.open() for _ in range(2)]
    lane.start(tabs, dev_id, channels=("web_out",), port=proxy.port)
    master = lane.one_master(tabs, dev_id)
    lane.publish(dev_id, "web_out", "m", {"n": 0})
    for tab in tabs:
        wait_numbers(tab, "web_out", [0])

    for tab in tabs:
        tab.cdp.send("Network.enable")

    def network(online):
        for tab in tabs:
            tab.cdp.send("Network.emulateNetworkConditions",
                         {"offline": not online, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})

    proxy.cut()  # silent: the socket stays open, nothing gets through, no 'offline' event
    cut_at = time.monotonic()
    master.wait("c.state == 'disconnected'", 15_000)
    figure(f"outage: 'disconnected' reported {time.monotonic() - cut_at:.2f} s after the path was cut "
           "(no offline event)")
    network(online=False)  # now the browser knows too: 'offline' in every tab
    for tab in tabs:
        tab.wait("js.navigator.onLine == False")
    for n in (1, 2):
        lane.publish(dev_id, "web_out", "m", {"n": n})
    # A 20 s outage: reconnect attempts have failed and the backoff wait has grown past the
    # liveness bound below, which only an immediate reconnect on 'online' meets.
    time.sleep(max(0.0, cut_at + 12 - time.monotonic()))
    proxy.restore()  # the path is back, but the browser still says offline
    time.sleep(max(0.0, cut_at + 20 - time.monotonic()))
    network(online=True)
    online_at = time.monotonic()
    new_master = lane.one_master(tabs, dev_id, timeout=5)
    online_ms = new_master.network_events()[-1]
    assert online_ms[0] == "online"
    figure(f"outage: connected again {first_state_after(new_master, 'connected', online_ms[1]) - online_ms[1]} ms "
           "after the 'online' event")
    for tab in tabs:
        wait_numbers(tab, "web_out", [0, 1, 2], timeout=10)
    figure(f"outage: every missed message in every tab {time.monotonic() - online_at:.2f} s after 'online' (test clock)")
    lane.close(tabs, front=hidden_master.follower)


def test_frozen_master_is_taken_over_and_steps_down_when_it_wakes(lane, hidden_master):
    dev_id = lane.dev_id()
    lane.keep_history(dev_id, "web_frz")
    tabs = [lane.open() for _ in range(3)]
    frozen, taker, third = tabs
    lane.start(tabs, dev_id, channels=("web_frz",))
    assert lane.one_master(tabs, dev_id) is frozen
    lane.front(frozen)
    lane.publish(dev_id, "web_frz", "m", {"n": 0})
    for tab in tabs:
        wait_numbers(tab, "web_frz", [0])
    frozen.page.evaluate("""() => { setTimeout(() => { const end = performance.now() + 12000;
        while (performance.now() < end) {} window.__woke = performance.timeOrigin + performance.now(); }, 0); }""")
    time.sleep(1.0)
    switched = time.monotonic()
    lane.front(taker, busy=(frozen,))
    taker.wait("c.isMaster() and c.state == 'connected'", 20_000)
    figure(f"frozen master: taken over {time.monotonic() - switched:.2f} s after the switch to another tab")
    lane.publish(dev_id, "web_frz", "m", {"n": 1})
    for tab in (taker, third):
        wait_numbers(tab, "web_frz", [0, 1])
    frozen.page.wait_for_function("window.__woke !== undefined", timeout=30_000)
    frozen.wait("not c.isMaster()", 10_000)
    woke = frozen.page.evaluate("window.__woke")
    stepped = frozen.page.evaluate("Date.now()")
    figure(f"frozen master: stepped down within {(stepped - woke) / 1000:.2f} s of waking")
    assert lane.one_master(tabs, dev_id) is taker
    lane.publish(dev_id, "web_frz", "m", {"n": 2})
    for tab in tabs:
        wait_numbers(tab, "web_frz", [0, 1, 2])
    lane.close(tabs, front=hidden_master.follower)


def blocked_ms(tab):
    startup = tab.startup
    return sum(startup["longtasks"]), max(startup["frameGaps"], default=0.0), startup["ready_ms"]


def test_comet_py_runs_in_a_pyscript_worker_and_keeps_the_page_responsive(lane, hidden_master):
    dev_id = lane.dev_id()
    page_tab = lane.open()
    worker_tab = lane.open("/tests/pages/worker.html", worker=True)
    for name, tab in (("main-thread page", page_tab), ("worker page", worker_tab)):
        long_total, worst_gap, ready = blocked_ms(tab)
        figure(f"start-up, {name}: long tasks {long_total:.0f} ms in all, longest frame gap "
               f"{worst_gap:.0f} ms, Python ready after {ready:.0f} ms")
    lane.start([worker_tab, page_tab], dev_id, channels=("web_wk",))
    assert lane.one_master([worker_tab, page_tab], dev_id) is worker_tab
    lane.publish(dev_id, "web_wk", "m", {"n": 0})
    for tab in (worker_tab, page_tab):
        wait_numbers(tab, "web_wk", [0])
    lane.close([worker_tab, page_tab], front=hidden_master.follower)


def test_intensive_throttling_is_really_on(lane, hidden_master):
    """A chained setTimeout(100) in a tab hidden for over a minute waits tens of seconds."""
    # Intensive throttling starts 10 s after hiding; wake-ups come on minute boundaries, so
    # within 95 s one wait of 20 s or more (most often ~60 s) is sure to have begun and ended.
    time.sleep(max(0.0, hidden_master.hidden_at + HIDDEN_SECONDS + 5 - time.monotonic()))
    assert hidden_master.idle.visibility_changes() == ["hidden"]  # hidden all along
    gaps = hidden_master.idle.page.evaluate("window.__gaps.concat([performance.now() - window.__lastRun])")
    figure(f"throttling: setTimeout(100) chain in a hidden tab, {len(gaps)} runs, longest gap {max(gaps) / 1000:.1f} s")
    assert max(gaps) >= 20_000


def test_hidden_master_keeps_its_connection_through_throttling_and_tab_switches(lane, hidden_master):
    s = hidden_master
    s.publisher.join(timeout=HIDDEN_SECONDS + 30)
    # Hidden all along: one change, when the next tab opened in front of it.
    assert s.master.visibility_changes() == ["hidden"]
    switch_times = []
    for tab in (s.master, s.idle, s.follower, s.idle, s.master):
        t0 = time.monotonic()
        lane.front(tab)
        switch_times.append(time.monotonic() - t0)
        time.sleep(2.0)
    expected = list(range(HIDDEN_SECONDS))
    for tab in s.tabs:
        wait_numbers(tab, "web_feed", expected)
        assert numbers(tab, "web_feed") == expected  # in order, each once
    assert s.delivered == [1] * HIDDEN_SECONDS  # one connection received every message
    masters = [[e["is"] for e in tab.eval("tagged('master')")] for tab in s.tabs]
    assert masters == [[True], [], []], f"master changes: {masters}"
    assert [len(tab.websockets) for tab in s.tabs] == [1, 0, 0], "a tab reconnected"
    assert lane.one_master(s.tabs, s.dev_id, others=1) is s.master
    presence = [(f["event"]) for f in s.watcher_frames() if f.get("pipe") == "track_lobby"]
    assert presence == ["subscription"], f"presence seen by another client: {presence}"
