"""FallbackElection: tabs simulated in memory on a fake BroadcastChannel with a fake clock.

Each schedule is seeded: message delays, losses, start times and tick jitter are random but
reproducible, so a failure names its seed.
"""

from __future__ import annotations

import heapq
import random
import string

import pytest

from comet_py import election as el
from comet_py import relay

T0 = 1_700_000_000_000  # wall clock ms at the start of each simulation


class Sim:
    """N tabs, a BroadcastChannel that never delivers to the sender, a clock driven by events."""

    def __init__(self, n: int, seed: int, *, delay=(0, 40), drop=0.0, tick=(80, 150),
                 start_spread=200, start=True):
        self.rng = random.Random(seed)
        self.delay, self.drop, self.tick_range = delay, drop, tick
        self.now = T0
        self.heap: list = []
        self.seq = 0
        self.tabs: list = []
        self.alive: set = set()
        self.frozen: dict = {}      # tab -> events held while frozen
        self.group: dict = {}       # partition: tabs only hear tabs of their group
        self.history: list = []     # (time, tab index, action) of BecomeMaster / StepDown
        self.max_masters = 0
        self.posts = 0
        for _ in range(n):
            self.add_tab(self.rng.uniform(0, start_spread) if start else None)

    # plumbing ---------------------------------------------------------------------------------
    def _at(self, t, kind, i, payload=None):
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, i, payload))

    def add_tab(self, start_after=0.0) -> int:
        tab_id = "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(16))
        self.tabs.append(el.FallbackElection(tab_id))
        i = len(self.tabs) - 1
        self.group[i] = 0
        if start_after is not None:
            self._at(self.now + start_after, "start", i)
        return i

    def _handle(self, i, actions):
        for a in actions:
            if isinstance(a, relay.Post):
                self.posts += 1
                text = relay.encode(a.message)
                for j in self.alive:
                    if j == i or self.group[j] != self.group[i]:
                        continue
                    if self.drop and self.rng.random() < self.drop:
                        continue
                    self._at(self.now + self.rng.uniform(*self.delay), "msg", j, text)
            elif isinstance(a, (el.BecomeMaster, el.StepDown)):
                self.history.append((self.now, i, a))
            else:  # pragma: no cover - the election has no other actions
                raise AssertionError(a)

    def _event(self, kind, i, payload):
        tab = self.tabs[i]
        if kind == "start":
            self.alive.add(i)
            self._handle(i, tab.start(self.now))
            self._at(self.now + self.rng.uniform(*self.tick_range), "tick", i)
        elif kind == "tick":
            self._handle(i, tab.tick(self.now))
            self._at(self.now + self.rng.uniform(*self.tick_range), "tick", i)
        elif kind == "msg":
            self._handle(i, tab.on_message(payload, self.now))

    def run_until(self, t_end, *, safety=False):
        while self.heap and self.heap[0][0] <= t_end:
            t, _, kind, i, payload = heapq.heappop(self.heap)
            self.now = t
            if i not in self.alive and kind != "start":
                continue
            if i in self.frozen:
                self.frozen[i].append((kind, payload))  # a frozen page runs nothing
                continue
            self._event(kind, i, payload)
            n = len(self.masters())
            self.max_masters = max(self.max_masters, n)
            if safety:
                assert n <= 1, "two masters at %d ms: %s" % (self.now - T0, self.masters())
        self.now = t_end

    def run_for(self, ms, **kw):
        self.run_until(self.now + ms, **kw)

    # faults -----------------------------------------------------------------------------------
    def crash(self, i):
        self.alive.discard(i)   # no bye, no more events

    def close(self, i):
        self._handle(i, self.tabs[i].resign(self.now))
        self.alive.discard(i)

    def freeze(self, i):
        self.frozen[i] = []

    def thaw(self, i):
        held = self.frozen.pop(i)
        for kind, payload in held:
            if kind == "msg":
                self._event(kind, i, payload)
        self._at(self.now, "tick", i)   # timers resume; the missed ticks collapse into one

    # observations -----------------------------------------------------------------------------
    def masters(self):
        return sorted(i for i in self.alive if self.tabs[i].is_master)

    def assert_one_master_agreed(self):
        masters = self.masters()
        assert len(masters) == 1, masters
        m = self.tabs[masters[0]].tab_id
        for i in self.alive:
            if i not in self.frozen:
                assert self.tabs[i].leader == m, (i, self.tabs[i].role, self.tabs[i].leader, m)
        return masters[0]

    def changes_since(self, t):
        return [h for h in self.history if h[0] >= t]


