"""CometQL tables (docs/protocol.md §5) executed against the Hub and its Store (design.md §2).

Every statement is validated completely before anything is changed, so a rejected
statement (even a multi-row INSERT with one bad row) changes nothing.

The publish helpers :func:`publish_to_pipe` and :func:`send_to_user` are shared with the HTTP
publish endpoint (``http_api.py``) so both APIs accept and refuse exactly the same data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .errors import (
    BAD_COLUMNS,
    INVALID_DATA,
    NO_KEY,
    NOT_FOUND,
    NOT_IMPLEMENTED,
    READ_ONLY,
    TOO_LONG,
    TOO_SHORT,
    CometQLError,
)
from ..auth import MAX_TOKEN_LEN, decode_jwt
from ..names import MAX_NAME_LEN, MIN_COMETQL_PIPE_NAME_LEN as MIN_PIPE_NAME_LEN, has_name_chars, parse_id
from .sql import Cond, Delete, Insert, Select, Show, Value

DATABASE = "CometQL_v1"

MAX_HASH_LEN = 32
MAX_HISTORY_LENGTH = 1000

_HASH_RE = re.compile(r"[0-9A-Za-z=+/_]*")
_INT_RE = re.compile(r"[-+]?[0-9]+")


@dataclass
class Context:
    hub: Any            # comet_server.hub.Hub
    dev_id: int

    @property
    def store(self) -> Any:
        return self.hub.store


@dataclass
class Result:
    """What a statement returns: rows + (name, "int"|"str") columns, or an OK with counts."""

    rows: list[tuple] | None = None
    columns: list[tuple[str, str]] | None = None
    affected: int = 0
    last_insert_id: int = 0


# --------------------------------------------------------------------------------------------
# Validation shared with the HTTP API


def check_pipe_name(name: Value, *, column: str = "name", min_len: int = MIN_PIPE_NAME_LEN) -> str:
    if name is None:
        raise CometQLError(INVALID_DATA, f"Column {column} cannot be NULL")
    name = str(name)
    if len(name) > MAX_NAME_LEN:
        raise CometQLError(TOO_LONG, f"Channel name is longer than {MAX_NAME_LEN} characters")
    if len(name) < min_len:
        raise CometQLError(TOO_SHORT, f"Channel name is shorter than {min_len} characters")
    if not has_name_chars(name):
        raise CometQLError(INVALID_DATA, "Invalid channel name: it can only contain characters A-Za-z0-9_-")
    return name


def check_event_name(event: Value) -> str:
    if event is None:
        raise CometQLError(INVALID_DATA, "Column event cannot be NULL")
    event = str(event)
    if len(event) > MAX_NAME_LEN:
        raise CometQLError(TOO_LONG, f"Event name is longer than {MAX_NAME_LEN} characters")
    if not has_name_chars(event):
        raise CometQLError(INVALID_DATA, "Invalid event name: it can only contain characters A-Za-z0-9_-")
    return event


def check_user_id(value: Value, column: str = "id") -> int:
    uid = to_int(value, column)
    if uid <= 0:
        raise CometQLError(INVALID_DATA, f"Column {column} must be a user id > 0")
    return uid


def to_int(value: Value, column: str) -> int:
    if value is None:
        raise CometQLError(INVALID_DATA, f"Column {column} cannot be NULL")
    if isinstance(value, int):
        v = int(value)
    elif isinstance(value, str) and len(value) < 40 and _INT_RE.fullmatch(value.strip()):
        v = int(value)
    else:
        raise CometQLError(INVALID_DATA, f"Column {column} needs an integer, not {str(value)[:40]!r}")
    if not -(2**63) <= v < 2**63:
        raise CometQLError(TOO_LONG, f"Column {column}: {str(v)[:40]} is out of range")
    return v


def to_str(value: Value, column: str) -> str:
    if value is None:
        raise CometQLError(INVALID_DATA, f"Column {column} cannot be NULL")
    return value if isinstance(value, str) else str(value)


def check_pipe_message(pipe: Value, event: Value, message: Value) -> tuple[str, str, str]:
    """A channel message (pipes_messages row, HTTP publish to a pipe), validated."""
    return check_pipe_name(pipe), check_event_name(event), to_str(message, "message")


def check_user_message(user_id: Value, event: Value, message: Value) -> tuple[int, str, str]:
    """A personal message (users_messages row, HTTP publish to a user), validated."""
    return check_user_id(user_id), check_event_name(event), to_str(message, "message")


def publish_to_pipe(hub: Any, dev_id: int, pipe: Value, event: Value, message: Value) -> int:
    """Validated ``hub.publish`` (INSERT INTO pipes_messages); returns deliveries."""
    return hub.publish(dev_id, *check_pipe_message(pipe, event, message))


def send_to_user(hub: Any, dev_id: int, user_id: Value, event: Value, message: Value) -> int:
    """Validated ``hub.send_to_user`` (INSERT INTO users_messages); returns live deliveries
    (0 = the user is offline and the message was queued)."""
    return hub.send_to_user(dev_id, *check_user_message(user_id, event, message))


def jwt_user_id(token: str, password: str, dev_id: int) -> int | None:
    """The ``user_id`` of a valid, unexpired HS256 JWT signed with ``password + dev_id``
    (docs/protocol.md §5), else None. Revocation is not checked here."""
    claims = decode_jwt(token, password, dev_id)
    uid = claims.get("user_id") if claims is not None else None
    if type(uid) is not int or uid <= 0:
        return None
    return uid


# --------------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True)
class Column:
    name: str
    type: str            # "int" | "str"
    sql_type: str        # for DESCRIBE / SHOW COLUMNS


def _cols(*spec: str) -> tuple[Column, ...]:
    out = []
    for s in spec:
        name, typ, sql_type = s.split(":")
        out.append(Column(name, typ, sql_type))
    return tuple(out)


class Table:
    name: str = ""
    columns: tuple[Column, ...] = ()
    select_keys: tuple[str, ...] = ()     # one of them must be in WHERE (else 13)
    delete_keys: tuple[str, ...] = ()
    select_all: bool = False              # SELECT without WHERE allowed (all rows)
    read_only: bool = False
    insert_required: tuple[str, ...] = ()
    insert_optional: tuple[str, ...] = ()

    def col(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise CometQLError(BAD_COLUMNS, f"Unknown column '{name}' in table {self.name}"
                           + (" (names are lower-case)" if name.lower() != name else ""))

    # hooks ---------------------------------------------------------------------------------
    def fetch(self, ctx: Context, key: str | None, values: list | None) -> list[tuple]:
        raise NotImplementedError

    def insert(self, ctx: Context, rows: list[dict[str, Value]]) -> Result:
        raise CometQLError(READ_ONLY, f"Table {self.name} is read-only")

    def delete(self, ctx: Context, key: str, values: list, matched: list[tuple] | None) -> int:
        """Delete: ``matched`` is None when WHERE has only the key (delete everything for
        those keys), else the exact rows (full tuples) to delete."""
        raise CometQLError(READ_ONLY, f"Table {self.name} is read-only")

    # helpers -------------------------------------------------------------------------------
    def index(self, name: str) -> int:
        return [c.name for c in self.columns].index(name)

    def convert(self, column: str, value: Value) -> Any:
        c = self.col(column)
        if c.type == "int":
            return to_int(value, column)
        return to_str(value, column)


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


class PipesMessages(Table):
    name = "pipes_messages"
    columns = _cols("id:str:varchar(20)", "time:int:int(11)", "name:str:varchar(64)",
                    "index:int:int(11)", "event:str:varchar(64)", "message:str:text",
                    "user_id:int:int(11)")
    select_keys = ("name",)
    delete_keys = ("name", "id")
    insert_required = ("name", "event", "message")

    def fetch(self, ctx, key, values):
        rows = []
        for name in _unique(check_pipe_name(v) for v in values):
            for h in ctx.store.get_history(ctx.dev_id, name):
                rows.append((h.history_id, h.time, h.pipe, h.index, h.event, h.data, h.user_id))
        return rows

    def insert(self, ctx, rows):
        checked = [check_pipe_message(r["name"], r["event"], r["message"]) for r in rows]
        delivered = sum(ctx.hub.publish(ctx.dev_id, p, e, m) for p, e, m in checked)
        return Result(affected=delivered)

    def delete(self, ctx, key, values, matched):
        if key == "id" and matched is None:
            return sum(1 for history_id in _unique(values)
                       if parse_id(history_id) is not None and ctx.store.delete_history_item(ctx.dev_id, history_id))
        if matched is None:
            n = 0
            for name in _unique(check_pipe_name(v) for v in values):
                n += len(ctx.store.get_history(ctx.dev_id, name))
                ctx.store.clear_history(ctx.dev_id, name)
            return n
        return sum(1 for r in matched if ctx.store.delete_history_item(ctx.dev_id, r[0]))


class PipesSettings(Table):
    name = "pipes_settings"
    columns = _cols("name:str:varchar(64)", "length:int:int(11)")
    select_keys = delete_keys = ("name",)
    insert_required = ("name", "length")

    def fetch(self, ctx, key, values):
        return [(n, ctx.store.get_pipe_length(ctx.dev_id, n))
                for n in _unique(check_pipe_name(v) for v in values)]

    def insert(self, ctx, rows):
        checked = []
        for r in rows:
            length = to_int(r["length"], "length")
            if length < 0:
                raise CometQLError(INVALID_DATA, "Column length must be 0..1000 (0 turns the history off)")
            if length > MAX_HISTORY_LENGTH:
                raise CometQLError(TOO_LONG, f"History length {length} is over the maximum of {MAX_HISTORY_LENGTH}")
            checked.append((check_pipe_name(r["name"]), length))
        for name, length in checked:
            ctx.store.set_pipe_length(ctx.dev_id, name, length)
        return Result(affected=len(checked))

    def delete(self, ctx, key, values, matched):
        names = _unique(check_pipe_name(v) for v in values) if matched is None else [r[0] for r in matched]
        for n in names:
            ctx.store.delete_pipe_settings(ctx.dev_id, n)
        return len(names)


class UsersMessages(Table):
    name = "users_messages"
    columns = _cols("id:int:int(11)", "index:str:varchar(20)", "event:str:varchar(64)", "message:str:text")
    select_keys = delete_keys = ("id",)
    insert_required = ("id", "event", "message")
    insert_optional = ("index",)          # accepted and ignored, as CppComet

    def fetch(self, ctx, key, values):
        rows = []
        for uid in _unique(to_int(v, "id") for v in values):
            for q in ctx.store.queued_user_messages(ctx.dev_id, uid):
                rows.append((uid, q.id, q.event, q.data))
        return rows

    def insert(self, ctx, rows):
        checked = [check_user_message(r["id"], r["event"], r["message"]) for r in rows]
        delivered = sum(ctx.hub.send_to_user(ctx.dev_id, u, e, m) for u, e, m in checked)
        return Result(affected=delivered, last_insert_id=checked[-1][0])

    def delete(self, ctx, key, values, matched):
        if matched is None:
            return sum(ctx.store.delete_user_messages(ctx.dev_id, uid, None)
                       for uid in _unique(to_int(v, "id") for v in values))
        by_user: dict[int, list[str]] = {}
        for r in matched:
            by_user.setdefault(r[0], []).append(r[1])
        return sum(ctx.store.delete_user_messages(ctx.dev_id, uid, ids) for uid, ids in by_user.items())


class UsersAuth(Table):
    name = "users_auth"
    columns = _cols("id:int:int(11)", "hash:str:varchar(32)")
    select_keys = delete_keys = ("id",)
    insert_required = ("id", "hash")

    def fetch(self, ctx, key, values):
        ids = _unique(to_int(v, "id") for v in values)
        found = dict(ctx.store.user_hashes(ctx.dev_id, ids))
        return [(uid, found[uid]) for uid in ids if uid in found]

    def insert(self, ctx, rows):
        checked = []
        for r in rows:
            uid = check_user_id(r["id"])
            h = to_str(r["hash"], "hash")
            if len(h) > MAX_HASH_LEN:
                raise CometQLError(TOO_LONG, f"Column hash is longer than {MAX_HASH_LEN} characters")
            if not h:
                raise CometQLError(TOO_SHORT, "Column hash is empty")
            if not _HASH_RE.fullmatch(h):
                raise CometQLError(INVALID_DATA, "Column hash can only contain characters 0-9A-Za-z=+/_")
            checked.append((uid, h))
        for uid, h in checked:
            ctx.store.set_user_hash(ctx.dev_id, uid, h)
        return Result(affected=len(checked), last_insert_id=checked[-1][0])

    def delete(self, ctx, key, values, matched):
        ids = _unique(to_int(v, "id") for v in values) if matched is None else [r[0] for r in matched]
        n = 0
        for uid in ids:
            if ctx.store.delete_user_hash(ctx.dev_id, uid):
                n += 1
            ctx.hub.disconnect_user(ctx.dev_id, uid)
        return n


class UsersTime(Table):
    name = "users_time"
    columns = _cols("id:int:int(11)", "time:int:int(11)")
    select_keys = ("id",)
    read_only = True

    def fetch(self, ctx, key, values):
        rows = []
        for uid in _unique(to_int(v, "id") for v in values):
            if ctx.hub.is_online(ctx.dev_id, uid):
                t = 0
            else:
                t = ctx.store.get_user_time(ctx.dev_id, uid)
                if t == 0:          # marked online, but not connected here: last seen unknown
                    t = -1
            rows.append((uid, t))
        return rows


class UsersData(Table):
    name = "users_data"
    columns = _cols("id:int:int(11)", "data:str:text")
    select_keys = delete_keys = ("id",)
    insert_required = ("id", "data")

    def fetch(self, ctx, key, values):
        rows = []
        for uid in _unique(to_int(v, "id") for v in values):
            d = ctx.store.get_user_data(ctx.dev_id, uid)
            if d is not None:
                rows.append((uid, d))
        return rows

    def insert(self, ctx, rows):
        checked = [(check_user_id(r["id"]), to_str(r["data"], "data")) for r in rows]
        for uid, d in checked:
            ctx.store.set_user_data(ctx.dev_id, uid, d)
        return Result(affected=len(checked), last_insert_id=checked[-1][0])

    def delete(self, ctx, key, values, matched):
        ids = _unique(to_int(v, "id") for v in values) if matched is None else [r[0] for r in matched]
        return sum(1 for uid in ids if ctx.store.delete_user_data(ctx.dev_id, uid))


class RevokedTokens(Table):
    name = "revoked_tokens"
    columns = _cols("token:str:varchar(600)")
    select_keys = delete_keys = ("token",)
    select_all = True
    insert_required = ("token",)

    def fetch(self, ctx, key, values):
        if values is None:
            return [(t,) for t in ctx.store.revoked_tokens(ctx.dev_id)]
        return [(t,) for t in _unique(to_str(v, "token") for v in values)
                if ctx.store.is_token_revoked(ctx.dev_id, t)]

    def insert(self, ctx, rows):
        checked = []
        for r in rows:
            t = to_str(r["token"], "token")
            if not t:
                raise CometQLError(TOO_SHORT, "Column token is empty")
            if len(t) > MAX_TOKEN_LEN:
                raise CometQLError(TOO_LONG, f"Column token is longer than {MAX_TOKEN_LEN} characters")
            checked.append(t)
        for t in checked:
            ctx.store.revoke_token(ctx.dev_id, t)
            uid = jwt_user_id(t, ctx.hub.password, ctx.dev_id)
            if uid is not None:           # a valid token: its user loses the session and is cut off
                ctx.store.delete_user_hash(ctx.dev_id, uid)
                ctx.hub.disconnect_user(ctx.dev_id, uid)
        return Result(affected=len(checked))

    def delete(self, ctx, key, values, matched):
        toks = _unique(to_str(v, "token") for v in values) if matched is None else [r[0] for r in matched]
        return sum(1 for t in toks if ctx.store.unrevoke_token(ctx.dev_id, t))


class Pipes(Table):
    name = "pipes"
    columns = _cols("name:str:varchar(64)", "users:int:int(11)")
    select_keys = ("name",)
    select_all = True          # comet_server extension: all channels with subscribers
    read_only = True

    def fetch(self, ctx, key, values):
        if values is None:
            return sorted(ctx.hub.pipes(ctx.dev_id).items())
        return [(n, ctx.hub.subscriber_count(ctx.dev_id, n))
                for n in _unique(check_pipe_name(v, min_len=1) for v in values)]


class UsersInPipes(Table):
    name = "users_in_pipes"
    columns = _cols("name:str:varchar(64)", "user_id:int:int(11)", "user_uuid:str:varchar(64)",
                    "user_agent:str:text", "ip:str:varchar(64)", "origin:str:text", "language:str:varchar(64)")
    select_keys = ("name",)
    read_only = True

    def fetch(self, ctx, key, values):
        rows = []
        for n in _unique(check_pipe_name(v, min_len=1) for v in values):
            for c in ctx.hub.subscribers(ctx.dev_id, n):
                rows.append((n, int(getattr(c, "user_id", 0) or 0), str(getattr(c, "uuid", "") or ""),
                             str(getattr(c, "user_agent", "") or ""), str(getattr(c, "ip", "") or ""),
                             str(getattr(c, "origin", "") or ""), str(getattr(c, "language", "") or "")))
        return rows


TABLES: dict[str, Table] = {t.name: t for t in (
    PipesMessages(), PipesSettings(), UsersMessages(), UsersAuth(), UsersTime(), UsersData(),
    RevokedTokens(), Pipes(), UsersInPipes())}

# CppComet tables comet_server does not implement (video/SIP, dialogs).
UNSUPPORTED_TABLES = {"conference", "conference_members", "profiler", "dialogs"}


# --------------------------------------------------------------------------------------------
# Execution


def table_for(name: str, db: str | None) -> Table:
    if db is not None and db != DATABASE:
        raise CometQLError(NOT_FOUND, f"Unknown database '{db}'")
    t = TABLES.get(name)
    if t is None:
        if name in UNSUPPORTED_TABLES:
            raise CometQLError(NOT_IMPLEMENTED, f"Table {name} is not supported by comet_server")
        hint = " (names are lower-case)" if name.lower() in TABLES else ""
        raise CometQLError(NOT_FOUND, f"Table '{DATABASE}.{name}' doesn't exist{hint}")
    return t


def _split_where(t: Table, where: list[Cond], keys: Sequence[str], allow_all: bool,
                 verb: str) -> tuple[str | None, list | None, list[tuple[int, set]]]:
    conds = {c.column: c.values for c in where}
    for col in conds:
        t.col(col)
    key = next((k for k in keys if k in conds), None)
    if key is None and not allow_all:
        keys_text = " or ".join(keys)
        raise CometQLError(NO_KEY, f"{verb} from {t.name} needs WHERE {keys_text} = ... or IN (...): "
                           "selection without the primary key is not supported")
    values = conds.pop(key) if key is not None else None
    filters = [(t.index(col), {t.convert(col, v) for v in vals}) for col, vals in conds.items()]
    return key, values, filters


def _apply_filters(rows: list[tuple], filters: list[tuple[int, set]]) -> list[tuple]:
    if not filters:
        return rows
    return [r for r in rows if all(r[i] in allowed for i, allowed in filters)]


def execute(ctx: Context, st: Insert | Select | Delete) -> Result:
    t = table_for(st.table, st.db)
    if isinstance(st, Select):
        return _select(ctx, t, st)
    if isinstance(st, Insert):
        return _insert(ctx, t, st)
    return _delete(ctx, t, st)


def _select(ctx: Context, t: Table, st: Select) -> Result:
    names = [c.name for c in t.columns] if st.columns is None else st.columns
    idx = []
    for n in names:
        t.col(n)
        idx.append(t.index(n))
    key, values, filters = _split_where(t, st.where, t.select_keys, t.select_all, "SELECT")
    if key is not None and values is not None and t.col(key).type == "int":
        values = [to_int(v, key) for v in values]
    rows = _apply_filters(t.fetch(ctx, key, values), filters)
    if st.limit is not None:
        rows = rows[: st.limit]
    if st.columns is not None:
        rows = [tuple(r[i] for i in idx) for r in rows]
    return Result(rows=rows, columns=[(n, t.col(n).type) for n in names])


def _insert(ctx: Context, t: Table, st: Insert) -> Result:
    if t.read_only:
        raise CometQLError(READ_ONLY, f"Table {t.name} is read-only")
    allowed = set(t.insert_required) | set(t.insert_optional)
    seen = set()
    for c in st.columns:
        if c not in allowed:
            t.col(c)      # unknown column -> 14 with the name
            raise CometQLError(BAD_COLUMNS, f"Column {c} cannot be set by INSERT INTO {t.name}; "
                               f"use ({', '.join(t.insert_required)})")
        if c in seen:
            raise CometQLError(BAD_COLUMNS, f"Column {c} is listed twice")
        seen.add(c)
    missing = [c for c in t.insert_required if c not in seen]
    if missing:
        raise CometQLError(INVALID_DATA, f"INSERT INTO {t.name} needs the column(s) {', '.join(missing)}")
    rows = []
    for r in st.rows:
        if len(r) != len(st.columns):
            raise CometQLError(BAD_COLUMNS, "Column count doesn't match value count")
        rows.append(dict(zip(st.columns, r)))
    if not rows:
        raise CometQLError(BAD_COLUMNS, "No values to insert")
    return t.insert(ctx, rows)


def _delete(ctx: Context, t: Table, st: Delete) -> Result:
    if t.read_only:
        raise CometQLError(READ_ONLY, f"Table {t.name} is read-only")
    key, values, filters = _split_where(t, st.where, t.delete_keys, False, "DELETE")
    assert key is not None and values is not None
    if t.col(key).type == "int":
        values = [to_int(v, key) for v in values]
    else:
        values = [to_str(v, key) for v in values]
    if not filters:
        return Result(affected=t.delete(ctx, key, values, None))
    if key not in t.select_keys:
        raise CometQLError(NOT_IMPLEMENTED, f"DELETE FROM {t.name} WHERE {key} = ... cannot have other conditions")
    matched = _apply_filters(t.fetch(ctx, key, values), filters)
    return Result(affected=t.delete(ctx, key, values, matched) if matched else 0)


# --------------------------------------------------------------------------------------------
# SHOW / DESCRIBE


def like_matcher(pattern: str | None) -> Callable[[str], bool]:
    """SQL LIKE (case-insensitive, ``\\`` escapes) without regular expressions: a regex such as
    ``.*.*.*a.*.*zz`` backtracks exponentially (``SHOW VARIABLES LIKE '%%%%%%a%%%%%%zz'`` froze
    the server for seconds). Here the pattern is split at ``%`` and each piece is found
    leftmost, once: O(len(text) * len(pattern)) at worst."""
    if pattern is None:
        return lambda s: True
    pieces = _like_pieces(pattern.casefold())
    return lambda s: _like_match(pieces, s.casefold())


def like(text: Any, pattern: Any, *, case_insensitive: bool = True) -> bool | None:
    """LIKE for sqlglot's executor (NULL in, NULL out)."""
    if text is None or pattern is None:
        return None
    text, pattern = str(text), str(pattern)
    if case_insensitive:
        text, pattern = text.casefold(), pattern.casefold()
    return _like_match(_like_pieces(pattern), text)


