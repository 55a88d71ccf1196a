"""What ``except`` catches, on each interpreter (docs/api.md §8): under CPython and Pyodide the
classes also derive from the builtin; under MicroPython (one base only) from CometError alone."""

from comet_py.errors import (CODES, CallError, CometError, ConnectionLost, NotStartedError,
                             OptionsError, RequestTimeout)
from tests.mpy.helpers import MICROPYTHON, raises


def _raise(kind):
    raise kind("detail")


def test_every_class_is_caught_by_comet_error_and_by_itself():
    for kind in (NotStartedError, OptionsError, RequestTimeout, ConnectionLost, CometError):
        err = raises(CometError, _raise, kind)
        assert type(err) is kind and str(err) == "detail"
        raises(kind, _raise, kind)


def test_the_builtin_bases_hold_except_under_micropython():
    pairs = ((NotStartedError, RuntimeError), (OptionsError, ValueError))
    for kind, builtin in pairs:
        assert issubclass(kind, builtin) is not MICROPYTHON
    if MICROPYTHON:
        for kind, builtin in pairs:
            try:
                _raise(kind)
            except builtin:
                raise AssertionError("%s caught as %s" % (kind.__name__, builtin.__name__))
            except CometError:
                pass
    else:
        raises(ValueError, _raise, OptionsError)
        raises(RuntimeError, _raise, NotStartedError)
        raises(TimeoutError, _raise, RequestTimeout)  # noqa: F821 (no such builtin in MicroPython)
    assert not issubclass(ConnectionLost, (ValueError, RuntimeError))


def test_codes_raise_their_class_and_unknown_codes_a_comet_error():
    assert type(CallError("request_timeout", "late").exception()) is RequestTimeout
    assert type(CallError("connection_lost", "gone").exception()) is ConnectionLost
    assert type(CallError("from_a_newer_tab", "?").exception()) is CometError
    assert set(CODES) == {"server_error", "request_timeout", "connection_lost", "queue_full",
                          "bad_call"}


def test_call_error_round_trips_and_refuses_anything_else():
    e = CallError("bad_call", "no such op")
    assert CallError.from_json(e.to_json()) == e
    assert e.to_json() == {"code": "bad_call", "detail": "no such op"}
    for bad in (None, [], "x", {"code": "x"}, {"code": 1, "detail": "d"},
                {"code": "x", "detail": None}, {"code": "x", "detail": "d", "more": 1}):
        assert CallError.from_json(bad) is None, bad
    raises(AttributeError, setattr, e, "code", "x")
