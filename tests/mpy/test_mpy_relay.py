"""Tab <-> master messages (comet_py.relay), on both interpreters: the sans-I/O scenarios of
tests/unit/test_relay.py (a bus of tabs, no browser): the channel union, acknowledged calls run
once, answers and reports to the right tab, failover, terms, probes and stealing, and the
envelope parser's refusals."""

import json
from collections import OrderedDict

from comet_py import election as el
from comet_py import relay as r
from comet_py.errors import SERVER_ERROR, CallError
from tests.mpy.helpers import raises

T0 = 1_700_000_000_000


class Bus:
    """A BroadcastChannel: FIFO, delivers each post to every other open tab, never the sender."""

    def __init__(self) -> None:
        self.tabs = OrderedDict()  # delivery in tab order on every interpreter
        self.queue: list = []
        self.sent: list = []            # every message posted, decoded
        self.muted: set = set()         # tabs whose posts vanish (crashed, frozen)
        self.deaf: set = set()          # tabs that receive nothing

    def post(self, sender: str, message: dict) -> None:
        text = r.encode(message)
        self.sent.append(json.loads(text))
        if sender not in self.muted:
            self.queue.append((sender, text))

    def flush(self, now: float) -> None:
        while self.queue:
            sender, text = self.queue.pop(0)
            for tab_id, tab in list(self.tabs.items()):
                if tab_id != sender and tab_id not in self.deaf:
                    tab.receive(text, now)


class Tab:
    """What browser glue would do with the actions: post, run calls, deliver, resolve."""

    def __init__(self, bus: Bus, tab_id: str, channels=(), history_ids=None, *, keepalive=False):
        self.bus, self.tab_id = bus, tab_id
        self.channels = frozenset(channels)
        self.history_ids = dict(history_ids or {})
        self.keepalive = keepalive
        self.master: r.MasterRelay | None = None
        self.follower: r.FollowerRelay | None = None
        self.delivered: list = []       # message dicts given to this tab's callbacks
        self.resolved: dict = {}        # req -> (value, error)
        self.resolve_count: dict = {}
        self.session_channels: frozenset = frozenset()
        self.runs: list = []            # (token, op, args) run on this tab's Session
        self.catch_ups: list = []
        self.joined: list = []
        self.left: list = []
        self.rivals: list = []
        self.states: list = []
        self.auth: list = []
        self.master_changes: list = []
        bus.tabs[tab_id] = self

    # roles ------------------------------------------------------------------------------------
    def start_follower(self, now: float) -> None:
        self.master = None
        self.follower = r.FollowerRelay(self.tab_id, history_ids=lambda: self.history_ids, keepalive=self.keepalive)
        self.follower.set_channels(self.channels, now)
        self.handle(self.follower.start(now))

    def become_master(self, term: int, now: float) -> None:
        pending = self.follower.pending_calls() if self.follower else []
        self.follower = None
        self.master = r.MasterRelay(self.tab_id, term)
        self.handle(self.master.set_own_channels(self.channels))
        self.handle(self.master.state_message("connecting", None, now))
        for c in pending:
            self.handle(self.master.call_local(c.op, c.args, c.req)[1])

    # inputs -----------------------------------------------------------------------------------
    def receive(self, text: str, now: float) -> None:
        relay_obj = self.master or self.follower
        if relay_obj is not None:
            self.handle(relay_obj.on_message(text, now))

    def call(self, op: str, now: float, **args) -> int:
        if self.master is not None:
            req, actions = self.master.call_local(op, args)
        else:
            req, actions = self.follower.call(op, args, now)
        self.handle(actions)
        return req

    def handle(self, actions) -> None:
        for a in actions:
            if isinstance(a, r.Post):
                assert a.message["from"] == self.tab_id
                self.bus.post(self.tab_id, a.message)
            elif isinstance(a, r.Deliver):
                self.delivered.append(a.message)
            elif isinstance(a, r.Resolve):
                self.resolved[a.req] = (a.value, a.error)
                self.resolve_count[a.req] = self.resolve_count.get(a.req, 0) + 1
            elif isinstance(a, r.RunCall):
                self.runs.append(a)
            elif isinstance(a, r.ChannelsChanged):
                assert a.channels != self.session_channels, "ChannelsChanged without a change"
                self.session_channels = a.channels
            elif isinstance(a, r.CatchUp):
                self.catch_ups.append((a.tab_id, a.history_ids))
            elif isinstance(a, r.TabJoined):
                self.joined.append(a.tab_id)
            elif isinstance(a, r.TabLeft):
                self.left.append(a.tab_id)
            elif isinstance(a, r.RivalMaster):
                self.rivals.append((a.master, a.term))
            elif isinstance(a, r.RemoteState):
                self.states.append((a.state, a.detail))
            elif isinstance(a, r.RemoteAuth):
                self.auth.append(a.authorized)
            elif isinstance(a, r.MasterChanged):
                self.master_changes.append((a.master, a.term))
            else:  # pragma: no cover
                raise AssertionError(a)


def message(pipe="web_chat", event="ev", data="hi", history_id=None):
    return {"data": data, "server_info": {"event": event, "history": False, "marker": None, "pipe": pipe,
                                          "user_id": 0, "uuid": None, "time": 1, "history_id": history_id}}


