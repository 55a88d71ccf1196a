"""Server frame encoding and WebSocket URL parsing (design.md §3, docs/protocol.md §1, §3).

* ``dumps``: sorted keys, compact separators, ``ensure_ascii=False`` (what nlohmann::json emits),
  and every ``'`` written as ``\\u0027``: CometServerApi.js 4.08 parses each frame as
  ``JSON.parse(line.replace(/\\\\'/g, "'"))``, which breaks a frame holding backslash + apostrophe.
* ``legacy``: CppComet's transform for clients whose ``v`` major is < 4 (docs/protocol.md §3).
* ``Out``: one outgoing message, serialised at most once per format and turned into ready-made
  WebSocket frame bytes, so a fan-out writes the same bytes object to every subscriber.
* ``parse_ws_url``: the positional parser of CppComet's ``Client_connection::parse_url``.
"""

from __future__ import annotations

import json
import re
import struct
import time as _time
from dataclasses import dataclass

from .names import parse_id

__all__ = [
    "dumps", "dumps_bytes", "legacy", "text_frame", "close_frame", "Out", "now",
    "WsUrl", "UrlError", "parse_ws_url", "connect_error_obj",
]

_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_dumps_ascii = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode

LEGACY_API_DATA = "for major_version < 4"


def now() -> int:
    return int(_time.time())


def _no_apostrophe(text: str) -> str:
    # An apostrophe can only occur inside a JSON string, where \u0027 means the same; without
    # any, no backslash + apostrophe is left for 4.08's replace to turn into an invalid escape.
    return text.replace("'", "\\u0027") if "'" in text else text


def dumps(obj: object) -> str:
    """Compact JSON with sorted keys, non-ASCII kept as UTF-8, ``'`` as ``\\u0027``."""
    return _no_apostrophe(_dumps(obj))


def dumps_bytes(obj: object) -> bytes:
    """UTF-8 JSON as ``dumps``. Text that cannot be UTF-8 (lone surrogates, e.g. from a publish
    API) is sent \\u-escaped instead, so a frame is always valid UTF-8 and valid JSON."""
    try:
        # On the bytes: much faster than str.replace, and byte 0x27 is never inside a
        # multi-byte UTF-8 sequence.
        return _dumps(obj).encode("utf-8").replace(b"'", b"\\u0027")
    except UnicodeEncodeError:
        return _dumps_ascii(obj).encode("ascii").replace(b"'", b"\\u0027")


def legacy(obj: dict) -> dict:
    """CppComet's ``Client_connection::message(json)`` transform for ``v`` major < 4."""
    out = dict(obj)
    if "event" in out:
        out["event_name"] = out["event"]
    out["api_data"] = LEGACY_API_DATA
    data = out.get("data")
    if "data" in out and out.get("pipe") != "msg":
        # nlohmann: neither is_string() nor is_number() -> dumped into a string
        if not isinstance(data, str) and not (isinstance(data, (int, float)) and not isinstance(data, bool)):
            out["data"] = dumps(data)
    return out


_H1 = struct.Struct("!BB")
_H2 = struct.Struct("!BBH")
_H3 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented server text frame (FIN + opcode 1) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        return _H1.pack(0x81, n) + payload
    if n < 65536:
        return _H2.pack(0x81, 126, n) + payload
    return _H3.pack(0x81, 127, n) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    payload = struct.pack("!H", code) + reason.encode("utf-8")[:120]
    return _H1.pack(0x88, len(payload)) + payload


def payload_of(frame: bytes) -> bytes:
    """The payload of one unmasked, unfragmented server frame (as ``text_frame`` builds them)."""
    n = frame[1] & 0x7F
    if n < 126:
        return frame[2:]
    if n == 126:
        return frame[4:]
    return frame[10:]


