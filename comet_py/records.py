"""``@record``: what ``@dataclass`` gave comet_py's small classes, without compiling code at import.

``dataclasses`` writes each class's ``__init__``, ``__repr__``, ``__eq__`` (and, frozen,
``__setattr__``, ``__hash__``) as source text and compiles it: in Pyodide about 0.5-1 ms a class,
and comet_py has some 35, all created by ``import comet_py`` and ``start()`` (issue 13, goal 3).
``record`` gives the same behaviour with shared, ready-made methods: init by position or keyword
with defaults (``field(default_factory=...)`` too), repr, eq, ``__match_args__``; frozen
(the default): ``dataclasses.FrozenInstanceError`` on assignment, and a hash. Type checkers
treat it as a dataclass (``dataclass_transform``).

MicroPython keeps no class annotations, so a record that must run there names its fields, in
order, in ``_fields = ("x", "y")`` (used whenever present; defaults stay class attributes). A
CPython test checks that every record's ``_fields`` equals its annotations, so they cannot drift.
"""

import sys
from typing import Any, Callable, TypeVar, dataclass_transform, overload

try:
    from dataclasses import FrozenInstanceError
except ImportError:  # MicroPython: no dataclasses
    class FrozenInstanceError(AttributeError):  # type: ignore[no-redef]
        pass

__all__ = ["FrozenInstanceError", "field", "record"]

_T = TypeVar("_T")


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], _T]) -> _T:
    """A default made afresh for each instance (``dataclasses.field(default_factory=...)``)."""
    return _Factory(default_factory)  # type: ignore[return-value]


_MISSING = object()
_PORTABLE = sys.implementation.name == "micropython"


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    names = cls.__match_args__
    values = self.__dict__  # filled directly, past a frozen __setattr__, as dataclasses do
    if len(args) == len(names) and not kwargs:
        values.update(zip(names, args))
        return
    _fill(cls, names, values, args, kwargs)


def _init_portable(self: Any, *args: Any, **kwargs: Any) -> None:
    # MicroPython: an instance's __dict__ is read-only, so each field goes in past __setattr__.
    cls = type(self)
    values: dict[str, Any] = {}
    _fill(cls, cls.__match_args__, values, args, kwargs)
    for name, value in values.items():
        object.__setattr__(self, name, value)


def _fill(cls: Any, names: tuple[str, ...], values: dict[str, Any], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> None:
    n = len(args)
    if n > len(names):
        raise TypeError(f"{cls.__name__}() takes {len(names)} arguments, {n} given")
    values.update(zip(names, args))
    defaults = cls._record_defaults
    for name in names[n:]:
        value = kwargs.pop(name, _MISSING)
        if value is _MISSING:
            value = defaults.get(name, _MISSING)
            if type(value) is _Factory:
                value = value.make()
            elif value is _MISSING:
                raise TypeError(f"{cls.__name__}() missing argument {name!r}")
        values[name] = value
    if kwargs:
        name = next(iter(kwargs))
        if name in names:
            raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
        raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")


def _repr(self: Any) -> str:
    cls = type(self)
    fields = ", ".join([f"{name}={getattr(self, name)!r}" for name in cls.__match_args__])
    return f"{getattr(cls, '__qualname__', cls.__name__)}({fields})"


def _values(self: Any) -> tuple[Any, ...]:
    return tuple([getattr(self, name) for name in type(self).__match_args__])


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _make(cls: type[_T], frozen: bool) -> type[_T]:
    # The class's own field names, in order (no record inherits another's fields): its
    # ``_fields`` if given (MicroPython has no annotations), else its annotations.
    own = cls.__dict__
    names = own.get("_fields")
    if names is None:
        names = tuple(own.get("__annotations__") or getattr(cls, "__annotations__", {}))
        if _PORTABLE and not names:
            raise TypeError(f"@record {cls.__name__}: MicroPython needs its _fields")
    else:
        names = tuple(names)
    defaults: dict[str, Any] = {}
    for name in names:
        value = cls.__dict__.get(name, _MISSING)
        if value is not _MISSING:
            defaults[name] = value
            if isinstance(value, _Factory):
                delattr(cls, name)
    attrs: dict[str, Any] = {"__match_args__": names, "_record_defaults": defaults,
                             "__init__": _init_portable if _PORTABLE else _init,
                             "__repr__": _repr, "__eq__": _eq}
    if frozen:
        attrs.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr, __hash__=_hash)
    else:
        attrs["__hash__"] = None  # mutable: unhashable, like a dataclass with eq
    for name, value in attrs.items():
        if name not in cls.__dict__ or name in ("__match_args__", "_record_defaults"):
            setattr(cls, name, value)
    return cls


@overload
def record(cls: type[_T]) -> type[_T]: ...
@overload
def record(*, frozen: bool = True) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: "type[_T] | None" = None, *, frozen: bool = True) -> Any:
    """``@record`` (frozen) or ``@record(frozen=False)``: see the module's docstring."""
    if cls is None:
        return lambda c: _make(c, frozen)
    return _make(cls, frozen)