def make_world():
    """A master M (term 5) and followers F1, F2 that have exchanged hello/state."""
    bus = Bus()
    m = Tab(bus, "M" * 16, {"web_a"})
    f1 = Tab(bus, "F1" + "x" * 14, {"web_a", "web_b"})
    f2 = Tab(bus, "F2" + "x" * 14, {"web_c"})
    m.become_master(5, T0)
    bus.flush(T0)
    f1.start_follower(T0)
    f2.start_follower(T0)
    bus.flush(T0)
    return bus, m, f1, f2


def answer_all(bus, m, now, value=7):
    """The master's Session answers every read it ran (a web_pipe gets an Answer only on failure)."""
    for run in m.runs:
        if run.op != "web_pipe":
            m.handle(m.master.route_answer(run.token, value, None))
    m.runs.clear()
    bus.flush(now)


# -- channel union -------------------------------------------------------------------------------

def test_union_of_three_tabs_reaches_the_session():
    world = make_world()
    bus, m, f1, f2 = world
    assert m.session_channels == {"web_a", "web_b", "web_c"}
    assert m.master.union() == {"web_a", "web_b", "web_c"}
    assert sorted(m.joined) == sorted([f1.tab_id, f2.tab_id])
    assert f1.follower.master == m.tab_id and f2.follower.master == m.tab_id


def test_subs_change_updates_union_only_when_it_changes():
    world = make_world()
    bus, m, f1, f2 = world
    f1.handle(f1.follower.set_channels(frozenset({"web_a", "web_b", "web_d"}), T0 + 1))
    bus.flush(T0 + 1)
    assert m.session_channels == {"web_a", "web_b", "web_c", "web_d"}
    sent = len(bus.sent)
    assert f1.follower.set_channels(frozenset({"web_a", "web_b", "web_d"}), T0 + 2) == []
    assert len(bus.sent) == sent
    # web_a is also the master's own: F1 dropping it keeps it
    f1.handle(f1.follower.set_channels(frozenset({"web_b"}), T0 + 3))
    bus.flush(T0 + 3)
    assert m.session_channels == {"web_a", "web_b", "web_c"}


def test_channel_dropped_only_when_its_last_tab_goes():
    world = make_world()
    bus, m, f1, f2 = world
    f3 = Tab(bus, "F3" + "x" * 14, {"web_c", "web_e"})
    f3.start_follower(T0)
    bus.flush(T0)
    assert m.session_channels == {"web_a", "web_b", "web_c", "web_e"}
    f3.handle(f3.follower.stop(T0 + 1))                      # bye
    bus.flush(T0 + 1)
    assert m.session_channels == {"web_a", "web_b", "web_c"}  # web_c: F2 still listens
    assert f3.tab_id in m.left
    m.handle(m.master.forget(f2.tab_id))                     # its tab lock was granted: dead
    assert m.session_channels == {"web_a", "web_b"}
    m.handle(m.master.forget(f1.tab_id))
    assert m.session_channels == {"web_a"}                   # the master's own
    assert m.master.forget(m.tab_id) == [] and m.master.union() == {"web_a"}
    assert m.master.forget("nobody") == []


def test_silent_tab_expires_after_6s_live_ones_keep_alive():
    bus = Bus()
    m = Tab(bus, "M" * 16, set())
    live = Tab(bus, "L" * 16, {"web_live"}, keepalive=True)
    dead = Tab(bus, "D" * 16, {"web_dead"}, keepalive=True)
    m.become_master(1, T0)
    live.start_follower(T0)
    dead.start_follower(T0)
    bus.flush(T0)
    del bus.tabs[dead.tab_id]                # crashed: no bye, no more messages
    now = T0
    while now < T0 + 5_900:
        now += 250
        m.handle(m.master.expire(now))
        if now % 1_000 == 0:
            m.handle(m.master.heartbeat(now))
        live.handle(live.follower.tick(now))
        bus.flush(now)
    assert m.session_channels == {"web_live", "web_dead"}
    while now < T0 + 30_000:
        now += 250
        m.handle(m.master.expire(now))
        if now % 1_000 == 0:
            m.handle(m.master.heartbeat(now))
        live.handle(live.follower.tick(now))
        bus.flush(now)
    assert m.session_channels == {"web_live"}
    assert m.left == [dead.tab_id]


def test_keepalive_is_driven_by_master_states_without_follower_ticks():
    # A hidden follower's timers may not run for a minute; it still answers the master's states.
    bus = Bus()
    m = Tab(bus, "M" * 16, set())
    f = Tab(bus, "F" * 16, {"web_x"}, keepalive=True)
    m.become_master(1, T0)
    f.start_follower(T0)
    bus.flush(T0)
    for now in range(T0 + 1_000, T0 + 20_001, 1_000):
        m.handle(m.master.heartbeat(now))
        m.handle(m.master.expire(now))
        bus.flush(now)
    assert m.session_channels == {"web_x"}
    subs = [s for s in bus.sent if s["k"] == "subs" and s["from"] == f.tab_id]
    assert 8 <= len(subs) <= 11                # about every 2 s, not on every state


