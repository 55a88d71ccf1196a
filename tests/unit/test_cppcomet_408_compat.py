"""comet_server's frames as CometServerApi.js 4.08 reads them (issue 9 items 1 and 2), in process.

The frames are the ones the real comet_server code writes (Hub and ws.handle_command on fake
transports), read through the replay of 4.08's delivery rules in tests/support/js408.py; the same
frames then drive comet_py's Session, which must still recover and drop duplicates by history_id.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from comet_py.options import parse_options
from comet_py.protocol import decode_frame
from comet_py.session import Dispatch, Send, Session
from comet_server import ws, wire
from comet_server.hub import Client, Hub
from comet_server.store import Store
from tests.support.js408 import Js408, js408_parse_frame
from tests.support.memory_transport import RecordingTransport, text_of


# -- the real server code on fake transports ------------------------------------------------------

@pytest.fixture
def hub():
    h = Hub(Store(":memory:"), "CometQLPassword", server_name="comet_server test")
    h.store.set_pipe_length(1, "web_log", 10)
    return h


def connect(hub: Hub, *, legacy: bool = False, uuid: str = "u" * 32) -> tuple[Client, RecordingTransport]:
    t = RecordingTransport()
    c = Client(hub, None, t, dev_id=1, user_id=0, authorized=False, uuid=uuid, legacy=legacy)
    hub.register(c)
    return c, t


# -- item 1: history items reach 4.08's get_pipe_log callback ------------------------------------

def test_history_items_pass_408_filter_even_after_the_tab_saw_them_live(hub):
    tab, tab_wire = connect(hub)
    sender, sender_wire = connect(hub, uuid="s" * 32)
    ws.handle_command(hub, tab, "subscription\nweb_log")
    js = Js408()
    got = js.subscription("web_log")
    sent = [{"i": 0}, {"i": 1, "t": "it's"}, {"i": 2}]
    for d in sent:
        ws.handle_command(hub, sender, "web_pipe2\nweb_log\nev\n*\n" + json.dumps(d))
    live_frames = tab_wire.take()
    ws.handle_command(hub, tab, "pipe_log\nweb_log\nMrk0000004\n")
    log_frames = tab_wire.take()
    for text in live_frames + log_frames:
        js.on_frame(text)

    history = [m for m in got if m["server_info"]["history"]]
    assert [json.loads(m["data"]) for m in history] == sent  # all three, in order
    assert [json.loads(m["data"]) for m in got if not m["server_info"]["history"]] == sent  # and the live ones
    # What makes it so: each history item has neither key 4.08 filters on, and a history_id
    items = [json.loads(t) for t in log_frames[:-1]]
    assert all("marker" not in i and "uuid" not in i and i["history_id"].isdigit() for i in items)
    assert [i["history_id"] for i in items] == [json.loads(t)["history_id"] for t in live_frames]
    # marker keeps its one meaning: the request marker on the answer
    assert json.loads(log_frames[-1])["marker"] == "Mrk0000004"
    # the sender's report names the same positions under the same key
    reports = [json.loads(t)["data"] for t in sender_wire.take() if "_answer_to_web_log" in t]
    assert [r["history_id"] for r in reports] == [i["history_id"] for i in items]


def test_pipe_log_answer_reaches_only_its_own_marker_callback(hub):
    # 4.08 tabs share answers through one signal bus; the end frame names the requester's marker.
    tab, tab_wire = connect(hub)
    ws.handle_command(hub, tab, "pipe_log\nweb_log\nMrkOwn\n")
    (end,) = tab_wire.take()
    mine, other = Js408("MrkOwn"), Js408("MrkOther")
    for js in (mine, other):
        js.subscription("_answer_pipe_log")
        js.on_frame(end)
    assert len(mine.callbacks["_answer_pipe_log"]) == 1 and other.callbacks["_answer_pipe_log"] == []


def _session(hub: Hub) -> tuple[Session, Client, RecordingTransport]:
    s = Session(parse_options({"dev_id": 1}), uuid="c" * 32, rng=random.Random(3))
    c, t = connect(hub, uuid="c" * 32)
    return s, c, t


def _pump(hub: Hub, s: Session, c: Client, t: RecordingTransport, events: list) -> list[dict]:
    """Carry Session's frames to the server and the server's frames back; what got delivered."""
    out: list[dict] = []
    pending = list(events)
    while pending or t.has_untaken():
        for e in pending:
            if isinstance(e, Send):
                ws.handle_command(hub, c, e.frame)
            elif isinstance(e, Dispatch) and e.to is None:
                out.append(e.message)
        pending = []
        for text in t.take():
            pending += s.received(text)
    return out


def _server_info() -> str:
    return wire.dumps({"authorized": False, "data": "", "event": "serverInfo", "message_send_time": wire.now(),
                       "pipe": "sys", "server": "comet_server test"})


def test_comet_py_recovers_and_dedups_by_history_id_from_real_frames(hub):
    s, c, t = _session(hub)
    publisher, _ = connect(hub, uuid="p" * 32)
    s.set_channels({"web_log"})
    got = _pump(hub, s, c, t, s.connecting() + s.opened() + s.received(_server_info()))
    hub.publish(1, "web_log", "e", "m1")
    hub.publish(1, "web_log", "e", "m2")
    got += _pump(hub, s, c, t, [])
    assert [m["data"] for m in got] == ["m1", "m2"]
    first_ids = [m["server_info"]["history_id"] for m in got]

    # The socket drops; two messages are published meanwhile; a new socket recovers them.
    hub.unregister(c)
    s.closed()
    hub.publish(1, "web_log", "e", "m3")
    hub.publish(1, "web_log", "e", "m4")
    c, t = connect(hub, uuid="c" * 32)
    ev = s.connecting() + s.opened() + s.received(_server_info())
    recovery = [e.frame for e in ev if isinstance(e, Send) and e.frame.startswith("pipe_log\n")]
    # asks from the last history_id it delivered (inclusive, to prove nothing is missing)
    assert recovery and recovery[0].split("\n")[3] == str(int(first_ids[-1]) - 1)
    after = _pump(hub, s, c, t, ev)
    assert [m["data"] for m in after] == ["m3", "m4"]  # m2, in the log too, is not delivered again
    assert all(m["server_info"]["history"] is False for m in after)
    # a live copy of an already delivered position is dropped
    dup = wire.dumps({"data": "m4", "event": "e", "history_id": after[-1]["server_info"]["history_id"],
                      "message_send_time": wire.now(), "pipe": "web_log"})
    assert [e for e in s.received(dup) if isinstance(e, Dispatch)] == []


def test_server_info_marker_of_a_history_item_is_its_history_id(hub):
    s, c, t = _session(hub)
    _pump(hub, s, c, t, s.connecting() + s.opened() + s.received(_server_info()))
    hub.publish(1, "web_log", "e", "m1")
    token = object()
    ev = s.request("pipe_log", "web_log", token)
    items = []
    for e in ev:
        if isinstance(e, Send):
            ws.handle_command(hub, c, e.frame)
    for text in t.take():
        items += [e.message for e in s.received(text) if isinstance(e, Dispatch) and e.to is token]
    (item,) = items
    info = item["server_info"]
    assert info["history"] is True and info["marker"] == info["history_id"] == hub.store.get_history(1, "web_log")[0].history_id


# -- item 2: no frame holds backslash + apostrophe ------------------------------------------------

PAYLOADS = [
    "it's",
    "it\\'s",                      # it\'s: the CometQL text 'it\\'s' arrives like this
    "C:\\path\\'x",                # C:\path\'x
    "\\'",                         # backslash + apostrophe alone
    "\\\\''\\",                    # \\''\  (backslashes and apostrophes around each other)
    'say "hi" and \'bye\'',
    "back\\slash",
    "line1\nline2\ttab\r",
    "\\n is not a newline",
    "unicode-é ü ß 中文",
    "emoji 😀👍🏽",
    "\u2028\u2029 separators",
    '{"json":"in a \'string\'","p":"C:\\\\x\\\\\'y"}',
]


@pytest.mark.parametrize("text", PAYLOADS)
def test_408_transform_gives_back_every_payload(hub, text):
    v4, v4_wire = connect(hub)
    v3, v3_wire = connect(hub, legacy=True, uuid="3" * 32)
    for c in (v4, v3):
        ws.handle_command(hub, c, "subscription\nweb_chat")
    sender, sender_wire = connect(hub, uuid="s" * 32)
    ws.handle_command(hub, sender, "web_pipe2\nweb_chat\nev\n*\n" + text)
    hub.publish(1, "web_chat", "ev", text)  # CometQL / HTTP publish: no user_id
    frames = v4_wire.take() + v3_wire.take() + sender_wire.take()
    assert len(frames) == 5
    for frame in frames:
        assert "\\'" not in frame
        (msg,) = js408_parse_frame(frame)
        data = msg["data"]  # live messages (v4 and legacy): the text; the report: an object
        assert (data["message"] if msg["pipe"] == "_answer_to_web_chat" else data) == text
        # comet_py parses the same frame to the same object
        assert decode_frame(frame) == [msg]


def test_408_transform_breaks_plain_json_of_these_payloads():
    # The replay is faithful: without the encoding, 4.08 loses exactly the backslash+apostrophe cases.
    lost = [t for t in PAYLOADS
            if not js408_parse_frame(json.dumps({"data": t}, ensure_ascii=False, separators=(",", ":")))]
    assert lost == [t for t in PAYLOADS if "\\'" in json.dumps(t)]
    assert len(lost) >= 4


@pytest.mark.parametrize("obj", [
    {"data": {"message": "C:\\path\\'x", "number_messages": 1}, "event": "answer", "pipe": "_answer_to_web_x"},
    {"data": ["it\\'s", "'", {"k'ey": "v\\'"}], "event": "e", "pipe": "p"},
    {"data": "x", "event": "it's", "pipe": "web_x", "marker": "a'b"},
    {"data": "lone \ud800 surrogate, it\\'s", "event": "e", "pipe": "web_x"},  # the ASCII fallback
])
def test_every_encoding_path_gives_408_the_original(obj: dict[str, Any]):
    out = wire.Out(obj)
    for legacy in (False, True):
        text = text_of(out.frame(legacy))
        assert "'" not in text
        (msg,) = js408_parse_frame(text)
        if legacy and not isinstance(obj["data"], str):
            # v<4 clients get non-string data as JSON text, which 4.08-style clients parse the same way
            assert json.loads(msg["data"].replace("\\'", "'")) == obj["data"]
        else:
            assert msg["data"] == obj["data"]
        assert {k: msg[k] for k in obj if k != "data"} == {k: v for k, v in obj.items() if k != "data"}
    # the connect-error frame, serialised apart, follows the same rule
    text = wire.dumps(wire.legacy(obj))
    assert "\\'" not in text and js408_parse_frame(text)
