"""Strict parsers for every packet a CometQL client sends (MySQL client/server protocol).

These replace mysql-mimic 3.0.5's parsers (``mysql_mimic.packets`` / ``mysql_mimic.types``,
shipped as mypyc ``.so``, so they cannot be patched in place). Upstream bug: mysql-mimic 3.0.5
``types.read_str_null`` loops forever at the end of its input (``reader.read(1)`` returns ``b""``
and never ``b"\\0"``), so a handshake whose user name has no NUL, or any COM_FIELD_LIST /
COM_CHANGE_USER without one, holds the event loop at 100 % CPU; its other readers raise
``struct.error`` (logged as a traceback) or silently return short data on truncated input.

Here every read is bounds-checked: truncated or malformed input raises :class:`MalformedPacket`
(an ERR packet for the client, no traceback in the log), and no loop runs longer than the
packet is long.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from mysql_mimic.charset import CharacterSet, Collation
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.types import Capabilities, ColumnType, ComStmtExecuteFlags

from .errors import INVALID_DATA


class MalformedPacket(MysqlError):
    """A client packet that is truncated or does not follow the protocol."""

    def __init__(self, msg: str) -> None:
        super().__init__(f"Malformed packet: {msg}", ErrorCode.MALFORMED_PACKET)


class Reader:
    """Bounds-checked reader over one packet payload."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            raise MalformedPacket(f"needs {n} more bytes, {self.remaining} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def sint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little", signed=True)

    def lenenc_int(self) -> int:
        first = self.uint(1)
        if first < 0xFB:
            return first
        if first == 0xFC:
            return self.uint(2)
        if first == 0xFD:
            return self.uint(3)
        if first == 0xFE:
            return self.uint(8)
        raise MalformedPacket(f"bad length-encoded integer prefix 0x{first:02x}")

    def lenenc_bytes(self) -> bytes:
        return self.take(self.lenenc_int())

    def null_terminated(self, *, end_ok: bool = False) -> bytes:
        """Bytes up to the next NUL (consumed). ``end_ok``: the end of the packet also ends the
        string (some clients omit the last NUL)."""
        i = self.data.find(b"\0", self.pos)
        if i < 0:
            if not end_ok:
                raise MalformedPacket("string without its NUL terminator")
            i = len(self.data)
            out = self.data[self.pos:i]
            self.pos = i
            return out
        out = self.data[self.pos:i]
        self.pos = i + 1
        return out

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out


