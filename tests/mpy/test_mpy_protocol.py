"""The wire protocol (comet_py.protocol), on both interpreters: the URL, every command frame and
what is refused, frame decoding that never raises, the data cascade, and classification of the
frames captured from CppComet and comet_server (tests/unit/frames.py)."""

import json
import random

from comet_py import protocol as P
from comet_py.options import parse_options
from tests.mpy.helpers import raises, unit_frames

F = unit_frames()


def one(text, mysql_escaped=True):
    (obj,) = P.decode_frame(text)
    return P.classify(obj, mysql_escaped=mysql_escaped)


def test_the_url_is_cppcomets_format():
    o = parse_options(dev_id=1, user_id=3, user_key="valid00000userHash", node="127.0.0.1:8087")
    assert P.build_url(o, uuid="uuidU3000000000000000000000000U3", page_is_https=False) == (
        "ws://127.0.0.1:8087/ws/sesion=valid00000userHash&myid=3&devid=1&v=4.08"
        "&uuid=uuidU3000000000000000000000000U3&api=js")
    anon = P.build_url(parse_options(dev_id=0, node="example.com/comet-server"), uuid="A" * 32,
                       page_is_https=True)
    assert anon == "wss://example.com/comet-server/ws/sesion=&myid=&devid=0&v=4.08&uuid=" + "A" * 32 + "&api=js"
    assert P.build_url(parse_options(dev_id=0, wss=False), uuid="A" * 32, page_is_https=True).startswith("ws://")
    for bad in ("short", "A" * 31 + "!", "A" * 33, None):
        raises(ValueError, P.build_url, parse_options(dev_id=0), uuid=bad, page_is_https=False)


def test_uuids_and_markers_use_their_alphabets_with_the_default_random_source_too():
    uuid_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    for rng in (None, random):
        u, m = P.new_uuid(rng), P.new_marker(rng)
        assert len(u) == 32 and all(c in uuid_chars for c in u)
        assert len(m) == 10 and all(c in uuid_chars[:62] for c in m)
    assert len({P.new_uuid() for _ in range(20)}) == 20


def test_command_frames_are_literal():
    assert P.subscription_frame({"web_chat", "track_online", "user_status_5"}) == (
        "subscription\ntrack_online\nuser_status_5\nweb_chat")
    assert P.subscription_frame([]) == "subscription\n"
    assert P.web_pipe_frame("web_chat", "new_msg", '{"text":"hi"}') == 'web_pipe2\nweb_chat\nnew_msg\n*\n{"text":"hi"}'
    assert P.web_pipe_frame("@web_chat", "e", '"x"') == 'web_pipe2\n@web_chat\ne\n*\n"x"'
    assert P.pipe_log_frame("web_chat", "4567891234") == "pipe_log\nweb_chat\n4567891234\n"
    assert P.pipe_log_frame("web_chat", "m", since=41) == "pipe_log\nweb_chat\nm\n41\n"
    assert P.pipe_count_frame("web_chat", "4567891234") == "pipe_count\nweb_chat\n4567891234\n"
    assert P.track_pipe_users_frame("track_online", "4567891234") == "track_pipe_users\ntrack_online\n4567891234"
    assert P.user_data_frame("4567891234", 9997) == "user_data\n4567891234\n9997"


def test_frames_cppcomet_would_drop_are_refused():
    raises(ValueError, P.web_pipe_frame, "test_pipe", "e", "x")  # not web_*
    raises(ValueError, P.web_pipe_frame, "web_x", "bad event", "x")
    assert "too large" in str(raises(ValueError, P.web_pipe_frame, "web_x", "e", "x" * 70000))
    assert "too large" in str(raises(ValueError, P.web_pipe_frame, "web_x", "e", "\u00e9" * 33000))
    raises(ValueError, P.pipe_count_frame, "test_pipe", "m")  # only web_/track_
    raises(ValueError, P.track_pipe_users_frame, "web_x", "m")
    raises(ValueError, P.pipe_log_frame, "bad.name", "m")
    raises(ValueError, P.subscription_frame, ["ok_name", "x"])
    for marker in ("", "x" * 65, "a b", "caf\u00e9", 5):
        raises(ValueError, P.pipe_count_frame, "web_x", marker)
    for user_id in (-1, True, "7"):
        raises(ValueError, P.user_data_frame, "m", user_id)


def test_the_subscription_frame_stays_under_cppcomets_limit():
    names = ["c%02d" % i + "x" * 60 for i in range(40)]
    frame = P.subscription_frame(names)
    kept = frame.split("\n")[1:]
    assert len(frame.encode()) <= P.MAX_SUBSCRIPTION_BYTES and len(kept) == 33
    assert kept == sorted(names)[:33]


def test_corrupted_frames_are_skipped_and_the_next_line_still_decodes():
    for bad in (F.CPP_LEN_123, F.CPP_LEN_124, F.CPP_LEN_125, F.CPP_ERR_CORRUPT_123, "not json", "[1,2]",
                "[" * 100000, "NaN", '{"a": NaN}', 5, None):
        assert P.decode_frame(bad) == []
    (ok,) = P.decode_frame(F.CPP_LEN_126)
    assert ok["pipe"] == "lenpipe"
    objs = P.decode_frame(F.CPP_LEN_121 + "\n" + F.CPP_LEN_123 + "\n" + F.CPP_LEN_122 + "\n")
    assert [len(o["data"]) for o in objs] == [50, 51]
    assert P.decode_frame("  " + F.CPP_LEN_126 + "  \n\n")[0]["pipe"] == "lenpipe"