class Out:
    """A message to send: built once, encoded at most once per format (v4 / legacy)."""

    __slots__ = ("obj", "_v4", "_legacy")

    def __init__(self, obj: dict) -> None:
        self.obj = obj
        self._v4: bytes | None = None
        self._legacy: bytes | None = None

    def payload(self, is_legacy: bool) -> bytes:
        if is_legacy:
            return dumps_bytes(legacy(self.obj))
        return dumps_bytes(self.obj)

    def frame(self, is_legacy: bool) -> bytes:
        """Ready-to-write WebSocket frame bytes for this format (cached)."""
        if is_legacy:
            f = self._legacy
            if f is None:
                f = self._legacy = text_frame(self.payload(True))
            return f
        f = self._v4
        if f is None:
            f = self._v4 = text_frame(self.payload(False))
        return f


# --------------------------------------------------------------------------------------------
# URL parsing (docs/protocol.md §1)

MAX_SESSION_LEN = 600
DEV_INDEX_SIZE = 100000
UUID_LEN = 32

_VERSION_RE = re.compile(r"0*(\d{1,9})\.0*(\d{0,9})")


@dataclass(frozen=True)
class WsUrl:
    session: str
    user_id: int
    dev_id: int
    major: int
    minor: int
    uuid: str


@dataclass(frozen=True)
class UrlError:
    code: int
    text: str


def connect_error_obj(err: UrlError, t: int) -> dict:
    """The connect-error message sent at Unix time ``t``, always in the legacy form (docs/protocol.md §3)."""
    obj = {
        "data": {
            "error": f"Error code {err.code}({err.text})",
            "error_code": err.code,
            "info": "Closed due to error. See last message.",
        },
        "event": "error",
        "message_send_time": t,
        "pipe": "sys",
    }
    return legacy(obj)


def _nth(s: str, ch: str, n: int) -> int:
    """Index of the n-th (1-based) occurrence of ``ch`` in ``s``, or -1."""
    i = -1
    for _ in range(n):
        i = s.find(ch, i + 1)
        if i < 0:
            return -1
    return i


def _segment(s: str, start: int) -> str:
    end = s.find("&", start)
    return s[start:] if end < 0 else s[start:end]


def parse_ws_url(raw: str) -> WsUrl | UrlError:
    """Parse the request target (raw path, not percent-decoded) by position, as CppComet does.

    sesion = text after the first '=' up to '&' (≤600 chars); myid after the 1st '&' skip 5;
    devid after the 2nd '&' skip 6; v after the 3rd '&' skip 2; uuid after the 4th '&' when it
    starts with 'uuid=' (up to 32 chars, stopping at '&').
    """
    eq = raw.find("=")
    if eq < 0:
        return UrlError(401, "Invalid request, session ID not found")
    session = _segment(raw, eq + 1)[:MAX_SESSION_LEN]

    a1 = _nth(raw, "&", 1)
    if a1 < 0:
        return UrlError(401, "Invalid request, the user ID can not be found")
    user_id = parse_id(_segment(raw, a1 + 1 + 5)) or 0   # "", "undefined", "-1": anonymous

    a2 = _nth(raw, "&", 2)
    if a2 < 0:
        return UrlError(406, "Invalid request, no public key found [1]")
    dev_id = parse_id(_segment(raw, a2 + 1 + 6))
    if dev_id is None or dev_id > DEV_INDEX_SIZE:
        dev_id = 0

    a3 = _nth(raw, "&", 3)
    if a3 < 0:
        return UrlError(418, "Invalid request Not assigned client api version")
    m = _VERSION_RE.match(_segment(raw, a3 + 1 + 2))
    if m is None:
        return UrlError(418, "Invalid request Not assigned client api version")
    major = int(m.group(1))
    minor = int(m.group(2) or 0)

    uuid = ""
    a4 = _nth(raw, "&", 4)
    if a4 >= 0 and raw.startswith("uuid=", a4 + 1):
        uuid = _segment(raw, a4 + 6)[:UUID_LEN]
    return WsUrl(session=session, user_id=user_id, dev_id=dev_id, major=major, minor=minor, uuid=uuid)
