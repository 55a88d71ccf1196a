"""comet_py with ``node: [a, b, c]`` against a real 3-node cluster: kill -9 the node the master
tab is connected to, and the master moves to the next node of the list and misses nothing.

Real redis-server, real comet_server nodes (subprocesses), two real tabs in Debian Chromium (the
master and one follower, so the relay is part of the path). The page is served by node a, which
may itself be the node that dies: a loaded page needs nothing more from it.
"""

import contextlib
import json
import time
import urllib.request

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from comet_server.redis_store import RedisStore
from tests.e2e.test_tabs import SteadyPublisher, masters, stop_all
from tests.support.browser import OfflineContext
from tests.support.cluster import Cluster
from tests.support.redis_server import have_redis_server
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser
if not have_redis_server():  # scripts/setup.sh installs it
    pytest.skip("redis-server is not installed (run scripts/setup.sh)", allow_module_level=True)

DEV = 5151
PIPE = "web_steady"


@pytest.fixture(scope="module")
def nodes():
    cluster = Cluster(("a", "b", "c"), test_pages=True)  # node a serves the harness page
    try:
        yield list(cluster.nodes.values())
    finally:
        cluster.close()


def connections(node: ServerProcess) -> int:
    """The node's own WebSocket connections of DEV (0 when the node is down)."""
    try:
        with urllib.request.urlopen(f"{node.url}/stats?dev_id={DEV}", timeout=5) as r:
            return json.load(r)["connections"]
    except OSError:
        return 0


def node_of_the_master(nodes: list[ServerProcess], tabs, timeout: float = 30.0) -> int:
    """Index of the one node that holds the browser's one connection (and the tabs agree on
    one connected master)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [connections(n) for n in nodes]
        flags = masters(tabs)
        if sorted(counts) == [0, 0, 1] and flags.count(True) == 1 and \
                tabs[flags.index(True)].eval("c.state") == "connected":
            return counts.index(1)
        time.sleep(0.2)
    raise AssertionError(f"connections per node {[connections(n) for n in nodes]}, masters {masters(tabs)}")


def test_the_master_moves_to_the_next_node_when_its_node_dies_and_loses_nothing(browser, nodes):
    RedisStore(nodes[0].redis_url).set_pipe_length(DEV, PIPE, 1000)  # history on: recovery by marker
    ctx = OfflineContext(browser, nodes[0].url)
    steady = None
    try:
        tabs = [ctx.open(), ctx.open()]
        opts = {"dev_id": DEV, "node": [f"127.0.0.1:{n.port}" for n in nodes]}
        for tab in tabs:
            tab.run(f"log.clear()\nc = CometApi(); c.start({opts!r})\nc.subscription({PIPE!r}, rec('got'))")
        first = node_of_the_master(nodes, tabs)
        survivor = nodes[(first + 2) % 3]  # publishes through a node that stays up
        steady = SteadyPublisher(survivor, DEV, PIPE)
        steady.start()
        for tab in tabs:
            tab.wait("len(tagged('got')) >= 10", timeout_ms=30_000)

        nodes[first].kill()  # SIGKILL: no close frame, the socket just dies

        for tab in tabs:
            tab.wait(f"len(tagged('got')) >= {steady.sent + 10}", timeout_ms=40_000)
        sent = steady.stop()
        steady = None
        for tab in tabs:
            with contextlib.suppress(PlaywrightTimeout):  # the assert below says what is missing
                tab.wait(f"len(tagged('got')) >= {sent}", timeout_ms=20_000)
            got = [m["data"] for m in tab.eval("tagged('got')")]
            assert got == list(range(sent)), \
                f"lost {sorted(set(range(sent)) - set(got))[:10]}, doubled {len(got) - len(set(got))}"
        # the next node of the list, not any node; and still one connection for the browser
        moved_to = (first + 1) % 3  # (the publisher has left)
        assert [connections(n) for n in nodes] == [1 if i == moved_to else 0 for i in range(3)]
        stop_all(tabs)
    finally:
        if steady is not None:
            steady.stop()
        ctx.close()
