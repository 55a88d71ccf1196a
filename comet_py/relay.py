"""Tab <-> master messages and the bookkeeping on both sides (sans-I/O).

One tab per browser (the master) holds the only WebSocket; the others (followers) talk to it over
a BroadcastChannel with the small JSON envelope of design.md §4.3. Nothing here touches the
browser, a timer or a clock: the I/O layer feeds in the channel's text and the wall-clock time in
ms (`Date.now()`), and carries out the returned actions (post a message, run a call on the
Session, deliver to this tab's callbacks, ...), in order.

Envelope: ``{"v": 1, "k": kind, "from": tab_id, "to": tab_id | "*", "term": int, ...}``.
"""

import json
import logging
import math
import sys
from collections import OrderedDict
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from . import jsonlimit, jsonsafe
from .errors import CONNECTION_LOST, REQUEST_TIMEOUT, CallError
from .records import record
from .session import State

log = logging.getLogger("comet_py.relay")

VERSION = 1
BROADCAST = "*"
OPS = frozenset({"web_pipe", "pipe_count", "pipe_log", "track_pipe_users"})
KINDS = frozenset({"hello", "subs", "bye", "call", "ack", "answer", "msg", "state", "apply", "leader"})

# Timings, ms of wall clock.
HEARTBEAT_MS = 1_000      # the I/O layer calls MasterRelay.heartbeat() this often
RESEND_MS = 500           # a follower resends a call not acked for this long
# A follower gives up on a call after this long: longer than the Session's own 10 s request
# timeout, so that the master's answer (the same RequestTimeout a master tab raises) comes first.
CALL_TIMEOUT_MS = 15_000
TAB_EXPIRE_MS = 6_000     # fallback mode: a tab silent this long is gone
KEEPALIVE_MS = 2_000      # fallback mode: a follower speaks at least this often
PROBE_AFTER_MS = 1_500    # a follower that heard nothing from the master this long pings it
PROBE_EVERY_MS = 1_000
STEAL_AFTER_MS = 3_000    # a visible follower steals the lock after this much master silence...
PROBE_WAIT_MS = 1_000     # ...and once a probe has gone unanswered this long (no stall of ours)
STALL_MS = 2_000          # a gap this long between our own inputs means *we* were frozen/throttled
DEDUP_PER_TAB = 1_000     # call ids remembered per tab for deduplication

GAP = "gap"               # the state a gap travels as in a ``state`` message (api: on_state)

TIMEOUT_ERROR = CallError(REQUEST_TIMEOUT, "comet_py: no master tab answered the call in time")
STOPPED_ERROR = CallError(CONNECTION_LOST, "comet_py: tab stopped")

Token = Tuple[str, int]   # (tab_id, req): what the master hands the Session for a call
Message = Dict[str, Any]  # a validated envelope (plain JSON-able dict)
HistoryIds = Mapping[str, str]

_MICROPYTHON = sys.implementation.name == "micropython"
if _MICROPYTHON:  # no collections.abc; a decoded or posted envelope is a dict there
    _MAPPING: Any = dict
    _RECURSION_ERROR: Any = RuntimeError  # what MicroPython raises for too deep a recursion
else:
    from collections.abc import Mapping as _MAPPING
    _RECURSION_ERROR = RecursionError


# -- actions -------------------------------------------------------------------------------------

@record
class Post:
    """Post this envelope on the BroadcastChannel (``encode(message)`` gives the text)."""
    _fields = ("message",)
    message: Message


@record
class RunCall:
    """Master: run this on the Session, with ``token`` as its token (web_pipe/request)."""
    _fields = ("token", "op", "args")
    token: Token
    op: str
    args: dict[str, Any]


@record
class ChannelsChanged:
    """Master: the union of live tabs' channels changed; give it to Session.set_channels."""
    _fields = ("channels",)
    channels: frozenset[str]


@record
class CatchUp:
    """Master: a tab said hello with these last history_ids (back from the bfcache, say): fetch
    for that tab alone what it missed after them (Session.catch_up)."""
    _fields = ("tab_id", "history_ids")
    tab_id: str
    history_ids: dict[str, str]


@record
class TabJoined:
    """Master: a tab not known before. Web Locks mode: request its tab lock to learn its death."""
    _fields = ("tab_id",)
    tab_id: str


