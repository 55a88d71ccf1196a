"""CometQL statements: a regex fast path for plain INSERTs, sqlglot for everything else.

Both paths produce the same small statement objects (:class:`Insert`, :class:`Select`,
:class:`Delete`, :class:`Show`), which ``tables.py`` executes. Anything that is not a CometQL
statement but that stock MySQL clients send while connecting (``SET ...``, ``SELECT
@@version_comment``, ``SHOW VARIABLES``, ``COMMIT`` ...) is returned as :data:`PASS` and left to
mysql-mimic's own handlers.

String literals are decoded as MySQL decodes them (backslash escapes plus doubled quotes), so
a value arrives exactly as the client library sent it. See the package docstring for how this
differs from CppComet.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Final, Union

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from .errors import (
    BAD_COLUMNS,
    NOT_IMPLEMENTED,
    SYNTAX,
    TOO_LONG,
    TOO_MANY_CONDITIONS,
    TOO_MANY_VALUES,
    CometQLError,
)

Value = Union[str, int, None]
"""A literal: ``str`` for strings (and non-integer numbers, as written), ``int``, or ``None`` (NULL)."""

MAX_CONDITIONS = 10
MAX_IN_VALUES = 1000
MAX_INSERT_ROWS = 1000
#: tokens a statement may have when it goes through sqlglot (~12 µs each to parse: this keeps
#: the worst parse near 40 ms of event-loop time; plain INSERTs never reach sqlglot)
MAX_SQLGLOT_TOKENS = 3000
#: syntax-tree nodes of a statement left to mysql-mimic (SET, SELECT without FROM,
#: INFORMATION_SCHEMA): mimic evaluates those with sqlglot's executor, inside the event loop
MAX_PASS_NODES = 500
#: digits of a number literal in a statement left to mysql-mimic (no huge-integer arithmetic)
MAX_PASS_NUMBER_DIGITS = 30


@dataclass
class Cond:
    column: str
    values: list[Value]          # ``=`` gives one value, ``IN (...)`` several


@dataclass
class Insert:
    table: str
    db: str | None
    columns: list[str]
    rows: list[list[Value]]


@dataclass
class Select:
    table: str
    db: str | None
    columns: list[str] | None    # None = ``*``
    where: list[Cond] = field(default_factory=list)
    limit: int | None = None


@dataclass
class Delete:
    table: str
    db: str | None
    where: list[Cond] = field(default_factory=list)


@dataclass
class Show:
    kind: str                    # "TABLES" | "DATABASES" | "COLUMNS" | "VARIABLES" | "STATUS" | ...
    full: bool = False
    db: str | None = None
    target: str | None = None    # table for COLUMNS
    like: str | None = None


Statement = Union[Insert, Select, Delete, Show]


class _Pass(enum.Enum):
    # A one-member enum, so that mypy narrows ``st is PASS`` away from the statement types.
    PASS = "PASS"

    def __repr__(self) -> str:
        return "PASS"


PASS: Final = _Pass.PASS
"""Not a CometQL statement; let mysql-mimic answer it (SET, SELECT @@x, SHOW VARIABLES ...)."""


# --------------------------------------------------------------------------------------------
# String literals

_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a",
            # MySQL keeps the backslash of \% and \_ (they are LIKE escapes)
            "%": "\\%", "_": "\\_"}
_UNESCAPE_RE = {
    "'": re.compile(r"\\(.)|''", re.S),
    '"': re.compile(r'\\(.)|""', re.S),
}


def unescape(body: str, quote: str) -> str:
    """Decode the text between the quotes of a MySQL string literal (sql_mode without
    NO_BACKSLASH_ESCAPES): ``\\'`` ``''`` -> ``'``, ``\\n`` -> newline, ``\\\\`` -> ``\\``,
    ``\\%`` stays ``\\%``, any other ``\\x`` -> ``x``."""
    if "\\" not in body and quote + quote not in body:
        return body

    def repl(m: re.Match[str]) -> str:
        ch = m.group(1)
        if ch is None:
            return quote
        return _ESCAPES.get(ch, ch)

    return _UNESCAPE_RE[quote].sub(repl, body)


# --------------------------------------------------------------------------------------------
# Fast path: INSERT|REPLACE INTO t (cols) VALUES (literals)[, (...)] [;]

_F = re.I | re.A
_HEAD = re.compile(
    r"\s*(?:INSERT|REPLACE)\s+INTO\s+"
    r"(?:(?:`(\w+)`|(\w+))\s*\.\s*)?"            # optional db.
    r"(?:`(\w+)`|(\w+))\s*\(", _F)
_COL = re.compile(r"""\s*(?:`([^`]*)`|'([^'\\]*)'|"([^"\\]*)"|(\w+))\s*([,)])""", _F)
_VALUES = re.compile(r"\s*VALUES\s*\(", _F)
_VAL = re.compile(
    r"""\s*(?:'([^'\\]*(?:(?:\\.|'')[^'\\]*)*)'"""    # 1 'single'
    r"""|"([^"\\]*(?:(?:\\.|"")[^"\\]*)*)\""""        # 2 "double"
    r"""|([-+]?\d+)(?![\w.])"""                        # 3 integer
    r"""|([-+]?(?:\d+\.\d*|\.\d+)(?:e[-+]?\d+)?)(?![\w.])"""  # 4 decimal, kept as written
    r"""|(NULL)(?!\w))\s*([,)])""", re.I | re.S)
_NEXT_ROW = re.compile(r"\s*,\s*\(", re.A)
_END = re.compile(r"\s*;?\s*\Z", re.A)


_STR = r"""(?:'([^'\\]*(?:(?:\\.|'')[^'\\]*)*)'|"([^"\\]*(?:(?:\\.|"")[^"\\]*)*)")"""
_PUBLISH = re.compile(
    r"\s*(?i:INSERT)\s+(?i:INTO)\s+(pipes_messages|users_messages)\s*\(\s*(name|id)\s*,\s*event\s*,\s*message\s*\)"
    r"\s*(?i:VALUES)\s*\(\s*(?:" + _STR + r"|([0-9]+))\s*,\s*" + _STR + r"\s*,\s*" + _STR + r"\s*\)\s*;?\s*\Z",
    re.S)


def fast_publish(sql: str) -> tuple[str, Value, str, str] | None:
    """The hot statement in one regex: ``INSERT INTO pipes_messages (name, event, message)
    VALUES ('p', 'e', 'm')`` or ``INSERT INTO users_messages (id, event, message) VALUES (7,
    'e', 'm')``. Returns (table, name or id, event, message), or None."""
    m = _PUBLISH.match(sql)
    if m is None:
        return None
    table, key_col, k1, k2, kn, e1, e2, m1, m2 = m.groups()
    if (table == "pipes_messages") != (key_col == "name"):
        return None      # let the general path report the wrong column
    key: Value = unescape(k1, "'") if k1 is not None else unescape(k2, '"') if k2 is not None else int(kn)
    event = unescape(e1, "'") if e1 is not None else unescape(e2, '"')
    message = unescape(m1, "'") if m1 is not None else unescape(m2, '"')
    return table, key, event, message


def fast_insert(sql: str) -> Insert | None:
    """Parse a plain INSERT without sqlglot; None when the statement is anything fancier
    (the caller then uses the general parser, which also produces the error messages)."""
    m = _HEAD.match(sql)
    if m is None:
        return None
    db = m.group(1) or m.group(2)
    table = m.group(3) or m.group(4)
    pos = m.end()
    columns: list[str] = []
    while True:
        c = _COL.match(sql, pos)
        if c is None:
            return None
        name = c.group(1)
        if name is None:
            name = c.group(2)
        if name is None:
            name = c.group(3)
        if name is None:
            name = c.group(4)
        columns.append(name)
        pos = c.end()
        if c.group(5) == ")":
            break
    v = _VALUES.match(sql, pos)
    if v is None:
        return None
    pos = v.end()
    rows: list[list[Value]] = []
    row: list[Value] = []
    while True:
        t = _VAL.match(sql, pos)
        if t is None:
            return None
        s1, s2, num, dec, _null, sep = t.groups()
        if s1 is not None:
            row.append(unescape(s1, "'"))
        elif s2 is not None:
            row.append(unescape(s2, '"'))
        elif num is not None:
            row.append(int(num))
        elif dec is not None:
            row.append(dec)
        else:
            row.append(None)
        pos = t.end()
        if sep == ")":
            rows.append(row)
            if len(rows) > MAX_INSERT_ROWS:
                return None
            n = _NEXT_ROW.match(sql, pos)
            if n is None:
                break
            row = []
            pos = n.end()
    if _END.match(sql, pos) is None:
        return None
    return Insert(table=table, db=db, columns=columns, rows=rows)


# --------------------------------------------------------------------------------------------
# General path: sqlglot (MySQL dialect)

# Functions a static SELECT (no FROM) may use; everything else is refused so that the
# sqlglot executor mysql-mimic uses for those never evaluates anything expensive.
_STATIC_FUNCS = {
    "DATABASE", "SCHEMA", "CURRENT_SCHEMA", "USER", "CURRENT_USER", "SESSION_USER",
    "SYSTEM_USER", "VERSION", "CURRENT_VERSION", "CONNECTION_ID", "NOW", "CURRENT_TIMESTAMP",
    "CURDATE", "CURRENT_DATE", "CURTIME", "CURRENT_TIME", "LOCALTIME", "LOCALTIMESTAMP",
    "UTC_TIMESTAMP", "UTC_DATE", "UTC_TIME", "UNIX_TIMESTAMP", "SYSDATE", "LAST_INSERT_ID",
}
_STATIC_NODES = (
    exp.Select, exp.Literal, exp.Null, exp.Boolean, exp.Alias, exp.Identifier,
    exp.SessionParameter, exp.Parameter, exp.Var, exp.Paren, exp.Neg, exp.Limit,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.Column, exp.Star, exp.Hint,
)
_INFO_SCHEMA = {"information_schema", "mysql", "performance_schema", "sys"}


_TOKEN = re.compile(r"""'[^'\\]*(?:\\.[^'\\]*)*'?|"[^"\\]*(?:\\.[^"\\]*)*"?|`[^`]*`?|\w+|\S""")


def count_tokens(sql: str, limit: int) -> int:
    """Roughly the tokens sqlglot will see (strings, words, symbols), counting stops past ``limit``."""
    n = 0
    for _ in _TOKEN.finditer(sql):
        n += 1
        if n > limit:
            break
    return n


def parse(sql: str) -> Statement | _Pass:
    """Parse one CometQL statement. Raises :class:`CometQLError` (code 2, 3, 14, ...)."""
    if count_tokens(sql, MAX_SQLGLOT_TOKENS) > MAX_SQLGLOT_TOKENS:
        raise CometQLError(TOO_LONG, f"Query is too complex: more than {MAX_SQLGLOT_TOKENS} tokens "
                                     "(plain INSERT ... VALUES statements have no such limit)")
    try:
        expressions = [e for e in sqlglot.parse(sql, read="mysql") if e is not None]
    except RecursionError:
        raise CometQLError(SYNTAX, "Syntax error: query is nested too deeply") from None
    except SqlglotError as e:
        raise CometQLError(SYNTAX, f"Syntax error in query: {_first_line(e)}") from None
    if not expressions:
        raise CometQLError(SYNTAX, "Syntax error in query: empty statement")
    if len(expressions) > 1:
        raise CometQLError(NOT_IMPLEMENTED, "Only one statement per query is supported")
    st = convert(expressions[0])
    if st is PASS:
        _check_pass_cost(expressions[0])
    return st


def _check_pass_cost(e: exp.Expr) -> None:
    """mysql-mimic evaluates what we PASS to it in the event loop: keep it small."""
    for n, node in enumerate(e.walk(), 1):
        if n > MAX_PASS_NODES:
            raise CometQLError(TOO_LONG, f"Query is too complex: more than {MAX_PASS_NODES} expression nodes")
        if isinstance(node, exp.Literal) and not node.is_string and len(node.this) > MAX_PASS_NUMBER_DIGITS:
            raise CometQLError(TOO_LONG, f"Number literal longer than {MAX_PASS_NUMBER_DIGITS} digits")
        if isinstance(node, (exp.RegexpLike, exp.RegexpILike)):
            raise CometQLError(NOT_IMPLEMENTED, "REGEXP is not supported")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else type(e).__name__
    return re.sub(r"\x1b\[[0-9;]*m", "", msg)[:200]


def convert(e: exp.Expr) -> Statement | _Pass:
    if isinstance(e, exp.Insert):
        return _insert(e)
    if isinstance(e, exp.Select):
        return _select(e)
    if isinstance(e, exp.Delete):
        return _delete(e)
    if isinstance(e, exp.Show):
        return _show(e)
    if isinstance(e, exp.Describe):
        this = e.this
        if not isinstance(this, exp.Table):
            raise CometQLError(NOT_IMPLEMENTED, "EXPLAIN is not supported")
        return Show("COLUMNS", db=this.text("db") or None, target=this.name)
    if isinstance(e, (exp.Set, exp.Use, exp.Transaction, exp.Commit, exp.Rollback)):
        return PASS
    if isinstance(e, exp.Update):
        raise CometQLError(NOT_IMPLEMENTED,
                           "UPDATE is not supported: INSERT replaces the existing row")
    if isinstance(e, exp.Union):
        raise CometQLError(NOT_IMPLEMENTED, "UNION is not supported")
    if isinstance(e, exp.Command):
        word = (e.name or "").upper()
        raise CometQLError(NOT_IMPLEMENTED, f"{word or 'This'} statement is not supported by CometQL")
    if isinstance(e, (exp.DDL, exp.DML, exp.Drop, exp.Alter, exp.Kill, exp.Create, exp.TruncateTable,
                      exp.Grant)):
        raise CometQLError(NOT_IMPLEMENTED, f"{e.key.upper()} statements are not supported by CometQL")
    raise CometQLError(SYNTAX, "Syntax error in query: expected SELECT, INSERT, DELETE, SHOW, DESCRIBE, SET or USE")


def _table(t: exp.Expression | None) -> tuple[str, str | None]:
    if not isinstance(t, exp.Table) or not isinstance(t.this, exp.Identifier):
        raise CometQLError(NOT_IMPLEMENTED, "Only a plain table name is supported after FROM/INTO")
    if t.args.get("catalog") or t.args.get("alias") or t.args.get("joins"):
        raise CometQLError(NOT_IMPLEMENTED, "Table aliases, joins and catalogs are not supported")
    return t.name, (t.text("db") or None)


def _column_name(node: exp.Expression) -> str | None:
    """A column reference: bare, `backquoted`, or CppComet-style 'quoted' / "quoted"."""
    if isinstance(node, exp.Column):
        if node.args.get("table"):
            return None if node.table else node.name
        return node.name
    if isinstance(node, exp.Identifier):
        return node.name
    if isinstance(node, exp.Literal) and node.is_string:
        return node.this
    return None


def literal(node: exp.Expression) -> Value:
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if re.fullmatch(r"\d+", text) else text
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        v = literal(node.this)
        return -v if isinstance(v, int) else "-" + str(v)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Paren):
        return literal(node.this)
    raise CometQLError(NOT_IMPLEMENTED,
                       f"Only literal values are supported, not {node.sql('mysql')[:60]!r}")


def _insert(e: exp.Insert) -> Insert:
    for key in ("conflict", "returning", "where", "partition", "overwrite"):
        if e.args.get(key):
            raise CometQLError(NOT_IMPLEMENTED, "Only INSERT INTO t (cols) VALUES (...) is supported")
    target = e.this
    if isinstance(target, exp.Schema):
        table, db = _table(target.this)
        columns = []
        for c in target.expressions:
            name = _column_name(c)
            if name is None:
                raise CometQLError(BAD_COLUMNS, "Not a specific column in the column list")
            columns.append(name)
    else:
        _table(target)
        raise CometQLError(BAD_COLUMNS, "INSERT needs a column list: INSERT INTO t (col, ...) VALUES (...)")
    values = e.expression
    if not isinstance(values, exp.Values):
        raise CometQLError(NOT_IMPLEMENTED, "Only INSERT ... VALUES (...) is supported")
    rows = []
    for tup in values.expressions:
        items = tup.expressions if isinstance(tup, exp.Tuple) else [tup]
        rows.append([literal(v) for v in items])
    if len(rows) > MAX_INSERT_ROWS:
        raise CometQLError(TOO_MANY_VALUES, f"At most {MAX_INSERT_ROWS} rows per INSERT")
    return Insert(table=table, db=db, columns=columns, rows=rows)


_SELECT_OK = {"expressions", "from", "from_", "where", "limit", "hint"}


def _select(e: exp.Select) -> Select | _Pass:
    src = e.args.get("from_") or e.args.get("from")
    if src is None:
        # static SELECT (SELECT 1, @@version_comment, DATABASE(), ...): mysql-mimic answers it
        for node in e.walk():
            if isinstance(node, exp.Func):
                func = node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name()
                if func not in _STATIC_FUNCS:
                    raise CometQLError(NOT_IMPLEMENTED, f"Function {func}() is not supported")
            elif not isinstance(node, _STATIC_NODES):
                raise CometQLError(NOT_IMPLEMENTED,
                                   f"{node.key.upper()} is not supported in a SELECT without FROM")
        _limit(e)
        return PASS
    if e.args.get("order"):
        raise CometQLError(NOT_IMPLEMENTED, "ORDER BY is not supported")
    for key, val in e.args.items():
        if val and key not in _SELECT_OK:
            raise CometQLError(NOT_IMPLEMENTED, f"{key.upper()} is not supported in CometQL SELECT")
    tables = [src.this] + list(src.expressions or [])
    if len(tables) != 1:
        raise CometQLError(NOT_IMPLEMENTED, "Joins are not supported")
    table_node = tables[0]
    if isinstance(table_node, exp.Table) and (table_node.text("db") or "").lower() in _INFO_SCHEMA:
        return PASS                      # INFORMATION_SCHEMA emulation of mysql-mimic
    table, db = _table(table_node)
    names: list[str] = []
    columns: list[str] | None = names  # None: '*'
    for c in e.expressions:
        if isinstance(c, exp.Star):
            columns = None
            if len(e.expressions) != 1:
                raise CometQLError(BAD_COLUMNS, "'*' cannot be combined with other columns")
            break
        name = _column_name(c)
        if name is None:
            raise CometQLError(BAD_COLUMNS,
                               f"Not a specific column: {c.sql('mysql')[:60]!r}")
        names.append(name)
    return Select(table=table, db=db, columns=columns, where=_where(e.args.get("where")), limit=_limit(e))


def _limit(e: exp.Select) -> int | None:
    lim = e.args.get("limit")
    if lim is None:
        return None
    if lim.args.get("offset") or e.args.get("offset"):
        raise CometQLError(NOT_IMPLEMENTED, "LIMIT with an offset is not supported")
    try:
        v = literal(lim.expression) if lim.expression is not None else None
    except CometQLError:
        v = None
    if not isinstance(v, int) or v < 0:
        raise CometQLError(SYNTAX, "LIMIT needs a non-negative integer")
    return v


def _delete(e: exp.Delete) -> Delete:
    for key, val in e.args.items():
        if val and key not in {"this", "where"}:
            raise CometQLError(NOT_IMPLEMENTED, f"{key.upper()} is not supported in CometQL DELETE")
    table, db = _table(e.this)
    return Delete(table=table, db=db, where=_where(e.args.get("where")))


def _where(w: exp.Expression | None) -> list[Cond]:
    if w is None:
        return []
    conds: list[Cond] = []
    seen: set[str] = set()
    stack = [w.this]
    while stack:
        node = stack.pop()
        if isinstance(node, exp.Paren):
            stack.append(node.this)
        elif isinstance(node, exp.And):
            stack.append(node.expression)
            stack.append(node.this)
        elif isinstance(node, exp.Or):
            raise CometQLError(NOT_IMPLEMENTED, "OR is not supported; use col IN (...)")
        elif isinstance(node, (exp.EQ, exp.In)):
            col = _column_name(node.this)
            if col is None:
                raise CometQLError(BAD_COLUMNS,
                                   f"Not a specific column in WHERE: {node.this.sql('mysql')[:60]!r}")
            if isinstance(node, exp.EQ):
                values = [literal(node.expression)]
            else:
                if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                    raise CometQLError(NOT_IMPLEMENTED, "Subqueries are not supported")
                values = [literal(v) for v in node.expressions]
                if not values:
                    raise CometQLError(SYNTAX, "Empty IN list")
                if len(values) > MAX_IN_VALUES:
                    raise CometQLError(TOO_MANY_VALUES, f"At most {MAX_IN_VALUES} values in IN (...)")
            if col in seen:
                raise CometQLError(BAD_COLUMNS,
                                   f"Column {col} appears twice in WHERE; use {col} IN (...)")
            seen.add(col)
            conds.append(Cond(col, values))
            if len(conds) > MAX_CONDITIONS:
                raise CometQLError(TOO_MANY_CONDITIONS, f"At most {MAX_CONDITIONS} conditions in WHERE")
        else:
            raise CometQLError(NOT_IMPLEMENTED,
                               f"Only col = value and col IN (...) joined by AND are supported in WHERE, "
                               f"not {node.key.upper()}")
    return conds


def _show(e: exp.Show) -> Show | _Pass:
    kind = (e.name or "").upper()
    like_node = e.args.get("like")
    like = like_node.this if isinstance(like_node, exp.Literal) else None
    db = e.text("db") or None
    if kind in ("TABLES", "DATABASES"):
        if e.args.get("where"):
            raise CometQLError(NOT_IMPLEMENTED, "SHOW ... WHERE is not supported; use LIKE")
        return Show(kind, full=bool(e.args.get("full")), db=db, like=like)
    if kind in ("TABLE STATUS", "PROCESSLIST"):
        return Show(kind, db=db, like=like)
    if kind in ("VARIABLES", "STATUS"):
        if e.args.get("where"):
            raise CometQLError(NOT_IMPLEMENTED, "SHOW ... WHERE is not supported; use LIKE")
        return Show(kind, like=like)
    if kind == "COLUMNS":
        target = e.args.get("target")
        name = target.name if isinstance(target, (exp.Identifier, exp.Table)) else None
        if not name:
            raise CometQLError(SYNTAX, "SHOW COLUMNS needs a table")
        return Show(kind, full=bool(e.args.get("full")), db=db, target=name, like=like)
    return PASS


__all__ = [
    "Cond", "Insert", "Select", "Delete", "Show", "Statement", "Value", "PASS",
    "fast_publish", "fast_insert", "parse", "convert", "unescape", "literal", "count_tokens",
]
