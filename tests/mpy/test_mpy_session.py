"""One server connection's state machine (comet_py.session), on both interpreters: the
scenarios of tests/unit/test_session.py that need no fixture (connecting, reconnecting,
queueing, answers, reports, pipe_log, recovery, duplicates), plus what MicroPython changes:
order kept where it matters, a deep history item copied for several requesters."""

import random

from comet_py.errors import ConnectionLost, RequestTimeout
from comet_py.options import parse_options
from comet_py.session import (
    Answer,
    AuthChanged,
    Dispatch,
    Gap,
    Reconnect,
    Send,
    Session,
    State,
    StateChanged,
    first_node,
)
from tests.mpy.helpers import raises, unit_frames

F = unit_frames()


def _rng():
    if hasattr(random, "Random"):
        return random.Random(7)
    random.seed(7)  # MicroPython: the module is the generator
    return random


UUID = "uuidU3000000000000000000000000U3"


def make(**opt):
    opt.setdefault("dev_id", 1)
    opt.setdefault("user_id", 5)
    opt.setdefault("user_key", "hash4hash4")
    return Session(parse_options(opt), uuid=UUID, rng=_rng())


def sends(events):
    return [e.frame for e in events if isinstance(e, Send)]


def delivered(events):
    return [(e.message["data"], e.to) for e in events if isinstance(e, Dispatch)]


def answers(events):
    return [(e.token, e.value, e.error) for e in events if isinstance(e, Answer)]


def states(events):
    return [(e.state, e.detail) for e in events if isinstance(e, StateChanged)]


def gaps(events):
    return [e.pipes for e in events if isinstance(e, Gap)]


def connect(s, info=F.CS_INFO_AUTH):
    ev = s.connecting() + s.opened()
    return ev + s.received(info)


def marker_of(frame):
    return frame.split("\n")[2]


# --------------------------------------------------------------- connecting


def test_first_connect_subscribes_and_reports_state_and_auth():
    s = make()
    assert s.state == "idle" and s.authorized is None
    s.set_channels({"web_chat", "track_room"})
    assert s.url() == (
        "ws://127.0.0.1:8087/ws/sesion=hash4hash4&myid=5&devid=1&v=4.08&uuid=" + UUID + "&api=js"
    )
    ev = s.connecting()
    assert states(ev) == [("connecting", {"node": "127.0.0.1:8087"})]
    ev = s.opened()
    assert sends(ev) == ["subscription\ntrack_room\nweb_chat"]
    ev = s.received(F.CS_INFO_AUTH)
    assert [e for e in ev if isinstance(e, AuthChanged)] == [AuthChanged(True)]
    assert states(ev) == [("connected", {"server": "comet_server 0.1.0", "authorized": True})]
    assert s.state == "connected" and s.authorized is True and s.server_is_comet_server
    assert s.real_user_key == "hash4hash4"


def test_no_subscription_frame_for_an_empty_set_on_open():
    s = make()
    assert sends(s.connecting() + s.opened()) == []


def test_set_channels_sends_only_on_change():
    s = make()
    connect(s)
    assert sends(s.set_channels({"web_a"})) == ["subscription\nweb_a"]
    assert s.set_channels({"web_a"}) == []
    assert sends(s.set_channels({"web_b", "web_a"})) == ["subscription\nweb_a\nweb_b"]
    # dropping the last channel really unsubscribes (track_* presence stays accurate)
    assert sends(s.set_channels(set())) == ["subscription\n"]


def test_set_channels_rejects_bad_names_without_changing_anything():
    s = make()
    connect(s)
    s.set_channels({"web_a"})
    raises(ValueError, lambda: s.set_channels({"web_a", "bad name"}))
    assert s.set_channels({"web_a"}) == []  # still the old set


def test_channels_set_while_disconnected_are_sent_on_open():
    s = make()
    assert s.set_channels({"web_a"}) == []
    s.connecting()
    assert sends(s.opened()) == ["subscription\nweb_a"]


def test_auth_changed_only_on_change():
    s = make()
    ev = connect(s, F.CPP_INFO_ANON)
    assert [e for e in ev if isinstance(e, AuthChanged)] == [AuthChanged(False)]
    s.closed()
    ev = connect(s, F.CPP_INFO_ANON)
    assert [e for e in ev if isinstance(e, AuthChanged)] == []
    s.closed()
    ev = connect(s, F.CPP_INFO_AUTH)
    assert [e for e in ev if isinstance(e, AuthChanged)] == [AuthChanged(True)]