@record
class TabLeft:
    """Master: a tab was dropped (bye, expiry or forget)."""
    _fields = ("tab_id",)
    tab_id: str


@record
class RivalMaster:
    """Master: another tab claims mastership with a stronger (term, id). Fallback mode: the
    election decides; Web Locks mode: the lock holder is right, the other one will step down."""
    _fields = ("master", "term")
    master: str
    term: int


@record
class Deliver:
    """Give this message dict to this tab's callbacks (master or follower)."""
    _fields = ("message",)
    message: dict[str, Any]


@record
class Resolve:
    """This tab's call ``req`` finished (error None on success), whichever tab ran it."""
    _fields = ("req", "value", "error")
    req: int
    value: Any
    error: Optional[CallError]


@record
class MasterChanged:
    """Follower: it now follows this master."""
    _fields = ("master", "term")
    master: str
    term: int


@record
class RemoteState:
    """Follower: a connection state event from the master (a Session StateChanged, or a Gap
    as state ``gap``: what this tab's on_state callbacks are told)."""
    _fields = ("state", "detail")
    state: str
    detail: dict[str, Any]


@record
class RemoteAuth:
    """Follower: the authorized status changed (Session AuthChanged)."""
    _fields = ("authorized",)
    authorized: bool


@record
class PendingCall:
    _fields = ("req", "op", "args")
    req: int
    op: str
    args: dict[str, Any]


Action = Union[Post, RunCall, ChannelsChanged, CatchUp, TabJoined, TabLeft, RivalMaster, Deliver,
               Resolve, MasterChanged, RemoteState, RemoteAuth]


# -- helpers -------------------------------------------------------------------------------------

def beats(term_a: int, tab_a: str, term_b: int, tab_b: str) -> bool:
    """Total order on master claims: higher term wins, equal terms go to the smaller tab id.

    Shared by the relay and the fallback election so that every tab picks the same master.
    """
    return term_a > term_b or (term_a == term_b and tab_a < tab_b)


def _is_int(x: Any) -> bool:
    return type(x) is int  # bool is an int subclass: refuse it


def _token_tab(token: Any) -> Optional[Token]:
    if isinstance(token, tuple) and len(token) == 2 and isinstance(token[0], str) and _is_int(token[1]):
        return token
    return None


# -- message constructors ------------------------------------------------------------------------

def _envelope(kind: str, sender: str, to: str, term: int, **fields: Any) -> Message:
    m: Message = {"v": VERSION, "k": kind, "from": sender, "to": to, "term": term}
    m.update(fields)
    return m


def make_hello(sender: str, term: int, channels: frozenset[str], history_ids: HistoryIds) -> Message:
    return _envelope("hello", sender, BROADCAST, term, channels=sorted(channels), history_ids=dict(history_ids))


def make_subs(sender: str, term: int, channels: frozenset[str], history_ids: HistoryIds) -> Message:
    return _envelope("subs", sender, BROADCAST, term, channels=sorted(channels), history_ids=dict(history_ids))


def make_bye(sender: str, term: int) -> Message:
    return _envelope("bye", sender, BROADCAST, term)


def make_call(sender: str, to: str, term: int, req: int, op: str, args: dict[str, Any]) -> Message:
    return _envelope("call", sender, to, term, req=req, op=op, args=dict(args))


def make_ack(sender: str, to: str, term: int, req: int) -> Message:
    return _envelope("ack", sender, to, term, req=req)


def make_answer(sender: str, to: str, term: int, req: int, value: Any, error: Optional[CallError]) -> Message:
    """``error``: None on success, else ``{"code", "detail"}`` (errors.CODES maps the code)."""
    return _envelope("answer", sender, to, term, req=req, value=value,
                     error=None if error is None else error.to_json())


def make_msg(sender: str, to: str, term: int, message: dict[str, Any], but: Optional[str] = None) -> Message:
    """``but``: a broadcast every tab except that one takes (its own send, echoed to the others)."""
    if but is None:
        return _envelope("msg", sender, to, term, m=message)
    return _envelope("msg", sender, to, term, m=message, but=but)


