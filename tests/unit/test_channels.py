import logging

import pytest

from comet_py.channels import check_event, check_name, check_send_pipe, parse_target


def test_valid_names_pass_through():
    assert check_name("web_chat") == "web_chat"
    assert check_name("ab") == "ab"
    assert check_name("x" * 64) == "x" * 64
    assert check_name("A-z_09") == "A-z_09"


@pytest.mark.parametrize(
    "name, char, pos",
    [("web chat", " ", 3), ("web.chat", ".", 3), ("wéb", "é", 1), ("web/x", "/", 3), ("#ab", "#", 0)],
)
def test_bad_character_is_named_with_position(name, char, pos):
    with pytest.raises(ValueError) as ei:
        check_name(name)
    msg = str(ei.value)
    assert repr(char) in msg and f"position {pos}" in msg


@pytest.mark.parametrize("name, n", [("", 0), ("a", 1), ("x" * 65, 65)])
def test_bad_length_is_named(name, n):
    with pytest.raises(ValueError, match=f"{n} characters, must be 2 to 64"):
        check_name(name)


def test_non_str_name_is_a_value_error():
    with pytest.raises(ValueError, match="must be a str"):
        check_name(12)  # type: ignore[arg-type]


def test_reserved_prefix_allowed_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="comet_py"):
        assert check_name("sys_reserved_test") == "sys_reserved_test"
        check_name("sys_reserved_test")
    warnings = [r for r in caplog.records if "reserved prefix" in r.getMessage()]
    assert len(warnings) == 1 and "sys_reserved_test" in warnings[0].getMessage()


def test_event_names():
    assert check_event("e") == "e"
    with pytest.raises(ValueError, match="1 to 64"):
        check_event("")
    with pytest.raises(ValueError, match=r"'\.' at position 1"):
        check_event("a.b")


@pytest.mark.parametrize(
    "name, pipe, event, server",
    [
        ("", None, None, None),
        (None, None, None, None),
        ("web_chat", "web_chat", None, "web_chat"),
        ("web_chat.evt", "web_chat", "evt", "web_chat"),
        ("#web_chat", "_answer_to_web_chat", None, None),
        ("msg", "msg", None, None),
        ("msg.evt", "msg", "evt", None),
        ("user_status_12.online", "user_status_12", "online", "user_status_12"),
        ("track_x.subscription", "track_x", "subscription", "track_x"),
    ],
)
def test_parse_target_forms(name, pipe, event, server):
    t = parse_target(name)
    assert (t.pipe, t.event, t.server_channel) == (pipe, event, server)


@pytest.mark.parametrize("bad", ["web_chat.", "a.b.c", "#web.chat", "w", "web_chat.ev ent", "#"])
def test_parse_target_rejects(bad):
    with pytest.raises(ValueError):
        parse_target(bad)


def test_target_matching():
    all_ = parse_target("")
    assert all_.matches("web_chat", "e") and all_.matches("sys", "error") and all_.matches("msg", "x")
    assert not all_.matches("_answer_pipe_count", "user_in_pipe")
    assert not all_.matches("_answer_to_web_chat", "answer")
    t = parse_target("web_chat.new")
    assert t.matches("web_chat", "new") and not t.matches("web_chat", "old") and not t.matches("web_x", "new")


def test_send_pipe_rules():
    assert check_send_pipe("web_chat") == "web_chat"
    assert check_send_pipe("webauth_x") == "webauth_x"
    assert check_send_pipe("@web_chat") == "@web_chat"
    for bad in ("test_pipe", "@webauth_x", "msg", "web chat"):
        with pytest.raises(ValueError):
            check_send_pipe(bad)
