"""The CppComet wire protocol, sans-I/O: URL, command frames, frame decoding.

Outbound: only the commands CppComet knows (it drops the connection on any
other text, on a ping and on a frame over 65535 bytes), so every encoder here
validates its input and raises ``ValueError`` rather than emit such a frame.

Inbound: ``decode_frame`` never raises (CppComet corrupts frames of 123-125
bytes, protocol.md §1.3); ``classify`` turns one decoded object into a typed
event; ``decode_data`` reproduces the JS client's data cascade (§3.4-5) without
its apostrophe bug.
"""

import logging
import random
from typing import Any, Iterable, Union

from .channels import REPORT_PREFIX, check_event, check_name, check_send_pipe
from .jsonlimit import MAX_DEPTH, SCAN, TooDeep
from .jsonlimit import loads as _loads
from .message import make_message_dict
from .options import Options
from .records import record

__all__ = [
    "CLIENT_VERSION",
    "MAX_FRAME_BYTES",
    "MAX_SUBSCRIPTION_BYTES",
    "build_url",
    "new_marker",
    "new_uuid",
    "subscription_frame",
    "web_pipe_frame",
    "pipe_log_frame",
    "pipe_count_frame",
    "track_pipe_users_frame",
    "user_data_frame",
    "decode_frame",
    "decode_data",
    "mysql_unescape",
    "classify",
    "plain_message",
    "classify_full",
    "AuthInfo",
    "SysError",
    "MarkerAnswer",
    "DeliveryReport",
    "ChannelMessage",
    "Ignored",
    "Classified",
]

log = logging.getLogger("comet_py")

# v >= 4 makes CppComet send native JSON data (v < 4 gets the legacy transform).
CLIENT_VERSION = "4.08"
# A client frame over 65535 bytes needs a 64-bit length: CppComet closes.
MAX_FRAME_BYTES = 65535
# CppComet closes the connection on a subscription payload over 32*68 bytes.
MAX_SUBSCRIPTION_BYTES = 2176

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_UUID_CHARS = _ALNUM + "_-"
# uuid: 32 of _UUID_CHARS; marker: 1-64 of them (str tests: no regex compiled at import).


# --------------------------------------------------------------------------- URL


def build_url(options: Options, *, uuid: str, page_is_https: bool, node: str | None = None) -> str:
    """``ws[s]://<node>/ws/sesion=<key>&myid=<id>&devid=<dev>&v=4.08&uuid=<uuid>&api=js``.

    The server parses it by position, so the order is fixed; missing values
    are empty strings (never "undefined"). ``wss=None`` follows the page.
    """
    if not isinstance(uuid, str) or len(uuid) != 32 or uuid.strip(_UUID_CHARS):
        # CppComet copies exactly 32 chars: a short uuid would swallow "&api=js".
        raise ValueError(f"uuid must be 32 chars of [A-Za-z0-9_-], got {uuid!r}")
    secure = page_is_https if options.wss is None else options.wss
    scheme = "wss" if secure else "ws"
    host = options.node if node is None else node
    myid = str(options.user_id) if options.user_id else ""
    return (
        f"{scheme}://{host}/ws/sesion={options.user_key}&myid={myid}"
        f"&devid={options.dev_id}&v={CLIENT_VERSION}&uuid={uuid}&api=js"
    )


def _system_rng() -> Any:
    # MicroPython has no random.SystemRandom: its random module (seeded at start-up from the
    # host's random source, different in every tab) has choice() itself.
    system_random = getattr(random, "SystemRandom", None)
    return system_random() if system_random is not None else random


def new_uuid(rng: "random.Random | None" = None) -> str:
    """A client uuid like ``getUUID()``: 32 chars of ``[A-Za-z0-9_-]``."""
    r = rng or _system_rng()
    return "".join([r.choice(_UUID_CHARS) for _ in range(32)])


def new_marker(rng: "random.Random | None" = None) -> str:
    """A request marker like ``getCustomString()``: 10 chars of ``[A-Za-z0-9]``."""
    r = rng or _system_rng()
    return "".join([r.choice(_ALNUM) for _ in range(10)])