# --------------------------------------------------------------- reconnecting


def test_reconnect_resubscribes_and_backs_off_with_jitter_under_cap():
    s = make()
    s.set_channels({"web_a"})
    connect(s, F.CPP_INFO_AUTH)
    ev = s.closed()
    assert states(ev) == [("disconnected", {})]
    (rc,) = [e for e in ev if isinstance(e, Reconnect)]
    assert 0.1 <= rc.delay <= 0.5
    delays = []
    for _ in range(12):  # failed attempts: never got serverInfo
        s.connecting()
        delays += [e.delay for e in s.closed() if isinstance(e, Reconnect)]
    assert all(0.1 <= d <= 30.0 for d in delays)
    assert max(delays) > 4.0 and len(set(delays)) > 8  # grows, jittered
    s.connecting()
    assert sends(s.opened()) == ["subscription\nweb_a"]
    s.received(F.CPP_INFO_AUTH)
    (rc,) = [e for e in s.closed() if isinstance(e, Reconnect)]
    assert rc.delay <= 0.5  # serverInfo reset the backoff


def test_node_list_starts_at_the_browsers_own_node_and_moves_on_at_each_close():
    nodes = ["n1.example:8087", "n2.example:8087", "n3.example:8087"]
    s = make(node=nodes)
    first = first_node(UUID, 3)
    assert "//" + nodes[first] + "/" in s.url()
    s.connecting()
    s.closed()
    assert "//" + nodes[(first + 1) % 3] + "/" in s.url()


def test_the_first_node_is_the_same_on_every_interpreter():
    # FNV-1a test vectors: "" 0x811c9dc5, "a" 0xe40c292c, "foobar" 0xbf9cf968
    assert [first_node(u, 7) for u in ("", "a", "foobar")] == [0x811C9DC5 % 7, 0xE40C292C % 7, 0xBF9CF968 % 7]
    assert first_node("anything", 1) == 0


def test_wss_follows_page_scheme():
    s = Session(parse_options(dev_id=1), uuid=UUID, page_is_https=True)
    assert s.url().startswith("wss://")


# -------------------------------------------------------------- queue & flush


def test_calls_while_closed_are_queued_and_flushed_after_subscription_in_order():
    s = make()
    s.set_channels({"web_chat"})
    assert s.web_pipe("web_chat", "e1", '{"n":1}', "t1") == []
    assert s.request("pipe_count", "web_chat", "t2") == []
    assert s.web_pipe("@web_chat", "e2", '"anon"', "t3") == []
    s.connecting()
    frames = sends(s.opened())
    assert frames[0] == "subscription\nweb_chat"
    assert frames[1] == 'web_pipe2\nweb_chat\ne1\n*\n{"n":1}'
    assert frames[2].startswith("pipe_count\nweb_chat\n")
    assert frames[3] == 'web_pipe2\n@web_chat\ne2\n*\n"anon"'
    assert len(frames) == 4


def test_queue_is_bounded():
    s = make()
    s.MAX_QUEUE = 3
    for i in range(3):
        assert s.web_pipe("web_a", "e", str(i), i) == []
    (a,) = answers(s.web_pipe("web_a", "e", "x", "late"))
    assert a[0] == "late" and a[1] is None and "queue full" in a[2].detail
    (a,) = answers(s.request("pipe_count", "web_a", "late2"))
    assert a[0] == "late2" and "queue full" in a[2].detail


def test_bad_sends_raise_before_queueing():
    s = make()
    raises(ValueError, lambda: s.web_pipe("test_pipe", "e", "x", 1))
    raises(ValueError, lambda: s.request("pipe_count", "msg", 1))
    raises(ValueError, lambda: s.request("nonsense", "web_a", 1))
    s.connecting()
    assert s.opened() == []


# -------------------------------------------------------------- answers


