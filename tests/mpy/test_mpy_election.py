"""The Web-Locks-less election (comet_py.election): one tab applies and becomes master, a
second backs off, a stronger leader makes a master step down. Runs under MicroPython once
comet_py.relay imports there (tests/mpy/test_lane.py: PENDING)."""

from comet_py.election import APPLY_WAIT_MS, BecomeMaster, ElectionRole, FallbackElection, StepDown
from comet_py.relay import Post, make_leader


def test_a_lone_tab_applies_then_becomes_master():
    e = FallbackElection("tab-a")
    first = e.start(1000.0)
    assert len(first) == 1 and isinstance(first[0], Post) and e.role == ElectionRole.APPLYING
    assert e.tick(1000.0 + APPLY_WAIT_MS - 1) == []
    actions = e.tick(1000.0 + APPLY_WAIT_MS)
    assert actions[0] == BecomeMaster(e.term) and e.is_master and e.role == "master"


def test_an_applicant_backs_off_when_it_hears_a_leader():
    e = FallbackElection("tab-b")
    e.start(1000.0)
    assert e.on_message(make_leader("tab-a", 5), 1001.0) == []
    assert e.role == ElectionRole.FOLLOWER and e.leader == "tab-a"


def test_a_master_steps_down_for_a_stronger_leader():
    e = FallbackElection("tab-b")
    e.start(1000.0)
    e.tick(1000.0 + APPLY_WAIT_MS)
    assert StepDown() in e.on_message(make_leader("tab-a", e.term + 1), 2000.0)
    assert not e.is_master