def test_master_that_stalled_does_not_expire_everyone():
    bus = Bus()
    m = Tab(bus, "M" * 16, set())
    f = Tab(bus, "F" * 16, {"web_x"}, keepalive=True)
    m.become_master(1, T0)
    f.start_follower(T0)
    bus.flush(T0)
    m.handle(m.master.expire(T0 + 1_000))
    # the master's page was frozen for a minute: its first timer after that must not judge tabs
    m.handle(m.master.expire(T0 + 61_000))
    assert m.session_channels == {"web_x"}
    m.handle(m.master.heartbeat(T0 + 61_000))
    bus.flush(T0 + 61_000)                     # the follower answers the state
    m.handle(m.master.expire(T0 + 62_000))
    assert m.session_channels == {"web_x"} and m.left == []


# -- calls ---------------------------------------------------------------------------------------

def test_call_from_follower_is_acked_run_once_and_answered_only_to_it():
    world = make_world()
    bus, m, f1, f2 = world
    req = f1.call("pipe_count", T0 + 10, pipe="web_a")
    bus.flush(T0 + 10)
    assert [(run.token, run.op, run.args) for run in m.runs] == [((f1.tab_id, req), "pipe_count", {"pipe": "web_a"})]
    assert bus.sent[-1]["k"] == "ack" and bus.sent[-1]["to"] == f1.tab_id
    assert f1.resolved == {}                   # a read resolves with its answer, not the ack
    answer_all(bus, m, T0 + 20, value=3)
    assert f1.resolved == {req: (3, None)}
    assert f2.resolved == {} and f2.delivered == [] and m.resolved == {}
    # nothing is resent once answered
    f1.handle(f1.follower.tick(T0 + 5_000))
    assert sum(s["k"] == "call" for s in bus.sent) == 1


def test_answer_error_reaches_the_caller():
    world = make_world()
    bus, m, f1, f2 = world
    req = f2.call("pipe_log", T0, pipe="web_c")
    bus.flush(T0)
    (run,) = m.runs
    m.handle(m.master.route_answer(run.token, None, CallError(SERVER_ERROR, "history disabled")))
    bus.flush(T0 + 1)
    assert f2.resolved == {req: (None, CallError(SERVER_ERROR, "history disabled"))}
    # On the channel the error is {code, detail}: any tab maps the code with errors.CODES.
    (answer,) = [s for s in bus.sent if s["k"] == "answer"]
    assert answer["error"] == {"code": SERVER_ERROR, "detail": "history disabled"}


def test_an_answer_whose_error_is_not_code_and_detail_is_ignored():
    world = make_world()
    bus, m, f1, f2 = world
    req = f2.call("pipe_log", T0, pipe="web_c")
    bus.flush(T0)
    for bad in ("CometError: old text", {"code": "x"}, {"code": 1, "detail": "d"}):
        f2.handle(f2.follower.on_message(r.encode(r._envelope(
            "answer", m.tab_id, f2.tab_id, m.master.term, req=req, value=None, error=bad)), T0 + 1))
    assert f2.resolved == {}


def test_web_pipe_success_is_silent_its_report_goes_only_to_the_sender():
    world = make_world()
    bus, m, f1, f2 = world
    req = f1.call("web_pipe", T0, pipe="web_b", event="e", text="hello")
    bus.flush(T0)
    (run,) = m.runs
    assert run.args == {"pipe": "web_b", "event": "e", "text": "hello"}
    report = message(pipe="_answer_to_web_b", event="answer", data={"number_messages": 2})
    m.handle(m.master.route_deliver(report, run.token))
    bus.flush(T0 + 1)
    assert f1.delivered == [report] and f2.delivered == [] and m.delivered == []
    for t in range(T0, T0 + 12_001, 250):      # acked: never resent, never timed out
        f1.handle(f1.follower.tick(t))
    assert f1.resolved == {} and sum(s["k"] == "call" for s in bus.sent) == 1


def test_web_pipe_failure_reported_by_the_session_reaches_the_sender():
    world = make_world()
    bus, m, f1, f2 = world
    req = f1.call("web_pipe", T0, pipe="web_b", event="e", text="hello")
    bus.flush(T0)
    (run,) = m.runs
    m.handle(m.master.route_answer(run.token, None, CallError(SERVER_ERROR, "bad pipe")))
    bus.flush(T0 + 1)
    assert f1.resolved == {req: (None, CallError(SERVER_ERROR, "bad pipe"))} and f2.resolved == {}
    m.handle(m.master.route_answer(run.token, None, CallError(SERVER_ERROR, "again")))
    bus.flush(T0 + 2)
    assert f1.resolve_count == {req: 1}


def test_web_pipe_failure_after_the_window_is_dropped():
    world = make_world()
    bus, m, f1, f2 = world
    f1.call("web_pipe", T0, pipe="web_b", event="e", text="hello")
    bus.flush(T0)
    (run,) = m.runs
    f1.handle(f1.follower.tick(T0 + r.CALL_TIMEOUT_MS))
    m.handle(m.master.route_answer(run.token, None, CallError(SERVER_ERROR, "late")))
    bus.flush(T0 + r.CALL_TIMEOUT_MS)
    assert f1.resolved == {}


def test_master_own_calls_stay_local():
    world = make_world()
    bus, m, f1, f2 = world
    sent = len(bus.sent)
    req = m.call("pipe_count", T0, pipe="web_a")
    (run,) = m.runs
    assert run.token == (m.tab_id, req)
    m.handle(m.master.route_answer(run.token, 4, None))
    item = message(pipe="web_a", history_id="12")
    m.handle(m.master.route_deliver(item, run.token))
    assert m.resolved == {req: (4, None)} and m.delivered == [item]
    assert len(bus.sent) == sent               # nothing went over the channel
    raises(ValueError, lambda: m.master.call_local("drop_database", {}))


