"""What a callback receives (comet_py.message), on both interpreters: attribute and dict access,
normalised odd values, immutability, history ids compared as numbers."""

from comet_py.message import Message, ServerInfo, history_id_int, make_message_dict
from comet_py.records import FrozenInstanceError
from tests.mpy.helpers import raises


def _message(**info):
    return Message.from_dict(make_message_dict({"i": 1}, pipe="web_chat", event="m", **info))


def test_a_message_reads_as_attributes_and_as_the_seeds_dicts():
    m = _message(user_id=3, time=1795823348, history_id="9", uuid="9")
    assert m.data == {"i": 1} and m["data"] is m.data
    assert m.server_info.pipe == "web_chat" == m["server_info"]["pipe"]
    assert (m.server_info.event, m.server_info.user_id, m.server_info.time) == ("m", 3, 1795823348)
    assert (m.server_info.history, m.server_info.marker) == (False, None)
    assert sorted(m) == ["data", "server_info"] and len(m) == 2
    assert m.get("data") == {"i": 1} and m.get("nope") is None and "server_info" in m
    assert m.server_info.get("uuid") == "9" and "pipe" in m.server_info
    assert dict(m.server_info.items())["history_id"] == "9" and len(m.server_info) == 8
    raises(KeyError, lambda: m["nope"])
    raises(KeyError, lambda: m.server_info["nope"])


def test_from_dict_equals_the_constructors_and_round_trips():
    d = make_message_dict({"i": 1}, pipe="web_chat", event="m", user_id=3, history_id="9")
    m = Message.from_dict(d)
    expected = Message({"i": 1}, ServerInfo("m", False, None, "web_chat", 3, None, None, "9"))
    assert m == expected and repr(m) == repr(expected)
    assert m.server_info == expected.server_info
    assert hash(m.server_info) == hash(expected.server_info)
    assert m.to_dict() == d and m.server_info.to_dict() == d["server_info"]
    assert m != _message()


def test_odd_values_are_normalised():
    info = ServerInfo.from_dict({"event": None, "history": 1, "marker": 5, "pipe": 7, "user_id": "12",
                                 "uuid": 3, "time": True, "history_id": 10})
    assert info == ServerInfo(event="", history=False, marker="5", pipe="7", user_id=12, uuid="3",
                              time=None, history_id="10")
    # a bool is no int here (and is not one at all in MicroPython): neither is taken as one
    assert ServerInfo.from_dict({"user_id": True, "time": 5}) == ServerInfo(
        event="", history=False, marker=None, pipe="", user_id=0, time=5)
    assert ServerInfo.from_dict({"user_id": "-4"}).user_id == -4
    assert ServerInfo.from_dict({"user_id": [1]}).user_id == 0
    assert Message.from_dict({"data": 1, "server_info": None}).server_info == ServerInfo.from_dict({})
    assert Message.from_dict({}) == Message(data=None, server_info=ServerInfo.from_dict({}))


def test_a_message_and_its_server_info_cannot_be_changed():
    m = _message()
    raises(FrozenInstanceError, setattr, m.server_info, "pipe", "web_other")
    raises(FrozenInstanceError, setattr, m, "data", None)
    raises(FrozenInstanceError, setattr, m, "server_info", m.server_info)
    raises(TypeError, hash, m)
    first = m.server_info
    assert first is m.server_info and m.server_info.pipe == "web_chat"


def test_repr_shows_where_it_came_from():
    m = Message.from_dict(make_message_dict("x" * 200, pipe="web_chat", event="m", history=True,
                                            marker="7", history_id="7"))
    text = repr(m)
    assert text.startswith("Message(pipe='web_chat', event='m', user_id=0, history=True, marker='7'")
    assert text.endswith("...)") and len(text) < 250


def test_history_ids_are_ascii_decimal_numbers():
    assert history_id_int("9") < history_id_int("10")
    assert history_id_int("0") == 0 and history_id_int("123456789012") == 123456789012
    for bad in ("", "-1", "1.5", " 1", "\u00b2", "\u0663", "1a", None, 9, b"9"):
        assert history_id_int(bad) is None, bad
