"""The real-browser lane: one headed Chromium under Xvfb (tabs of one window, intensive
throttling after 10 s, back/forward cache on), one comet_server, and a TCP proxy in front of it.

Pages are loaded from the server directly; a test that cuts the network makes its own TCP proxy
and points comet_py at it (``node``), so that the cut reaches only its own tabs.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
import urllib.request
from typing import Any

import pytest

from comet_server.store import Store
from tests.support.browser import PY_READY_TIMEOUT_MS, Tab
from tests.support.real_browser import RealChromium, Xvfb
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

# Recorded in every tab from its first script on: pageshow events (persisted or not), changes
# of visibility, online/offline events (with Date.now()), and the
# main thread's long tasks and longest frame gaps (start-up blocking figures).
PAGE_PROBE = """
window.__lane = {pageshows: [], longtasks: [], frameGaps: [], visibility: [], network: []};
addEventListener('pageshow', e => window.__lane.pageshows.push([e.persisted, Date.now()]));
addEventListener('online', () => window.__lane.network.push(['online', Date.now()]));
addEventListener('offline', () => window.__lane.network.push(['offline', Date.now()]));
document.addEventListener('visibilitychange', () => window.__lane.visibility.push(document.visibilityState));
try {
  new PerformanceObserver(list => { for (const e of list.getEntries()) window.__lane.longtasks.push(e.duration); })
    .observe({type: 'longtask', buffered: true});
} catch (e) {}
(() => {
  let last = null;
  const frame = t => {
    if (last !== null && t - last > 50) window.__lane.frameGaps.push(t - last);
    last = t;
    if (!window.__lane.stopFrames) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
})();
"""


class RealTab(Tab):
    """A harness tab of the real browser. Waits poll from Python: in a hidden tab, timers run
    once a minute, so Playwright's in-page polling would be throttled too."""

    def __init__(self, page: Any) -> None:
        super().__init__(page)
        self.websockets: list[str] = []
        self.bfcache_not_used: list[Any] = []
        page.on("websocket", lambda ws: self.websockets.append(ws.url))
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Page.enable")
        self.cdp.on("Page.backForwardCacheNotUsed", lambda event: self.bfcache_not_used.append(event))

    def wait(self, expr: str, timeout_ms: int = 15_000) -> Any:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            value = self.eval(f"bool({expr})")
            if value:
                return self.eval(expr)
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout_ms} ms: {expr}")
            time.sleep(0.05)

    def visibility(self) -> str:
        return self.page.evaluate("document.visibilityState")

    def visibility_changes(self) -> list[str]:
        return self.page.evaluate("window.__lane.visibility")

    def pageshows(self) -> list[list]:
        """[persisted, Date.now()] of each pageshow."""
        return self.page.evaluate("window.__lane.pageshows")

    def network_events(self) -> list[list]:
        """[type, Date.now()] of each online/offline event."""
        return self.page.evaluate("window.__lane.network")


