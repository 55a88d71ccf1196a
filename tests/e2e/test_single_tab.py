"""comet_py in one tab against comet_server, in Debian Chromium, offline.

One harness tab serves the whole module (Pyodide starts once); each test makes its own
CometApi instances under a fresh dev_id, so their channels, users and history are their own.
"""

import time

import jwt
import pytest

from comet_server.store import Store
from tests.support.browser import PyError
from tests.support.rawclient import RawClient, wait_subscribers


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
    assert tab.eval("a.isAuthorized()") is False  # anonymous: answered, not authorized
    tab.run("a.subscription('web_room', rec('room'))")
    publisher = raw()
    wait_subscribers(publisher, "web_room", 1)
    publisher.publish("web_room", "said", {"text": "it's \"quoted\" \\ ok"})
    got = tab.wait("tagged('room')")
    assert got[0]["data"] == {"text": "it's \"quoted\" \\ ok"}
    info = got[0]["server_info"]
    assert (info["pipe"], info["event"], info["user_id"], info["history"]) == ("web_room", "said", 0, False)
    assert tab.eval("states_a[:2]") == ["connecting", "connected"]


def test_event_filter_and_catch_all_callbacks(tab, comet_server, dev_id, raw):
    start(tab, "f", dev_id, comet_server)
    tab.run("f.subscription('web_ev.red', rec('red')); f.subscription('web_ev', rec('any')); f.subscription(rec('all'))")
    publisher = raw()
    wait_subscribers(publisher, "web_ev", 1)
    for event in ("red", "blue", "red"):
        publisher.publish("web_ev", event, event)
    tab.wait("len(tagged('any')) == 3 and len(tagged('all')) >= 3")
    assert [m["data"] for m in tab.eval("tagged('red')")] == ["red", "red"]
    assert [m["server_info"]["event"] for m in tab.eval("tagged('any')")] == ["red", "blue", "red"]


def test_web_pipe_send_between_two_users_with_delivery_report_and_anonymous_send(new_context, comet_server, dev_id):
    def seed_users(store):
        store.set_user_hash(dev_id, 11, "hashEleven")
        store.set_user_hash(dev_id, 12, "hashTwelve")
    seed(comet_server, seed_users)
    alice, bob = new_context().open(), new_context().open()
    start(alice, "me", dev_id, comet_server, user_id=11, user_key="hashEleven")
    start(bob, "me", dev_id, comet_server, user_id=12, user_key="hashTwelve")
    bob.run("me.subscription('web_talk', rec('talk'))")
    alice.run("me.subscription('#web_talk', rec('report'))")
    alice.wait("me.isAuthorized() is True")
    bob.wait("len(me._registry.server_channels()) == 1")
    bob.wait("me._coordinator.role.session._channels == frozenset({'web_talk'})")
    alice.run("me.web_pipe_send('web_talk', 'hello', {'t': 'hi bob'})")
    got = bob.wait("tagged('talk')")
    assert got[0]["data"] == {"t": "hi bob"} and got[0]["server_info"]["user_id"] == 11
    report = alice.wait("tagged('report')")
    assert report[0]["data"]["number_messages"] == 1
    alice.run("me.web_pipe_send('@web_talk', 'hello', 'who am I')")
    got = bob.wait("len(tagged('talk')) == 2 and tagged('talk')")
    assert got[1]["data"] == "who am I" and got[1]["server_info"]["user_id"] == 0


def publish_history(comet_server, dev_id, raw):
    """Three messages stored in web_hist's history, before the tab asks for it."""
    seed(comet_server, lambda store: store.set_pipe_length(dev_id, "web_hist", 10))
    publisher = raw()
    for i in range(3):
        publisher.publish("web_hist", "e", {"i": i})


def check_history(tab):
    """The three arrive in order, flagged as history, with increasing markers."""
    items = tab.wait("len(tagged('hist')) == 3 and tagged('hist')")
    assert [m["data"] for m in items] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert all(m["server_info"]["history"] is True for m in items)
    markers = [int(m["server_info"]["marker"]) for m in items]
    assert markers == sorted(markers) and len(set(markers)) == 3