def make_state(sender: str, term: int, state: str, authorized: Optional[bool], at: float, seq: int,
               detail: Optional[dict[str, Any]] = None, to: str = BROADCAST) -> Message:
    return _envelope("state", sender, to, term, master=sender, state=state, authorized=authorized,
                     at=at, seq=seq, detail=dict(detail or {}))


def make_apply(sender: str, term: int) -> Message:
    return _envelope("apply", sender, BROADCAST, term)


def make_leader(sender: str, term: int, to: str = BROADCAST) -> Message:
    return _envelope("leader", sender, to, term)


if not _MICROPYTHON:
    # Built once: json.dumps/loads with options build a new encoder/decoder per call (hot path).
    _ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)

    def encode(message: Message) -> str:
        """The text to post: compact JSON, no NaN (it would not parse on the other side)."""
        return _ENCODER.encode(message)
else:
    def encode(message: Message) -> str:
        """The text to post: compact JSON, no NaN (it would not parse on the other side).
        MicroPython's json writes nan and sets: jsonsafe refuses them first, as CPython does."""
        jsonsafe.check(message)
        return json.dumps(message, separators=(",", ":"))


# -- parsing -------------------------------------------------------------------------------------

def _str_id(x: Any) -> bool:
    return isinstance(x, str) and 0 < len(x) <= 64


def _check(m: Mapping[str, Any]) -> Optional[str]:
    """Why ``m`` is not a valid envelope, or None when it is."""
    if not (_is_int(m.get("v")) and m.get("v") == VERSION):
        return "not version %d" % VERSION
    kind = m.get("k")
    if kind not in KINDS:
        return "unknown kind"
    if not _str_id(m.get("from")) or not _str_id(m.get("to")):
        return "bad from/to"
    if not (_is_int(m.get("term")) and m["term"] >= 0):
        return "bad term"
    if kind in ("hello", "subs"):
        ch, mk = m.get("channels"), m.get("history_ids")
        if not isinstance(ch, list) or not all(isinstance(c, str) for c in ch):
            return "bad channels"
        if not isinstance(mk, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mk.items()):
            return "bad history_ids"
    elif kind in ("call", "ack", "answer"):
        if not (_is_int(m.get("req")) and m["req"] >= 0):
            return "bad req"
        if kind == "call":
            op, args = m.get("op"), m.get("args")
            if op not in OPS or not isinstance(args, dict):
                return "bad op/args"
            need = ("pipe", "event", "text") if op == "web_pipe" else ("pipe",)
            if not all(isinstance(args.get(n), str) for n in need):
                return "bad args"
        if kind == "answer" and not (m.get("error") is None or CallError.from_json(m.get("error"))):
            return "bad error"
    elif kind == "msg":
        body = m.get("m")
        if not isinstance(body, dict) or not isinstance(body.get("server_info"), dict):
            return "bad m"
    elif kind == "state":
        at = m.get("at")
        if m.get("master") != m.get("from") or not isinstance(m.get("state"), str):
            return "bad master/state"
        if m.get("authorized") not in (None, True, False):
            return "bad authorized"
        if not (isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at)):
            return "bad at"
        if not (_is_int(m.get("seq")) and m["seq"] >= 0) or not isinstance(m.get("detail", {}), dict):
            return "bad seq/detail"
    return None


def parse(data: Union[str, Mapping[str, Any], Any]) -> Optional[Message]:
    """Validate a BroadcastChannel message (its JSON text, or an already decoded dict).

    Anything malformed, foreign (another library on the channel) or of another version is
    logged at debug and gives None: a bad message from one tab must never break another.
    """
    if isinstance(data, str):
        try:
            # The frame cap plus the envelope's own levels: a message the master decoded fits.
            obj = jsonlimit.loads(data, jsonlimit.MAX_DEPTH + jsonlimit.ENVELOPE_DEPTH)
        except (ValueError, _RECURSION_ERROR) as exc:
            log.debug("relay: ignored non-JSON message: %s", exc)
            return None
    elif isinstance(data, _MAPPING):
        obj = data
    else:
        log.debug("relay: ignored message of type %s", type(data).__name__)
        return None
    if type(obj) is not dict and not isinstance(obj, _MAPPING):
        log.debug("relay: ignored non-object message")
        return None
    why = _check(obj)
    if why is not None:
        log.debug("relay: ignored message (%s): %.200r", why, obj)
        return None
    return dict(obj)


