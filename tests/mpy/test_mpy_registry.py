"""One tab's callbacks (comet_py.registry), on both interpreters: matching in registration order
(MicroPython's dicts keep no order), the server channels they need, duplicate dropping by
history_id, and the per-pipe cache following every change."""

from comet_py.message import make_message_dict
from comet_py.registry import Registry, Subscription
from tests.mpy.helpers import raises


class Tag:
    """A callback that says which one it is (MicroPython functions take no attributes)."""

    def __init__(self, tag):
        self.tag = tag

    def __call__(self, e):
        return self.tag


def msg(pipe, event="e", history_id=None, history=False):
    return make_message_dict("d", pipe=pipe, event=event, history_id=history_id, history=history)


def tags(callbacks):
    return [c.tag for c in callbacks]


def test_callbacks_match_in_registration_order():
    r = Registry()
    r.add("web_chat.new", Tag("new"))
    r.add("", Tag("all"))
    r.add("web_chat", Tag("chat"))
    r.add("#web_chat", Tag("report"))
    r.add("msg.priv", Tag("priv"))
    assert tags(r.match(msg("web_chat", "new"))) == ["new", "all", "chat"]
    assert tags(r.match(msg("web_chat", "old"))) == ["all", "chat"]
    assert tags(r.match(msg("_answer_to_web_chat", "answer"))) == ["report"]
    assert tags(r.match(msg("msg", "priv"))) == ["all", "priv"]
    assert tags(r.match(msg("sys", "error"))) == ["all"]
    assert tags(r.match(msg("_answer_pipe_count", "user_in_pipe"))) == []


def test_many_callbacks_keep_their_order_through_removals():
    r = Registry()
    ids = [r.add("web_chat" if k % 3 else "", Tag(k)) for k in range(40)]
    assert tags(r.callbacks_for(msg("web_chat"))) == list(range(40))
    for k in range(0, 40, 4):
        assert r.remove(ids[k])
    want = [k for k in range(40) if k % 4]
    assert tags(r.callbacks_for(msg("web_chat"))) == want
    assert [s.sub_id for s in r.subscriptions()] == [ids[k] for k in want]
    assert tags(r.callbacks_for(msg("web_other"))) == [k for k in want if k % 3 == 0]


def test_server_channels_follow_callbacks():
    r = Registry()
    a = r.add("web_chat", Tag(1))
    b = r.add("web_chat.new", Tag(2))
    r.add("msg", Tag(3))
    r.add("#web_chat", Tag(4))
    r.add("", Tag(5))
    t = r.add("track_room.subscription", Tag(6))
    assert r.server_channels() == frozenset({"web_chat", "track_room"})
    assert r.remove(a) is True
    assert r.server_channels() == frozenset({"web_chat", "track_room"})  # b still wants it
    assert r.remove(b) and r.remove(t)
    assert r.server_channels() == frozenset()
    assert r.remove(b) is False and r.remove("nope") is False and r.remove(7) is False


def test_a_failed_add_changes_nothing():
    r = Registry()
    sid = r.add("web_ok", Tag(1))
    before = (r.server_channels(), [s.sub_id for s in r.subscriptions()])
    for bad in ("web bad", "x", "web_ok.", "a.b.c", 5):
        raises(ValueError, r.add, bad, Tag(2))
    raises(TypeError, r.add, "web_other", "not callable")
    assert (r.server_channels(), [s.sub_id for s in r.subscriptions()]) == before
    assert sid in r and len(r) == 1
    sub = r.subscriptions()[0]
    assert isinstance(sub, Subscription) and sub.sub_id == sid and sub.target.pipe == "web_ok"


def test_repeated_history_ids_are_dropped_per_pipe():
    r = Registry()
    assert r.accept(msg("web_a", history_id="10"))
    assert r.accept(msg("web_a", history_id="11"))
    assert not r.accept(msg("web_a", history_id="11"))
    assert not r.accept(msg("web_a", history_id="9"))
    assert r.accept(msg("web_b", history_id="5"))  # other pipe, own sequence
    assert r.accept(msg("web_a"))  # no history_id (CppComet): always
    assert r.accept(msg("web_a", history_id="not-a-number"))
    assert r.accept(msg("web_a", history_id="\u0661\u0662"))  # not ASCII digits: not an id
    assert r.accept(msg("web_a", history_id="3", history=True))  # asked-for history
    assert r.last_history_ids() == {"web_a": "11", "web_b": "5"}
    r.forget_history_ids(["web_a"])
    assert r.accept(msg("web_a", history_id="1"))
    r.forget_history_ids()
    assert r.last_history_ids() == {}


def test_callbacks_for_drops_duplicates_and_follows_every_change():
    r = Registry()
    a = r.add("web_chat", Tag("a"))
    given = r.callbacks_for(msg("web_chat", "m", history_id="4"))
    assert tags(given) == ["a"] and r.callbacks_for(msg("web_chat", "m", history_id="4")) == []
    b = r.add("web_chat.m", Tag("b"))
    assert tags(given) == ["a"]  # a list it gave never changes
    assert tags(r.callbacks_for(msg("web_chat", "m"))) == ["a", "b"]
    assert tags(r.callbacks_for(msg("web_chat", "x"))) == ["a"]
    r.remove(a)
    assert tags(r.callbacks_for(msg("web_chat", "m"))) == ["b"] and r.callbacks_for(msg("web_chat", "x")) == []
    r.add(None, Tag("all"))
    assert tags(r.callbacks_for(msg("web_other", "x"))) == ["all"]
    assert r.callbacks_for(msg("_answer_pipe_count", "x")) == []
    assert r.clear() == 2 and r.callbacks_for(msg("web_chat", "m")) == []
    for k in range(300):  # more pipes than the cache keeps
        r.add("web_p%d" % k, Tag(k))
        assert tags(r.callbacks_for(msg("web_p%d" % k, "m"))) == [k]
    assert tags(r.callbacks_for(msg("web_p3", "m"))) == [3]