class Lane:
    def __init__(self, chromium: RealChromium, server: ServerProcess) -> None:
        self.chromium = chromium
        self.server = server
        self.tabs: list[RealTab] = []
        self._proxies: list[TcpProxy] = []
        self._dev_ids = itertools.count(5000)

    def dev_id(self) -> int:
        return next(self._dev_ids)

    def proxy(self) -> TcpProxy:
        """A TCP proxy to the server, for one test's tabs (closed at the end of the session)."""
        proxy = TcpProxy(self.server.port)
        self._proxies.append(proxy)
        return proxy

    def options(self, dev_id: int, port: int | None = None) -> dict:
        return {"dev_id": dev_id, "node": f"127.0.0.1:{port or self.server.port}"}

    def open(self, path: str = "/tests/pages/harness.html", *, worker: bool = False) -> RealTab:
        """A new tab in the window, in front until its Python is ready."""
        page = self.chromium.new_tab("")
        page.add_init_script(PAGE_PROBE)
        page.goto(self.server.url + path)
        tab = RealTab(page)
        if worker:  # worker.html: py_exec/py_eval answer with promises once the worker is ready
            page.wait_for_function("window.py_eval !== undefined")
            deadline = time.monotonic() + PY_READY_TIMEOUT_MS / 1000
            while True:
                try:
                    if tab.eval("True"):
                        break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.2)
        else:
            page.wait_for_function("window.pyReady === true", timeout=PY_READY_TIMEOUT_MS)
        tab.startup = page.evaluate("window.__lane.stopFrames = true; "
                                    "({ready_ms: performance.now(), longtasks: window.__lane.longtasks, frameGaps: window.__lane.frameGaps})")
        self.tabs.append(tab)
        return tab

    def visible_tabs(self, busy: tuple[RealTab, ...] = ()) -> list[Any]:
        """The visible tabs among all the window's tabs except ``busy`` ones (whose main thread
        is blocked: they could not answer)."""
        skip = {id(t.page) for t in busy}
        return [p for p in self.chromium.context.pages
                if id(p) not in skip and p.evaluate("document.visibilityState") == "visible"]

    def front(self, tab: RealTab, busy: tuple[RealTab, ...] = ()) -> None:
        """Switch to ``tab`` (as a click on it would); then exactly one tab is visible."""
        tab.page.bring_to_front()
        deadline = time.monotonic() + 10
        while tab.visibility() != "visible" or len(self.visible_tabs(busy)) != 1:
            assert time.monotonic() < deadline, f"{len(self.visible_tabs(busy))} visible tabs"
            time.sleep(0.05)

    def publish(self, dev_id: int, pipe: str, event: str, message: Any) -> int:
        """What a backend does: POST /api/publish (to the server itself, not through the proxy)."""
        body = json.dumps({"pipe": pipe, "event": event, "message": message}).encode()
        auth = base64.b64encode(f"{dev_id}:{self.server.password}".encode()).decode()
        req = urllib.request.Request(f"{self.server.url}/api/publish", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)["delivered"]

    def connections(self, dev_id: int) -> int:
        with urllib.request.urlopen(f"{self.server.url}/stats?dev_id={dev_id}", timeout=10) as r:
            return json.load(r)["connections"]

    def keep_history(self, dev_id: int, pipe: str, length: int = 1000) -> None:
        store = Store(self.server.db)
        store.set_pipe_length(dev_id, pipe, length)
        store.close()

    def start(self, tabs: list[RealTab], dev_id: int, *, channels: tuple[str, ...] = (),
              port: int | None = None) -> None:
        """CometApi ``c`` in each tab, in order (the first becomes master), each channel logged
        under its own name; master changes under 'master', states under 'state'."""
        for tab in tabs:
            code = (f"log.clear()\nc = CometApi()\nc.on_master(lambda m: log.append({{'tag': 'master', 'is': m}}))\n"
                    "c.on_state(lambda s, d: log.append({'tag': 'state', 's': s, 't': js.Date.now()}))\n"
                    f"c.start({self.options(dev_id, port)!r})\n")
            code += "".join(f"c.subscription({ch!r}, rec({ch!r}))\n" for ch in channels)
            tab.run(code)
            if tab is tabs[0]:
                tab.wait("c.isMaster() and c.state == 'connected'", 30_000)

    def one_master(self, tabs: list[RealTab], dev_id: int, timeout: float = 20.0, others: int = 0) -> RealTab:
        """Exactly one master, connected, and one server connection (plus ``others``)."""
        deadline = time.monotonic() + timeout
        while True:
            flags = [t.eval("c.isMaster()") for t in tabs]
            if flags.count(True) == 1 and self.connections(dev_id) == 1 + others:
                master = tabs[flags.index(True)]
                if master.eval("c.state") == "connected":
                    return master
            if time.monotonic() > deadline:
                raise AssertionError(f"masters {flags}, connections {self.connections(dev_id)}")
            time.sleep(0.1)

    def stop(self, tabs: list[RealTab]) -> None:
        for tab in tabs:
            try:
                tab.run("c.stop()")
            except Exception:  # a tab whose comet_py never started
                pass

    def close(self, tabs: list[RealTab], *, front: RealTab) -> None:
        """Stop comet_py in ``tabs`` and close them with ``front`` in front: closing the active
        tab would make the browser show another one, maybe a tab that must stay hidden."""
        self.stop(tabs)
        self.front(front)
        for tab in tabs:
            tab.page.close()
            self.tabs.remove(tab)


@pytest.fixture(scope="session")
def lane(playwright):
    display = Xvfb()
    server = ServerProcess(test_pages=True).start()
    chromium = RealChromium(playwright, display.display)
    the_lane = Lane(chromium, server)
    try:
        yield the_lane
        assert not chromium.left_loopback, f"requests left 127.0.0.1: {chromium.left_loopback}"
    finally:
        chromium.close()
        for proxy in the_lane._proxies:
            proxy.close()
        server.close()
        display.close()
