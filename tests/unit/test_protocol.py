import json
import logging
import random

import pytest

import frames as F
from comet_py import protocol as P
from comet_py.options import parse_options


def one(text):
    (obj,) = P.decode_frame(text)
    return P.classify(obj)


# ------------------------------------------------------------------- URL


def test_url_is_cppcomet_format():
    o = parse_options(dev_id=1, user_id=3, user_key="valid00000userHash", node="127.0.0.1:8087")
    uuid = "uuidU3000000000000000000000000U3"
    assert P.build_url(o, uuid=uuid, page_is_https=False, node=o.node) == (
        "ws://127.0.0.1:8087/ws/sesion=valid00000userHash&myid=3&devid=1&v=4.08"
        "&uuid=uuidU3000000000000000000000000U3&api=js"
    )


def test_url_anonymous_has_empty_values_and_follows_page_scheme():
    o = parse_options(dev_id=0, node="example.com/comet-server")
    url = P.build_url(o, uuid="A" * 32, page_is_https=True)
    assert url == "wss://example.com/comet-server/ws/sesion=&myid=&devid=0&v=4.08&uuid=" + "A" * 32 + "&api=js"
    assert "undefined" not in url and "None" not in url


def test_url_wss_option_overrides_page():
    o = parse_options(dev_id=0, wss=False)
    assert P.build_url(o, uuid="A" * 32, page_is_https=True).startswith("ws://")
    o = parse_options(dev_id=0, wss=True)
    assert P.build_url(o, uuid="A" * 32, page_is_https=False).startswith("wss://")


def test_url_rejects_short_uuid():
    with pytest.raises(ValueError):
        P.build_url(parse_options(dev_id=0), uuid="short", page_is_https=False)


def test_new_uuid_and_marker_alphabets():
    rng = random.Random(5)
    u, m = P.new_uuid(rng), P.new_marker(rng)
    assert len(u) == 32 and all(c.isalnum() or c in "_-" for c in u)
    assert len(m) == 10 and m.isalnum() and m.isascii()


# -------------------------------------------------------------- commands


def test_subscription_frame_stays_under_cppcomet_limit(caplog):
    names = [f"c{i:02d}" + "x" * 60 for i in range(40)]
    with caplog.at_level(logging.ERROR, logger="comet_py"):
        frame = P.subscription_frame(names)
    assert len(frame.encode()) <= P.MAX_SUBSCRIPTION_BYTES
    kept = frame.split("\n")[1:]
    assert kept == sorted(names)[: len(kept)]
    # 33 names of 63 chars fit (13 + 33*63 + 32 = 2124 bytes); a 34th would not
    assert len(kept) == 33 and len(frame.encode()) + 64 > P.MAX_SUBSCRIPTION_BYTES
    assert "c39" in caplog.text


# -------------------------------------------------------------- decoding


def test_corrupted_frames_are_skipped_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="comet_py"):
        for bad in (F.CPP_LEN_123, F.CPP_LEN_124, F.CPP_LEN_125, F.CPP_ERR_CORRUPT_123, "not json", "[1,2]"):
            assert P.decode_frame(bad) == []
    assert caplog.text.count("skipping") == 6
    (ok,) = P.decode_frame(F.CPP_LEN_126)
    assert ok["pipe"] == "lenpipe"


def test_several_lines_in_one_frame():
    objs = P.decode_frame(F.CPP_LEN_121 + "\n" + F.CPP_LEN_123 + "\n" + F.CPP_LEN_122 + "\n")
    assert [len(o["data"]) for o in objs] == [50, 51]


def test_decode_data_cascade():
    assert P.decode_data('{"a":1}') == {"a": 1}
    assert P.decode_data("hello") == "hello"
    assert P.decode_data("123") == 123
    assert P.decode_data({"a": 1}) == {"a": 1}
    assert P.decode_data(5) == 5
    assert P.decode_data("NaN") == "NaN"  # would not survive the relay as JSON
    # MySQL-escaped JSON (CppComet web_pipe2) decodes, apostrophe kept
    assert P.decode_data(r'{\"t\":\"it\'s\"}') == {"t": "it's"}
    # ...but not when the server says it does not escape (comet_server)
    assert P.decode_data(r'{\"t\":1}', mysql_escaped=False) == r'{\"t\":1}'
    # text that never parses stays exactly as received
    assert P.decode_data(r"C:\path\to") == r"C:\path\to"