# ---------------------------------------------------------------------- commands


def _check_marker(marker: str) -> str:
    # The server checks markers like channel names; anything else is an error frame.
    if not isinstance(marker, str) or not 1 <= len(marker) <= 64 or marker.strip(_UUID_CHARS):
        raise ValueError(f"invalid marker {marker!r}: use 1-64 chars of [A-Za-z0-9_-]")
    return marker


def subscription_frame(channels: Iterable[str]) -> str:
    """``subscription\\n<a>\\n<b>...``: the complete set (sorted), replacing the old one.

    An empty set gives ``subscription\\n`` = unsubscribe from everything.
    Channels that would push the frame past CppComet's 2176-byte limit (it
    closes the connection) are left out, with an error logged.
    """
    names = sorted({check_name(c) for c in channels})
    kept: list[str] = []
    size = len("subscription\n")
    dropped: list[str] = []
    for name in names:
        extra = len(name) + (1 if kept else 0)  # names are ASCII: chars == bytes
        if size + extra > MAX_SUBSCRIPTION_BYTES:
            dropped.append(name)
            continue
        kept.append(name)
        size += extra
    if dropped:
        log.error(
            "subscription list too long for the server (%d bytes max): not subscribed to %s",
            MAX_SUBSCRIPTION_BYTES,
            ", ".join(dropped),
        )
    return "subscription\n" + "\n".join(kept)


def web_pipe_frame(pipe: str, event: str, text: str) -> str:
    """``web_pipe2\\n<pipe>\\n<event>\\n*\\n<text>`` (``*`` = the JS auth_type)."""
    check_send_pipe(pipe)
    check_event(event)
    if not isinstance(text, str):
        raise ValueError(f"message text must be a str, got {type(text).__name__}")
    frame = f"web_pipe2\n{pipe}\n{event}\n*\n{text}"
    size = len(frame.encode())
    if size > MAX_FRAME_BYTES:
        raise ValueError(
            f"message too large: the frame would be {size} bytes, the server accepts "
            f"at most {MAX_FRAME_BYTES}"
        )
    return frame


def pipe_log_frame(pipe: str, marker: str, since: int | None = None) -> str:
    """``pipe_log\\n<pipe>\\n<marker>\\n``: ask for the channel's history.

    ``since`` (comet_server only): just the items with a history_id above it, so recovering a
    gap fetches the gap, not the whole log."""
    frame = f"pipe_log\n{check_name(pipe)}\n{_check_marker(marker)}\n"
    if since is not None:
        frame += f"{int(since)}\n"
    return frame


def pipe_count_frame(pipe: str, marker: str) -> str:
    """``pipe_count\\n<pipe>\\n<marker>\\n`` (the server allows web_* and track_* only)."""
    check_name(pipe)
    if not pipe.startswith(("web_", "track_")):
        raise ValueError(f"cannot count users of {pipe!r}: only web_* and track_* channels")
    return f"pipe_count\n{pipe}\n{_check_marker(marker)}\n"


def track_pipe_users_frame(pipe: str, marker: str) -> str:
    """``track_pipe_users\\n<pipe>\\n<marker>`` (track_* channels only)."""
    check_name(pipe)
    if not pipe.startswith("track_"):
        raise ValueError(f"cannot list users of {pipe!r}: only track_* channels")
    return f"track_pipe_users\n{pipe}\n{_check_marker(marker)}"