def test_delivery_reports_go_to_the_oldest_sender_per_pipe():
    s = make()
    connect(s, F.CPP_INFO_AUTH)
    s.web_pipe("web_chat", "e", "1", "A")
    s.web_pipe("web_x", "e", "2", "C")
    s.web_pipe("@web_chat", "e", "3", "B")  # '@' is stripped by the server
    ev = s.received(F.cs_report("web_chat", "1", 1))
    ev += s.received(F.cs_report("web_x", "2", 0))
    ev += s.received(F.CPP_REPORT)
    ev += s.received(F.CPP_REPORT)  # nobody waiting: every tab
    reports = [e for e in ev if isinstance(e, Dispatch) and e.message["server_info"]["pipe"].startswith("_answer_to_")]
    assert [e.to for e in reports] == ["A", "C", "B", None]
    assert reports[0].message["server_info"]["pipe"] == "_answer_to_web_chat"


def test_own_send_is_echoed_to_the_other_tabs_as_other_connections_got_it():
    s = make()
    connect(s, F.CS_INFO_AUTH)
    s.set_channels(frozenset({"web_chat"}))
    s.web_pipe("web_chat", "said", '{"t":"it\'s me"}', "A")
    s.web_pipe("@web_chat", "said", '"anon"', "B")
    ev = s.received(F.cs_report("web_chat", '{"t":"it\'s me"}', 2, user_id=7, history_id="41"))
    ev += s.received(F.cs_report("web_chat", '"anon"', 2, user_id=0, history_id="42"))
    echoes = [e for e in ev if isinstance(e, Dispatch) and e.exclude is not None]
    assert [(e.to, e.exclude) for e in echoes] == [(None, "A"), (None, "B")]  # every tab but the sender's
    first, second = (e.message for e in echoes)
    assert first["data"] == {"t": "it's me"} and second["data"] == "anon"
    assert [m["server_info"]["user_id"] for m in (first, second)] == [7, 0]
    assert [m["server_info"]["history_id"] for m in (first, second)] == ["41", "42"]
    assert first["server_info"]["pipe"] == "web_chat" and first["server_info"]["event"] == "said"


def test_refused_send_fails_its_token_and_keeps_report_order():
    s = make()
    connect(s, F.CPP_INFO_AUTH)
    s.web_pipe("web_chat", "e", "1", "A")
    s.web_pipe("web_chat", "e", "2", "B")
    ev = s.received(F.CPP_ERR_WEB_ONLY)
    assert answers(ev)[0][:2] == ("A", None) and "begin with web_" in answers(ev)[0][2].detail
    assert delivered(ev)[0][1] is None  # the sys error still reaches every tab
    ev = s.received(F.CPP_REPORT)
    assert [e.to for e in ev if isinstance(e, Dispatch) and e.exclude is None] == ["B"]


def test_count_answers_are_matched_by_marker():
    s = make()
    connect(s, F.CPP_INFO_AUTH)
    m1 = marker_of(sends(s.request("pipe_count", "web_a", "T1"))[0])
    m2 = marker_of(sends(s.request("pipe_count", "track_b", "T2"))[0])
    assert m1 != m2
    ev = s.received(F.CPP_COUNT_COAL1.replace("MrkCoal001", m2).replace(",2]", ",9]"))
    ev += s.received(F.cs_count(m1, 4))
    assert answers(ev) == [("T2", 9, None), ("T1", 4, None)]
    assert s.received(F.cs_count(m1, 4)) == []  # answered once


def test_track_pipe_users_request():
    s = make()
    connect(s, F.CPP_INFO_AUTH)
    m = marker_of(sends(s.request("track_pipe_users", "track_room", "T"))[0])
    ((tok, value, err),) = answers(s.received(F.CPP_TRACK_USERS.replace("Mrk0000007", m)))
    assert tok == "T" and err is None and len(value) == 3


def test_requests_time_out_via_tick_and_survive_reconnects():
    s = make()
    connect(s, F.CPP_INFO_AUTH)
    s.request("pipe_count", "web_a", "T")
    assert s.tick(100.0) == []
    s.closed()
    s.connecting()
    assert sends(s.opened())[0].startswith("pipe_count\nweb_a\n")  # resent after reconnect
    assert s.tick(109.9) == []
    ((tok, value, err),) = answers(s.tick(110.0))
    assert tok == "T" and value is None
    assert isinstance(err.exception(), RequestTimeout)
    assert s.tick(200.0) == []