def test_the_data_cascade():
    assert P.decode_data('{"a":1}') == {"a": 1}
    assert P.decode_data("hello") == "hello" and P.decode_data("123") == 123
    assert P.decode_data({"a": 1}) == {"a": 1} and P.decode_data(5) == 5
    assert P.decode_data("NaN") == "NaN"  # would not survive the relay as JSON
    assert P.decode_data(r'{\"t\":\"it\'s\"}') == {"t": "it's"}  # CppComet's escaped JSON
    assert P.decode_data(r'{\"t\":1}', mysql_escaped=False) == r'{\"t\":1}'  # comet_server
    assert P.decode_data(r"C:\path\to") == r"C:\path\to"  # never parses: kept as received


def test_mysql_unescape():
    assert P.mysql_unescape(r"a\'b \"c\" d\\e \n") == "a'b \"c\" d\\e \n"
    assert P.mysql_unescape("\\0\\r\\t\\Z\\b\\q") == "\0\r\t\x1a\bq"
    assert P.mysql_unescape("end\\") == "end" and P.mysql_unescape("a\\\nb") == "a\nb"
    assert P.mysql_unescape("") == "" and P.mysql_unescape("plain") == "plain"


def test_classification_of_captured_frames():
    for text, want in ((F.CPP_INFO_ANON, False), (F.CPP_INFO_AUTH, True), (F.V3_INFO_AUTH, True),
                       (F.CS_INFO_AUTH_STR, True)):
        c = one(text)
        assert isinstance(c, P.AuthInfo) and c.authorized is want
    assert one(F.CPP_INFO_AUTH).user_key == "valid00000userHash" and not one(F.CPP_INFO_AUTH).is_comet_server
    assert one(F.CS_INFO_AUTH).is_comet_server
    c = one(F.CPP_WEB_PIPE)
    assert isinstance(c, P.ChannelMessage) and c.message == {
        "data": {"a": 1},
        "server_info": {"event": "fromU3", "history": False, "marker": None, "pipe": "web_chat",
                        "user_id": 3, "uuid": None, "time": 1795823348, "history_id": None}}
    assert one(F.V3_WEB_PIPE).message["data"] == {"text": "from B"}
    assert one(F.CS_WEB_PIPE_APOSTROPHE, mysql_escaped=False).message["data"] == {"text": 'it\'s "ok"'}
    assert [one(t).history for t in F.CPP_LOG_ITEMS] == [True, True, True]
    queued = one(F.CPP_PERSONAL_QUEUED)
    assert queued.history is False and queued.message["data"] == {"q": 1}
    h = one(F.cs_history_item("web_h", 42))
    assert h.history and h.history_id == "42" and h.message["server_info"]["marker"] == "42"
    assert one(F.cs_count("m1", 7)) == P.MarkerAnswer("m1", "pipe_count", 7, one(F.cs_count("m1", 7)).message)
    assert one(F.CPP_COUNT_COAL1).value == 2 and one(F.V3_COUNT).value == 2
    t = one(F.CPP_TRACK_USERS)
    assert t.kind == "track_pipe_users" and len(t.value) == 3
    assert one(F.CPP_USER_DATA).value == {"user_data": '{"name":"Seven"}', "user_id": 7}
    e = one(F.cs_log_end("Mrk1", 3))
    assert (e.kind, e.marker, e.value) == ("pipe_log", "Mrk1", 3)
    r = one(F.CPP_REPORT)
    assert isinstance(r, P.DeliveryReport) and r.pipe == "web_chat" and r.message["data"]["number_messages"] == 1
    err = one(F.CPP_ERR_WEB_ONLY)
    assert isinstance(err, P.SysError) and "begin with web_" in err.error and err.code is None
    c401 = one(F.V3_CONNECT_401)
    assert isinstance(c401, P.SysError) and c401.code == 401
    assert isinstance(P.classify({"data": 1}), P.Ignored)
    assert isinstance(P.classify({"pipe": "web_x", "event": "e"}), P.Ignored)


def test_the_fast_path_gives_what_the_full_rules_give():
    for text in (F.CPP_WEB_PIPE, F.CPP_COMETQL_JSON, F.CPP_COMETQL_PLAIN, F.CS_WEB_PIPE_APOSTROPHE,
                 F.cs_live("web_h", 43), F.cs_live("web_h", None, data=json.dumps({"k": [1, 2]})),
                 F.cs_live("web_h", 7, data=" [1] ")):
        (raw,) = P.decode_frame(text)
        for escaped in (True, False):
            plain = P.plain_message(raw, mysql_escaped=escaped)
            full = P.classify_full(raw, mysql_escaped=escaped)
            assert plain is not None and plain == full.message, text
    for raw in ({"pipe": "sys", "event": "e", "data": 1}, {"pipe": "_answer", "event": "e", "data": 1},
                {"pipe": "web_x", "event": "e", "data": 1, "extra": 1}, {"pipe": "web_x", "event": 1, "data": 1},
                {"pipe": "web_x", "event": "e", "data": 1, "user_id": True}):
        assert P.plain_message(raw) is None