class _StallClock:
    """Notices gaps in our own inputs (frozen or throttled page), so that silence we merely failed
    to observe is not counted against others."""

    def __init__(self) -> None:
        self.last_input: Optional[float] = None
        self.resumed_at: float = -math.inf
        self.skipped: float = 0.0   # ms of our stalls beyond STALL_MS each: not counted as waiting

    def touch(self, now_ms: float) -> None:
        if self.last_input is not None and now_ms - self.last_input > STALL_MS:
            self.resumed_at = now_ms
            self.skipped += now_ms - self.last_input - STALL_MS
        if self.last_input is None or now_ms > self.last_input:
            self.last_input = now_ms


# -- master side ---------------------------------------------------------------------------------

@record(frozen=False)
class _Tab:
    _fields = ("channels", "last_heard")
    channels: frozenset[str]
    last_heard: float


class MasterRelay:
    """The master's view of the tabs: their channels and calls; routes Session output.

    The master's own tab takes part directly: ``set_own_channels``, ``call_local``, and the
    ``Deliver`` / ``Resolve`` actions, the same a follower's relay gives its tab.
    """

    def __init__(self, tab_id: str, term: int) -> None:
        self.tab_id = tab_id
        self.term = term
        self._own_channels: frozenset[str] = frozenset()
        self._tabs: dict[str, _Tab] = {}
        #: The live tabs other than the master's own, by id: read it, never change it (MasterRole
        #: tests it per message; the same dict as ``_tabs``).
        self.tabs: Mapping[str, _Tab] = self._tabs
        self._done: dict[str, OrderedDict[int, None]] = {}          # tab -> OrderedDict of reqs seen (dedup)
        self._next_req = 1
        self._state: str = State.CONNECTING
        self._authorized: Optional[bool] = None
        self._detail: dict[str, Any] = {}
        self._seq = 0
        self._stall = _StallClock()

    # bookkeeping ------------------------------------------------------------------------------
    def followers(self) -> frozenset[str]:
        """Tab ids of the live tabs other than the master's own."""
        return frozenset(self._tabs)

    def union(self) -> frozenset[str]:
        """Server channels to hold: a channel goes only when no live tab listens to it."""
        out = set(self._own_channels)
        for tab in self._tabs.values():
            out |= tab.channels
        return frozenset(out)

    def set_own_channels(self, channels: frozenset[str]) -> list[Action]:
        before = self.union()
        self._own_channels = frozenset(channels)
        return self._union_actions(before)

    def _union_actions(self, before: frozenset[str]) -> list[Action]:
        after = self.union()
        return [ChannelsChanged(after)] if after != before else []

    def _remove(self, tab_id: str) -> list[Action]:
        if tab_id not in self._tabs:
            self._done.pop(tab_id, None)
            return []
        before = self.union()
        del self._tabs[tab_id]
        self._done.pop(tab_id, None)
        return [TabLeft(tab_id)] + self._union_actions(before)

    def forget(self, tab_id: str) -> list[Action]:
        """A tab died (its tab lock was granted to us, or it expired): drop its channels."""
        if tab_id == self.tab_id:
            return []
        return self._remove(tab_id)

    def expire(self, now_ms: float) -> list[Action]:
        """Fallback mode (no Web Locks): forget tabs silent for TAB_EXPIRE_MS. Call about 1/s."""
        self._stall.touch(now_ms)
        since = self._stall.resumed_at
        dead = [t for t, tab in self._tabs.items() if now_ms - max(tab.last_heard, since) > TAB_EXPIRE_MS]
        out: list[Action] = []
        for tab_id in dead:
            log.debug("relay: tab %s silent for %d ms: forgotten", tab_id, TAB_EXPIRE_MS)
            out += self._remove(tab_id)
        return out

    # input ------------------------------------------------------------------------------------
    def on_message(self, data: Union[str, Mapping[str, Any]], now_ms: float) -> list[Action]:
        m = parse(data)
        if m is None or m["from"] == self.tab_id:
            return []
        sender, kind = m["from"], m["k"]
        if sender in self._tabs:
            self._tabs[sender].last_heard = max(self._tabs[sender].last_heard, now_ms)
        if kind in ("hello", "subs"):
            return self._register(m, now_ms)
        if kind == "bye":
            return self._remove(sender)
        if kind == "call":
            return self._call(m)
        if kind == "state" and m["to"] in (BROADCAST, self.tab_id):
            if beats(m["term"], sender, self.term, self.tab_id):
                return [RivalMaster(sender, m["term"])]
            # A weaker master is out there: tell it about us so that it steps down.
            return [Post(self._state_msg(now_ms, to=sender))]
        return []

    def _register(self, m: Message, now_ms: float) -> list[Action]:
        sender = m["from"]
        before = self.union()
        new = sender not in self._tabs
        self._tabs[sender] = _Tab(frozenset(m["channels"]), now_ms)
        out: list[Action] = [TabJoined(sender)] if new else []
        out += self._union_actions(before)
        if m["k"] == "hello":
            # A hello comes at start, after a failover or back from the bfcache: the Session
            # fetches for this tab alone what it missed after its last history_ids (catch_up).
            # Not for subs: a lagging tab's routine update would only cause needless fetches.
            if m["history_ids"]:
                out.append(CatchUp(sender, dict(m["history_ids"])))
            # Answer at once so a new tab (or one probing a quiet master) need not wait a heartbeat.
            out.append(Post(self._state_msg(now_ms, to=sender)))
        return out

    def _call(self, m: Message) -> list[Action]:
        if m["to"] != self.tab_id:
            return []  # addressed to another master (e.g. the one we replaced)
        sender, req = m["from"], m["req"]
        out: list[Action] = [Post(make_ack(self.tab_id, sender, self.term, req))]
        seen = self._done.setdefault(sender, OrderedDict())
        if req in seen:
            log.debug("relay: duplicate call %s/%d acked again, not run", sender, req)
            return out
        seen[req] = None
        while len(seen) > DEDUP_PER_TAB:
            del seen[next(iter(seen))]  # the oldest (MicroPython: no popitem(last=False))
        out.append(RunCall((sender, req), m["op"], dict(m["args"])))
        return out

    def call_local(self, op: str, args: dict[str, Any], req: Optional[int] = None) -> Tuple[int, list[Action]]:
        """A call from the master's own tab. ``req`` lets a promoted follower keep its call ids."""
        if op not in OPS:
            raise ValueError("unknown call op %r" % (op,))
        if req is None:
            req = self._next_req
        self._next_req = max(self._next_req, req + 1)
        return req, [RunCall((self.tab_id, req), op, dict(args))]

    # Session output ---------------------------------------------------------------------------
    def route_deliver(self, message: dict[str, Any], to: Any = None, exclude: Any = None) -> list[Action]:
        """Session ``Dispatch(message, to, exclude)``: once to every tab (but the tab of
        ``exclude``), or only to the tab of ``to``."""
        if to is None:
            but = None if exclude is None else _token_tab(exclude)  # None: the usual case
            if not self._tabs:
                # A lone tab: nobody to relay to. Its own send is not given back to it, as with
                # two or more tabs (and as the server never echoes a send to its connection).
                own_send = but is not None and but[0] == self.tab_id
                return [] if own_send else [Deliver(message)]
            if but is not None:
                post = Post(make_msg(self.tab_id, BROADCAST, self.term, message, but=but[0]))
                return [post] if but[0] == self.tab_id else [post, Deliver(message)]
            return [Post(make_msg(self.tab_id, BROADCAST, self.term, message)), Deliver(message)]
        token = _token_tab(to)
        if token is None:
            log.debug("relay: deliver with a foreign token %r dropped", to)
            return []
        if token[0] == self.tab_id:
            return [Deliver(message)]
        return [Post(make_msg(self.tab_id, token[0], self.term, message))]

    def route_answer(self, token: Any, value: Any, error: Optional[CallError]) -> list[Action]:
        """Session ``Answer(token, value, error)``: back to the tab that asked."""
        tok = _token_tab(token)
        if tok is None:
            log.debug("relay: answer with a foreign token %r dropped", token)
            return []
        if tok[0] == self.tab_id:
            return [Resolve(tok[1], value, error)]
        return [Post(make_answer(self.tab_id, tok[0], self.term, tok[1], value, error))]

    def _state_msg(self, now_ms: float, to: str = BROADCAST) -> Message:
        return make_state(self.tab_id, self.term, self._state, self._authorized, now_ms, self._seq,
                          self._detail, to=to)

    def state_message(self, state: str, authorized: Optional[bool], now_ms: float,
                      detail: Optional[dict[str, Any]] = None) -> list[Action]:
        """A Session ``StateChanged``: every tab gets it as one state event (even a repeat)."""
        self._seq += 1
        self._state, self._authorized, self._detail = state, authorized, dict(detail or {})
        return [Post(self._state_msg(now_ms))]

    def gap(self, pipes: list[str], now_ms: float, to: str = BROADCAST) -> list[Action]:
        """A Session ``Gap``, for every tab or for one returning tab only. On the channel it is a
        one-off ``state`` message with state ``gap``; the heartbeats keep the connection state."""
        self._seq += 1
        return [Post(make_state(self.tab_id, self.term, GAP, self._authorized, now_ms, self._seq,
                                {"pipes": list(pipes)}, to=to))]

    def auth_message(self, authorized: bool, now_ms: float) -> list[Action]:
        """A Session ``AuthChanged``: same state event, new authorized status."""
        self._authorized = authorized
        return [Post(self._state_msg(now_ms))]

    def heartbeat(self, now_ms: float) -> list[Action]:
        """Every HEARTBEAT_MS: the last state again (followers judge liveness by it)."""
        return [Post(self._state_msg(now_ms))]

    def stop(self) -> list[Action]:
        return [Post(make_bye(self.tab_id, self.term))]


