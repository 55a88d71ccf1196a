"""``dumps``: JSON text of a value, refusing what is not JSON, on every interpreter.

CPython's ``json.dumps(..., allow_nan=False)`` raises ValueError for NaN, infinities and a
circular reference, and TypeError for a value JSON cannot hold (a set, bytes, an object, a
tuple as a key). MicroPython's json.dumps has no ``allow_nan`` and writes such values anyway
(``nan``, ``{1, 2}``, ``<object>``), which no JSON parser reads back. There the same checks run
here first, without recursion (MicroPython's Python stack is a few hundred frames deep).
"""

import json
import math
import sys
from typing import Any

__all__ = ["dumps"]

_MICROPYTHON = sys.implementation.name == "micropython"


def dumps(value: Any) -> str:
    """``value`` as JSON text (non-ASCII kept as is). Raises ValueError or TypeError, as CPython's
    json.dumps with ``allow_nan=False`` does, for what JSON cannot hold."""
    if not _MICROPYTHON:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    check(value)
    return json.dumps(value)


def _check_float(x: float) -> None:
    if not math.isfinite(x):
        raise ValueError(f"Out of range float values are not JSON compliant: {x!r}")


def check(value: Any) -> None:
    """Raise what CPython's json.dumps(value, allow_nan=False) would raise; None when it would
    not. (A key that is a str subclass is refused too: MicroPython's json writes it unquoted.)"""
    walking: "set[int]" = set()             # ids of the containers being walked: a circle
    stack: "list[tuple[Any, bool]]" = [(value, False)]  # comes back to one of them
    while stack:
        item, leaving = stack.pop()
        if leaving:
            walking.discard(id(item))
        elif item is None or isinstance(item, (str, int, bool)):  # (not an int in MicroPython)
            pass
        elif isinstance(item, float):
            _check_float(item)
        elif isinstance(item, (list, tuple, dict)):
            if id(item) in walking:
                raise ValueError("Circular reference detected")
            walking.add(id(item))
            stack.append((item, True))
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, float):
                        _check_float(key)
                    elif not (key is None or type(key) is str or isinstance(key, (int, bool))):
                        raise TypeError(f"keys must be str, int, float, bool or None, "
                                        f"not {type(key).__name__}")
                    stack.append((child, False))
            else:
                stack.extend((child, False) for child in item)
        else:
            raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