def test_foreign_tokens_are_dropped():
    mr = r.MasterRelay("M" * 16, 1)
    assert mr.route_answer("not-a-token", 1, None) == []
    assert mr.route_deliver(message(), object()) == []
    assert mr.route_answer(("x", True), 1, None) == []


def test_a_lone_master_tab_is_not_given_its_own_send_but_is_given_the_others():
    mr = r.MasterRelay("M" * 16, 1)            # no other tab known
    own, echo = ("M" * 16, 3), message(event="mine")
    assert mr.route_deliver(echo, None, own) == []
    # A send of a tab that has gone since (its echo still comes back): this tab shows it.
    assert mr.route_deliver(echo, None, ("F" * 16, 1)) == [r.Deliver(echo)]
    assert mr.route_deliver(echo, None) == [r.Deliver(echo)]


def test_history_items_go_to_the_asking_tab_only():
    world = make_world()
    bus, m, f1, f2 = world
    req = f2.call("pipe_log", T0, pipe="web_c")
    bus.flush(T0)
    (run,) = m.runs
    items = [message(pipe="web_c", history_id=str(i)) for i in (8, 9, 10)]
    for item in items:
        item["server_info"]["history"] = True
        m.handle(m.master.route_deliver(item, run.token))
    m.handle(m.master.route_answer(run.token, 3, None))
    bus.flush(T0 + 1)
    assert f2.delivered == items and f2.resolved == {req: (3, None)}
    assert f1.delivered == [] and m.delivered == []


def test_broadcast_message_reaches_every_tab_exactly_once():
    world = make_world()
    bus, m, f1, f2 = world
    msgs = [message(history_id=str(i)) for i in range(5)]
    for mm in msgs:
        m.handle(m.master.route_deliver(mm, None))
    bus.flush(T0 + 1)
    assert m.delivered == msgs and f1.delivered == msgs and f2.delivered == msgs
    assert sum(1 for s in bus.sent if s["k"] == "msg") == 5      # one post per message


def test_unacked_call_is_resent_every_500ms_and_run_once():
    world = make_world()
    bus, m, f1, f2 = world
    bus.deaf.add(m.tab_id)                     # the master is busy: it reads nothing for a while
    req = f1.call("pipe_count", T0, pipe="web_a")
    f1.handle(f1.follower.tick(T0 + 499))
    assert sum(s["k"] == "call" for s in bus.sent) == 1
    f1.handle(f1.follower.tick(T0 + 500))
    f1.handle(f1.follower.tick(T0 + 1_000))
    bus.flush(T0 + 1_000)
    copies = [s for s in bus.sent if s["k"] == "call"]
    assert len(copies) == 3 and {c["req"] for c in copies} == {req}
    bus.deaf.discard(m.tab_id)
    for c in copies:                           # the master finally reads all three
        m.receive(r.encode(c), T0 + 1_100)
    assert len(m.runs) == 1                    # dedup by (from, req)
    bus.flush(T0 + 1_100)
    assert sum(s["k"] == "ack" for s in bus.sent) == 3          # every copy is acked
    f1.handle(f1.follower.tick(T0 + 3_000))
    assert sum(s["k"] == "call" for s in bus.sent) == 3          # acked: no more resends
    answer_all(bus, m, T0 + 3_100)
    assert f1.resolve_count == {req: 1}


def test_call_times_out_after_call_timeout_without_master():
    bus = Bus()
    f = Tab(bus, "F" * 16, {"web_a"})
    f.start_follower(T0)
    req = f.call("pipe_count", T0, pipe="web_a")
    assert not any(s["k"] == "call" for s in bus.sent)          # no master to send to
    for t in range(T0 + 250, T0 + r.CALL_TIMEOUT_MS, 250):      # a page that runs
        f.handle(f.follower.tick(t))
    f.handle(f.follower.tick(T0 + r.CALL_TIMEOUT_MS - 1))
    assert f.resolved == {}
    f.handle(f.follower.tick(T0 + r.CALL_TIMEOUT_MS))
    assert f.resolved == {req: (None, r.TIMEOUT_ERROR)}
    f.handle(f.follower.tick(T0 + 2 * r.CALL_TIMEOUT_MS))
    assert f.resolve_count == {req: 1}


def test_a_sleep_of_the_laptop_times_no_call_out():
    bus = Bus()
    f = Tab(bus, "F" * 16, {"web_a"})
    f.start_follower(T0)
    req = f.call("pipe_count", T0, pipe="web_a")
    f.handle(f.follower.tick(T0 + 1_000))
    wake = T0 + 3_600_000                                       # an hour later, no input between
    f.handle(f.follower.tick(wake))
    assert f.resolved == {}
    for t in range(wake + 250, wake + r.CALL_TIMEOUT_MS + 2_001, 250):
        f.handle(f.follower.tick(t))
        if f.resolved:
            break
    # CALL_TIMEOUT_MS of waiting while awake: 1 s before the sleep, STALL_MS of the gap, the rest after.
    assert f.resolved == {req: (None, r.TIMEOUT_ERROR)}
    after = wake + r.CALL_TIMEOUT_MS - 1_000 - r.STALL_MS
    assert after - 250 <= t <= after + 250