def for_seeds(seeds, check, *args):
    """Run one schedule per seed inside a single test (cheap), naming the seed if one fails."""
    results = []
    for seed in seeds:
        try:
            results.append(check(*args, seed))
        except AssertionError as exc:
            raise AssertionError("seed %d: %s" % (seed, exc)) from exc
    return results


def settle_and_check(sim: Sim, settle_ms=3_000, quiet_ms=4_000) -> int:
    sim.run_for(settle_ms)
    master = sim.assert_one_master_agreed()
    t = sim.now
    sim.run_for(quiet_ms)
    assert sim.changes_since(t) == [], "still changing after convergence"
    assert sim.assert_one_master_agreed() == master
    return master


# -- convergence ---------------------------------------------------------------------------------

def _tabs_starting_together_elect_exactly_one_master_and_never_two(n, seed):
    # Delays well under half the apply wait: then there is never a second master, not even briefly.
    sim = Sim(n, seed, delay=(0, 60))
    sim.run_for(2_000, safety=True)
    master = sim.assert_one_master_agreed()
    sim.run_for(3_000, safety=True)
    assert sim.assert_one_master_agreed() == master
    assert [a for _, _, a in sim.history] == [el.BecomeMaster(sim.tabs[master].term)]


@pytest.mark.parametrize("n", [1, 3, 6])
def test_tabs_starting_together_elect_exactly_one_master_and_never_two(n):
    for_seeds(range(8), _tabs_starting_together_elect_exactly_one_master_and_never_two, n)


def _same_instant_starts_with_zero_delay_still_give_one_master(n, seed):
    # Every tab starts at the same ms with the same clock: equal terms, the smallest id wins.
    sim = Sim(n, seed, delay=(0, 0), start_spread=0)
    sim.run_for(1_000, safety=True)
    master = sim.assert_one_master_agreed()
    assert sim.tabs[master].tab_id == min(t.tab_id for t in sim.tabs)


@pytest.mark.parametrize("n", [3, 6])
def test_same_instant_starts_with_zero_delay_still_give_one_master(n):
    for_seeds(range(8), _same_instant_starts_with_zero_delay_still_give_one_master, n)


def _lossy_start_converges_to_one_master_after_losses_stop(n, seed):
    sim = Sim(n, seed, delay=(0, 120), drop=0.4)
    sim.run_for(4_000)
    split = sim.max_masters
    sim.drop = 0.0
    settle_and_check(sim)
    return split


@pytest.mark.parametrize("n", [3, 6])
def test_lossy_start_converges_to_one_master_after_losses_stop(n):
    splits = for_seeds(range(10), _lossy_start_converges_to_one_master_after_losses_stop, n)
    assert max(splits) >= 2     # the schedules do produce split brains to resolve


def _slow_channel_may_briefly_split_but_converges(seed):
    # Delays beyond the apply wait: two masters can happen, the weaker must step down.
    sim = Sim(6, seed, delay=(0, 400))
    sim.run_for(3_000)
    sim.delay = (0, 30)
    settle_and_check(sim)
    return sim.max_masters


def test_slow_channel_may_briefly_split_but_converges():
    assert max(for_seeds(range(8), _slow_channel_may_briefly_split_but_converges)) == 2


# -- a master leaving ----------------------------------------------------------------------------

def _master_closing_hands_over_fast(seed):
    sim = Sim(4, seed)
    old = settle_and_check(sim, settle_ms=1_500, quiet_ms=1_000)
    t = sim.now
    sim.close(old)
    sim.run_for(2_000, safety=True)
    new = sim.assert_one_master_agreed()
    assert new != old
    became = [h for h in sim.changes_since(t) if isinstance(h[2], el.BecomeMaster)]
    assert len(became) == 1 and became[0][1] == new
    # bye -> apply at once -> 300 ms wait -> next tick (<= 150 ms) + delays
    assert became[0][0] - t <= 300 + 150 + 2 * 40