# -------------------------------------------------------- classification


def test_server_info_auth_forms():
    for text, want in [
        (F.CPP_INFO_ANON, False),
        (F.CPP_INFO_AUTH, True),
        (F.V3_INFO_AUTH, True),
        (F.CS_INFO_AUTH_STR, True),
    ]:
        c = one(text)
        assert isinstance(c, P.AuthInfo) and c.authorized is want
    c = one(F.CPP_INFO_AUTH)
    assert c.user_key == "valid00000userHash" and not c.is_comet_server
    assert one(F.CS_INFO_AUTH).is_comet_server
    assert one(F.CS_INFO_AUTH.replace('"authorized":true', '"authorized":"false"')).authorized is False


def test_cppcomet_web_pipe2_escaped_json_becomes_dict():
    c = one(F.CPP_WEB_PIPE)
    assert isinstance(c, P.ChannelMessage)
    assert c.message == {
        "data": {"a": 1},
        "server_info": {"event": "fromU3", "history": False, "marker": None, "pipe": "web_chat",
                        "user_id": 3, "uuid": None, "time": 1795823348, "history_id": None},
    }
    assert one(F.CPP_WEB_PIPE_STRING).message["data"] == "plain string"
    assert one(F.V3_WEB_PIPE).message["data"] == {"text": "from B"}


def test_cppcomet_web_pipe2_with_apostrophe_keeps_it():
    # What CppComet sends for web_pipe_send(..., {"t": "it's \"q\""}): the JSON
    # text after mysql_real_escape_string, JSON-encoded into the frame.
    sent = json.dumps({"t": "it's \"q\""}, separators=(",", ":"))
    escaped = sent.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')
    frame = json.dumps({"data": escaped, "event": "e", "pipe": "web_chat", "user_id": 2}, separators=(",", ":"))
    assert "\\\\'" in frame  # the sequence that makes the JS client drop the message
    assert one(frame).message["data"] == {"t": "it's \"q\""}


def test_cometql_text_stays_text_with_apostrophe():
    c = one(F.CPP_COMETQL_ESC)
    assert c.message["data"] == 'it\'s \\"quoted\\" back\\\\slash unicode-é'
    assert one(F.CPP_COMETQL_JSON).message["data"] == {"text": "hi", "n": 1}
    assert one(F.CPP_COMETQL_PLAIN).message["data"] == "hello"


def test_comet_server_text_is_not_unescaped():
    (obj,) = P.decode_frame(F.CS_WEB_PIPE_APOSTROPHE)
    c = P.classify(obj, mysql_escaped=False)
    assert c.message["data"] == {"text": 'it\'s "ok"'}


def test_history_flags():
    items = [one(t) for t in F.CPP_LOG_ITEMS]
    assert [i.history for i in items] == [True, True, True]  # fromQueue on a channel
    assert [i.message["data"] for i in items] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert one(F.V3_LOG_ITEM).history is True
    queued = one(F.CPP_PERSONAL_QUEUED)  # fromQueue on msg = queued personal message
    assert queued.history is False and queued.message["data"] == {"q": 1}
    h = one(F.cs_history_item("web_h", 42))
    # The wire says history_id; server_info.marker of a history item still gives it (the API).
    assert h.history and h.history_id == "42" and h.message["server_info"]["marker"] == "42"
    live = one(F.cs_live("web_h", 43))
    assert not live.history and live.history_id == "43" and live.message["server_info"]["marker"] is None
    # server_info.uuid still gives the position, as before it had its own key
    assert live.message["server_info"]["uuid"] == "43" and h.message["server_info"]["uuid"] == "42"
    assert one(F.CPP_LOG_ITEMS[0]).message["server_info"]["uuid"] is None  # CppComet: no position


def test_pipe_count_answer_forms():
    for text, marker in [(F.CPP_COUNT_COAL1, "MrkCoal001"), (F.V3_COUNT, "Mrk0000001"), (F.cs_count("m1", 7), "m1")]:
        c = one(text)
        assert isinstance(c, P.MarkerAnswer) and c.kind == "pipe_count" and c.marker == marker
    assert one(F.CPP_COUNT_COAL1).value == 2
    assert one(F.V3_COUNT).value == 2
    assert one(F.cs_count("m1", 7)).value == 7