def test_acked_but_unanswered_call_times_out():
    world = make_world()
    bus, m, f1, f2 = world
    req = f1.call("pipe_log", T0, pipe="web_a")
    bus.flush(T0)
    for t in range(T0, T0 + r.CALL_TIMEOUT_MS + 1, 250):
        f1.handle(f1.follower.tick(t))
    assert f1.resolved == {req: (None, r.TIMEOUT_ERROR)}
    assert len(m.runs) == 1


def test_stop_fails_pending_calls_and_says_bye():
    world = make_world()
    bus, m, f1, f2 = world
    bus.deaf.add(m.tab_id)
    req = f1.call("pipe_count", T0, pipe="web_a")
    f1.handle(f1.follower.stop(T0 + 1))
    assert f1.resolved == {req: (None, r.STOPPED_ERROR)}
    assert bus.sent[-1]["k"] == "bye" and bus.sent[-1]["from"] == f1.tab_id


# -- master change -------------------------------------------------------------------------------

def test_failover_resends_pending_calls_and_resubscribes_union():
    world = make_world()
    bus, m, f1, f2 = world
    bus.muted.add(m.tab_id)
    bus.deaf.add(m.tab_id)                     # M crashes
    req_read = f2.call("pipe_count", T0 + 10, pipe="web_c")
    req_pub = f2.call("web_pipe", T0 + 10, pipe="web_c", event="e", text="t")
    own_req = f1.call("pipe_log", T0 + 10, pipe="web_b")
    bus.flush(T0 + 10)
    del bus.tabs[m.tab_id]
    # F1 gets the lock: it becomes master with a term above any it saw
    term = el.next_term([f1.follower.highest_term], T0 + 50)
    assert term > 5
    f1.become_master(term, T0 + 50)
    bus.flush(T0 + 50)
    # F2 switched at once: hello with its channels, its two calls resent to F1
    assert f2.follower.master == f1.tab_id and f2.master_changes[-1] == (f1.tab_id, term)
    assert f1.session_channels == {"web_a", "web_b", "web_c"}
    ops = sorted((run.token[0], run.op) for run in f1.runs)
    assert ops == sorted([(f2.tab_id, "pipe_count"), (f2.tab_id, "web_pipe"), (f1.tab_id, "pipe_log")])
    # F1's own pending call kept its req id
    assert [run.token for run in f1.runs if run.token[0] == f1.tab_id] == [(f1.tab_id, own_req)]
    answer_all(bus, f1, T0 + 60, value=2)
    assert f2.resolved == {req_read: (2, None)}             # web_pipe: success is silent
    assert f1.resolved[own_req] == (2, None)
    # a late resend tick causes no second run
    f2.handle(f2.follower.tick(T0 + 2_000))
    bus.flush(T0 + 2_000)
    assert f1.runs == []


def test_acked_read_is_asked_again_after_failover_but_acked_publish_is_not():
    world = make_world()
    bus, m, f1, f2 = world
    rd = f2.call("pipe_count", T0, pipe="web_c")
    pub = f2.call("web_pipe", T0, pipe="web_c", event="e", text="t")
    bus.flush(T0)
    assert len(m.runs) == 2 and f2.resolved == {}
    del bus.tabs[m.tab_id]                     # M dies before answering
    f1.become_master(el.next_term([5], T0 + 100), T0 + 100)
    bus.flush(T0 + 100)
    assert [(run.token[1], run.op) for run in f1.runs] == [(rd, "pipe_count")]
    answer_all(bus, f1, T0 + 110, value=9)
    assert f2.resolved == {rd: (9, None)} and f2.resolve_count == {rd: 1}


def test_resent_calls_go_to_the_new_master_and_the_old_one_ignores_them():
    world = make_world()
    bus, m, f1, f2 = world
    bus.deaf.add(m.tab_id)
    req = f2.call("pipe_count", T0, pipe="web_c")
    bus.flush(T0)
    f1.become_master(el.next_term([5], T0 + 100), T0 + 100)
    bus.deaf.discard(m.tab_id)
    bus.flush(T0 + 100)
    resent = [s for s in bus.sent if s["k"] == "call"][-1]
    assert resent["to"] == f1.tab_id and resent["req"] == req
    assert m.runs == []                        # M (still alive, deposed) ran nothing
    assert len(f1.runs) == 1


def test_stale_master_is_ignored_after_a_newer_term():
    world = make_world()
    bus, m, f1, f2 = world
    f1.become_master(el.next_term([5], T0 + 100), T0 + 100)   # M was robbed, doesn't know yet
    bus.flush(T0 + 100)
    assert f2.follower.master == f1.tab_id
    # M wakes: its heartbeat, a server message and a late answer must not reach F2
    m.handle(m.master.heartbeat(T0 + 200))
    m.handle(m.master.route_deliver(message(history_id="50"), None))
    m.handle(m.master.route_answer((f2.tab_id, 1), 1, None))
    bus.flush(T0 + 200)
    assert f2.delivered == [] and f2.resolved == {}
    assert f2.follower.master == f1.tab_id and f2.master_changes == [(m.tab_id, 5), (f1.tab_id, f1.master.term)]
    # the new master tells the stale one it lost; the stale one tells it nothing
    assert set(m.rivals) == {(f1.tab_id, f1.master.term)} and f1.rivals == []
    # while F1's own traffic still flows
    f1.handle(f1.master.route_deliver(message(history_id="51"), None))
    bus.flush(T0 + 300)
    assert [d["server_info"]["history_id"] for d in f2.delivered] == ["51"]


