"""comet_py.records' ``@record`` with explicit ``_fields``, as the classes that run under
MicroPython use it (it keeps no annotations): what such a class does, on both interpreters."""

from comet_py.records import FrozenInstanceError, field, record
from tests.mpy.helpers import raises


@record
class Point:
    _fields = ("x", "y", "tags")
    x: int
    y: int = 0
    tags: list = field(default_factory=list)


@record
class Other:
    _fields = ("x", "y")
    x: int
    y: int


@record
class Empty:
    _fields = ()


@record(frozen=False)
class Box:
    _fields = ("size", "items")
    size: int
    items: list = field(default_factory=list)


def test_fields_are_set_by_position_keyword_and_default():
    p = Point(1)
    assert (p.x, p.y, p.tags) == (1, 0, [])
    assert (Point(1, 2).y, Point(y=5, x=2).y, Point(1, tags=[3]).tags) == (2, 5, [3])
    assert Point(1, 2, [3]).tags == [3]
    assert Point(1).tags is not Point(1).tags  # a fresh default each time


def test_bad_arguments_are_type_errors():
    raises(TypeError, Point)  # x missing
    raises(TypeError, Point, 1, x=2)  # x twice
    raises(TypeError, Point, 1, 2, [], 4)  # too many
    raises(TypeError, Point, 1, z=3)  # unknown keyword


def test_equal_by_type_and_values():
    assert Point(1, 2) == Point(1, 2)
    assert not Point(1, 2) != Point(1, 2)
    assert Point(1, 2) != Point(2, 1)
    assert Other(1, 2) != Point(1, 2, [])  # another class
    assert Other(1, 2) != (1, 2)
    assert Empty() == Empty()


def test_hash_follows_equality():
    assert hash(Point(1, 2, ())) == hash(Point(1, 2, ()))
    assert len({Other(1, 2), Other(1, 2), Other(3, 4)}) == 2


def test_repr_names_class_and_fields_as_a_dataclass_does():
    assert repr(Other(1, "a")) == "Other(x=1, y='a')"
    assert repr(Point(1)) == "Point(x=1, y=0, tags=[])"
    assert repr(Empty()) == "Empty()"


def test_a_frozen_record_refuses_assignment_and_deletion():
    p = Other(1, 2)
    raises(FrozenInstanceError, setattr, p, "x", 9)
    raises(FrozenInstanceError, setattr, p, "new", 9)
    raises(FrozenInstanceError, delattr, p, "x")
    assert isinstance(raises(AttributeError, setattr, p, "x", 9), FrozenInstanceError)
    assert (p.x, p.y) == (1, 2)


def test_a_mutable_record_can_change_and_is_unhashable():
    b = Box(1)
    b.size = 2
    b.items.append(3)
    assert b == Box(2, [3]) and repr(b) == "Box(size=2, items=[3])"
    assert Box(1).items is not Box(1).items
    raises(TypeError, hash, b)