def test_other_answers():
    t = one(F.CPP_TRACK_USERS)
    assert t.kind == "track_pipe_users" and len(t.value) == 3 and t.value[0]["uuid"].startswith("uuidC")
    u = one(F.CPP_USER_DATA)
    assert u.kind == "user_data" and u.value == {"user_data": '{"name":"Seven"}', "user_id": 7}
    assert one(F.V3_USER_DATA).value == {"user_data": '{"name":"Seven"}', "user_id": 7}
    e = one(F.cs_log_end("Mrk1", 3))
    assert (e.kind, e.marker, e.value) == ("pipe_log", "Mrk1", 3)


def test_reports_errors_presence():
    r = one(F.CPP_REPORT)
    assert isinstance(r, P.DeliveryReport) and r.pipe == "web_chat"
    assert r.message["data"]["number_messages"] == 1
    assert one(F.V3_REPORT).message["data"]["number_messages"] == 1
    e = one(F.CPP_ERR_WEB_ONLY)
    assert isinstance(e, P.SysError) and "begin with web_" in e.error and e.code is None
    c = one(F.V3_CONNECT_401)
    assert isinstance(c, P.SysError) and c.code == 401 and "401" in c.error
    p = one(F.V3_PRESENCE)
    assert p.message["server_info"]["pipe"] == "user_status_3" and p.message["data"] == "online"
    assert one(F.V3_TRACK_SUB).message["data"] == {"user_id": 0, "uuid": "uuidB0000000000000000000000000BB"}


def test_frames_without_pipe_or_data_are_ignored():
    assert isinstance(P.classify({"data": 1}), P.Ignored)
    assert isinstance(P.classify({"pipe": "web_x", "event": "e"}), P.Ignored)


# ---------------------------------------------------- hostile frames (issue 8)

from comet_py import jsonlimit  # noqa: E402
from comet_py import relay as R  # noqa: E402
from comet_py.session import Dispatch, Session  # noqa: E402


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def _frame_with_data(data_json: str) -> str:
    return '{"data":%s,"event":"e","pipe":"web_deep"}' % data_json


def _session():
    s = Session(parse_options(dev_id=1, user_id=5, user_key="hash4hash4"),
                uuid="uuidU3000000000000000000000000U3", rng=random.Random(7))
    s.connecting()
    s.opened()
    s.received(F.CS_INFO_AUTH)
    s.set_channels({"web_deep"})
    return s


def _through_tabs(session, text):
    """What the master tab's callbacks and a follower tab's callbacks get for one server frame."""
    master = R.MasterRelay("M" * 16, 1)
    master.on_message(R.encode(R.make_hello("F" * 16, 1, frozenset({"web_deep"}), {})), 0)
    follower = R.FollowerRelay("F" * 16)
    follower.on_message(R.encode(R.make_leader("M" * 16, 1)), 0)
    follower.on_message(R.encode(R.make_state("M" * 16, 1, "connected", True, 0, 1)), 0)
    in_master, in_follower = [], []
    for ev in session.received(text):
        if not isinstance(ev, Dispatch):
            continue
        for act in master.route_deliver(ev.message, ev.to, ev.exclude):
            if isinstance(act, R.Deliver):
                in_master.append(act.message)
            elif isinstance(act, R.Post):
                for got in follower.on_message(R.encode(act.message), 1):
                    if isinstance(got, R.Deliver):
                        in_follower.append(got.message)
    return in_master, in_follower


@pytest.mark.parametrize("depth", [1, 50, 950, jsonlimit.MAX_DEPTH - 1, jsonlimit.MAX_DEPTH, 1000, 100_000])
def test_any_frame_decodes_in_every_tab_or_is_skipped_in_every_tab(depth, caplog):
    for text in (_frame_with_data(_nested(depth)),                 # nested JSON in the frame
                 _frame_with_data(json.dumps(_nested(depth)))):    # nested JSON inside a data string
        s = _session()
        with caplog.at_level(logging.WARNING, logger="comet_py"):
            in_master, in_follower = _through_tabs(s, text)
        assert in_master == in_follower
        assert len(in_master) in (0, 1)
        if not in_master:
            assert "nested more than" in caplog.text  # skipped, with a log line
        caplog.clear()
        # the session still works after it
        assert _through_tabs(s, _frame_with_data('"next"'))[1][0]["data"] == "next"


