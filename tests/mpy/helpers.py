"""What the tests of tests/mpy share. They run under CPython (collected by pytest) and under
MicroPython (tests/mpy/run.mjs), so they use plain asserts and this instead of pytest.raises."""

import sys

MICROPYTHON = sys.implementation.name == "micropython"


def raises(kind, fn, *args, **kwargs):
    """Call fn(*args, **kwargs); return the exception it raised, which must be a ``kind``."""
    try:
        fn(*args, **kwargs)
    except kind as exc:
        return exc
    raise AssertionError("%r did not raise %s" % (fn, kind.__name__))