def test_history_arrives_flagged_with_markers(tab, comet_server, dev_id, raw):
    publish_history(comet_server, dev_id, raw)
    start(tab, "h", dev_id, comet_server)
    tab.run("h.subscription('web_hist', rec('hist'))")
    assert tab.run("await h.get_pipe_log('web_hist')") == 3
    check_history(tab)


def test_count_users_in_pipe_callback_and_await_forms(tab, comet_server, dev_id, raw):
    others = [raw(), raw()]
    for other in others:
        other.subscribe("web_count", "track_count")
    start(tab, "c", dev_id, comet_server)
    assert tab.run("await c.count_users_in_pipe('web_count')") == 2
    tab.run("c.count_users_in_pipe('track_count', lambda res: log.append({'tag': 'n', 'n': res.data.user_in_pipe, 'd': res['data']['user_in_pipe']}))")
    assert tab.wait("tagged('n')")[0] == {"tag": "n", "n": 2, "d": 2}


def test_auth_callbacks_and_is_authorized_for_hash_and_jwt(tab, comet_server, dev_id):
    seed(comet_server, lambda store: store.set_user_hash(dev_id, 21, "goodHash21"))
    secret = comet_server.password + str(dev_id)
    good = jwt.encode({"user_id": 22, "exp": int(time.time()) + 3600}, secret, algorithm="HS256")
    expired = jwt.encode({"user_id": 22, "exp": int(time.time()) - 10}, secret, algorithm="HS256")
    cases = {"hash_ok": (21, "goodHash21", True), "hash_bad": (21, "wrongHash", False),
             "jwt_ok": (22, good, True), "jwt_expired": (22, expired, False)}
    for name, (uid, key, expected) in cases.items():
        tab.run(f"{name} = CometApi(); auth_{name} = []\n"
                f"{name}.onAuthSuccess(lambda: auth_{name}.append(True))\n"
                f"{name}.onAuthFalill(lambda: auth_{name}.append(False))\n"
                f"assert {name}.isAuthorized() is None\n"
                f"{name}.start(dev_id={dev_id}, user_id={uid}, user_key={key!r}, node='127.0.0.1:{comet_server.port}')")
        assert tab.wait(f"auth_{name}") == [expected], name
        assert tab.eval(f"{name}.isAuthorized()") is expected, name
        tab.run(f"{name}.stop()")


def test_presence_track_and_personal_messages(tab, comet_server, dev_id, raw):
    seed(comet_server, lambda store: store.set_user_hash(dev_id, 31, "hash31"))
    start(tab, "p", dev_id, comet_server)
    tab.run("p.subscription('user_status_31.online', rec('on')); p.subscription('user_status_31.offline', rec('off'))\n"
            "p.subscription('track_room.subscription', rec('joined')); p.subscription('track_room.unsubscription', rec('left'))")
    watcher = raw()
    wait_subscribers(watcher, "track_room", 1)
    user = raw(user_id=31, session="hash31")
    assert user.server_info["authorized"] is True
    user.subscribe("track_room")
    assert tab.wait("tagged('on')")[0]["server_info"]["pipe"] == "user_status_31"
    assert tab.wait("tagged('joined')")[0]["data"]["user_id"] == 31
    user.close()
    tab.wait("tagged('off') and tagged('left')")
    assert tab.eval("tagged('left')")[0]["data"]["user_id"] == 31


def test_personal_messages_reach_only_that_user(new_context, comet_server, dev_id):
    import pymysql

    seed(comet_server, lambda store: (store.set_user_hash(dev_id, 41, "hash41"), store.set_user_hash(dev_id, 42, "hash42")))
    first, second = new_context().open(), new_context().open()
    start(first, "u", dev_id, comet_server, user_id=41, user_key="hash41")
    start(second, "u", dev_id, comet_server, user_id=42, user_key="hash42")
    for tab in (first, second):
        tab.run("u.subscription('msg', rec('msg')); u.subscription('msg.note', rec('note'))")
    db = pymysql.connect(host="127.0.0.1", port=comet_server.cometql_port, user=str(dev_id),
                         password=comet_server.password, database="CometQL_v1", autocommit=True)
    with db.cursor() as cur:
        cur.execute("INSERT INTO users_messages (id, event, message) VALUES (%s, %s, %s)", (41, "note", '{"to":"41"}'))
    db.close()
    got = first.wait("tagged('note')")
    assert got[0]["data"] == {"to": "41"} and got[0]["server_info"]["pipe"] == "msg"
    assert first.eval("len(tagged('msg'))") == 1
    time.sleep(0.5)  # give a wrong delivery the time to show up
    assert second.eval("tagged('msg')") == []


