"""@record behaves as the @dataclass it replaced (issue 13: no code compiled at import)."""

import dataclasses

import pytest

from comet_py.records import field, record
from comet_py.session import Dispatch, StateChanged


@record
class Point:
    x: int
    y: int = 0
    tags: list = field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class PointDC:
    x: int
    y: int = 0
    tags: list = dataclasses.field(default_factory=list)


@record(frozen=False)
class Box:
    size: int
    items: list = field(default_factory=list)


def test_a_frozen_record_is_built_compared_and_shown_as_a_frozen_dataclass():
    for args, kwargs in [((1,), {}), ((1, 2), {}), ((1,), {"y": 3}), ((), {"x": 1, "tags": [2]}), ((1, 2, [3]), {})]:
        r, d = Point(*args, **kwargs), PointDC(*args, **kwargs)
        assert (r.x, r.y, r.tags) == (d.x, d.y, d.tags)
        assert repr(r) == repr(d).replace("PointDC", "Point")
        assert r == Point(*args, **kwargs) and r != Point(99) and r != d
    assert Point(1).tags is not Point(1).tags
    assert hash(Point(1, 2, ())) == hash(Point(1, 2, ()))  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Point(1).x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del Point(1).x  # type: ignore[misc]
    for bad in [lambda: Point(), lambda: Point(1, x=2), lambda: Point(1, 2, [], 4), lambda: Point(1, z=3)]:
        with pytest.raises(TypeError):
            bad()
    match Point(1, 2):
        case Point(x, y):
            assert (x, y) == (1, 2)


def test_a_mutable_record_can_change_and_is_unhashable():
    b = Box(1)
    b.size = 2
    b.items.append(3)
    assert b == Box(2, [3]) and repr(b) == "Box(size=2, items=[3])" and Box(1).items is not Box(1).items
    with pytest.raises(TypeError):
        hash(b)


def test_the_session_events_keep_their_dataclass_behaviour():
    assert Dispatch({"a": 1}) == Dispatch({"a": 1}, None, None) != Dispatch({"a": 1}, "t")
    assert repr(Dispatch({})) == "Dispatch(message={}, to=None, exclude=None)"
    assert StateChanged("connected").detail == {} and StateChanged("x").detail is not StateChanged("x").detail


def _record_classes():
    """Every @record class of comet_py (and of the MicroPython lane's record tests)."""
    import importlib
    import pathlib

    import comet_py
    from tests.mpy import test_mpy_records

    modules = [importlib.import_module(f"comet_py.{p.stem}")
               for p in sorted(pathlib.Path(comet_py.__file__).parent.glob("*.py"))
               if p.stem not in ("__init__", "browser")]  # browser imports js
    found = {}
    for module in [*modules, test_mpy_records]:
        for value in vars(module).values():
            if isinstance(value, type) and "_record_defaults" in value.__dict__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_a_records_explicit_fields_are_its_annotations_in_order():
    # MicroPython reads _fields (it keeps no annotations), CPython the annotations: never two lists.
    classes = _record_classes()
    assert len(classes) > 30
    # every one states them: a record without them would have no fields under MicroPython
    assert [name for name, cls in classes.items() if "_fields" not in cls.__dict__] == []
    for name, cls in classes.items():
        annotated = tuple(cls.__dict__.get("__annotations__", {}))
        assert tuple(cls._fields) == annotated, name
        assert cls.__match_args__ == annotated, name


def test_explicit_fields_win_over_annotations():
    # (the test above keeps comet_py's from disagreeing; this one shows which list is read)
    @record
    class Swapped:
        _fields = ("b", "a")
        a: int = 1
        b: int = 2

    s = Swapped(5)
    assert (s.b, s.a) == (5, 1) and repr(s).endswith("Swapped(b=5, a=1)")