def user_data_frame(marker: str, user_id: int) -> str:
    """``user_data\\n<marker>\\n<user_id>``."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 0:
        raise ValueError(f"user_id must be an int >= 0, got {user_id!r}")
    return f"user_data\n{_check_marker(marker)}\n{user_id}"


# ---------------------------------------------------------------------- decoding


def decode_frame(text: str) -> list[dict[str, Any]]:
    """Decode one WebSocket text frame into its JSON objects; never raises.

    Like the JS client: strip, split on newlines, parse each line. A line that
    does not parse (e.g. CppComet's corrupted 123-125-byte frames with a NUL
    tail) or nests deeper than ``jsonlimit.MAX_DEPTH`` is logged and skipped,
    so the next frame still delivers.
    """
    out: list[dict[str, Any]] = []
    if not isinstance(text, str):
        log.warning("ignoring a non-text frame: %r", type(text).__name__)
        return out
    for line in text.strip().split("\n"):
        line = line.strip()
        if not line:
            continue
        try:
            obj = _loads(line)
        except TooDeep as exc:
            log.warning("skipping a frame (%d chars): %s", len(line), exc)
            continue
        except ValueError:
            try:
                # The JS client's fallback: an invalid \' escape becomes '.
                obj = _loads(line.replace("\\'", "'"))
            except ValueError:
                log.warning("skipping an unparseable frame (%d chars): %r", len(line), line[:200])
                continue
        if not isinstance(obj, dict):
            log.warning("skipping a frame that is not a JSON object: %r", line[:200])
            continue
        out.append(obj)
    return out


_MYSQL_UNESCAPE = {"0": "\0", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "b": "\b"}


def mysql_unescape(text: str) -> str:
    """Undo ``mysql_real_escape_string`` (CppComet escapes web_pipe2 text with it).

    ``\\'`` gives ``'`` (the JS cascade loses such messages entirely),
    ``\\"`` gives ``"``, ``\\\\`` gives ``\\``; ``\\n`` etc. give control chars.
    """
    # Plain code, no regex: the same on MicroPython (whose re has no re.S). A lone backslash at
    # the end is dropped.
    parts = []
    start = 0
    while True:
        slash = text.find("\\", start)
        if slash < 0:
            parts.append(text[start:])
            return "".join(parts)
        parts.append(text[start:slash])
        escaped = text[slash + 1:slash + 2]
        parts.append(_MYSQL_UNESCAPE.get(escaped, escaped))
        start = slash + 2


def decode_data(value: Any, *, mysql_escaped: bool = True) -> Any:
    """Message data as callbacks see it: a str holding JSON becomes Python values.

    With ``mysql_escaped`` (CppComet), text that only parses after unescaping
    (web_pipe2 payloads) is unescaped, up to twice like the JS cascade. A str
    that never parses stays exactly as received. Non-str values are returned
    unchanged.
    """
    if not isinstance(value, str):
        return value
    if not mysql_escaped or "\\" not in value:  # the usual case: one candidate
        try:
            return _loads(value)
        except ValueError:
            return value
    candidates = [value]
    once = mysql_unescape(value)
    candidates.append(once)
    if "\\" in once:
        candidates.append(mysql_unescape(once))
    for cand in candidates:
        try:
            return _loads(cand)
        except ValueError:
            continue
    return value


# ----------------------------------------------------------------- classification


@record
class AuthInfo:
    """serverInfo: the first frame of every connection."""

    _fields = ("authorized", "user_key", "server")
    authorized: bool
    user_key: str  # the users_auth hash the server stored ("real user key")
    server: str

    @property
    def is_comet_server(self) -> bool:
        """comet_server, not CppComet: it sends history_ids (and answers ``pipe_log`` from one),
        ends each pipe_log answer with a marked frame, reports exactly, and does not mysql-escape
        message text."""
        return self.server.startswith("comet_server")


@record
class SysError:
    """``event:"error"`` on pipe ``sys``; ``code`` is set for connect errors (then close)."""

    _fields = ("error", "code", "message")
    error: str
    code: int | None
    message: dict[str, Any]


@record
class MarkerAnswer:
    """A reply to a command, matched by ``marker``.

    kind: ``pipe_count`` (value: int), ``pipe_log`` (end of history; value:
    number of items), ``track_pipe_users`` (value: list), ``user_data`` (value:
    dict) or ``answer`` (anything else; value: decoded data).
    """

    _fields = ("marker", "kind", "value", "message")
    marker: str
    kind: str
    value: Any
    message: dict[str, Any]


@record
class DeliveryReport:
    """``_answer_to_<pipe>``: the report on this connection's web_pipe2 into ``pipe``."""

    _fields = ("pipe", "message")
    pipe: str
    message: dict[str, Any]


