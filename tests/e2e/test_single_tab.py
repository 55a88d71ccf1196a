"""comet_py in one tab against comet_server, in Debian Chromium, offline.

One harness tab serves the whole module (Pyodide starts once); each test makes its own
CometApi instances under a fresh dev_id, so their channels, users and history are their own.
"""

import time

import jwt
import pytest

from comet_server.store import Store
from tests.support.browser import PyError
from tests.support.rawclient import RawClient


def start(tab, name, dev_id, server, **opts):
    """Make a CometApi called ``name`` in the tab and start it; waits until it is connected."""
    opts = {"dev_id": dev_id, "node": f"127.0.0.1:{server.port}", **opts}
    tab.run(f"{name} = CometApi()\nstates_{name} = []\n{name}.on_state(lambda s, d: states_{name}.append(s))\n{name}.start({opts!r})")
    tab.wait(f"{name}.state == 'connected'")


def seed(server, fn):
    store = Store(server.db)
    try:
        fn(store)
    finally:
        store.close()


@pytest.fixture
def raw(comet_server, dev_id):
    clients = []

    def make(**kw):
        client = RawClient(comet_server.ws_url(dev_id=dev_id, **kw))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_lone_tab_is_master_and_receives_a_channel_message(tab, comet_server, dev_id, raw):
    start(tab, "a", dev_id, comet_server)
    assert tab.eval("a.isMaster()") is True
    tab.run("a.subscription('web_room', rec('room'))")
    publisher = raw()
    tab.wait("a._coordinator is not None")
    time.sleep(0.3)  # the subscription frame is sent at once; give it a moment to land on the server
    publisher.publish("web_room", "said", {"text": "it's \"quoted\" \\ ok"})
    got = tab.wait("tagged('room')")
    assert got[0]["data"] == {"text": "it's \"quoted\" \\ ok"}
    assert got[0]["server_info"]["pipe"] == "web_room"
    assert got[0]["server_info"]["event"] == "said"
    assert got[0]["server_info"]["user_id"] == 0
    assert got[0]["server_info"]["history"] is False