def test_equal_terms_go_to_the_smaller_tab_id():
    f = r.FollowerRelay("F" * 16)
    f.start(T0)
    f.on_message(r.make_state("B" * 16, 7, "connected", True, T0, 1), T0 + 1)
    f.on_message(r.make_state("A" * 16, 7, "connected", True, T0, 1), T0 + 2)
    assert f.master == "A" * 16
    f.on_message(r.make_state("C" * 16, 7, "connected", True, T0, 1), T0 + 3)
    assert f.master == "A" * 16
    assert f.on_message(r.make_msg("C" * 16, "*", 7, message()), T0 + 4) == []


def test_lower_term_accepted_only_once_the_master_is_dead_or_gone():
    f = r.FollowerRelay("F" * 16)
    f.start(T0)
    f.on_message(r.make_state("H" * 16, 9, "connected", True, T0, 1), T0)
    f.tick(T0 + 1_000)
    f.on_message(r.make_state("L" * 16, 3, "connected", True, T0, 1), T0 + 1_000)
    assert f.master == "H" * 16                # H is alive
    for t in range(T0 + 1_250, T0 + 4_100, 250):
        f.tick(t)
    f.on_message(r.make_state("L" * 16, 3, "connected", True, T0, 1), T0 + 4_100)
    assert f.master == "L" * 16                # H silent > 3 s
    g = r.FollowerRelay("G" * 16)
    g.start(T0)
    g.on_message(r.make_state("H" * 16, 9, "connected", True, T0, 1), T0)
    g.on_message(r.make_bye("H" * 16, 9), T0 + 10)
    g.on_message(r.make_state("L" * 16, 3, "connected", True, T0, 1), T0 + 20)
    assert g.master == "L" * 16                # H said bye


def test_new_tab_learns_the_master_from_its_hello_at_once():
    world = make_world()
    bus, m, f1, f2 = world
    m.handle(m.master.state_message("connected", True, T0 + 5))
    bus.flush(T0 + 5)
    f3 = Tab(bus, "F3" + "x" * 14, {"web_z"})
    f3.start_follower(T0 + 10)
    bus.flush(T0 + 10)
    assert f3.follower.master == m.tab_id
    assert f3.states == [("connected", {})] and f3.auth == [True]
    reply = [s for s in bus.sent if s["k"] == "state" and s["to"] == f3.tab_id]
    assert len(reply) == 1                     # addressed to it, not a broadcast
    assert f1.states.count(("connected", {})) == 1


# -- state, auth, heartbeats ---------------------------------------------------------------------

def test_state_events_reach_every_follower_once_heartbeats_do_not_repeat_them():
    world = make_world()
    bus, m, f1, f2 = world
    m.handle(m.master.state_message("connected", False, T0 + 1))
    bus.flush(T0 + 1)
    for t in (T0 + 1_000, T0 + 2_000):
        m.handle(m.master.heartbeat(t))
        bus.flush(t)
    m.handle(m.master.auth_message(True, T0 + 2_100))
    m.handle(m.master.gap(["web_a"], T0 + 2_200))
    m.handle(m.master.gap(["web_a"], T0 + 2_300))
    bus.flush(T0 + 2_300)
    for f in (f1, f2):
        assert f.states == [("connecting", {}), ("connected", {}), ("gap", {"pipes": ["web_a"]}),
                            ("gap", {"pipes": ["web_a"]})]
        assert f.auth == [False, True]


# -- liveness ------------------------------------------------------------------------------------

def test_silence_alone_never_steals_only_an_unanswered_probe_does():
    world = make_world()
    bus, m, f1, f2 = world
    f = f1.follower
    m.handle(m.master.heartbeat(T0 + 1_000))
    bus.flush(T0 + 1_000)
    assert f.master_silent_for(T0 + 1_500) == 500
    # A minute without heartbeats (the master's timers throttled) and no probe asked: no steal.
    assert not f.should_steal(T0 + 60_000, True)
    probe = f.probe(T0 + 60_000)               # e.g. on becoming visible
    assert [a.message["k"] for a in probe] == ["hello"]
    assert f.probe(T0 + 60_100) == []          # one probe at a time
    # Our own minute without input counts as a stall: silence is measured from now on.
    assert not f.should_steal(T0 + 61_000, True)
    assert not f.should_steal(T0 + 63_000, True)
    assert f.should_steal(T0 + 63_001, True)   # silent 3 s and the probe unanswered: dead
    assert not f.should_steal(T0 + 63_001, False)  # a hidden page never steals


def test_a_throttled_master_that_answers_probes_is_never_robbed():
    world = make_world()
    bus, m, f1, f2 = world
    f = f1.follower
    m.handle(m.master.heartbeat(T0 + 1_000))
    bus.flush(T0 + 1_000)
    # No heartbeat for minutes; the follower probes each time it looks, the master answers.
    for t in range(T0 + 60_000, T0 + 300_001, 60_000):
        f1.handle(f.probe(t))
        bus.flush(t + 5)                       # the master's message handler answers
        for later in (t + 5, t + 1_000, t + 5_000):
            assert not f.should_steal(later, True), later


