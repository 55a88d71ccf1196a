"""``start()`` options: validation and normalisation (sans-I/O).

``parse_options`` turns what a user passes to ``start(opt, **kw)`` into a frozen
:class:`Options`. Every problem raises :class:`OptionsError` naming the key, so
a typo fails at ``start()`` rather than as a silent anonymous connection.
"""

from typing import Any, Mapping, Optional

from .errors import OptionsError
from .records import record

__all__ = ["Options", "parse_options", "DEFAULT_NODE", "KNOWN_KEYS"]

DEFAULT_NODE = "127.0.0.1:8087"
KNOWN_KEYS = ("dev_id", "user_id", "user_key", "node", "wss", "uuid")

# CppComet reads at most 600 chars of the session slice (MAX_JWT_LEN).
USER_KEY_MAX = 600
# The URL is parsed by position on '&' and sent unencoded: anything that would
# split it ('&'), end it ('#', whitespace) or be percent-encoded by the browser
# (non-ASCII) cannot reach the server intact.
_USER_KEY_CHARS = "".join(map(chr, range(ord("!"), ord("~") + 1)))  # printable ASCII, no space
_USER_KEY_FORBIDDEN = "&#?"
_UUID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
# The checks below are plain code, not regexes: MicroPython's re has no fullmatch or named
# groups, and silently fails counted repetition such as {32}.
_DIGITS = frozenset("0123456789")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_HOST_CHARS = _ALNUM | frozenset(".-")
_IPV6_CHARS = frozenset("0123456789ABCDEFabcdef:.")
_PATH_CHARS = _ALNUM | frozenset("._~-")


def _only(text: str, allowed: "frozenset[str]") -> bool:
    """``text`` is not empty and every character is in ``allowed``."""
    return text != "" and all(ch in allowed for ch in text)


def _node_port(value: str) -> Optional[str]:
    """The port of ``host[:port][/path]`` ("" when there is none), or None when ``value`` is not
    of that form. host: a name or IPv4 (A-Z a-z 0-9 . -, not starting or ending with . or -),
    or [IPv6]; port: 1 to 5 digits; path: segments of A-Z a-z 0-9 . _ ~ -, one trailing /."""
    slash = value.find("/")
    hostport, path = (value, "") if slash < 0 else (value[:slash], value[slash:])
    if path.endswith("/"):
        path = path[:-1]
    if path and not all(_only(segment, _PATH_CHARS) for segment in path[1:].split("/")):
        return None
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0 or not _only(hostport[1:close], _IPV6_CHARS):
            return None
        rest = hostport[close + 1:]
    else:
        host, colon, port = hostport.partition(":")
        if not _only(host, _HOST_CHARS) or host[0] in ".-" or host[-1] in ".-":
            return None
        rest = colon + port
    if rest == "":
        return ""
    port = rest[1:]
    if rest[0] != ":" or not _only(port, _DIGITS) or len(port) > 5:
        return None
    return port


@record
class Options:
    """Validated connection options.

    ``user_id`` is 0 for anonymous users. ``nodes`` always has at least one
    entry; ``node`` is the first one.
    """

    _fields = ("dev_id", "user_id", "user_key", "nodes", "wss", "uuid")
    dev_id: int
    user_id: int = 0
    user_key: str = ""
    nodes: tuple[str, ...] = (DEFAULT_NODE,)
    wss: bool | None = None
    uuid: str | None = None

    @property
    def node(self) -> str:
        return self.nodes[0]

    @property
    def key(self) -> str:
        """Tab-coordination key ``<node>|<dev_id>|<user_id>`` (several nodes joined by ',')."""
        return f"{','.join(self.nodes)}|{self.dev_id}|{self.user_id}"

    def to_dict(self) -> dict[str, Any]:
        """The options as ``start()`` would accept them again (JSON-safe)."""
        return {
            "dev_id": self.dev_id,
            "user_id": self.user_id,
            "user_key": self.user_key,
            "node": list(self.nodes) if len(self.nodes) > 1 else self.nodes[0],
            "wss": self.wss,
            "uuid": self.uuid,
        }

    def merged(self, new: Optional[Mapping[str, Any]] = None, **kw: Any) -> "Options":
        """Options for ``restart(opt)``: given keys replace old ones, the rest stay."""
        base = self.to_dict()
        changes = _collect(new, kw)
        base.update(changes)
        return parse_options(base)


def _is_mapping(obj: Any) -> bool:
    # duck-typed: MicroPython has no collections.abc.Mapping to check against
    return isinstance(obj, dict) or (hasattr(obj, "keys") and hasattr(obj, "__getitem__"))


