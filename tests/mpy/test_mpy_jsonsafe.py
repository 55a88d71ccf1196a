"""jsonsafe.dumps: the JSON text web_pipe_send puts in a frame, and the same refusals (ValueError,
TypeError) under CPython, whose json checks, and MicroPython, whose json writes nan and {1, 2}."""

import json

from comet_py.jsonsafe import dumps
from tests.mpy.helpers import raises


class Opaque:
    pass


def test_json_values_round_trip():
    for value in (None, True, 0, -7, 2 ** 70, 0.5, -0.0, 1e300, "", "caf\u00e9 \u2028 \x01 \"\\",
                  [], {}, [1, [2, [3]]], {"a": {"b": [None, False]}}, (1, 2)):
        text = dumps(value)
        back = json.loads(text)
        assert back == (list(value) if isinstance(value, tuple) else value), (value, text)


def test_non_ascii_is_written_as_is():
    assert dumps("caf\u00e9") == '"caf\u00e9"'


def test_keys_that_json_converts_are_converted_as_cpython_does():
    assert json.loads(dumps({1: "a"})) == {"1": "a"}
    assert json.loads(dumps({True: 1, None: 2, 1.5: 3})) == {"true": 1, "null": 2, "1.5": 3}


def test_nan_and_infinities_are_value_errors_anywhere():
    nan, inf = float("nan"), float("inf")
    for value in (nan, inf, -inf, [1, nan], {"a": {"b": [inf]}}, {nan: 1}, {inf: 1}, (0, -inf)):
        raises(ValueError, dumps, value)


def test_what_json_cannot_hold_is_a_type_error():
    for value in ({1, 2}, frozenset(), b"x", bytearray(b"x"), Opaque(), [Opaque()],
                  {"a": {2, 3}}, {(1, 2): "tuple key"}, {b"k": 1}, print, object()):
        raises(TypeError, dumps, value)


def test_circular_references_are_value_errors_and_shared_ones_are_fine():
    loop = [1]
    loop.append(loop)
    raises(ValueError, dumps, loop)
    d = {}
    d["self"] = [d]
    raises(ValueError, dumps, d)
    shared = [1, 2]
    assert json.loads(dumps([shared, shared, {"s": shared}])) == [[1, 2], [1, 2], {"s": [1, 2]}]


def test_deep_nesting_does_not_exhaust_the_stack():
    value = 1
    for _ in range(300):
        value = [value]
    assert dumps(value) == "[" * 300 + "1" + "]" * 300
