"""Channel and event names, and numeric ids: one rule for the WebSocket URL and commands
(wire.py, ws.py) and for CometQL and the HTTP publish API (cometql/tables.py), so every way in
accepts and refuses the same names and ids.

A name is 0-64 characters of ``A-Za-z0-9_-`` (CppComet's rule). Minimum lengths differ by use
and are given by the caller: reading a channel over the WebSocket needs >= 2 characters,
CometQL's ``pipes_messages`` etc. need >= 3 (CppComet checks each in its own place).

An id (a ``history_id``, a ``user_id``, a ``dev_id``) is 1 to 18 ASCII digits.
"""

from __future__ import annotations

import re

__all__ = ["MAX_ID_DIGITS", "MAX_NAME_LEN", "MIN_READ_NAME_LEN", "MIN_COMETQL_PIPE_NAME_LEN",
           "NAME_SEPARATORS_RE", "has_name_chars", "is_name", "parse_id"]

MAX_NAME_LEN = 64
MIN_READ_NAME_LEN = 2          # subscription / pipe_log
MIN_COMETQL_PIPE_NAME_LEN = 3  # CometQL tables
#: any number of this many digits fits a signed 64-bit integer (CppComet's long long, SQLite's INTEGER)
MAX_ID_DIGITS = 18

_NAME_CHARS_RE = re.compile(r"[A-Za-z0-9_-]*")
#: what separates names in a ``subscription`` argument: anything that cannot be in a name
NAME_SEPARATORS_RE = re.compile(r"[^A-Za-z0-9_-]+")


def has_name_chars(text: str) -> bool:
    """True when every character of ``text`` may stand in a name (an empty text has none bad)."""
    return _NAME_CHARS_RE.fullmatch(text) is not None


def is_name(text: str, *, min_len: int = 0) -> bool:
    """True when ``text`` is a name of ``min_len`` to ``MAX_NAME_LEN`` characters."""
    return min_len <= len(text) <= MAX_NAME_LEN and has_name_chars(text)


def parse_id(text: str) -> int | None:
    """The value of an id: 1 to ``MAX_ID_DIGITS`` ASCII digits; None for anything else ("",
    "-1", "undefined", "１", " 7")."""
    if text and len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None