def test_stop_fails_pending_and_queued_and_never_reconnects():
    s = make()
    connect(s, F.CPP_INFO_AUTH)
    s.request("pipe_count", "web_a", "T1")
    s.closed()
    s.web_pipe("web_a", "e", "x", "T2")
    ev = s.stop()
    got = {a[0]: a for a in answers(ev)}
    assert set(got) == {"T1", "T2"}
    assert all(isinstance(a[2].exception(), ConnectionLost) for a in got.values())
    assert states(ev) == [("closed", {})] and s.state == "closed"
    assert s.closed() == [] and s.received(F.CPP_LEN_121) == [] and s.tick(1e9) == []
    assert answers(s.web_pipe("web_a", "e", "x", "T3"))[0][0] == "T3"


# ----------------------------------------------------------------- receiving


# ------------------------------------------------------------------ pipe_log


def test_pipe_log_on_comet_server_routes_items_and_ends_by_marker():
    s = make()
    connect(s)
    m = marker_of(sends(s.request("pipe_log", "web_h", "T"))[0])
    ev = s.received(F.cs_history_item("web_h", 3, "a"))
    ev += s.received(F.cs_live("web_h", 7, "live"))
    ev += s.received(F.cs_history_item("web_h", 4, "b"))
    ev += s.received(F.cs_log_end(m, 2))
    assert delivered(ev) == [("a", "T"), ("live", None), ("b", "T")]
    assert [e.message["server_info"]["history"] for e in ev if isinstance(e, Dispatch)] == [True, False, True]
    assert answers(ev) == [("T", 2, None)]


def test_pipe_log_on_cppcomet_completes_after_quiet_period():
    s = make()
    connect(s, F.CPP_INFO_AUTH)
    (frame,) = sends(s.request("pipe_log", "web_log", "T1"))
    assert frame.startswith("pipe_log\nweb_log\n") and frame.endswith("\n")
    assert sends(s.request("pipe_log", "web_log", "T2")) == []  # rides along: not started yet
    s.tick(0.0)
    ev = []
    for text in F.CPP_LOG_ITEMS:
        ev += s.received(text)
    assert delivered(ev) == [({"i": i}, t) for i in range(3) for t in ("T1", "T2")]
    # a request arriving after items started must wait for its own answer
    assert sends(s.request("pipe_log", "web_log", "T3")) == []
    assert s.tick(0.5) == []
    assert s.tick(1.2) == []
    ev = s.tick(2.3)
    assert answers(ev) == [("T1", 3, None), ("T2", 3, None)]
    assert [f.split("\n")[0] for f in sends(ev)] == ["pipe_log"]  # T3 sent now


def test_pipe_log_items_are_not_repeated_after_a_reconnect():
    s = make()
    connect(s, F.CPP_INFO_AUTH)
    s.request("pipe_log", "web_log", "T")
    first = delivered(s.received(F.CPP_LOG_ITEMS[0]) + s.received(F.CPP_LOG_ITEMS[1]))
    s.closed()
    s.connecting()
    assert any(f.startswith("pipe_log\nweb_log") for f in sends(s.opened()))
    ev = s.received(F.CPP_INFO_AUTH)
    for text in F.CPP_LOG_ITEMS:
        ev += s.received(text)
    assert first + delivered(ev) == [({"i": 0}, "T"), ({"i": 1}, "T"), ({"i": 2}, "T")]


# ------------------------------------------------------------------ recovery


def recovery_frame(events, pipe):
    (frame,) = [f for f in sends(events) if f.startswith(f"pipe_log\n{pipe}\n")]
    return marker_of(frame)


def test_recovery_delivers_exactly_the_missed_messages_in_order():
    s = make()
    s.set_channels({"web_h", "web_plain"})
    connect(s)
    ev = s.received(F.cs_live("web_h", 10, "m10")) + s.received(F.cs_live("web_h", 11, "m11"))
    assert delivered(ev) == [("m10", None), ("m11", None)]
    s.closed()
    s.connecting()
    ev = s.opened() + s.received(F.CS_INFO_AUTH)
    m = recovery_frame(ev, "web_h")
    # comet_server is asked only for what follows the last history_id seen (11), that one included
    assert [f for f in sends(ev) if f.startswith("pipe_log\nweb_h\n")] == [f"pipe_log\nweb_h\n{m}\n10\n"]
    # web_plain never carried a history_id: it cannot be recovered
    assert ["web_plain"] in gaps(ev)
    out = s.received(F.cs_live("web_h", 14, "m14"))  # live while recovering: held back
    out += s.received(F.cs_live("web_plain", None, "p"))  # other pipes flow
    for n in (9, 10, 11, 12, 13, 14):
        out += s.received(F.cs_history_item("web_h", n, f"m{n}"))
    out += s.received(F.cs_log_end(m, 6))
    out += s.received(F.cs_live("web_h", 15, "m15"))
    assert delivered(out) == [("p", None), ("m12", None), ("m13", None), ("m14", None), ("m15", None)]
    infos = [e.message["server_info"] for e in out if isinstance(e, Dispatch)]
    assert all(i["history"] is False and i["marker"] is None for i in infos)
    assert [i["history_id"] for i in infos[1:]] == ["12", "13", "14", "15"]
    assert gaps(out) == []