class InvalidText(MysqlError):
    """Bytes that are not valid text in the connection's character set."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, INVALID_DATA)


#: single-byte character sets (and ``binary``) whose clients often send UTF-8 anyway: the mysql
#: CLI under LANG=C declares latin1, legacy PHP apps call set_charset('latin1') on UTF-8 text.
#: CppComet passes the bytes through, so for these valid UTF-8 is read as UTF-8.
_UTF8_FIRST = {"latin1", "latin2", "latin5", "latin7", "ascii", "binary", "cp1250", "cp1251", "cp1256",
               "cp1257", "cp850", "cp852", "cp866", "koi8r", "koi8u", "greek", "hebrew", "swe7", "dec8",
               "hp8", "armscii8", "geostd8", "keybcs2", "macce", "macroman", "tis620"}


def decode(charset: CharacterSet, raw: bytes, what: str) -> str:
    if charset.name in _UTF8_FIRST:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode(charset.codec)
    except (UnicodeDecodeError, LookupError):
        raise InvalidText(f"{what} is not valid text in the connection character set ({charset.name})") from None


def charset_of(collation_id: int) -> CharacterSet:
    try:
        charset = Collation(collation_id).charset
        if charset.name not in _UTF8_FIRST:
            "".encode(charset.codec)   # a charset whose codec Python lacks is refused here
        return charset
    except (ValueError, LookupError):
        raise MalformedPacket(f"unknown collation {collation_id}") from None


# --------------------------------------------------------------------------------------------
# Handshake


@dataclass
class HandshakeResponse:
    capabilities: Capabilities
    max_packet_size: int
    client_charset: CharacterSet
    username: str = ""
    auth_response: bytes = b""
    database: str | None = None
    client_plugin: str | None = None
    connect_attrs: dict[str, str] = field(default_factory=dict)
    zstd_compression_level: int = 0
    ssl_request: bool = False


def parse_handshake_response(server_capabilities: Capabilities, data: bytes) -> HandshakeResponse:
    """HandshakeResponse41 (or an SSLRequest, ``ssl_request=True``)."""
    r = Reader(data)
    client_caps = r.uint(4)
    if not client_caps & Capabilities.CLIENT_PROTOCOL_41:
        raise MalformedPacket("only the 4.1 client protocol is supported")
    caps = Capabilities(client_caps) & server_capabilities
    max_packet = r.uint(4)
    charset = charset_of(r.uint(1))
    r.take(23)                                          # reserved
    resp = HandshakeResponse(capabilities=caps, max_packet_size=max_packet, client_charset=charset)
    if r.at_end():
        resp.ssl_request = True
        return resp
    resp.username = decode(charset, r.null_terminated(), "user name")
    if Capabilities.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA in caps:
        resp.auth_response = r.lenenc_bytes()
    elif Capabilities.CLIENT_SECURE_CONNECTION in caps:
        resp.auth_response = r.take(r.uint(1))
    else:
        resp.auth_response = r.null_terminated(end_ok=True)
    if Capabilities.CLIENT_CONNECT_WITH_DB in caps and not r.at_end():
        resp.database = decode(charset, r.null_terminated(end_ok=True), "database")
    if Capabilities.CLIENT_PLUGIN_AUTH in caps and not r.at_end():
        resp.client_plugin = decode(charset, r.null_terminated(end_ok=True), "auth plugin name")
    if Capabilities.CLIENT_CONNECT_ATTRS in caps and not r.at_end():
        resp.connect_attrs = _connect_attrs(r, charset)
    if Capabilities.CLIENT_ZSTD_COMPRESSION_ALGORITHM in caps and not r.at_end():
        resp.zstd_compression_level = r.uint(1)
    return resp


def _connect_attrs(r: Reader, charset: CharacterSet) -> dict[str, str]:
    attrs = Reader(r.lenenc_bytes())
    out: dict[str, str] = {}
    while not attrs.at_end():
        key = decode(charset, attrs.lenenc_bytes(), "connection attribute")
        out[key] = decode(charset, attrs.lenenc_bytes(), "connection attribute")
    return out


# --------------------------------------------------------------------------------------------
# Commands


@dataclass
class ComQuery:
    sql: str
    query_attrs: dict[str, str]


def parse_com_query(capabilities: Capabilities, charset: CharacterSet, data: bytes) -> ComQuery:
    r = Reader(data)
    attrs: dict[str, str] = {}
    if Capabilities.CLIENT_QUERY_ATTRIBUTES in capabilities:
        count = r.lenenc_int()
        r.lenenc_int()                                   # parameter_set_count, always 1
        if count:
            for name, value in read_params(r, charset, count, with_names=True, prior_types=None)[0]:
                if name:
                    attrs[name] = "" if value is None else str(value)
    return ComQuery(sql=decode(charset, r.rest(), "query"), query_attrs=attrs)


@dataclass
class ComFieldList:
    table: str
    wildcard: str


def parse_com_field_list(charset: CharacterSet, data: bytes) -> ComFieldList:
    r = Reader(data)
    table = decode(charset, r.null_terminated(end_ok=True), "table name")
    return ComFieldList(table=table, wildcard=decode(charset, r.rest(), "wildcard"))


def parse_stmt_id(data: bytes) -> int:
    """COM_STMT_RESET / COM_STMT_CLOSE: just the statement id."""
    return Reader(data).uint(4)


@dataclass
class ComStmtSendLongData:
    stmt_id: int
    param_id: int
    data: bytes


def parse_com_stmt_send_long_data(data: bytes) -> ComStmtSendLongData:
    r = Reader(data)
    return ComStmtSendLongData(stmt_id=r.uint(4), param_id=r.uint(2), data=r.rest())


@dataclass
class ComStmtFetch:
    stmt_id: int
    num_rows: int


def parse_com_stmt_fetch(data: bytes) -> ComStmtFetch:
    r = Reader(data)
    return ComStmtFetch(stmt_id=r.uint(4), num_rows=r.uint(4))


@dataclass
class ComStmtExecute:
    stmt_id: int
    use_cursor: bool
    params: list[Any]                          # one value per statement parameter
    types: list[tuple[int, bool]] | None       # (type, unsigned) sent with this execute, if any
    query_attrs: dict[str, str]


def peek_stmt_id(data: bytes) -> int:
    return Reader(data).uint(4)


def parse_com_stmt_execute(capabilities: Capabilities, charset: CharacterSet, data: bytes, *,
                           num_params: int, long_data: dict[int, bytes],
                           prior_types: list[tuple[int, bool]] | None) -> ComStmtExecute:
    """COM_STMT_EXECUTE. ``prior_types``: the parameter types of the previous execute of the
    statement (a client may send them only once: new-params-bound-flag 0)."""
    r = Reader(data)
    stmt_id = r.uint(4)
    flags = r.uint(1)
    if flags & (ComStmtExecuteFlags.CURSOR_TYPE_FOR_UPDATE | ComStmtExecuteFlags.CURSOR_TYPE_SCROLLABLE):
        raise MysqlError("Only read-only cursors are supported", ErrorCode.NOT_SUPPORTED_YET)
    use_cursor = bool(flags & ComStmtExecuteFlags.CURSOR_TYPE_READ_ONLY)
    r.uint(4)                                            # iteration count, always 1
    count = num_params
    attrs_cap = Capabilities.CLIENT_QUERY_ATTRIBUTES in capabilities
    if attrs_cap and (num_params > 0 or flags & ComStmtExecuteFlags.PARAMETER_COUNT_AVAILABLE):
        if not r.at_end():
            count = r.lenenc_int()
    if count < num_params:
        raise MalformedPacket(f"{count} parameters sent, the statement has {num_params}")
    params: list[Any] = []
    types: list[tuple[int, bool]] | None = None
    attrs: dict[str, str] = {}
    if count:
        pairs, types = read_params(r, charset, count, with_names=attrs_cap, prior_types=prior_types,
                                   long_data=long_data)
        params = [v for _, v in pairs[:num_params]]
        attrs = {k: ("" if v is None else str(v)) for k, v in pairs[num_params:] if k}
    return ComStmtExecute(stmt_id=stmt_id, use_cursor=use_cursor, params=params, types=types,
                          query_attrs=attrs)


def read_params(r: Reader, charset: CharacterSet, count: int, *, with_names: bool,
                prior_types: list[tuple[int, bool]] | None, long_data: dict[int, bytes] | None = None,
                ) -> tuple[list[tuple[str, Any]], list[tuple[int, bool]]]:
    """Null bitmap, new-params-bound flag, types (and names), values: [(name, value)], types."""
    if count > r.remaining:           # each parameter takes at least a bit and two type bytes
        raise MalformedPacket(f"{count} parameters in a {len(r.data)}-byte packet")
    null_bitmap = r.take((count + 7) // 8)
    bound = r.uint(1)
    names = [""] * count
    if bound:
        types = []
        for i in range(count):
            t = r.uint(2)
            types.append((t & 0xFF, bool(t & 0x8000)))
            if with_names:
                names[i] = decode(charset, r.lenenc_bytes(), "parameter name")
    elif prior_types is not None and len(prior_types) == count:
        types = prior_types
    else:
        raise MalformedPacket("parameter types were never sent (new-params-bound-flag 0)")
    out: list[tuple[str, Any]] = []
    for i, (typ, unsigned) in enumerate(types):
        if null_bitmap[i // 8] & (1 << (i % 8)):
            out.append((names[i], None))
        elif long_data and i in long_data:
            out.append((names[i], _long_value(charset, typ, long_data[i])))
        else:
            out.append((names[i], read_value(r, charset, typ, unsigned)))
    return out, types


# Parameter values: what each MySQL type becomes. Strings stay str, binary (BLOB) types are
# bytes, numbers int/float, DECIMAL a Decimal-like str tagged by DecimalText, dates and times
# their MySQL text form.


class DecimalText(str):
    """A DECIMAL parameter: the number as the client wrote it (bound as a numeric literal)."""


_BLOBS = {ColumnType.TINY_BLOB, ColumnType.MEDIUM_BLOB, ColumnType.LONG_BLOB, ColumnType.BLOB,
          ColumnType.GEOMETRY}
_TEXTS = {ColumnType.VARCHAR, ColumnType.VAR_STRING, ColumnType.STRING, ColumnType.ENUM, ColumnType.SET,
          ColumnType.JSON}
_INTS = {ColumnType.TINY: 1, ColumnType.SHORT: 2, ColumnType.YEAR: 2, ColumnType.LONG: 4,
         ColumnType.INT24: 4, ColumnType.LONGLONG: 8}


def _long_value(charset: CharacterSet, typ: int, raw: bytes) -> Any:
    if typ in _BLOBS:
        return raw
    return decode(charset, raw, "parameter")


def read_value(r: Reader, charset: CharacterSet, typ: int, unsigned: bool) -> Any:
    if typ in _TEXTS:
        return decode(charset, r.lenenc_bytes(), "string parameter")
    if typ in _BLOBS or typ == ColumnType.BIT:
        return r.lenenc_bytes()
    if typ in _INTS:
        n = _INTS[typ]
        return r.uint(n) if unsigned else r.sint(n)
    if typ == ColumnType.BOOL:
        return r.uint(1)
    if typ == ColumnType.FLOAT:
        return _finite(struct.unpack("<f", r.take(4))[0])
    if typ == ColumnType.DOUBLE:
        return _finite(struct.unpack("<d", r.take(8))[0])
    if typ in (ColumnType.DECIMAL, ColumnType.NEWDECIMAL):
        return DecimalText(decode(charset, r.lenenc_bytes(), "decimal parameter"))
    if typ == ColumnType.NULL:
        return None
    if typ in (ColumnType.DATE, ColumnType.DATETIME, ColumnType.TIMESTAMP):
        return _datetime(Reader(r.take(r.uint(1))), date_only=typ == ColumnType.DATE)
    if typ == ColumnType.TIME:
        return _time(Reader(r.take(r.uint(1))))
    raise MysqlError(f"Unsupported parameter type {typ}", ErrorCode.NOT_SUPPORTED_YET)


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise MysqlError("Parameter is not a finite number", INVALID_DATA)
    return v


def _datetime(r: Reader, *, date_only: bool) -> str:
    n = r.remaining
    if n not in (0, 4, 7, 11):
        raise MalformedPacket(f"date/time parameter of {n} bytes")
    year, month, day = (r.uint(2), r.uint(1), r.uint(1)) if n else (0, 0, 0)
    text = f"{year:04d}-{month:02d}-{day:02d}"
    hour, minute, second = (r.uint(1), r.uint(1), r.uint(1)) if n >= 7 else (0, 0, 0)
    micro = r.uint(4) if n == 11 else 0
    if date_only and n <= 4:
        return text
    text += f" {hour:02d}:{minute:02d}:{second:02d}"
    return text + (f".{micro:06d}" if micro else "")


def _time(r: Reader) -> str:
    n = r.remaining
    if n not in (0, 8, 12):
        raise MalformedPacket(f"time parameter of {n} bytes")
    if not n:
        return "00:00:00"
    negative, days, hour, minute, second = r.uint(1), r.uint(4), r.uint(1), r.uint(1), r.uint(1)
    micro = r.uint(4) if n == 12 else 0
    text = f"{'-' if negative else ''}{days * 24 + hour:02d}:{minute:02d}:{second:02d}"
    return text + (f".{micro:06d}" if micro else "")


__all__ = [
    "MalformedPacket", "InvalidText", "decode", "Reader", "HandshakeResponse", "parse_handshake_response", "parse_com_query",
    "parse_com_field_list", "parse_stmt_id", "parse_com_stmt_send_long_data", "parse_com_stmt_fetch",
    "parse_com_stmt_execute", "peek_stmt_id", "DecimalText", "read_params", "read_value",
]
