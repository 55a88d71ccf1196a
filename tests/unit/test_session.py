import logging
import random

import pytest

import frames as F
from comet_py.options import parse_options
from comet_py.session import Answer, Dispatch, Session, first_node
from tests.mpy.test_mpy_session import FRAME_TEXTS

UUID = "uuidU3000000000000000000000000U3"


def make(**opt):
    opt.setdefault("dev_id", 1)
    opt.setdefault("user_id", 5)
    opt.setdefault("user_key", "hash4hash4")
    return Session(parse_options(opt), uuid=UUID, rng=random.Random(7))


def delivered(events):
    return [(e.message["data"], e.to) for e in events if isinstance(e, Dispatch)]


def answers(events):
    return [(e.token, e.value, e.error) for e in events if isinstance(e, Answer)]


def connect(s, info=F.CS_INFO_AUTH):
    ev = s.connecting() + s.opened()
    return ev + s.received(info)


# --------------------------------------------------------------- connecting


# --------------------------------------------------------------- reconnecting


def test_browsers_spread_over_the_nodes():
    counts = [0, 0, 0]
    for i in range(3000):
        counts[first_node(f"{i:032x}", 3)] += 1
    assert all(900 < c < 1100 for c in counts), counts  # even within 10 %
    assert first_node("anything", 1) == 0
    # fixed values: every interpreter (CPython, Pyodide, MicroPython) picks the same node
    # (FNV-1a test vectors: "" 0x811c9dc5, "a" 0xe40c292c, "foobar" 0xbf9cf968)
    assert [first_node(u, 7) for u in ("", "a", "foobar")] == [0x811C9DC5 % 7, 0xE40C292C % 7, 0xBF9CF968 % 7]


# -------------------------------------------------------------- queue & flush


# -------------------------------------------------------------- answers


# ----------------------------------------------------------------- receiving


def test_replay_cppcomet_frames_including_corrupted_ones(caplog):
    s = make()
    s.set_channels({"lenpipe", "web_chat", "test_pipe"})
    connect(s, F.CPP_INFO_ANON)
    with caplog.at_level(logging.WARNING, logger="comet_py"):
        ev = []
        for text in (F.CPP_LEN_121, F.CPP_LEN_122, F.CPP_LEN_123, F.CPP_LEN_124, F.CPP_LEN_125,
                     F.CPP_LEN_126, F.CPP_WEB_PIPE, F.CPP_COMETQL_ESC, F.CPP_PERSONAL_QUEUED, "\x00garbage"):
            ev += s.received(text)
    data = delivered(ev)
    assert [len(d) for d, _ in data[:3]] == [50, 51, 55]
    assert data[3] == ({"a": 1}, None)
    assert data[4][0].startswith("it's ")
    assert data[5] == ({"q": 1}, None)
    assert len(data) == 6
    assert caplog.text.count("unparseable") == 4


def test_sys_runtime_error_goes_to_every_tab_and_is_logged(caplog):
    s = make()
    connect(s)
    with caplog.at_level(logging.WARNING, logger="comet_py"):
        ev = s.received(F.CS_RUNTIME_ERROR)
    (d,) = [e for e in ev if isinstance(e, Dispatch)]
    assert d.to is None and d.message["server_info"]["pipe"] == "sys"
    assert d.message["data"]["error"] == "Unknown command"
    assert "Unknown command" in caplog.text


def test_received_never_raises(monkeypatch, caplog):
    s = make()
    connect(s)

    def boom(raw):
        raise RuntimeError("bug")

    monkeypatch.setattr("comet_py.session.plain_message", lambda raw, **kw: boom(raw))
    with caplog.at_level(logging.ERROR, logger="comet_py"):
        assert s.received(F.cs_live("web_a", None)) == []
    assert "error handling a server frame" in caplog.text


# ------------------------------------------------------------------ pipe_log


# ------------------------------------------------------------------ recovery


# ------------------------------------------------- the fast path of received (issue 13)



@pytest.mark.parametrize("info", [F.CS_INFO_AUTH, F.CPP_INFO_AUTH])
def test_the_fast_path_of_received_gives_what_decoding_line_by_line_gives(info, caplog):
    """received_fast only shortens the way: every text gives the events decode_frame and _handle
    give (same messages, same drops of duplicates), and the same log lines."""
    caplog.set_level(logging.DEBUG, logger="comet_py")
    fast, slow = make(), make()
    connect(fast, info)
    connect(slow, info)
    for text in FRAME_TEXTS:
        caplog.clear()
        got = fast.received(text)
        logged = [r.getMessage() for r in caplog.records]
        caplog.clear()
        assert got == slow._received_lines(text), text
        assert logged == [r.getMessage() for r in caplog.records], text
    found = fast.received_fast(F.cs_live("web_z", None))
    assert isinstance(found, dict) and found["server_info"]["pipe"] == "web_z"
