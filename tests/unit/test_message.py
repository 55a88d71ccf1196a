"""What a callback receives: Message / ServerInfo built from the message dict (message.py)."""

import dataclasses

import pytest

from comet_py.message import Message, ServerInfo, make_message_dict


def test_from_dict_gives_the_same_objects_as_the_constructors():
    d = make_message_dict({"i": 1}, pipe="web_chat", event="m", user_id=3, time=1795823348, history_id="9",
                          uuid="9")
    m = Message.from_dict(d)
    expected = Message(data={"i": 1}, server_info=ServerInfo(event="m", history=False, marker=None, pipe="web_chat",
                                                             user_id=3, uuid="9", time=1795823348, history_id="9"))
    assert m == expected and repr(m) == repr(expected)
    assert m.server_info == expected.server_info and hash(m.server_info) == hash(expected.server_info)
    assert m.to_dict() == d and dict(m.server_info) == d["server_info"]
    assert m["data"] is m.data and m["server_info"]["pipe"] == "web_chat" == m.server_info.pipe
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.server_info.pipe = "web_other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.data = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(m)


def test_from_dict_normalises_odd_values_as_before():
    info = ServerInfo.from_dict({"event": None, "history": 1, "marker": 5, "pipe": 7, "user_id": "12",
                                 "uuid": 3, "time": True, "history_id": 10})
    assert info == ServerInfo(event="", history=False, marker="5", pipe="7", user_id=12, uuid="3", time=None,
                              history_id="10")
    assert ServerInfo.from_dict({"user_id": True, "time": 5}) == ServerInfo(
        event="", history=False, marker=None, pipe="", user_id=0, time=5)
    assert Message.from_dict({"data": 1, "server_info": None}).server_info == ServerInfo.from_dict({})
    assert Message.from_dict({}) == Message(data=None, server_info=ServerInfo.from_dict({}))


def test_server_info_is_made_once_on_first_access_and_cannot_be_replaced():
    """from_dict makes the ServerInfo when a callback first reads it (issue 13), then keeps it."""
    d = make_message_dict("x", pipe="web_chat", event="m")
    m = Message.from_dict(d)
    first = m.server_info
    assert first is m.server_info and first == ServerInfo.from_dict(d["server_info"])
    assert m == Message.from_dict(d) and m != Message.from_dict(make_message_dict("x", pipe="web_chat", event="n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.server_info = first  # type: ignore[misc]
    assert list(m) == ["data", "server_info"] and m.get("data") == "x" and "server_info" in m