def test_catch_up_is_asked_for_a_tab_saying_hello_with_history_ids():
    world = make_world()
    bus, m, f1, f2 = world
    f3 = Tab(bus, "F3xxxxxxxxxxxxxx", {"web_a"}, history_ids={"web_a": "4"})
    f3.start_follower(T0 + 10)
    bus.flush(T0 + 10)
    assert m.catch_ups == [("F3xxxxxxxxxxxxxx", {"web_a": "4"})]   # F1, F2 had seen nothing


def test_quiet_but_live_master_is_probed_and_not_stolen():
    world = make_world()
    bus, m, f1, f2 = world
    # the master's timers are throttled: no heartbeat, but it still handles messages
    for t in range(T0 + 250, T0 + 10_001, 250):
        f1.handle(f1.follower.tick(t))
        bus.flush(t)
        assert not f1.follower.should_steal(t, True), t
    probes = [s for s in bus.sent if s["k"] == "hello" and s["from"] == f1.tab_id]
    assert 3 <= len(probes) <= 8


def test_frozen_master_is_stolen_from_after_3s():
    bus = Bus()
    m = Tab(bus, "M" * 16, set())
    f = Tab(bus, "F" * 16, {"web_x"})
    m.become_master(1, T0)
    f.start_follower(T0)
    bus.flush(T0)
    del bus.tabs[m.tab_id]                     # frozen: holds the lock, hears and says nothing
    steal_at = None
    for t in range(T0 + 250, T0 + 5_001, 250):
        f.handle(f.follower.tick(t))
        bus.flush(t)
        if steal_at is None and f.follower.should_steal(t, True):
            steal_at = t
    assert steal_at == T0 + 3_250


def test_follower_waking_from_its_own_freeze_does_not_steal_at_once():
    world = make_world()
    bus, m, f1, f2 = world
    f = f1.follower
    f.tick(T0 + 500)
    # F1's page was frozen for a minute; its first timer runs before the queued states
    f.tick(T0 + 60_500)
    assert not f.should_steal(T0 + 60_500, True)
    assert not f.should_steal(T0 + 63_000, True)
    for t in range(T0 + 60_750, T0 + 63_751, 250):
        f.tick(t)
    assert f.should_steal(T0 + 63_750, True)  # and then the master really is silent


def test_follower_without_any_master_steals_after_3s_from_start():
    f = r.FollowerRelay("F" * 16)
    assert not f.should_steal(T0, True)        # not started
    f.start(T0)
    assert not f.should_steal(T0 + 3_000, True)
    f.tick(T0 + 1_500)
    assert f.should_steal(T0 + 3_001, True)


# -- recovery after a failover (real tabs: Coordinator carries out the actions) --------------------

# -- parsing -------------------------------------------------------------------------------------

GOOD = [
    r.make_hello("a" * 16, 0, frozenset({"x", "y"}), {"x": "1"}),
    r.make_subs("a" * 16, 3, frozenset(), {}),
    r.make_bye("a" * 16, 3),
    r.make_call("a" * 16, "b" * 16, 3, 1, "web_pipe", {"pipe": "web_x", "event": "e", "text": "t"}),
    r.make_call("a" * 16, "b" * 16, 3, 2, "pipe_log", {"pipe": "web_x"}),
    r.make_ack("b" * 16, "a" * 16, 3, 1),
    r.make_answer("b" * 16, "a" * 16, 3, 1, {"n": [1, 2]}, None),
    r.make_msg("b" * 16, "*", 3, message()),
    r.make_state("b" * 16, 3, "connected", None, T0, 0),
    r.make_apply("a" * 16, 4),
    r.make_leader("a" * 16, 4),
]


def _mutate(base, **changes):
    m = dict(base)
    for k, v in changes.items():
        if v is ...:
            m.pop(k)
        else:
            m[k] = v
    return m


BAD = [
    "", "not json", "[1,2]", "null", "42", '"str"', "{" * 5_000 + "}" * 5_000,
    '{"v":1,"k":"bye","from":"a","to":"*","term":NaN}',
    '{"type":"other-library","payload":1}',
    b'{"v":1}', None, 3.5, ["x"],
    _mutate(GOOD[2], v=2), _mutate(GOOD[2], v=True), _mutate(GOOD[2], v=...),
    _mutate(GOOD[2], k="nope"), _mutate(GOOD[2], **{"from": ""}), _mutate(GOOD[2], **{"from": 5}),
    _mutate(GOOD[2], **{"from": "x" * 65}), _mutate(GOOD[2], to=None), _mutate(GOOD[2], term=-1),
    _mutate(GOOD[2], term=1.5), _mutate(GOOD[2], term=True),
    _mutate(GOOD[0], channels="web_x"), _mutate(GOOD[0], channels=[1]), _mutate(GOOD[0], history_ids=[]),
    _mutate(GOOD[0], history_ids={"x": 1}), _mutate(GOOD[1], channels=...),
    _mutate(GOOD[3], req=-1), _mutate(GOOD[3], req="1"), _mutate(GOOD[3], op="drop"),
    _mutate(GOOD[3], args={"pipe": "web_x"}), _mutate(GOOD[4], args=["web_x"]),
    _mutate(GOOD[5], req=...), _mutate(GOOD[6], error=5),
    _mutate(GOOD[7], m="text"), _mutate(GOOD[7], m={"data": 1}),
    _mutate(GOOD[8], master="c" * 16), _mutate(GOOD[8], state=1), _mutate(GOOD[8], authorized="yes"),
    _mutate(GOOD[8], at="now"), _mutate(GOOD[8], at=float("inf")), _mutate(GOOD[8], seq=...),
    _mutate(GOOD[8], detail=[]),
]


