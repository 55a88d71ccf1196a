import pytest

from comet_py.message import make_message_dict
from comet_py.registry import Registry


def msg(pipe, event="e", history_id=None, history=False):
    return make_message_dict("d", pipe=pipe, event=event, history_id=history_id, history=history)


def cb(tag):
    def f(e):
        return tag
    f.tag = tag
    return f


def tags(cbs):
    return [c.tag for c in cbs]


def test_match_in_registration_order():
    r = Registry()
    r.add("web_chat.new", cb("new"))
    r.add("", cb("all"))
    r.add("web_chat", cb("chat"))
    r.add("#web_chat", cb("report"))
    r.add("msg.priv", cb("priv"))
    assert tags(r.match(msg("web_chat", "new"))) == ["new", "all", "chat"]
    assert tags(r.match(msg("web_chat", "old"))) == ["all", "chat"]
    assert tags(r.match(msg("_answer_to_web_chat", "answer"))) == ["report"]
    assert tags(r.match(msg("msg", "priv"))) == ["all", "priv"]
    assert tags(r.match(msg("sys", "error"))) == ["all"]
    assert tags(r.match(msg("_answer_pipe_count", "user_in_pipe"))) == []


def test_server_channels_follow_callbacks():
    r = Registry()
    a = r.add("web_chat", cb(1))
    b = r.add("web_chat.new", cb(2))
    r.add("msg", cb(3))
    r.add("#web_chat", cb(4))
    r.add("", cb(5))
    t = r.add("track_room.subscription", cb(6))
    assert r.server_channels() == frozenset({"web_chat", "track_room"})
    assert r.remove(a) is True
    assert r.server_channels() == frozenset({"web_chat", "track_room"})  # b still wants it
    assert r.remove(b) and r.remove(t)
    assert r.server_channels() == frozenset()
    assert r.remove(b) is False and r.remove("nope") is False


def test_failed_add_changes_nothing():
    r = Registry()
    sid = r.add("web_ok", cb(1))
    before = (r.server_channels(), [s.sub_id for s in r.subscriptions()])
    for bad in ("web bad", "x", "web_ok.", "a.b.c"):
        with pytest.raises(ValueError):
            r.add(bad, cb(2))
    with pytest.raises(TypeError):
        r.add("web_other", "not callable")
    assert (r.server_channels(), [s.sub_id for s in r.subscriptions()]) == before
    assert sid in r and len(r) == 1


def test_sub_ids_are_unique_strings():
    r = Registry()
    ids = {r.add("web_chat", cb(i)) for i in range(5)}
    assert len(ids) == 5 and all(isinstance(i, str) for i in ids)


def test_accept_drops_repeated_history_ids_per_pipe():
    r = Registry()
    assert r.accept(msg("web_a", history_id="10"))
    assert r.accept(msg("web_a", history_id="11"))
    assert not r.accept(msg("web_a", history_id="11"))
    assert not r.accept(msg("web_a", history_id="9"))
    assert r.accept(msg("web_b", history_id="5"))  # other pipe, own sequence
    assert r.accept(msg("web_a"))  # no history_id (CppComet): always
    assert r.accept(msg("web_a", history_id="not-a-number"))
    assert r.accept(msg("web_a", history_id="3", history=True))  # asked-for history
    assert r.last_history_ids() == {"web_a": "11", "web_b": "5"}
    r.forget_history_ids(["web_a"])
    assert r.accept(msg("web_a", history_id="1"))
    r.forget_history_ids()
    assert r.last_history_ids() == {}


def test_clear():
    r = Registry()
    r.add("web_a", cb(1))
    r.add("web_b", cb(2))
    assert r.clear() == 2 and r.server_channels() == frozenset() and r.match(msg("web_a")) == []


def test_callbacks_for_follows_every_change_of_the_callbacks():
    """callbacks_for caches per pipe (issue 13): each add, remove and clear is seen at once, and
    a list it gave is never changed afterwards."""
    r = Registry()
    calls = []
    a = r.add("web_chat", lambda e: calls.append("a"))
    given = r.callbacks_for(msg("web_chat", "m"))
    assert len(given) == 1 and r.callbacks_for(msg("web_chat", "m")) == given
    b = r.add("web_chat.m", lambda e: calls.append("b"))
    assert len(given) == 1
    assert len(r.callbacks_for(msg("web_chat", "m"))) == 2 and len(r.callbacks_for(msg("web_chat", "x"))) == 1
    r.remove(a)
    assert len(r.callbacks_for(msg("web_chat", "m"))) == 1 and r.callbacks_for(msg("web_chat", "x")) == []
    r.add(None, lambda e: calls.append("all"))
    assert len(r.callbacks_for(msg("web_chat", "x"))) == 1 and len(r.callbacks_for(msg("web_other", "x"))) == 1
    assert r.callbacks_for(msg("_answer_pipe_count", "x")) == []
    r.remove(b)
    r.clear()
    assert r.callbacks_for(msg("web_chat", "m")) == [] and r.callbacks_for(msg("web_other", "x")) == []
    for k in range(600):  # more pipes than the cache keeps
        r.add(f"web_p{k}", lambda e: None)
        assert len(r.callbacks_for(msg(f"web_p{k}", "m"))) == 1
    assert len(r.callbacks_for(msg("web_p3", "m"))) == 1
