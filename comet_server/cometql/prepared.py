"""Prepared statements (COM_STMT_PREPARE / EXECUTE): values are bound as literals, never as SQL.

mysql-mimic 3.0.5 (``packets._interpolate_params``) pastes each bound string between quotes
without escaping it, so a value containing ``'`` rewrites the statement (SQL injection through
the API that exists to prevent it) and a backslash breaks it. Here the statement text is split
around its ``?`` placeholders once, at PREPARE, by a linear scanner that knows MySQL quoting and
comments; at EXECUTE every value becomes one SQL literal (strings escaped so that the CometQL
parser, which decodes literals exactly as MySQL does, gives back the same text).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from .errors import INVALID_DATA, TOO_LONG, CometQLError
from .packets import DecimalText

#: bytes of COM_STMT_SEND_LONG_DATA kept per statement (more gives error 11 at EXECUTE)
MAX_LONG_DATA = 16 * 1024 * 1024
#: placeholders per statement (MySQL's own limit is 65535)
MAX_PARAMS = 65535

# One token per match: quoted strings (backslash escapes; an unterminated one runs to the end),
# `identifiers`, comments, a placeholder, or a run of anything else. No nested quantifiers
# over overlapping classes, so matching is linear in the length of the statement.
_TOKEN = re.compile(
    r"""'[^'\\]*(?:\\.[^'\\]*)*(?:'|\Z)"""
    r'''|"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)'''
    r"""|`[^`]*(?:`|\Z)"""
    r"""|--(?=\s)[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z)"""
    r"""|\?"""
    r"""|[^'"`\-#/?]+|.""", re.S)


def split_placeholders(sql: str) -> list[str]:
    """The text around each ``?`` placeholder: ``n + 1`` parts for ``n`` placeholders."""
    parts: list[str] = []
    start = 0
    for m in _TOKEN.finditer(sql):
        if m.group() == "?":
            parts.append(sql[start:m.start()])
            start = m.end()
            if len(parts) > MAX_PARAMS:
                raise CometQLError(TOO_LONG, f"More than {MAX_PARAMS} placeholders in one statement")
    parts.append(sql[start:])
    return parts


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", re.A)


def quote(text: str) -> str:
    """A MySQL string literal whose decoded value is exactly ``text``."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_literal(value: Any) -> str:
    """One bound value as one SQL literal. Negative numbers get a leading space so that they
    can never join the text before them into a ``--`` comment."""
    if value is None:
        return "NULL"
    if isinstance(value, DecimalText):
        if _NUMBER.fullmatch(value) and len(value) <= 100:
            return " " + value if value.startswith("-") else value
        return quote(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return f" {value}" if value < 0 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CometQLError(INVALID_DATA, "Parameter is not a finite number")
        text = repr(value)
        return " " + text if text.startswith("-") else text
    if isinstance(value, (bytes, bytearray)):
        try:
            return quote(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            raise CometQLError(INVALID_DATA, "Binary parameter is not valid UTF-8 text") from None
    raise CometQLError(INVALID_DATA, f"Unsupported parameter value of type {type(value).__name__}")


def bind(parts: list[str], values: list[Any]) -> str:
    if len(values) != len(parts) - 1:
        raise CometQLError(INVALID_DATA, f"{len(values)} values for {len(parts) - 1} placeholders")
    out = [parts[0]]
    for value, text in zip(values, parts[1:]):
        out.append(sql_literal(value))
        out.append(text)
    return "".join(out)


@dataclass
class PreparedStatement:
    stmt_id: int
    parts: list[str]
    types: list[tuple[int, bool]] | None = None         # parameter types of the last EXECUTE
    long_data: dict[int, bytearray] = field(default_factory=dict)
    long_data_size: int = 0
    long_data_overflow: bool = False
    cursor: AsyncIterator[bytes] | None = None

    @property
    def num_params(self) -> int:
        return len(self.parts) - 1

    def add_long_data(self, param_id: int, data: bytes) -> None:
        """COM_STMT_SEND_LONG_DATA (no reply: errors surface at EXECUTE)."""
        if param_id >= self.num_params or self.long_data_size + len(data) > MAX_LONG_DATA:
            self.long_data_overflow = True
            return
        self.long_data.setdefault(param_id, bytearray()).extend(data)
        self.long_data_size += len(data)

    def reset(self) -> None:
        self.long_data.clear()
        self.long_data_size = 0
        self.long_data_overflow = False
        self.cursor = None


__all__ = ["PreparedStatement", "split_placeholders", "sql_literal", "bind", "quote", "MAX_LONG_DATA"]