def test_messages_for_other_tabs_are_ignored():
    world = make_world()
    bus, m, f1, f2 = world
    # an answer and a msg addressed to F2 never surface in F1, even from its own master
    assert f1.follower.on_message(r.make_msg(m.tab_id, f2.tab_id, 5, message()), T0) == []
    assert f1.follower.on_message(r.make_answer(m.tab_id, f2.tab_id, 5, 1, 1, None), T0) == []
    # calls addressed to another master are not run
    assert m.master.on_message(r.make_call(f1.tab_id, "Z" * 16, 5, 1, "pipe_count", {"pipe": "web_a"}), T0) == []
    # a tab's own echo is ignored
    assert m.master.on_message(r.make_hello(m.tab_id, 5, frozenset({"web_q"}), {}), T0) == []
    assert "web_q" not in m.master.union()


def test_encode_refuses_nan():
    raises(ValueError, lambda: r.encode(r.make_answer("a", "b", 1, 1, float("nan"), None)))


def test_stronger_master_answers_a_weaker_ones_state_directly():
    strong = r.MasterRelay("A" * 16, 9)
    (reply,) = strong.on_message(r.make_state("B" * 16, 3, "connected", True, T0, 1), T0)
    assert reply.message["k"] == "state" and reply.message["to"] == "B" * 16
    weak = r.MasterRelay("B" * 16, 3)
    assert weak.on_message(reply.message, T0 + 1) == [r.RivalMaster("A" * 16, 9)]


def test_acked_read_resent_to_a_new_master_keeps_being_resent_until_acked():
    world = make_world()
    bus, m, f1, f2 = world
    req = f2.call("pipe_count", T0, pipe="web_c")
    bus.flush(T0)                              # acked by M
    del bus.tabs[m.tab_id]
    bus.deaf.add(f1.tab_id)                    # the new master is busy at first
    f1.become_master(el.next_term([5], T0 + 100), T0 + 100)
    bus.flush(T0 + 100)
    f2.handle(f2.follower.tick(T0 + 600))
    bus.flush(T0 + 600)
    bus.deaf.discard(f1.tab_id)
    f2.handle(f2.follower.tick(T0 + 1_100))
    bus.flush(T0 + 1_100)
    assert [run.token for run in f1.runs] == [(f2.tab_id, req)]
    assert sum(s["k"] == "call" and s["to"] == f1.tab_id for s in bus.sent) == 3


def test_any_message_from_a_tab_counts_as_alive_and_joins_are_reported_once():
    world = make_world()
    bus, m, f1, f2 = world
    for t in range(T0 + 1_000, T0 + 12_001, 1_000):
        f1.call("pipe_count", t, pipe="web_a")          # F1 only makes calls
        f2.handle(f2.follower.tick(t))                  # F2 probes its quiet master
        bus.flush(t)
        m.handle(m.master.expire(t))
    assert m.master.followers() == {f1.tab_id, f2.tab_id}   # calls and probes both count
    assert sorted(m.joined) == sorted([f1.tab_id, f2.tab_id])


def test_a_lower_term_from_the_followed_master_is_ignored():
    f = r.FollowerRelay("F" * 16)
    f.start(T0)
    f.on_message(r.make_state("M" * 16, 9, "connected", True, T0, 1), T0)
    assert f.on_message(r.make_state("M" * 16, 4, "closed", True, T0, 2), T0 + 1) == []
    assert f.term == 9


def test_constructed_messages_round_trip():
    for msg in GOOD:
        text = r.encode(msg)
        assert r.parse(text) == msg and r.parse(msg) == msg, msg
        assert msg["v"] == 1 and msg["k"] in r.KINDS


def test_malformed_foreign_or_wrong_version_messages_are_ignored():
    for data in BAD:
        mr = r.MasterRelay("M" * 16, 1)
        fr = r.FollowerRelay("F" * 16)
        fr.start(T0)
        assert r.parse(data) is None, data
        assert mr.on_message(data, T0) == [] and fr.on_message(data, T0) == []   # never raise
        assert mr.union() == frozenset() and fr.master is None


def test_encode_refuses_what_json_cannot_hold():
    for value in (float("nan"), float("inf"), {1, 2}, b"x", object()):
        try:
            r.encode(r.make_answer("a", "b", 1, 1, value, None))
        except (ValueError, TypeError):
            continue
        raise AssertionError("encoded %r" % (value,))
    text = r.encode(r.make_answer("a", "b", 1, 1, {"k": ["caf\u00e9", 1.5, None, True]}, None))
    assert " " not in text and r.parse(text)["value"] == {"k": ["caf\u00e9", 1.5, None, True]}


def test_pending_calls_come_oldest_first():
    f = r.FollowerRelay("F" * 16)
    f.start(T0)
    reqs = [f.call("pipe_count", {"pipe": "web_p%d" % k}, T0)[0] for k in range(30)]
    assert [c.req for c in f.pending_calls()] == reqs
    assert [c.args["pipe"] for c in f.pending_calls()] == ["web_p%d" % k for k in range(30)]
