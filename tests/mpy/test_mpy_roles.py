"""The master role's routing of Session events (comet_py.roles), on both interpreters: what
the match statement it replaced did, case by case, with a stub page and platform (no socket is
opened: the Connection is never started)."""

import random

from comet_py import relay as r
from comet_py.options import parse_options
from comet_py.roles import MasterRole
from comet_py.session import Answer, AuthChanged, Dispatch, Gap, Session, State, StateChanged

TAB = "M" * 16


class Page:
    """The platform and the tab at once: a clock, and what the page is told."""

    def __init__(self):
        self.told = []

    def now_ms(self):
        return 1000.0

    def deliver(self, message):
        self.told.append(("deliver", message["data"]))

    def set_state(self, state, detail):
        self.told.append(("state", state, detail))

    def set_auth(self, authorized):
        self.told.append(("auth", authorized))

    def set_master(self, is_master):
        self.told.append(("master", is_master))


def _master(with_follower):
    page, actions = Page(), []
    rng = random.Random(3) if hasattr(random, "Random") else random
    session = Session(parse_options(dev_id=1), uuid="A" * 32, rng=rng)
    role = MasterRole(TAB, 5, session, page, page, actions.extend, channels=frozenset({"web_a"}),
                      highest_term=5, tab_lock=None)
    if with_follower:
        role.relay.on_message(r.make_hello("F" * 16, 5, frozenset({"web_b"}), {}), 1000.0)
    return role, page, actions


def _message(data):
    return {"data": data, "server_info": {"event": "e", "history": False, "marker": None, "pipe": "web_a",
                                          "user_id": 0, "uuid": None, "time": 1, "history_id": None}}


def _posted(actions):
    return [a.message for a in actions if isinstance(a, r.Post)]


def test_a_lone_master_hands_messages_straight_to_its_page():
    role, page, actions = _master(False)
    role.on_message(_message("hi"))
    role.on_session_event(Dispatch(_message("ho")))
    assert ("deliver", "hi") in page.told and actions == [r.Deliver(_message("ho"))]


def test_with_a_follower_messages_are_posted_and_delivered():
    role, page, actions = _master(True)
    role.on_message(_message("hi"))
    assert [m["k"] for m in _posted(actions)] == ["msg"] and r.Deliver(_message("hi")) in actions
    del actions[:]
    role.on_session_event(Dispatch(_message("to F"), ("F" * 16, 3)))
    assert [(m["k"], m["to"]) for m in _posted(actions)] == [("msg", "F" * 16)]


def test_answers_go_back_to_the_tab_that_asked():
    role, page, actions = _master(True)
    role.on_session_event(Answer((TAB, 4), 7, None))
    role.on_session_event(Answer(("F" * 16, 2), 8, None))
    assert r.Resolve(4, 7, None) in actions
    assert [(m["k"], m["to"], m["value"]) for m in _posted(actions)] == [("answer", "F" * 16, 8)]


def test_states_reach_every_tab_but_closed_reaches_none():
    role, page, actions = _master(True)
    role.on_session_event(StateChanged(State.CLOSED))
    assert actions == [] and page.told == []
    role.on_session_event(StateChanged(State.CONNECTED, {"server": "x"}))
    assert page.told == [("state", "connected", {"server": "x"})]
    assert [(m["k"], m["state"]) for m in _posted(actions)] == [("state", "connected")]


def test_a_gap_goes_to_every_tab_or_to_one_returning_tab():
    role, page, actions = _master(True)
    role.on_session_event(Gap(["web_a"]))
    assert page.told == [("state", "gap", {"pipes": ["web_a"]})]
    assert [(m["state"], m["to"]) for m in _posted(actions)] == [("gap", "*")]
    del actions[:], page.told[:]
    role.on_session_event(Gap(["web_b"], ("F" * 16, 0)))
    assert page.told == [] and [(m["state"], m["to"]) for m in _posted(actions)] == [("gap", "F" * 16)]
    del actions[:]
    role.on_session_event(Gap(["web_b"], (TAB, 0)))  # our own catch-up: nothing to tell
    role.on_session_event(Gap(["web_b"], "not a token"))
    assert actions == [] and page.told == []


def test_auth_changes_reach_every_tab():
    role, page, actions = _master(True)
    role.on_session_event(AuthChanged(True))
    assert page.told == [("auth", True)] and [m["k"] for m in _posted(actions)] == ["state"]
