"""A stand-in for ``typing`` on MicroPython, which has none. Served to MicroPython only
(Pyodide and CPython have the real module).

comet_py imports names from typing for its annotations, which MicroPython never evaluates. The
few uses that run (``Union[...]`` in an alias, ``Protocol`` as a base class, ``TypeVar``,
``cast``, ``TYPE_CHECKING``, ``dataclass_transform``) get inert stand-ins; every other name is the
same inert object.
"""

TYPE_CHECKING = False


class _Inert:
    """Any typing construct: subscripting or calling it gives it back."""

    def __getitem__(self, params):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __repr__(self):
        return "<typing stand-in>"


_INERT = _Inert()


class Protocol:
    pass


class Generic:
    pass


def TypeVar(name, *constraints, **kwargs):
    return _INERT


def cast(kind, value):
    return value


def overload(func):
    return func


def dataclass_transform(**kwargs):  # comet_py.records' decorator: must stay a decorator
    return lambda func: func


def __getattr__(name):  # Any, Optional, Union, Callable, Mapping...
    return _INERT
