"""Channel and event names: one rule for the WebSocket commands (ws.py) and for CometQL and the
HTTP publish API (cometql/tables.py), so every way in accepts and refuses the same names.

A name is 0-64 characters of ``A-Za-z0-9_-`` (CppComet's rule). Minimum lengths differ by use
and are given by the caller: reading a channel over the WebSocket needs >= 2 characters,
CometQL's ``pipes_messages`` etc. need >= 3 (CppComet checks each in its own place).
"""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_LEN", "MIN_READ_NAME_LEN", "MIN_COMETQL_PIPE_NAME_LEN", "NAME_SEPARATORS_RE",
           "has_name_chars", "is_name"]

MAX_NAME_LEN = 64
MIN_READ_NAME_LEN = 2          # subscription / pipe_log
MIN_COMETQL_PIPE_NAME_LEN = 3  # CometQL tables

_NAME_CHARS_RE = re.compile(r"[A-Za-z0-9_-]*")
#: what separates names in a ``subscription`` argument: anything that cannot be in a name
NAME_SEPARATORS_RE = re.compile(r"[^A-Za-z0-9_-]+")


def has_name_chars(text: str) -> bool:
    """True when every character of ``text`` may stand in a name (an empty text has none bad)."""
    return _NAME_CHARS_RE.fullmatch(text) is not None


def is_name(text: str, *, min_len: int = 0) -> bool:
    """True when ``text`` is a name of ``min_len`` to ``MAX_NAME_LEN`` characters."""
    return min_len <= len(text) <= MAX_NAME_LEN and has_name_chars(text)
