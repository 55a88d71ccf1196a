"""What a subscription callback receives (api.md §4), sans-I/O.

Both the attribute form (``e.data``, ``e.server_info.pipe``) and the seed's dict
form (``e["data"]``, ``e["server_info"]["pipe"]``) work. The objects are built
from, and turned back into, the plain message dict of design.md §4.2 that the
relay carries between tabs as JSON.

``history_id`` is comet_server's position of a message in its channel's history (wire key
``history_id`` on live messages of logged channels and on history items; increasing decimal
text). Recovery and duplicate dropping compare it; CppComet sends none. ``marker`` is the
request marker of an answer, except that history items give their history_id there too
(api.md: "defined only when history is true"). ``uuid`` is the wire's ``uuid`` or else, as
before history_id had its own key, the history_id.
"""

import sys
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Iterator, TypeVar

from .records import FrozenInstanceError, record

__all__ = ["ServerInfo", "Message", "make_message_dict", "history_id_int"]

_MICROPYTHON = sys.implementation.name == "micropython"
_INFO_KEYS = ("event", "history", "marker", "pipe", "user_id", "uuid", "time", "history_id")
_MSG_KEYS = ("data", "server_info")

if TYPE_CHECKING or not _MICROPYTHON:
    from collections.abc import Mapping
    from operator import itemgetter

    _MappingBase = Mapping[str, Any]
    _INFO_VALUES = itemgetter(*_INFO_KEYS)
else:  # MicroPython: no collections.abc, no operator.itemgetter
    class Mapping:
        """What collections.abc.Mapping adds to ``__getitem__``, ``__iter__`` and ``__len__``."""

        def get(self, key, default=None):
            try:
                return self[key]
            except KeyError:
                return default

        def __contains__(self, key):
            try:
                self[key]
            except KeyError:
                return False
            return True

        def keys(self):
            return list(self)

        def items(self):
            return [(key, self[key]) for key in self]

        def values(self):
            return [self[key] for key in self]

    _MappingBase = Mapping

    def _INFO_VALUES(d):
        return tuple([d[key] for key in _INFO_KEYS])


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return default


def history_id_int(value: Any) -> int | None:
    """A history_id as a number (they compare as numbers: "9" < "10"); None if not one."""
    # (MicroPython has no str.isascii; its isdigit is ASCII-only: "²".isdigit() is False)
    if isinstance(value, str) and value.isdigit() and (_MICROPYTHON or value.isascii()):
        return int(value)
    return None


def make_message_dict(
    data: Any,
    *,
    pipe: str,
    event: str,
    history: bool = False,
    marker: str | None = None,
    user_id: int = 0,
    uuid: str | None = None,
    time: int | None = None,
    history_id: str | None = None,
) -> dict[str, Any]:
    """The message dict of design.md §4.2."""
    return {
        "data": data,
        "server_info": {
            "event": event,
            "history": history,
            "marker": marker,
            "pipe": pipe,
            "user_id": user_id,
            "uuid": uuid,
            "time": time,
            "history_id": history_id,
        },
    }


_T = TypeVar("_T")


if not _MICROPYTHON:
    def _frozen(cls: type[_T], fields: dict[str, Any]) -> _T:
        """``cls(**fields)`` for a frozen dataclass without __post_init__ or slots, as fast as a
        plain object: its __init__ sets each field through ``object.__setattr__`` (several times
        slower, and this runs for every message in every tab). ``fields`` must be all of them."""
        obj = object.__new__(cls)
        obj.__dict__.update(fields)
        return obj
else:
    def _frozen(cls: type[_T], fields: dict[str, Any]) -> _T:
        # An instance's __dict__ is read-only in MicroPython: each field past __setattr__.
        obj = object.__new__(cls)
        for name, value in fields.items():
            object.__setattr__(obj, name, value)
        return obj