@record
class ChannelMessage:
    """A message on a channel (also personal ``msg``, history items, presence)."""

    _fields = ("message",)
    message: dict[str, Any]

    # The annotations are make_message_dict's types (the dict's values are Any).
    @property
    def pipe(self) -> str:
        pipe: str = self.message["server_info"]["pipe"]
        return pipe

    @property
    def history(self) -> bool:
        history: bool = self.message["server_info"]["history"]
        return history

    @property
    def history_id(self) -> str | None:
        history_id: str | None = self.message["server_info"]["history_id"]
        return history_id


@record
class Ignored:
    """Something that is not a message (no pipe, no data)."""

    _fields = ("reason",)
    reason: str


Classified = Union[AuthInfo, SysError, MarkerAnswer, DeliveryReport, ChannelMessage, Ignored]


def _as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def _count(data: Any) -> int | None:
    # CppComet: ["user_in_pipe", N]; comet_server / docs: {"user_in_pipe": N}.
    if isinstance(data, list) and len(data) == 2 and data[0] == "user_in_pipe":
        n = data[1]
    elif isinstance(data, dict) and "user_in_pipe" in data:
        n = data["user_in_pipe"]
    else:
        return None
    if isinstance(n, bool):
        return None
    if isinstance(n, int):
        return n
    if isinstance(n, str) and n.isdigit():
        return int(n)
    return None


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


_scan = SCAN  # jsonlimit.DECODER.raw_decode, without its wrapper
_JSON_SPACE = frozenset(("", " ", "\t", "\n", "\r"))  # "" too: data[:1] of an empty str

# The keys of an ordinary channel message (comet_server's and CppComet's v4 form).
_PLAIN_KEYS = frozenset(("data", "event", "message_send_time", "pipe", "user_id", "history_id"))


def plain_message(raw: dict[str, Any], *, mysql_escaped: bool = True) -> dict[str, Any] | None:
    """The message dict of an ordinary live channel message, or None for anything else.

    The fast path of ``classify`` (the same dict its ``ChannelMessage`` would hold): one key
    set test and a type test per value, for a frame with only the keys of ``_PLAIN_KEYS``,
    each of the usual type, on a pipe that is not ``sys`` nor ``_answer*``. Everything else
    (legacy frames, history items, answers, odd types) returns None and takes the full rules.
    """
    if not _PLAIN_KEYS.issuperset(raw):
        return None
    try:
        pipe, event, data = raw["pipe"], raw["event"], raw["data"]
    except KeyError:
        return None
    if (
        type(pipe) is not str
        or type(event) is not str
        or not pipe
        or pipe[0] == "_"  # "_answer*": reports and answers
        or pipe == "sys"
    ):
        return None
    t = raw.get("message_send_time")
    user_id = raw.get("user_id", 0)
    history_id = raw.get("history_id")
    if (
        (t is not None and type(t) is not int)
        or type(user_id) is not int
        or (history_id is not None and type(history_id) is not str)
    ):
        return None
    if type(data) is str:
        # decode_data's usual case (one candidate), with jsonlimit.loads inline: no escapes to
        # undo, too few brackets to be too deep, and a value from the first character to the last.
        if (mysql_escaped and "\\" in data) or data.count("[") + data.count("{") > MAX_DEPTH:
            data = decode_data(data, mysql_escaped=mysql_escaped)
        else:
            try:
                value, end = _scan(data, 0)
            except (StopIteration, ValueError):
                # Not JSON from its first character: with no whitespace there, not JSON at all.
                if data[:1] in _JSON_SPACE:
                    data = decode_data(data, mysql_escaped=mysql_escaped)
            else:
                data = value if end == len(data) else decode_data(data, mysql_escaped=mysql_escaped)
    # make_message_dict, inline. No uuid on the wire: server_info.uuid gives the history_id,
    # as in classify_full.
    return {"data": data, "server_info": {
        "event": event, "history": False, "marker": None, "pipe": pipe,
        "user_id": user_id if user_id > 0 else 0, "uuid": history_id, "time": t, "history_id": history_id}}


