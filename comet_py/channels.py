"""Channel-name rules and subscription-name parsing (sans-I/O).

The rules are what CppComet enforces (protocol.md §4.1), not what its docs say:
``[A-Za-z0-9_-]``, 2..64 characters; event names ``[A-Za-z0-9_-]``, 1..64.
"""

import logging
from typing import Optional

from .records import record

__all__ = [
    "NAME_MIN",
    "NAME_MAX",
    "RESERVED_PREFIXES",
    "Target",
    "check_name",
    "check_event",
    "check_send_pipe",
    "parse_target",
]

log = logging.getLogger("comet_py")

NAME_MIN = 2
NAME_MAX = 64
EVENT_MAX = 64
RESERVED_PREFIXES = ("bin_", "big_", "push_", "comet_", "self_", "trust_", "sys_")
REPORT_PREFIX = "_answer_to_"

_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_warned_reserved: set[str] = set()


def _check_chars(kind: str, name: str) -> None:
    for i, ch in enumerate(name):
        if ch not in _ALLOWED:
            raise ValueError(
                f"invalid {kind} {name!r}: character {ch!r} at position {i} is not allowed "
                "(only A-Z a-z 0-9 _ -)"
            )


def check_name(name: str) -> str:
    """Validate a channel name; return it. Raises ``ValueError`` saying what is wrong."""
    if not isinstance(name, str):
        raise ValueError(f"channel name must be a str, got {type(name).__name__}")
    _check_chars("channel name", name)
    if not NAME_MIN <= len(name) <= NAME_MAX:
        raise ValueError(
            f"invalid channel name {name!r}: {len(name)} characters, "
            f"must be {NAME_MIN} to {NAME_MAX}"
        )
    if name.startswith(RESERVED_PREFIXES) and name not in _warned_reserved:
        # Allowed (the servers do nothing special), but the seed advises against it.
        _warned_reserved.add(name)
        log.warning("channel name %r uses a reserved prefix (%s)", name, ", ".join(RESERVED_PREFIXES))
    return name


def check_event(event: str) -> str:
    """Validate an event name (``[A-Za-z0-9_-]``, 1..64); return it."""
    if not isinstance(event, str):
        raise ValueError(f"event name must be a str, got {type(event).__name__}")
    _check_chars("event name", event)
    if not 1 <= len(event) <= EVENT_MAX:
        raise ValueError(
            f"invalid event name {event!r}: {len(event)} characters, must be 1 to {EVENT_MAX}"
        )
    return event


def check_send_pipe(pipe: str) -> str:
    """Validate a ``web_pipe_send`` target: ``web_*``, ``webauth_*`` or ``@web_*`` (anonymous)."""
    bare = pipe[1:] if isinstance(pipe, str) and pipe.startswith("@") else pipe
    check_name(bare)
    # check_name passed: bare is all [A-Za-z0-9_-], so only its prefix is left to test.
    if not bare.startswith(("web_", "webauth_")) or pipe.startswith("@webauth_"):
        raise ValueError(
            f"cannot send into {pipe!r}: browsers may only publish to web_* or webauth_* "
            "channels (@web_* sends anonymously)"
        )
    return pipe


@record
class Target:
    """What a subscription name means.

    ``pipe``: the local pipe a message must have (None = every message);
    ``event``: the event it must have (None = any);
    ``server_channel``: the channel to subscribe on the server (None = nothing to send).
    """

    _fields = ("name", "pipe", "event", "server_channel")
    name: str
    pipe: Optional[str]
    event: Optional[str]
    server_channel: Optional[str]

    def matches(self, pipe: str, event: str) -> bool:
        if self.pipe is None:
            # "all": channel messages and sys errors, never command answers or reports.
            return not pipe.startswith("_answer")
        return pipe == self.pipe and (self.event is None or event == self.event)


def parse_target(name: Optional[str]) -> Target:
    """Parse a subscription name (api.md §3). Raises ``ValueError`` for a bad one."""
    if name is None or name == "":
        return Target("", None, None, None)
    if not isinstance(name, str):
        raise ValueError(f"subscription name must be a str, got {type(name).__name__}")
    if name.startswith("#"):
        # Delivery reports of this browser's sends; the server has no such channel.
        pipe = check_name(name[1:])
        return Target(name, REPORT_PREFIX + pipe, None, None)
    base, dot, event = name.partition(".")
    check_name(base)
    ev: Optional[str] = None
    if dot:
        if "." in event:
            raise ValueError(
                f"invalid subscription name {name!r}: use 'channel' or 'channel.event' (one dot)"
            )
        ev = check_event(event)
    # msg (personal messages) and sys arrive without a subscription; _answer*
    # pipes are replies to commands. Subscribing them on the server is useless.
    local_only = base in ("msg", "sys") or base.startswith("_answer")
    return Target(name, base, ev, None if local_only else base)