# -- follower side -------------------------------------------------------------------------------

@record(frozen=False)
class _Call:
    _fields = ("req", "op", "args", "created", "skipped_at", "sent_at", "acked")
    req: int
    op: str
    args: dict[str, Any]
    created: float
    skipped_at: float = 0.0        # the stall clock's ``skipped`` when it was made
    sent_at: Optional[float] = None
    acked: bool = False


class FollowerRelay:
    """A follower tab's side: which master to listen to, its channels, its acknowledged calls.

    ``history_ids`` returns this tab's last history_id per pipe (read whenever a hello/subs is built).
    ``keepalive``: fallback mode, where the master expires silent tabs.
    """

    def __init__(self, tab_id: str, *, history_ids: Optional[Callable[[], HistoryIds]] = None,
                 keepalive: bool = False) -> None:
        self.tab_id = tab_id
        self.master: Optional[str] = None
        self.term = 0                     # the followed master's term
        self.highest_term = 0             # highest term seen in any state: for next_term()
        self.channels: frozenset[str] = frozenset()
        self._history_ids = history_ids or dict
        self._keepalive = keepalive
        # oldest first: an OrderedDict (MicroPython's dicts keep no order)
        self._calls: OrderedDict[int, _Call] = OrderedDict()
        self._sent_pipes: dict[int, float] = {}       # web_pipe req -> ack time: a failure may still come
        self._next_req = 1
        self._started_at: Optional[float] = None
        self._last_master_ms = -math.inf
        self._master_gone = False         # it said bye: any new master is welcome
        self._last_post_ms = -math.inf
        self._last_probe_ms = -math.inf
        self._probe_sent_ms: Optional[float] = None  # the oldest probe not answered yet
        self._seen_seq: Optional[int] = None
        self._authorized: Optional[bool] = None
        self._stall = _StallClock()

    # helpers ----------------------------------------------------------------------------------
    def _post(self, message: Message, now_ms: float) -> Post:
        self._last_post_ms = now_ms
        return Post(message)

    def _hello(self, now_ms: float) -> Post:
        return self._post(make_hello(self.tab_id, self.term, self.channels, self._history_ids()), now_ms)

    def _send_call(self, c: _Call, now_ms: float) -> Post:
        c.sent_at = now_ms
        assert self.master is not None
        return self._post(make_call(self.tab_id, self.master, self.term, c.req, c.op, c.args), now_ms)

    # inputs -----------------------------------------------------------------------------------
    def start(self, now_ms: float) -> list[Action]:
        self._stall.touch(now_ms)
        self._started_at = now_ms
        self._last_probe_ms = now_ms
        self._probe_sent_ms = None
        return [self._hello(now_ms)]

    def set_channels(self, channels: frozenset[str], now_ms: float) -> list[Action]:
        self._stall.touch(now_ms)
        channels = frozenset(channels)
        if channels == self.channels:
            return []
        self.channels = channels
        if self._started_at is None:
            return []
        return [self._post(make_subs(self.tab_id, self.term, channels, self._history_ids()), now_ms)]

    def call(self, op: str, args: dict[str, Any], now_ms: float) -> Tuple[int, list[Action]]:
        """An acknowledged call to the master; the outcome comes as ``Resolve(req, ...)``.

        pipe_count, pipe_log and track_pipe_users resolve with the master's answer (or a timeout). web_pipe mirrors
        the Session: success is silent (its ack stops the resends, its delivery report comes as
        a message), and ``Resolve`` comes only with an error: a timeout before any master took
        it, or a failure the Session reported within CALL_TIMEOUT_MS of the ack.
        """
        if op not in OPS:
            raise ValueError("unknown call op %r" % (op,))
        self._stall.touch(now_ms)
        req = self._next_req
        self._next_req += 1
        c = _Call(req, op, dict(args), now_ms, self._stall.skipped)
        self._calls[req] = c
        return req, ([self._send_call(c, now_ms)] if self.master is not None else [])

    def pending_calls(self) -> list[PendingCall]:
        """Calls not resolved yet, oldest first: a follower promoted to master re-runs them with
        ``MasterRelay.call_local(op, args, req)`` (do not call stop() in that case)."""
        return [PendingCall(c.req, c.op, dict(c.args)) for c in self._calls.values()]

    def on_message(self, data: Union[str, Mapping[str, Any]], now_ms: float) -> list[Action]:
        self._stall.touch(now_ms)
        m = parse(data)
        if m is None or m["from"] == self.tab_id or m["to"] not in (BROADCAST, self.tab_id):
            return []
        kind, sender = m["k"], m["from"]
        if kind == "state":
            return self._on_state(m, now_ms)
        if sender != self.master:
            if kind in ("msg", "answer", "ack"):
                log.debug("relay: %s from %s ignored (not our master %s)", kind, sender, self.master)
            return []
        self._last_master_ms = max(self._last_master_ms, now_ms)
        if kind == "msg":
            return [] if m.get("but") == self.tab_id else [Deliver(m["m"])]
        if kind == "ack":
            c = self._calls.get(m["req"])
            if c is None or c.acked:
                return []
            c.acked = True
            if c.op == "web_pipe":
                # Taken by the master: never resend it (no double publish), even after failover.
                del self._calls[c.req]
                self._sent_pipes[c.req] = now_ms
            return []
        if kind == "answer":
            c = self._calls.pop(m["req"], None)
            if c is None and self._sent_pipes.pop(m["req"], None) is None:
                return []
            return [Resolve(m["req"], m.get("value"), CallError.from_json(m.get("error")))]
        if kind == "bye":
            log.debug("relay: master %s left", sender)
            self._master_gone = True
        return []

    def _master_dead(self, now_ms: float) -> bool:
        return self._master_gone or self.master_silent_for(now_ms) > STEAL_AFTER_MS

    def _on_state(self, m: Message, now_ms: float) -> list[Action]:
        sender, term = m["from"], m["term"]
        self.highest_term = max(self.highest_term, term)
        out: list[Action] = []
        if sender == self.master:
            if term < self.term:
                return []
            self.term = term
            self._master_gone = False
        elif (self.master is None or beats(term, sender, self.term, self.master)
              or self._master_dead(now_ms)):
            # A new master: introduce ourselves and hand it every call still waiting. Acked reads
            # go again too (the old master may have died before answering); an acked web_pipe was
            # already resolved, so no publish is repeated.
            log.debug("relay: following master %s (term %d)", sender, term)
            self.master, self.term = sender, term
            self._master_gone = False
            self._seen_seq = None
            out.append(MasterChanged(sender, term))
            if m["to"] != self.tab_id:  # a state addressed to us answers our hello: it knows us
                out.append(self._hello(now_ms))
            for c in self._calls.values():
                c.acked = False
                out.append(self._send_call(c, now_ms))
        else:
            log.debug("relay: state from %s (term %d) ignored, following %s (term %d)",
                      sender, term, self.master, self.term)
            return []
        self._last_master_ms = max(self._last_master_ms, now_ms)
        if m["seq"] != self._seen_seq:
            self._seen_seq = m["seq"]
            out.append(RemoteState(m["state"], dict(m.get("detail") or {})))
        if m["authorized"] is not None and m["authorized"] != self._authorized:
            self._authorized = m["authorized"]
            out.append(RemoteAuth(m["authorized"]))
        if self._keepalive and now_ms - self._last_post_ms >= KEEPALIVE_MS:
            out.append(self._post(make_subs(self.tab_id, self.term, self.channels, self._history_ids()), now_ms))
        return out

    def tick(self, now_ms: float) -> list[Action]:
        """Call every few hundred ms: resends, timeouts, probes of a quiet master, keepalive."""
        self._stall.touch(now_ms)
        out: list[Action] = []
        for req in [q for q, t in self._sent_pipes.items() if now_ms - t >= CALL_TIMEOUT_MS]:
            del self._sent_pipes[req]
        for c in list(self._calls.values()):
            # Waited time leaves out our own stalls: a laptop's sleep times no call out.
            if now_ms - c.created - (self._stall.skipped - c.skipped_at) >= CALL_TIMEOUT_MS:
                del self._calls[c.req]
                out.append(Resolve(c.req, None, TIMEOUT_ERROR))
            elif self.master is not None and not c.acked and (
                    c.sent_at is None or now_ms - c.sent_at >= RESEND_MS):
                out.append(self._send_call(c, now_ms))
        if self._started_at is None:
            return out
        # A hello makes a live master answer with a state at once (its handler runs even when
        # its timers are throttled), so only a frozen master stays silent.
        if (self.master_silent_for(now_ms) >= PROBE_AFTER_MS
                and now_ms - self._last_probe_ms >= PROBE_EVERY_MS):
            out.append(self._probe(now_ms))
        elif self._keepalive and self.master is not None and now_ms - self._last_post_ms >= KEEPALIVE_MS:
            out.append(self._post(make_subs(self.tab_id, self.term, self.channels, self._history_ids()), now_ms))
        return out

    def stop(self, now_ms: float) -> list[Action]:
        """The page goes away: say bye and fail what is still pending."""
        out: list[Action] = [self._post(make_bye(self.tab_id, self.term), now_ms)]
        out += [Resolve(req, None, STOPPED_ERROR) for req in self._calls]
        self._calls.clear()
        self._sent_pipes.clear()
        self._started_at = None
        return out

    # liveness ---------------------------------------------------------------------------------
    def _probe(self, now_ms: float) -> Post:
        self._last_probe_ms = now_ms
        if not self._probe_pending():
            self._probe_sent_ms = now_ms
        return self._hello(now_ms)

    def _probe_pending(self) -> bool:
        """A probe is out, unanswered, and was sent since our last stall (one sent before we
        froze or slept proves nothing: its answer may be waiting in our queue)."""
        sent = self._probe_sent_ms
        return sent is not None and self._last_master_ms < sent and sent >= self._stall.resumed_at

    def probe(self, now_ms: float) -> list[Action]:
        """Ask the master to show it is alive now (the page became visible, say): a hello, which
        a live master answers at once, even with its timers throttled. Nothing if one is out."""
        self._stall.touch(now_ms)
        if self._started_at is None or self._probe_pending():
            return []
        return [self._probe(now_ms)]

    def master_silent_for(self, now_ms: float) -> float:
        """Wall-clock ms since the master was last heard (or since we started / woke up)."""
        if self._started_at is None:
            return 0.0
        since = max(self._last_master_ms, self._started_at, self._stall.resumed_at)
        return max(0.0, now_ms - since)

    def should_steal(self, now_ms: float, page_visible: bool) -> bool:
        """Web Locks mode: steal the master lock? Only a visible page decides, and never by the
        age of the last heartbeat alone (a master's timers may run once a minute): a probe must
        have gone unanswered for PROBE_WAIT_MS, measured while this page itself ran (a stall of
        ours, a throttled timer or a laptop's sleep, restarts the wait)."""
        if not page_visible or self.master_silent_for(now_ms) <= STEAL_AFTER_MS:
            return False
        sent = self._probe_sent_ms
        return self._probe_pending() and sent is not None and now_ms - sent >= PROBE_WAIT_MS