def _like_pieces(pattern: str) -> list[list[str | None]]:
    """The pattern split at ``%``; in each piece a char, or None for ``_``."""
    pieces: list[list[str | None]] = [[]]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):      # \% and \_ match themselves
            i += 1
            pieces[-1].append(pattern[i])
        elif ch == "%":
            pieces.append([])
        else:
            pieces[-1].append(None if ch == "_" else ch)
        i += 1
    return pieces


def _piece_at(piece: list[str | None], text: str, pos: int) -> bool:
    for k, c in enumerate(piece):
        if c is not None and text[pos + k] != c:
            return False
    return True


def _find_piece(piece: list[str | None], text: str, start: int, end: int) -> int:
    if None not in piece:
        return text.find("".join(piece), start, end)     # type: ignore[arg-type]
    for pos in range(start, end - len(piece) + 1):
        if _piece_at(piece, text, pos):
            return pos
    return -1


def _like_match(pieces: list[list[str | None]], text: str) -> bool:
    if len(pieces) == 1:
        return len(text) == len(pieces[0]) and _piece_at(pieces[0], text, 0)
    first, last = pieces[0], pieces[-1]
    if len(text) < len(first) + len(last):
        return False
    end = len(text) - len(last)
    if not _piece_at(first, text, 0) or not _piece_at(last, text, end):
        return False
    pos = len(first)
    for piece in pieces[1:-1]:          # greedy leftmost is exact when pieces are separated by %
        if piece:
            found = _find_piece(piece, text, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
    return True


def show(st: Show, database: str | None) -> Result:
    like = like_matcher(st.like)
    if st.kind == "DATABASES":
        return Result(rows=[(d,) for d in (DATABASE,) if like(d)], columns=[("Database", "str")])
    db = st.db or database
    if db is None:
        raise CometQLError(NOT_FOUND, "No database selected: USE CometQL_v1")
    if db != DATABASE:
        raise CometQLError(NOT_FOUND, f"Unknown database '{db}'")
    if st.kind == "PROCESSLIST":
        return Result(rows=[], columns=[(c, "str") for c in
                                        ("Id", "User", "Host", "db", "Command", "Time", "State", "Info")])
    if st.kind == "TABLE STATUS":
        cols = ["Name", "Engine", "Version", "Row_format", "Rows", "Comment"]
        return Result(rows=[(n, "comet_server", "10", "Dynamic", None,
                             "read-only" if t.read_only else "") for n, t in TABLES.items() if like(n)],
                      columns=[(c, "str") for c in cols])
    if st.kind == "TABLES":
        names = [n for n in TABLES if like(n)]
        head = f"Tables_in_{DATABASE}"
        if st.full:
            return Result(rows=[(n, "BASE TABLE") for n in names], columns=[(head, "str"), ("Table_type", "str")])
        return Result(rows=[(n,) for n in names], columns=[(head, "str")])
    t = table_for(st.target or "", db)
    rows = []
    for c in t.columns:
        if not like(c.name):
            continue
        key = "PRI" if c.name in (t.select_keys[:1] or ()) else ""
        row: tuple = (c.name, c.sql_type, "NO", key, None, "")
        if st.full:
            row = (c.name, c.sql_type, None if c.type == "int" else "utf8mb4_general_ci", "NO", key, None, "",
                   "select" if t.read_only else "select,insert,delete", "")
        rows.append(row)
    cols = ["Field", "Type", "Null", "Key", "Default", "Extra"]
    if st.full:
        cols = ["Field", "Type", "Collation", "Null", "Key", "Default", "Extra", "Privileges", "Comment"]
    return Result(rows=rows, columns=[(c, "str") for c in cols])


def info_schema() -> dict:
    """The schema mysql-mimic's INFORMATION_SCHEMA emulation serves."""
    return {DATABASE: {t.name: {c.name: c.sql_type.upper() for c in t.columns} for t in TABLES.values()}}