def classify(raw: dict[str, Any], *, mysql_escaped: bool = True) -> Classified:
    """Classify one decoded server object (v4 or legacy v3 form)."""
    plain = plain_message(raw, mysql_escaped=mysql_escaped)
    if plain is not None:
        return ChannelMessage(plain)
    return classify_full(raw, mysql_escaped=mysql_escaped)


def classify_full(raw: dict[str, Any], *, mysql_escaped: bool) -> Classified:
    """``classify`` by the full rules, without the fast path: for a frame ``plain_message``
    already turned down (Session), and to check the fast path against (tests)."""
    pipe = raw.get("pipe")
    if not isinstance(pipe, str) or not pipe:
        return Ignored("no pipe")
    if "data" not in raw:
        return Ignored("no data")  # the JS client ignores these too
    # Legacy (v < 4) frames carry event_name and stringify non-string data.
    event = raw.get("event")
    if not isinstance(event, str):
        event = raw.get("event_name")
    event = event if isinstance(event, str) else ("" if event is None else str(event))
    data = decode_data(raw.get("data"), mysql_escaped=mysql_escaped)
    marker = _opt_str(raw.get("marker"))
    history_id = _opt_str(raw.get("history_id"))
    # server_info.uuid gave the history position before it had a key of its own: keep that
    # for callers, unless the server sends a uuid itself (comet_server and CppComet do not).
    uuid = _opt_str(raw.get("uuid")) or history_id
    t = raw.get("message_send_time")
    time = t if isinstance(t, int) and not isinstance(t, bool) else None
    user_id = max(_as_int(raw.get("user_id")), 0)

    def message(history: bool = False, info_marker: "str | None" = marker) -> "dict[str, Any]":
        return make_message_dict(
            data,
            pipe=pipe,
            event=event,
            history=history,
            marker=info_marker,
            user_id=user_id,
            uuid=uuid,
            time=time,
            history_id=history_id,
        )

    if pipe == "sys":
        if event == "serverInfo" and "authorized" in raw:
            auth = raw["authorized"]
            key = raw.get("data")
            return AuthInfo(
                authorized=auth is True or auth == "true",
                user_key=key.replace(" ", "_") if isinstance(key, str) else "",
                server=str(raw.get("server") or ""),
            )
        if event == "error":
            err = data.get("error") if isinstance(data, dict) else data
            code = data.get("error_code") if isinstance(data, dict) else None
            return SysError(
                error=str(err).strip() if err is not None else "",
                code=_as_int(code) if code is not None else None,
                message=message(),
            )
        return ChannelMessage(message())

    if pipe.startswith(REPORT_PREFIX):
        return DeliveryReport(pipe[len(REPORT_PREFIX):], message())

    if pipe.startswith("_answer") and marker is not None:
        if pipe == "_answer_pipe_count":
            return MarkerAnswer(marker, "pipe_count", _count(data), message())
        if pipe == "_answer_pipe_log":
            n = data.get("number_messages") if isinstance(data, dict) else None
            return MarkerAnswer(marker, "pipe_log", _as_int(n), message())
        if pipe == "_answer":
            info = raw.get("_info")
            if (isinstance(info, str) and "track_pipe_users" in info) or isinstance(data, list):
                return MarkerAnswer(marker, "track_pipe_users", data, message())
            if isinstance(data, dict) and "user_data" in data:
                return MarkerAnswer(marker, "user_data", data, message())
        return MarkerAnswer(marker, "answer", data, message())

    # Channel message. History: comet_server says history:true; CppComet only
    # says fromQueue:true, which on "msg" means a queued personal message.
    history = raw.get("history") is True or (raw.get("fromQueue") is True and pipe != "msg")
    # server_info.marker of a history item is its position (the seed's API); on the wire that
    # is history_id, as "marker" only ever means a request marker.
    return ChannelMessage(message(history=history, info_marker=history_id if history else marker))
