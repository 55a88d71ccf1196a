"""Exceptions raised by comet_py.

Every class also derives from the builtin a caller would naturally catch
(``ValueError``, ``TimeoutError``...), so code that does not know comet_py
still handles them sensibly.
"""

from __future__ import annotations

__all__ = [
    "CometError",
    "NotStartedError",
    "OptionsError",
    "RequestTimeout",
    "ConnectionLost",
    "error_from_text",
]


class CometError(Exception):
    """Base class of every comet_py error."""


class NotStartedError(CometError, RuntimeError):
    """An operation needs ``start()`` first."""


class OptionsError(CometError, ValueError):
    """A ``start()`` / ``restart()`` option is unknown or has a bad value."""


class RequestTimeout(CometError, TimeoutError):
    """The server did not answer a request in time."""


class ConnectionLost(CometError):
    """The request was abandoned because the connection was stopped."""


# Session.Answer carries errors as text (it must cross tabs as JSON). The text
# starts with the class name, "RequestTimeout: ...", so it can be turned back
# into an exception on the other side.
_BY_NAME: dict[str, type[CometError]] = {
    cls.__name__: cls
    for cls in (CometError, NotStartedError, OptionsError, RequestTimeout, ConnectionLost)
}


def error_from_text(text: str) -> CometError:
    """Rebuild the exception for an ``Answer.error`` text ("<Class>: <detail>")."""
    name, sep, detail = text.partition(": ")
    cls = _BY_NAME.get(name) if sep else None
    if cls is None:
        return CometError(text)
    return cls(detail)
