"""JSON decoding with one nesting cap (comet_py.jsonlimit), on both interpreters: a frame decodes
the same way, or is refused the same way, whichever interpreter a tab runs."""

from comet_py.jsonlimit import ENVELOPE_DEPTH, MAX_DEPTH, SCAN, TooDeep, depth_exceeds, loads
from tests.mpy.helpers import raises


def _nested(depth, inner="1"):
    return "[" * depth + inner + "]" * depth


def test_ordinary_json_decodes():
    assert loads('{"data": [1, "x", null, true, 2.5], "pipe": "web_x"}') == {
        "data": [1, "x", None, True, 2.5], "pipe": "web_x"}
    assert loads(" [1] ") == [1] and loads('"caf\u00e9 \\u00e9"') == "caf\u00e9 \u00e9"


def test_nesting_up_to_the_cap_decodes_and_deeper_is_too_deep():
    assert loads(_nested(MAX_DEPTH)) is not None
    for depth in (MAX_DEPTH + 1, 1000, 100000):
        err = raises(TooDeep, loads, _nested(depth))
        assert isinstance(err, ValueError) and "nested more than" in str(err)
    assert loads(_nested(MAX_DEPTH + ENVELOPE_DEPTH), MAX_DEPTH + ENVELOPE_DEPTH) is not None
    raises(TooDeep, loads, "{" + '"a":{' * 5000 + "}" * 5001)


def test_brackets_inside_strings_do_not_count():
    text = '{"data":"%s","pipe":"web_x"}' % ("[" * 5000 + '\\"' + "{" * 5000)
    assert loads(text)["data"].startswith("[[[")
    assert not depth_exceeds(text, 1)
    assert depth_exceeds('[["\\\\"]]', 1) and not depth_exceeds('["\\"]]]]"]', 1)


def test_nan_infinity_and_bad_text_are_value_errors():
    for text in ("NaN", "[NaN]", "Infinity", "-Infinity", '{"a": NaN}', "", "[1", "[1]x", "{'a': 1}"):
        raises(ValueError, loads, text)


def test_scan_gives_a_whole_values_end():
    text = '{"data":"x","pipe":"web_x"}'
    assert SCAN(text, 0) == ({"data": "x", "pipe": "web_x"}, len(text))
    try:
        SCAN("nope", 0)
    except (StopIteration, ValueError):
        pass
    else:
        raise AssertionError("SCAN decoded 'nope'")