def test_master_closing_hands_over_fast():
    for_seeds(range(6), _master_closing_hands_over_fast)


def _master_crash_taken_over_within_timeout_bound(seed):
    sim = Sim(5, seed)
    old = settle_and_check(sim, settle_ms=1_500, quiet_ms=1_000)
    t = sim.now
    sim.crash(old)
    sim.run_for(4_000, safety=True)
    new = sim.assert_one_master_agreed()
    assert new != old
    became = [h for h in sim.changes_since(t) if isinstance(h[2], el.BecomeMaster)]
    assert len(became) == 1
    # silence 1500 ms after the last leader (sent <= 650 ms before the crash) + tick + apply wait
    assert became[0][0] - t <= 1_500 + 150 + 300 + 150 + 40


def test_master_crash_taken_over_within_timeout_bound():
    for_seeds(range(6), _master_crash_taken_over_within_timeout_bound)


def test_each_successive_master_has_a_higher_term():
    sim = Sim(4, 7)
    terms = []
    for _ in range(3):
        m = settle_and_check(sim, settle_ms=2_000, quiet_ms=500)
        terms.append(sim.tabs[m].term)
        sim.crash(m)
    assert terms == sorted(terms) and len(set(terms)) == 3


def _new_tab_joining_a_master_neither_wins_nor_disturbs(seed):
    sim = Sim(3, seed)
    master = settle_and_check(sim, settle_ms=1_500, quiet_ms=500)
    t = sim.now
    i = sim.add_tab(start_after=0)
    sim.run_for(2_000, safety=True)
    assert sim.assert_one_master_agreed() == master
    assert sim.changes_since(t) == []
    assert sim.tabs[i].role == "follower"


def test_new_tab_joining_a_master_neither_wins_nor_disturbs():
    for_seeds(range(5), _new_tab_joining_a_master_neither_wins_nor_disturbs)


# -- split brain ---------------------------------------------------------------------------------

def _split_brain_heals_to_the_stronger_master(seed):
    sim = Sim(6, seed)
    sim.run_for(1_500)
    for i in range(3, 6):
        sim.group[i] = 1            # the channel splits in two halves
    sim.run_for(3_000)
    masters = sim.masters()
    assert len(masters) == 2        # each half elected its own
    strong = max(masters, key=lambda i: (sim.tabs[i].term, [-ord(c) for c in sim.tabs[i].tab_id]))
    weak = (set(masters) - {strong}).pop()
    t = sim.now
    for i in range(6):
        sim.group[i] = 0            # healed
    sim.run_for(1_500)
    assert sim.assert_one_master_agreed() == strong
    assert (weak, el.StepDown()) in [(i, a) for _, i, a in sim.changes_since(t)]
    assert not any(isinstance(a, el.StepDown) and i == strong for _, i, a in sim.history)


def test_split_brain_heals_to_the_stronger_master():
    for_seeds(range(6), _split_brain_heals_to_the_stronger_master)


def test_frozen_master_is_replaced_and_steps_down_when_it_wakes():
    sim = Sim(4, 3)
    old = settle_and_check(sim, settle_ms=1_500, quiet_ms=500)
    sim.freeze(old)
    sim.run_for(4_000)
    masters = sim.masters()         # the frozen one still believes it leads
    assert old in masters and len(masters) == 2
    t = sim.now
    sim.thaw(old)
    sim.run_for(1_000)
    new = sim.assert_one_master_agreed()
    assert new != old
    assert (old, el.StepDown()) in [(i, a) for _, i, a in sim.changes_since(t)]


# -- unit behaviour ------------------------------------------------------------------------------

def test_lone_tab_becomes_master_after_the_apply_wait():
    e = el.FallbackElection("aaaa")
    out = e.start(T0)
    assert [a.message["k"] for a in out] == ["apply"] and e.role == "applying"
    assert e.tick(T0 + el.APPLY_WAIT_MS - 1) == []
    out = e.tick(T0 + el.APPLY_WAIT_MS)
    assert out[0] == el.BecomeMaster(e.term) and out[1].message["k"] == "leader"
    assert e.is_master and e.term >= T0


