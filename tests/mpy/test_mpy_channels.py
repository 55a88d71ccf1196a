"""Channel and event names, send targets and subscription names, checked by plain code that
behaves the same under CPython and MicroPython (whose re drops counted repetition like {2,64})."""

from comet_py.channels import Target, check_event, check_name, check_send_pipe, parse_target
from tests.mpy.helpers import raises


def test_channel_names_of_2_to_64_allowed_characters_pass():
    for name in ("ab", "web_chat", "A-Z_09", "x" * 64, "-_", "track_1"):
        assert check_name(name) == name


def test_channel_names_too_short_or_too_long_fail_with_their_length():
    for name in ("", "a", "x" * 65, "x" * 1000):
        err = raises(ValueError, check_name, name)
        assert str(len(name)) + " characters" in str(err)


def test_channel_names_with_other_characters_fail_naming_the_character():
    for name, bad in (("web chat", " "), ("web.chat", "."), ("caf\u00e9", "\u00e9"), ("ab\n", "\n"),
                      ("a/b", "/"), ("a\x00b", "\x00"), ("\u0661\u0662", "\u0661"), ("ab@", "@")):
        err = raises(ValueError, check_name, name)
        assert repr(bad) in str(err), (name, str(err))


def test_channel_names_that_are_not_str_fail():
    for name in (None, 12, b"web_x", ["ab"]):
        raises(ValueError, check_name, name)


def test_event_names_of_1_to_64_characters_pass():
    for event in ("a", "message", "x" * 64, "ev-1_2"):
        assert check_event(event) == event
    for event in ("", "x" * 65, "a b", "a.b", None, 5):
        raises(ValueError, check_event, event)


def test_send_targets_are_web_webauth_or_anonymous_web():
    for pipe in ("web_chat", "webauth_room", "@web_chat", "web_", "webauth_"):
        assert check_send_pipe(pipe) == pipe
    for pipe in ("chat", "@webauth_room", "@@web_x", "track_x", "Web_x", "web", "@web",
                 "web_a b", "web_\u00e9", "@", "", "w" * 65, "web_" + "x" * 61):
        raises(ValueError, check_send_pipe, pipe)
    assert check_send_pipe("web_" + "x" * 60) == "web_" + "x" * 60  # 64 characters


def test_subscription_names():
    assert parse_target("web_chat") == Target("web_chat", "web_chat", None, "web_chat")
    assert parse_target("web_chat.msg") == Target("web_chat.msg", "web_chat", "msg", "web_chat")
    assert parse_target("#web_chat") == Target("#web_chat", "_answer_to_web_chat", None, None)
    assert parse_target("msg.private") == Target("msg.private", "msg", "private", None)
    assert parse_target("") == Target("", None, None, None)
    assert parse_target(None) == Target("", None, None, None)
    for name in ("web_chat.a.b", "web_chat.", "a.msg", "#a", "web chat", 7, "web_chat.a b"):
        raises(ValueError, parse_target, name)


def test_target_matches():
    every = parse_target("")
    assert every.matches("web_chat", "x") and not every.matches("_answer_to_web_x", "x")
    one = parse_target("web_chat.msg")
    assert one.matches("web_chat", "msg") and not one.matches("web_chat", "other")
    assert parse_target("web_chat").matches("web_chat", "anything")
