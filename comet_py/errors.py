"""Exceptions raised by comet_py, and the codes a failed call travels under between tabs.

On CPython and Pyodide every class also derives from the builtin a caller would naturally
catch (``ValueError``, ``TimeoutError``...), so code that does not know comet_py still handles
them sensibly. MicroPython refuses an exception class with two bases and has no builtin
``TimeoutError``: there each class derives from ``CometError`` only, so ``except CometError`` (or
the class itself) catches it and ``except ValueError`` does not (docs/api.md §8).
"""

import sys
from typing import TYPE_CHECKING, Any, Optional

from .records import record

__all__ = [
    "CometError",
    "NotStartedError",
    "OptionsError",
    "RequestTimeout",
    "ConnectionLost",
    "CallError",
    "CODES",
]


class CometError(Exception):
    """Base class of every comet_py error."""


if TYPE_CHECKING or sys.implementation.name != "micropython":
    class NotStartedError(CometError, RuntimeError):
        """An operation needs ``start()`` first."""

    class OptionsError(CometError, ValueError):
        """A ``start()`` / ``restart()`` option is unknown or has a bad value."""

    class RequestTimeout(CometError, TimeoutError):
        """The server did not answer a request in time."""
else:  # MicroPython: one base only (see the module's docstring)
    class NotStartedError(CometError):
        """An operation needs ``start()`` first."""

    class OptionsError(CometError):
        """A ``start()`` / ``restart()`` option is unknown or has a bad value."""

    class RequestTimeout(CometError):
        """The server did not answer a request in time."""


class ConnectionLost(CometError):
    """The request was abandoned because the connection was stopped."""


# The one table from a call's failure code to the exception it raises, in every tab: the
# Session fails a call with a code, the relay carries {code, detail} to the asking tab, and that
# tab raises CODES[code](detail). An unknown code (a newer tab's) raises a plain CometError.
SERVER_ERROR = "server_error"          # the server refused the command, or answered nonsense
REQUEST_TIMEOUT = "request_timeout"    # no answer in time
CONNECTION_LOST = "connection_lost"    # abandoned: stop(), pagehide, a change of master
QUEUE_FULL = "queue_full"              # too many frames waiting for the socket
BAD_CALL = "bad_call"                  # a call the master could not run (bad arguments)

CODES: dict[str, type[CometError]] = {
    SERVER_ERROR: CometError,
    REQUEST_TIMEOUT: RequestTimeout,
    CONNECTION_LOST: ConnectionLost,
    QUEUE_FULL: CometError,
    BAD_CALL: CometError,
}


@record
class CallError:
    """Why a call failed: ``code`` (a key of CODES) and a human ``detail``."""

    _fields = ("code", "detail")
    code: str
    detail: str

    def exception(self) -> CometError:
        return CODES.get(self.code, CometError)(self.detail)

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail}

    @classmethod
    def from_json(cls, obj: Any) -> Optional["CallError"]:
        """The CallError of an envelope's ``error`` field, or None when it is not one."""
        if (isinstance(obj, dict) and set(obj) == {"code", "detail"}
                and isinstance(obj["code"], str) and isinstance(obj["detail"], str)):
            return cls(obj["code"], obj["detail"])
        return None