def test_master_answers_apply_at_once_and_applicant_backs_off():
    m, a = el.FallbackElection("m"), el.FallbackElection("a")
    m.start(T0)
    m.tick(T0 + 300)
    (apply_post,) = a.start(T0 + 5_000)       # a's term is higher (later clock)
    (reply,) = m.on_message(relay.encode(apply_post.message), T0 + 5_001)
    assert reply.message["k"] == "leader" and m.is_master
    assert a.on_message(relay.encode(reply.message), T0 + 5_002) == []
    assert a.role == "follower" and a.leader == "m"
    assert a.tick(T0 + 5_400) == []            # no promotion after the wait


def test_resign_posts_bye_and_steps_down_and_followers_apply():
    m, f = el.FallbackElection("m"), el.FallbackElection("f")
    m.start(T0)
    m.tick(T0 + 300)
    f.start(T0 + 400)
    f.on_message(relay.make_leader("m", m.term), T0 + 401)
    out = m.resign(T0 + 1_000)
    assert out[0].message["k"] == "bye" and out[1] == el.StepDown() and not m.is_master
    out = f.on_message(out[0].message, T0 + 1_001)
    assert [a.message["k"] for a in out] == ["apply"] and f.term > m.term


def test_resign_of_a_follower_is_silent_and_start_rejoins():
    f = el.FallbackElection("f")
    f.start(T0)
    f.on_message(relay.make_leader("m", 5), T0 + 1)
    assert f.resign(T0 + 2) == [] and f.role == "stopped"
    assert f.tick(T0 + 10_000) == [] and f.on_message(relay.make_apply("x", 9), T0 + 10_001) == []
    assert f.start(T0 + 10_002)[0].message["k"] == "apply"


def test_garbage_messages_are_ignored():
    e = el.FallbackElection("e")
    e.start(T0)
    for bad in ["", "{", "[]", '{"v":2,"k":"leader","from":"x","to":"*","term":1}',
                '{"v":1,"k":"leader","from":"x","to":"*","term":"1"}', "null", 42]:
        assert e.on_message(bad, T0 + 1) == []
    assert e.role == "applying"


def test_next_term():
    assert el.next_term([]) == 1
    assert el.next_term([3, 9, 4]) == 10
    assert el.next_term([3], now_ms=T0) == T0
    assert el.next_term([T0 + 5], now_ms=T0) == T0 + 6


def test_master_answers_a_weaker_leader_at_once_so_it_steps_down():
    strong, weak = el.FallbackElection("a"), el.FallbackElection("b")
    for e in (strong, weak):
        e.start(T0)
        e.tick(T0 + 300)            # both masters with the same term: "a" < "b" wins
    assert strong.is_master and weak.is_master and strong.term == weak.term
    (reply,) = strong.on_message(relay.make_leader("b", weak.term), T0 + 400)
    assert reply.message["k"] == "leader" and strong.is_master
    assert weak.on_message(reply.message, T0 + 401) == [el.StepDown()]
    assert weak.role == "follower" and weak.leader == "a"


def test_follower_hearing_an_apply_waits_a_full_timeout_before_applying():
    f = el.FallbackElection("f")
    f.start(T0)
    f.on_message(relay.make_leader("m", 5), T0 + 1)            # follows m
    f.on_message(relay.make_apply("x", T0 + 1_400), T0 + 1_400)  # someone is electing
    assert f.tick(T0 + 1_600) == []                             # m silent 1.6 s, but x may win
    assert f.tick(T0 + 1_400 + el.LEADER_TIMEOUT_MS)[0].message["k"] == "apply"


def test_immediate_replies_are_rate_limited():
    m = el.FallbackElection("m")
    m.start(T0)
    m.tick(T0 + 300)
    posts = []
    for i in range(20):                          # a burst of applicants within 19 ms
        posts += m.on_message(relay.make_apply("x%02d" % i, T0 + 1_000 + i), T0 + 1_000 + i)
    assert len(posts) == 1
    assert len(m.on_message(relay.make_apply("y", T0 + 1_100), T0 + 1_100)) == 1