def test_failover_recover_then_first_connect():
    s = make()
    s.set_channels({"web_h"})
    s.recover({"web_h": "20", "web_other": "not-a-history-id"})
    ev = connect(s)
    m = recovery_frame(ev, "web_h")
    out = s.received(F.cs_history_item("web_h", 20)) + s.received(F.cs_history_item("web_h", 21, "new"))
    out += s.received(F.cs_log_end(m, 2))
    assert delivered(out) == [("new", None)]


def test_first_connect_without_recover_sends_no_pipe_log():
    s = make()
    s.set_channels({"web_h"})
    ev = connect(s)
    assert sends(ev) == ["subscription\nweb_h"] and gaps(ev) == []


def test_gap_against_cppcomet_instead_of_recovery():
    s = make()
    s.set_channels({"web_chat", "track_room"})
    connect(s, F.CPP_INFO_AUTH)
    s.closed()
    s.connecting()
    ev = s.opened() + s.received(F.CPP_INFO_AUTH)
    assert not any(f.startswith("pipe_log") for f in sends(ev))
    assert ["track_room", "web_chat"] in gaps(ev)


def test_recovery_timeout_reports_gap_and_releases_held_messages():
    s = make()
    s.set_channels({"web_h"})
    connect(s)
    s.received(F.cs_live("web_h", 10))
    s.closed()
    s.connecting()
    s.opened()
    s.received(F.CS_INFO_AUTH)
    assert s.received(F.cs_live("web_h", 12, "held")) == []
    s.tick(50.0)
    ev = s.tick(60.0)
    assert delivered(ev) == [("held", None)]
    assert ["web_h"] in gaps(ev)


def test_recovery_that_does_not_reach_back_is_a_gap_but_delivers_what_it_has():
    s = make()
    s.set_channels({"web_h"})
    connect(s)
    s.received(F.cs_live("web_h", 10))
    s.closed()
    s.connecting()
    m = recovery_frame(s.opened() + s.received(F.CS_INFO_AUTH), "web_h")
    out = s.received(F.cs_history_item("web_h", 30, "a")) + s.received(F.cs_history_item("web_h", 31, "b"))
    out += s.received(F.cs_log_end(m, 2))
    assert delivered(out) == [("a", None), ("b", None)]
    assert ["web_h"] in gaps(out)


def test_recovery_survives_a_drop_in_the_middle():
    s = make()
    s.set_channels({"web_h"})
    connect(s)
    s.received(F.cs_live("web_h", 10))
    s.closed()
    s.connecting()
    s.opened()
    s.received(F.CS_INFO_AUTH)
    assert s.received(F.cs_live("web_h", 12, "m12")) == []  # held
    s.closed()  # drops before the end of the log
    s.connecting()
    m = recovery_frame(s.opened() + s.received(F.CS_INFO_AUTH), "web_h")
    out = s.received(F.cs_live("web_h", 13, "m13"))
    for n in (10, 11, 12, 13):
        out += s.received(F.cs_history_item("web_h", n, f"m{n}"))
    out += s.received(F.cs_log_end(m, 4))
    assert delivered(out) == [("m11", None), ("m12", None), ("m13", None)]


def test_store_reset_is_reported_as_gap_and_forgotten():
    s = make()
    s.set_channels({"web_h"})
    connect(s)
    s.received(F.cs_live("web_h", 500))
    s.closed()
    s.connecting()
    m = recovery_frame(s.opened() + s.received(F.CS_INFO_AUTH), "web_h")
    out = s.received(F.cs_history_item("web_h", 1)) + s.received(F.cs_log_end(m, 1))
    assert ["web_h"] in gaps(out)
    # the new, lower sequence is delivered from now on
    assert delivered(s.received(F.cs_live("web_h", 2, "fresh"))) == [("fresh", None)]