def test_decode_frame_never_raises_on_deep_nesting():
    assert P.decode_frame(_nested(100_000)) == []
    assert P.decode_frame("{" + '"a":{' * 5000 + "}" * 5001) == []
    ok = '{"a":' + _nested(jsonlimit.MAX_DEPTH - 1) + "}"
    assert len(P.decode_frame(ok)) == 1


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = '{"data":"%s","event":"e","pipe":"web_x"}' % ("[" * 5000 + '\\"' + "{" * 5000)
    (obj,) = P.decode_frame(text)
    assert obj["data"].startswith("[[[")


def test_relay_envelope_parser_refuses_deep_nesting_without_raising():
    deep = '{"v":1,"k":"msg","from":"a","to":"*","term":1,"m":{"server_info":{},"data":%s}}' % _nested(100_000)
    assert R.parse(deep) is None


def test_redelivered_personal_message_is_dropped_by_its_id():
    s = _session()
    frame = '{"data":"hi","event":"e","fromQueue":true,"message_send_time":1,"pipe":"msg","uuid":"%s"}'
    first = [e for e in s.received(frame % "41") if isinstance(e, Dispatch)]
    again = [e for e in s.received(frame % "41") if isinstance(e, Dispatch)]
    other = [e for e in s.received(frame % "42") if isinstance(e, Dispatch)]
    assert [e.message["data"] for e in first] == ["hi"] and again == [] and len(other) == 1
    # a server with a fresh store counts from 1 again: a lower id is a new message, not a repeat
    fresh = [e for e in s.received(frame % "1") if isinstance(e, Dispatch)]
    assert len(fresh) == 1


def test_personal_messages_without_id_are_all_delivered():
    s = _session()
    frame = '{"data":"hi","event":"e","pipe":"msg"}'  # CppComet: no id to deduplicate on
    got = [e for _ in range(3) for e in s.received(frame) if isinstance(e, Dispatch)]
    assert len(got) == 3


# ------------------------------------------- the fast path for ordinary messages (issue 13)

# Per key: the usual value(s), then what must not take the fast path (or must give the same).


@pytest.mark.parametrize("text", [F.CPP_WEB_PIPE, F.CPP_WEB_PIPE_STRING, F.cs_live("web_h", 43), F.cs_live("web_h", None)])
def test_ordinary_messages_take_the_fast_path(text):
    (obj,) = P.decode_frame(text)
    assert P.plain_message(obj) == P.classify_full(obj, mysql_escaped=True).message


@pytest.mark.parametrize("text", [F.CPP_LOG_ITEMS[0], F.V3_LOG_ITEM, F.CPP_PERSONAL_QUEUED, F.CPP_REPORT,
                                  F.CPP_ERR_WEB_ONLY, F.cs_history_item("web_h", 42), F.V3_PRESENCE])
def test_other_frames_take_the_full_rules(text):
    (obj,) = P.decode_frame(text)
    assert P.plain_message(obj) is None


def test_the_fast_depth_check_agrees_with_the_plain_walk_that_micropython_runs():
    # jsonlimit.depth_exceeds (str.translate, a regex) vs _depth_exceeds_walk (MicroPython's), on
    # random texts of brackets, quotes, backslashes and letters: the same answer for every limit.
    rng = random.Random(15)
    alphabet = '[]{}"\\\\a,'
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        for limit in (0, 1, 2, 3, 5):
            fast = jsonlimit.depth_exceeds(text, limit)
            assert fast == jsonlimit._depth_exceeds_walk(text, limit), (text, limit)


def test_the_frames_compact_json_is_jsons_sorted_compact_form():
    for value in ({"b": 1, "a": [1, {"z": None, "y": "\u00e9\\\""}], "c": {"x": True}}, [], {}, "s", 1.5):
        assert F.compact_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"))


def test_mysql_unescape_gives_what_the_regex_it_replaced_gave():
    import re

    old = re.compile(r"\\(.?)", re.S)
    table = {"0": "\0", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "b": "\b"}
    rng = random.Random(15)
    for _ in range(5000):
        text = "".join(rng.choice("\\\\\\0nrtZbq'\"\n\u00e9x") for _ in range(rng.randrange(0, 20)))
        assert P.mysql_unescape(text) == old.sub(lambda m: table.get(m.group(1), m.group(1)), text), text