@record
class ServerInfo(_MappingBase):
    """``e.server_info``: where a message came from."""

    _fields = _INFO_KEYS  # its fields are the wire's keys, in this order
    event: str
    history: bool
    marker: str | None
    pipe: str
    user_id: int
    uuid: str | None = None
    time: int | None = None
    history_id: str | None = None  # comet_server's position in the channel's history

    # Mapping protocol: e["server_info"]["pipe"] as in the seed.
    def __getitem__(self, key: str) -> Any:
        if key not in _INFO_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_INFO_KEYS)

    def __len__(self) -> int:
        return len(_INFO_KEYS)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _INFO_KEYS}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ServerInfo":
        # Per message, in every tab: all keys at once (a dict of ours or a relayed one has all),
        # and each value's usual type tested first, inline.
        try:
            event, history, marker, pipe, user_id, uuid, t, history_id = _INFO_VALUES(d)
        except KeyError:
            event, history, marker, pipe, user_id, uuid, t, history_id = map(d.get, _INFO_KEYS)
        return _frozen(cls, {
            "event": event if type(event) is str else str(event or ""),
            "history": history is True,
            "marker": marker if marker is None or type(marker) is str else _opt_str(marker),
            "pipe": pipe if type(pipe) is str else str(pipe or ""),
            "user_id": user_id if type(user_id) is int else _int(user_id),
            "uuid": uuid if uuid is None or type(uuid) is str else _opt_str(uuid),
            "time": t if type(t) is int or (isinstance(t, int) and not isinstance(t, bool)) else None,
            "history_id": history_id if history_id is None or type(history_id) is str else _opt_str(history_id),
        })


def _refuse(obj: Any, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field of {type(obj).__name__}")


class Message(_MappingBase):
    """A message given to callbacks: ``e.data`` and ``e.server_info``. Immutable, like the frozen
    dataclass it was (assigning ``data`` or ``server_info`` raises
    ``dataclasses.FrozenInstanceError``).

    A plain ``__slots__`` class: one is built per message in every tab, and a frozen dataclass
    (or any ``__setattr__`` that refuses) makes each field's assignment a slow call.
    ``from_dict`` keeps the message dict's server_info and makes the ``ServerInfo`` on first
    access, so a callback that reads only ``e.data`` never pays for it."""

    __slots__ = ("_data", "_info", "_info_dict")
    __match_args__ = ("data", "server_info")

    _data: Any
    _info: ServerInfo | None
    _info_dict: Mapping[str, Any] | None

    def __init__(self, data: Any, server_info: ServerInfo) -> None:
        self._data = data
        self._info = server_info
        self._info_dict = None

    def _server_info(self) -> ServerInfo:
        info = self._info
        if info is None:
            info = self._info = ServerInfo.from_dict(self._info_dict or {})
            self._info_dict = None
        return info

    if TYPE_CHECKING:  # what the properties below give, for type checkers
        @property
        def data(self) -> Any: ...
        @property
        def server_info(self) -> ServerInfo: ...
    else:
        # Read-only: a C getter for data (read by every callback), assignment refused.
        data = property(attrgetter("_data"), _refuse)
        server_info = property(_server_info, _refuse)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Message)
        return (self._data, self.server_info) == (other._data, other.server_info)

    def __getitem__(self, key: str) -> Any:
        if key == "data":
            return self.data
        if key == "server_info":
            return self.server_info
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_MSG_KEYS)

    def __len__(self) -> int:
        return 2

    # Mapping would make instances unhashable anyway (data may be a dict).
    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Message":
        info = d.get("server_info")
        if type(info) is not dict and not isinstance(info, Mapping):  # the abc test is slow
            info = {}
        obj = _new(cls)
        obj._data = d.get("data")
        obj._info = None
        obj._info_dict = info
        return obj

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (data is whatever JSON decoding gave, or a str)."""
        return {"data": self.data, "server_info": self.server_info.to_dict()}

    def __repr__(self) -> str:
        si = self.server_info
        data = repr(self.data)
        if len(data) > 120:
            data = data[:117] + "..."
        extra = ""
        if si.history:
            extra += ", history=True"
        if si.marker is not None:
            extra += f", marker={si.marker!r}"
        if si.uuid is not None and si.uuid != si.history_id:
            extra += f", uuid={si.uuid!r}"
        if si.history_id is not None and si.history_id != si.marker:
            extra += f", history_id={si.history_id!r}"
        return (
            f"Message(pipe={si.pipe!r}, event={si.event!r}, user_id={si.user_id}"
            f"{extra}, data={data})"
        )


_new = object.__new__
