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


def test_sub_ids_are_unique_strings():
    r = Registry()
    ids = {r.add("web_chat", cb(i)) for i in range(5)}
    assert len(ids) == 5 and all(isinstance(i, str) for i in ids)


def test_clear():
    r = Registry()
    r.add("web_a", cb(1))
    r.add("web_b", cb(2))
    assert r.clear() == 2 and r.server_channels() == frozenset() and r.match(msg("web_a")) == []