def _collect(opt: Optional[Mapping[str, Any]], kw: Mapping[str, Any]) -> "dict[str, Any]":
    if opt is None:
        opt = {}
    elif not _is_mapping(opt):
        raise OptionsError(f"options must be a dict, got {type(opt).__name__}")
    out = dict(opt)
    out.update(kw)  # keyword arguments win over the dict
    for key in out:
        if not isinstance(key, str) or key not in KNOWN_KEYS:
            extra = ""
            try:
                import difflib  # only for this message: its import is a cost to every page
            except ImportError:  # MicroPython has none: no hint
                pass
            else:
                hint = difflib.get_close_matches(str(key), KNOWN_KEYS, n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise OptionsError(
                f"unknown option {key!r}{extra}; known options: {', '.join(KNOWN_KEYS)}"
            )
    return out


def _as_id(key: str, value: Any) -> int:
    # bool is an int subclass; True as an id is always a mistake.
    if isinstance(value, bool):
        raise OptionsError(f"option {key!r} must be an int or a digit string, got bool")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and _only(value, _DIGITS):
        n = int(value)
    else:
        raise OptionsError(
            f"option {key!r} must be an int >= 0 or a digit string, got {value!r}"
        )
    if n < 0:
        raise OptionsError(f"option {key!r} must be >= 0, got {n}")
    return n


def _check_node(value: Any) -> str:
    if not isinstance(value, str):
        raise OptionsError(f"option 'node' entries must be str, got {type(value).__name__}")
    if "://" in value:
        raise OptionsError(
            f"option 'node' is host[:port][/path] without a scheme, got {value!r} "
            "(use wss=True for TLS)"
        )
    port = _node_port(value)
    if port is None:
        raise OptionsError(f"option 'node' must look like host[:port][/path], got {value!r}")
    if port and not 0 < int(port) < 65536:
        raise OptionsError(f"option 'node' has an invalid port in {value!r}")
    return value.rstrip("/")  # the URL appends "/ws/..."


def parse_options(opt: Optional[Mapping[str, Any]] = None, **kw: Any) -> Options:
    """Validate ``start()`` options (a dict and/or keywords; keywords win)."""
    raw = _collect(opt, kw)
    if raw.get("dev_id") is None:
        raise OptionsError("option 'dev_id' is required")
    dev_id = _as_id("dev_id", raw["dev_id"])

    user_id_raw = raw.get("user_id")
    user_id = 0 if user_id_raw in (None, "") else _as_id("user_id", user_id_raw)

    user_key = raw.get("user_key")
    if user_key is None:
        user_key = ""
    if not isinstance(user_key, str):
        raise OptionsError(f"option 'user_key' must be a str, got {type(user_key).__name__}")
    if len(user_key) > USER_KEY_MAX:
        raise OptionsError(
            f"option 'user_key' is {len(user_key)} chars; the server reads at most {USER_KEY_MAX}"
        )
    if user_key.strip(_USER_KEY_CHARS):  # not all of them printable ASCII (str tests: no regex to compile)
        raise OptionsError(
            "option 'user_key' may only hold printable ASCII without spaces "
            "(a users_auth hash or a JWT)"
        )
    for ch in _USER_KEY_FORBIDDEN:
        if ch in user_key:
            raise OptionsError(
                f"option 'user_key' must not contain {ch!r} "
                f"(position {user_key.index(ch)}): it would break the connection URL"
            )

    node_raw = raw.get("node")
    if node_raw is None:
        nodes: "tuple[str, ...]" = (DEFAULT_NODE,)
    elif isinstance(node_raw, str):
        nodes = (_check_node(node_raw),)
    elif isinstance(node_raw, (list, tuple)):
        if not node_raw:
            raise OptionsError("option 'node' must not be an empty list")
        nodes = tuple(_check_node(n) for n in node_raw)
    else:
        raise OptionsError(
            f"option 'node' must be a str or a list of str, got {type(node_raw).__name__}"
        )

    wss = raw.get("wss")
    if wss is not None and not isinstance(wss, bool):
        raise OptionsError(f"option 'wss' must be True, False or None, got {wss!r}")

    uuid = raw.get("uuid")
    if uuid in (None, ""):
        uuid = None
    elif not isinstance(uuid, str) or len(uuid) != 32 or uuid.strip(_UUID_CHARS):
        # CppComet copies exactly 32 chars; a shorter one would swallow "&api=js".
        raise OptionsError(f"option 'uuid' must be 32 chars of [A-Za-z0-9_-], got {uuid!r}")

    return Options(
        dev_id=dev_id, user_id=user_id, user_key=user_key, nodes=nodes, wss=wss, uuid=uuid
    )
