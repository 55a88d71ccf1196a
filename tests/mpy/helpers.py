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


def unit_frames():
    """tests/unit/frames.py, the server frames captured from CppComet and comet_server (the
    MicroPython runner writes it to the same place in its file system)."""
    unit = __file__.rsplit("/", 2)[0] + "/unit"
    if unit not in sys.path:
        sys.path.append(unit)
    import frames

    return frames
