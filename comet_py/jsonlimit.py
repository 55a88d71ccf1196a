"""JSON decoding with a nesting cap: the one rule for server frames and tab-to-tab envelopes.

Python's decoder recurses once per nesting level, so a frame nested ~1,000 levels deep raises
RecursionError, and where exactly depends on the interpreter (CPython, Pyodide) and on how deep
the caller already is. A frame that decodes in the master tab must also decode in every
follower, inside a relay envelope a few levels deeper. So depth is checked before decoding,
against fixed numbers: a server frame (and a message's JSON data) may nest ``MAX_DEPTH``
levels, a relay envelope ``MAX_DEPTH + ENVELOPE_DEPTH``, since it wraps one such message.

NaN and Infinity are refused too: they are not JSON, and ``relay.encode`` could not pass them on
to the other tabs.

MicroPython has none of the CPython tools used here (``JSONDecoder``, ``str.translate``, ``re.S``),
and its ``json.loads`` refuses NaN and Infinity by itself. There ``SCAN`` decodes the whole rest
of the text, and ``depth_exceeds`` walks the text character by character (the same answer: a
CPython test compares them); ``DECODER`` is None.
"""

import json
import re
import sys
from typing import TYPE_CHECKING, Any, Callable

__all__ = ["MAX_DEPTH", "ENVELOPE_DEPTH", "DECODER", "SCAN", "TooDeep", "depth_exceeds", "loads"]

_MICROPYTHON = sys.implementation.name == "micropython"

#: nesting levels allowed in a server frame and in a message's JSON data.
MAX_DEPTH = 100
#: levels a relay envelope adds around one message (envelope, m, data; one spare).
ENVELOPE_DEPTH = 4


class TooDeep(ValueError):
    """JSON nested deeper than allowed (a ValueError, like any other undecodable text)."""


def _depth_exceeds_walk(text: str, limit: int) -> bool:
    """``depth_exceeds`` by a plain walk over the characters: MicroPython's, and the reference
    the fast CPython one is tested against. A string (escapes included) does not count; a quote
    that never closes opens no string (as the regex finds none there)."""
    depth = 0
    opened = -1  # where the string being walked began, or -1
    escaped = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        i += 1
        if opened >= 0:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                opened = -1
                continue
            if i == n:  # the text ends inside it: walk on after that quote, outside strings
                i, opened = opened + 1, -2
        elif ch == '"' and opened == -1:
            opened = i - 1
            if i == n:
                opened = -2
        elif ch == "[" or ch == "{":
            depth += 1
            if depth > limit:
                return True
        elif ch == "]" or ch == "}":
            depth -= 1
    return False


if TYPE_CHECKING or not _MICROPYTHON:
    from array import array
    from itertools import accumulate

    def _no_constants(name: str) -> Any:
        raise ValueError(f"non-JSON constant {name}")

    # Built once: json.loads with options builds a new decoder per call (a hot path). The hot paths
    # of protocol.plain_message and Session.received_fast call its raw_decode inline.
    DECODER = _DECODER = json.JSONDecoder(parse_constant=_no_constants)
    #: ``DECODER.raw_decode`` without its Python wrapper: ``(value, end)`` of the JSON value that starts
    #: at ``idx``; raises StopIteration when none does there, ValueError for a bad one.
    SCAN: Callable[[str, int], tuple[Any, int]] = DECODER.scan_once  # type: ignore[attr-defined]

    # A JSON string (escapes included), so brackets inside strings do not count.
    _STRING_RE: re.Pattern[str] | None = None  # compiled at first use: only for texts with many brackets
    # Bytes: opening brackets -> +1, closing -> -1 (as signed bytes), everything else deleted.
    _STEP = bytes(1 if c in b"[{" else 255 if c in b"]}" else 0 for c in range(256))
    _NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")

    def depth_exceeds(text: str, limit: int) -> bool:
        """True when the JSON ``text`` nests more than ``limit`` arrays/objects deep."""
        if text.count("[") + text.count("{") <= limit:  # the common case: too few brackets
            return False
        global _STRING_RE
        if _STRING_RE is None:
            _STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
        outside = _STRING_RE.sub("", text).encode("utf-8", "surrogatepass")
        steps = outside.translate(_STEP, _NOT_BRACKET)
        if len(steps) <= limit:
            return False
        return max(accumulate(array("b", steps))) > limit

    def loads(text: str, limit: int = MAX_DEPTH) -> Any:
        """Decode JSON ``text``, refusing (``TooDeep``) text nested more than ``limit`` deep and
        (``ValueError``) NaN/Infinity."""
        # depth_exceeds' own first test, inline: most texts have too few brackets to be too deep.
        if text.count("[") + text.count("{") > limit and depth_exceeds(text, limit):
            raise TooDeep(f"JSON nested more than {limit} levels deep")
        try:
            try:
                # decode() is raw_decode() plus two whitespace regex matches: skip them for text
                # that starts and ends with its value (a stripped frame line, a message's data).
                value, end = _DECODER.raw_decode(text)
            except ValueError:
                end = -1
            if end == len(text):
                return value
            return _DECODER.decode(text)  # leading or trailing whitespace; or its error
        except RecursionError as exc:  # cannot happen under the cap; a ValueError all the same
            raise TooDeep(str(exc)) from None
else:  # MicroPython (see the module's docstring)
    DECODER = None

    def SCAN(text, idx):
        """``(value, end)`` of the JSON value that makes up ``text[idx:]``, whitespace around it
        allowed; ValueError when there is none (NaN and Infinity included)."""
        return json.loads(text[idx:] if idx else text), len(text)

    def depth_exceeds(text, limit):
        """True when the JSON ``text`` nests more than ``limit`` arrays/objects deep."""
        return _depth_exceeds_walk(text, limit)

    def loads(text, limit=MAX_DEPTH):
        """Decode JSON ``text``, refusing (``TooDeep``) text nested more than ``limit`` deep and
        (``ValueError``) NaN/Infinity."""
        if text.count("[") + text.count("{") > limit and _depth_exceeds_walk(text, limit):
            raise TooDeep(f"JSON nested more than {limit} levels deep")
        return json.loads(text)