def test_live_duplicates_are_dropped_by_history_id():
    s = make()
    connect(s)
    ev = s.received(F.cs_live("web_h", 5, "a")) + s.received(F.cs_live("web_h", 5, "a"))
    assert delivered(ev) == [("a", None)]


def test_dropped_channel_is_not_recovered_after_resubscribe():
    s = make()
    s.set_channels({"web_h"})
    connect(s)
    s.received(F.cs_live("web_h", 10))
    s.set_channels(set())
    s.set_channels({"web_h"})
    s.closed()
    s.connecting()
    ev = s.opened() + s.received(F.CS_INFO_AUTH)
    assert not any(f.startswith("pipe_log") for f in sends(ev))
    assert ["web_h"] in gaps(ev)


def test_update_options_changes_the_next_url():
    s = make()
    s.update_options(parse_options(dev_id=2, user_id=6, user_key="k2", node="other:1"))
    assert s.url().startswith("ws://other:1/ws/sesion=k2&myid=6&devid=2&")


# ------------------------------------------------- the fast path of received (issue 13)

ONE_LINE_FRAMES = [
    F.cs_live("web_a", None), F.cs_live("web_a", 7), F.cs_live("web_a", 7), F.cs_live("web_a", 6),
    F.cs_live("msg", None), F.cs_live("web_a", None, data='{"i":1}'), F.cs_live("web_a", None, data=" [1]"),
    F.CPP_WEB_PIPE, F.CPP_WEB_PIPE_STRING, F.CPP_COMETQL_PLAIN, F.CPP_LEN_123, F.CPP_LEN_125, F.CPP_REPORT,
    F.CPP_ERR_WEB_ONLY, F.CPP_LOG_ITEMS[0], F.V3_WEB_PIPE, F.cs_history_item("web_a", 3),
]
FRAME_TEXTS = ONE_LINE_FRAMES + [
    " " + F.cs_live("web_a", 8), F.cs_live("web_a", 9) + "\r\n", F.cs_live("web_a", 10) + "\x0c",
    F.cs_live("web_a", 11) + "\n" + F.cs_live("web_b", 12), F.cs_live("web_a", 13) + "x", "[1]", "", "{}",
    "[" * 150 + "]" * 150, '{"pipe":"web_a","event":"e","data":"' + "[" * 101 + '"}', "not json", "{'a':1}",
]



def test_states_are_the_plain_strings_tabs_are_told():
    assert (State.IDLE, State.CONNECTING, State.CONNECTED, State.DISCONNECTED, State.CLOSED) == (
        "idle", "connecting", "connected", "disconnected", "closed")
    s = make()
    assert [type(e.state) for e in connect(s) if isinstance(e, StateChanged)] == [str, str]


def test_several_requesters_of_one_pipe_log_get_their_own_deep_copies():
    s = make()
    connect(s)
    (frame,) = sends(s.request("pipe_log", "web_h", "T1"))
    assert s.request("pipe_log", "web_h", "T2") == []  # rides along
    deep = "[" * 90 + "1" + "]" * 90
    got = [e for e in s.received(F.cs_history_item("web_h", 3, data=deep)) if isinstance(e, Dispatch)]
    assert [e.to for e in got] == ["T1", "T2"]
    first, second = got[0].message, got[1].message
    assert first == second and first is not second
    a, b = first["data"], second["data"]
    for _ in range(89):
        assert a is not b
        a, b = a[0], b[0]
    assert a == b == [1]
    assert answers(s.received(F.cs_log_end(marker_of(frame), 1))) == [("T1", 1, None), ("T2", 1, None)]


def test_a_server_error_fails_the_oldest_of_many_counts():
    s = make()
    connect(s, F.CPP_INFO_AUTH)
    for k in range(12):
        s.request("pipe_count", "web_p%d" % k, "T%d" % k)
    err = F.CPP_ERR_WEB_ONLY.replace("[pipe_msg2] Invalid channel name. The channel should begin with web_",
                                     "pipe_count: invalid channel")
    for k in range(12):
        assert [a[0] for a in answers(s.received(err))] == ["T%d" % k]
