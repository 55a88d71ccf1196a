"""start() options, validated by plain code (no fullmatch, named groups or {m,n} in
MicroPython's re): the same answers under CPython and MicroPython."""

from comet_py.errors import CometError, OptionsError
from comet_py.options import DEFAULT_NODE, Options, parse_options
from tests.mpy.helpers import MICROPYTHON, raises


def test_minimal_options_get_the_defaults():
    o = parse_options({"dev_id": 15})
    assert o == Options(15)
    assert (o.user_id, o.user_key, o.nodes, o.wss, o.uuid) == (0, "", (DEFAULT_NODE,), None, None)
    assert o.node == DEFAULT_NODE and o.key == DEFAULT_NODE + "|15|0"


def test_keywords_win_over_the_dict_and_digit_strings_are_ids():
    o = parse_options({"dev_id": 1, "user_id": "7"}, dev_id="15")
    assert (o.dev_id, o.user_id) == (15, 7)


def test_ids_must_be_ascii_digits_or_non_negative_ints():
    for bad in (-1, "-1", "1.5", "", " 1", "1 ", "\u0661", "\uff11", True, 1.0, None, [1]):
        raises(OptionsError, parse_options, {"dev_id": 1, "user_id": bad} if bad not in (None, "")
               else {"dev_id": bad})


def test_unknown_or_non_dict_options_fail():
    err = raises(OptionsError, parse_options, {"dev_id": 1, "devid": 2})
    assert "unknown option 'devid'" in str(err)
    if not MICROPYTHON:  # the hint comes from difflib, which MicroPython lacks
        assert "did you mean 'dev_id'" in str(err)
    for bad in ("dev_id=1", [("dev_id", 1)], 15):
        raises(OptionsError, parse_options, bad)


def test_nodes_of_the_form_host_port_path_pass():
    for node, kept in (("example.com", "example.com"), ("127.0.0.1:8087", "127.0.0.1:8087"),
                       ("a", "a"), ("a-b.c:1", "a-b.c:1"), ("[::1]:8087", "[::1]:8087"),
                       ("[2001:db8::1]", "[2001:db8::1]"), ("h:65535/comet/x", "h:65535/comet/x"),
                       ("h/", "h"), ("h/p.~_-/", "h/p.~_-"), ("h:80/", "h:80")):
        assert parse_options(dev_id=1, node=node).node == kept, node
    o = parse_options(dev_id=1, node=["a:1", "b:2"])
    assert o.nodes == ("a:1", "b:2") and o.key == "a:1,b:2|1|0"


def test_malformed_nodes_fail():
    for node in ("", "-a", "a-", ".a", "a.", "http://a", "wss://a:1", "a:", "a:x", "a:123456",
                 "a:0", "a:65536", ":80", "a b", "a:80:90", "[::1", "[]", "[::g]", "[::1]x",
                 "[::1]:", "a//b", "a/b//", "a/b c", "a?x", "a#x", "h\u00e9", "a:\uff18\uff10",
                 "a:1\n", "a\n", "host\x00", 5):
        raises(OptionsError, parse_options, dev_id=1, node=node)
    for nodes in ([], [5], ["a", ""], {"a": 1}):
        raises(OptionsError, parse_options, dev_id=1, node=nodes)


def test_user_key_is_printable_ascii_without_url_breakers_and_at_most_600():
    assert parse_options(dev_id=1, user_key="abc.DEF-_=+!~").user_key == "abc.DEF-_=+!~"
    assert len(parse_options(dev_id=1, user_key="k" * 600).user_key) == 600
    for key in ("a b", "a&b", "a#b", "a?b", "\u00e9", "a\n", "a\x7f", "k" * 601, 5):
        raises(OptionsError, parse_options, dev_id=1, user_key=key)


def test_uuid_is_exactly_32_allowed_characters():
    good = "A" * 16 + "z9_-" * 4
    assert parse_options(dev_id=1, uuid=good).uuid == good
    assert parse_options(dev_id=1, uuid="").uuid is None
    for bad in ("A" * 31, "A" * 33, "A" * 31 + "!", "A" * 31 + "\u00e9", 5, "A" * 64):
        raises(OptionsError, parse_options, dev_id=1, uuid=bad)


def test_wss_is_a_bool_or_none():
    assert parse_options(dev_id=1, wss=True).wss is True
    for bad in (1, "true", 0):
        raises(OptionsError, parse_options, dev_id=1, wss=bad)


def test_merged_keeps_old_keys_and_round_trips():
    o = parse_options(dev_id=1, user_id=2, user_key="k", node=["a", "b"], wss=False)
    assert parse_options(o.to_dict()) == o
    m = o.merged({"user_id": 3}, node="c")
    assert (m.dev_id, m.user_id, m.user_key, m.nodes, m.wss) == (1, 3, "k", ("c",), False)


def test_options_are_frozen_records_and_errors_are_comet_errors():
    o = parse_options(dev_id=1)
    raises(AttributeError, setattr, o, "dev_id", 2)
    assert repr(o).startswith("Options(dev_id=1, user_id=0,")
    assert isinstance(raises(CometError, parse_options, {}), OptionsError)