@pytest.mark.parametrize("bad, fragment", [
    ("web chat", "' ' at position 3"), ("x", "must be 2 to 64"), ("w" * 65, "must be 2 to 64"),
    ("web_ok.bad event", "' ' at position 3"), ("#bad/name", "'/'"),
])
def test_bad_channel_names_raise_and_change_nothing(tab, comet_server, dev_id, bad, fragment):
    start(tab, "b", dev_id, comet_server)
    before = tab.eval("sorted(b._registry.server_channels())")
    with pytest.raises(PyError, match="ValueError") as err:
        tab.run(f"b.subscription({bad!r}, rec('never'))")
    assert fragment in str(err.value)
    assert tab.eval("sorted(b._registry.server_channels())") == before


def test_bad_calls_raise_clear_errors(tab, comet_server, dev_id):
    tab.run("fresh = CometApi()")
    for call, error in [("fresh.web_pipe_send('web_x', 'e', 1)", "NotStartedError"),
                        ("fresh.count_users_in_pipe('web_x')", "NotStartedError"),
                        ("fresh.start({'node': '127.0.0.1:1'})", "OptionsError"),
                        ("fresh.start({'dev_id': 1, 'colour': 'red'})", "OptionsError")]:
        with pytest.raises(PyError, match=error):
            tab.run(call)
    start(tab, "w", dev_id, comet_server)
    with pytest.raises(PyError, match="not JSON-serialisable"):
        tab.run("w.web_pipe_send('web_x', 'e', {'when': object()})")
    with pytest.raises(PyError, match="ValueError"):
        tab.run("w.web_pipe_send('private_x', 'e', 1)")
    with pytest.raises(PyError, match="ValueError"):
        tab.run("w.count_users_in_pipe('private_x')")


def test_a_raising_callback_does_not_stop_the_next_message(tab, comet_server, dev_id, raw):
    start(tab, "r", dev_id, comet_server)
    tab.run("def boom(e):\n    raise RuntimeError('page bug')\n"
            "r.subscription('web_boom', boom); r.subscription('web_boom', rec('after'))")
    publisher = raw()
    wait_subscribers(publisher, "web_boom", 1)
    publisher.publish("web_boom", "e", 1)
    publisher.publish("web_boom", "e", 2)
    assert [m["data"] for m in tab.wait("len(tagged('after')) == 2 and tagged('after')")] == [1, 2]


def test_async_callback_and_messages_iterator(tab, comet_server, dev_id, raw):
    start(tab, "it", dev_id, comet_server)
    tab.run("async def collect():\n"
            "    out = []\n"
            "    async for e in it.messages('web_iter'):\n"
            "        out.append(e.data)\n"
            "        if len(out) == 3: break\n"
            "    log.append({'tag': 'iter', 'got': out})\n"
            "iter_task = asyncio.ensure_future(collect())\n"
            "async def acb(e):\n    await asyncio.sleep(0)\n    log.append({'tag': 'acb', 'd': e.data})\n"
            "it.subscription('web_iter', acb)")
    publisher = raw()
    wait_subscribers(publisher, "web_iter", 1)
    for i in range(3):
        publisher.publish("web_iter", "e", i)
    assert tab.wait("tagged('iter')")[0]["got"] == [0, 1, 2]
    assert [x["d"] for x in tab.wait("len(tagged('acb')) == 3 and tagged('acb')")] == [0, 1, 2]


def test_reconnects_after_a_server_restart_and_restores_subscriptions(tab, comet_server, dev_id, raw):
    start(tab, "rc", dev_id, comet_server)
    tab.run("rc.subscription('web_again', rec('again'))")
    wait_subscribers(raw(), "web_again", 1)
    comet_server.restart()
    tab.wait("'disconnected' in states_rc")
    tab.wait("rc.state == 'connected'", timeout_ms=30_000)
    publisher = raw()
    wait_subscribers(publisher, "web_again", 1)
    publisher.publish("web_again", "e", "after restart")
    assert tab.wait("tagged('again')")[0]["data"] == "after restart"
