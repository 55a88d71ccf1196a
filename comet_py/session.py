"""One server connection's state machine, sans-I/O (design.md §4.2).

The I/O layer tells the session what happened (``connecting``, ``opened``,
``received``, ``closed``, ``tick``) and what the tabs want (``set_channels``,
``web_pipe``, ``request``, ``recover``, ``stop``); each call returns the events
to act on: :class:`Send` a frame, :class:`Dispatch` a message to the tabs,
:class:`Answer` a request, report :class:`StateChanged` / :class:`Gap` /
:class:`AuthChanged`, or :class:`Reconnect` after a delay. The session never reads a clock: time comes
in through ``tick(now)``, and deadlines start at the first tick after a
request (so they last between 10 s and 10 s + one tick interval).
"""

import itertools
import logging
import random
import sys
from collections import OrderedDict
from typing import Any, Iterable, Union

from .backoff import Backoff
from .channels import check_name
from .errors import CONNECTION_LOST, QUEUE_FULL, REQUEST_TIMEOUT, SERVER_ERROR, CallError
from .jsonlimit import MAX_DEPTH, SCAN
from .message import history_id_int, make_message_dict
from .options import Options
from .protocol import (
    AuthInfo,
    ChannelMessage,
    DeliveryReport,
    Ignored,
    MarkerAnswer,
    SysError,
    build_url,
    classify_full,
    decode_data,
    decode_frame,
    new_marker,
    plain_message,
    pipe_count_frame,
    pipe_log_frame,
    subscription_frame,
    track_pipe_users_frame,
    web_pipe_frame,
)
from .records import field, record

__all__ = [
    "Session",
    "State",
    "Send",
    "Dispatch",
    "Answer",
    "StateChanged",
    "Gap",
    "AuthChanged",
    "Reconnect",
    "Event",
    "REQUEST_KINDS",
]

_scan = SCAN  # jsonlimit.DECODER.raw_decode, without its wrapper

#: personal messages (users_messages) arrive on this pipe, without a subscription.
PERSONAL_PIPE = "msg"

log = logging.getLogger("comet_py")

REQUEST_KINDS = ("pipe_count", "pipe_log", "track_pipe_users")
_MICROPYTHON = sys.implementation.name == "micropython"


class State:
    """The connection's state, as every tab's ``on_state`` callbacks are told it: plain strings
    (MicroPython has no enum; the values are those of the StrEnum this was)."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"  # the first serverInfo arrived
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


# -------------------------------------------------------------------- events


@record
class Send:
    """Write this text frame to the socket."""

    _fields = ("frame",)
    frame: str


@record
class Dispatch:
    """Hand a server message dict to the tabs: every tab (``to=None``) or only the requester's.

    Not yet a delivery: the relay routes it, then each tab's registry decides which callbacks
    (if any) get it.

    ``exclude``: with ``to=None``, every tab but the one of this token (a tab's own send,
    shown to the browser's other tabs as the server shows it to other connections)."""

    _fields = ("message", "to", "exclude")
    message: dict[str, Any]
    to: object | None = None
    exclude: object | None = None


@record
class Answer:
    """Result of ``request`` (value), or a failure (``error``: its code and detail).

    For a ``web_pipe`` token an Answer only ever reports a failure: the frame
    was not sent (queue full, stopped) or the server refused it.
    """

    _fields = ("token", "value", "error")
    token: object
    value: Any
    error: CallError | None = None


@record
class StateChanged:
    _fields = ("state", "detail")
    state: str  # a State value
    detail: dict[str, Any] = field(default_factory=dict)


@record
class Gap:
    """Messages on ``pipes`` may have been missed and could not be fetched again (no
    history_ids, history off, or a log too short). Not a state: the connection state stays.

    ``to``: the token of the one returning tab whose catch-up fell short (None: every tab)."""

    _fields = ("pipes", "to")
    pipes: list[str]
    to: object = None


@record
class AuthChanged:
    _fields = ("authorized",)
    authorized: bool


@record
class Reconnect:
    """Open a new socket (to ``session.url()``) after ``delay`` seconds."""

    _fields = ("delay",)
    delay: float


Event = Union[Send, Dispatch, Answer, StateChanged, Gap, AuthChanged, Reconnect]


# ------------------------------------------------------------ internal records


class _Phase:
    """Where a request is (plain strings: MicroPython has no enum). Every move is one method of ``_Request``:

    - QUEUED --``send()``--> SENT
    - SENT or ANSWERING --``item_arrived()``--> ANSWERING (pipe_log: its history items come)
    - SENT or ANSWERING --``connection_lost()``--> QUEUED (sent again at the next connection;
      a pipe_log then skips what its requesters already got)

    An answer, a timeout or ``stop()`` drops the request in any phase; a recovery is dropped
    when the connection is lost (it starts afresh at the next serverInfo).
    """

    QUEUED = "queued"  # not on the wire: no open socket, or a pipe_log waiting for its turn
    SENT = "sent"  # on the wire, nothing back yet
    ANSWERING = "answering"  # history items have arrived for it


@record(frozen=False)
class _Request:
    _fields = ("seq", "kind", "pipe", "marker", "tokens", "recovery", "base", "catch_up", "phase", "items",
               "delivered", "last_item", "skip", "skip_history_id", "deadline", "quiet_since", "activity")
    seq: int
    kind: str
    pipe: str
    marker: str
    tokens: list[object]
    recovery: bool = False  # fixed at creation, like kind: what the request is for
    base: int = 0  # recovery: the last history_id delivered on this pipe
    catch_up: object = None  # recovery for one tab only (its token): Session.catch_up
    phase: str = _Phase.QUEUED
    items: list[dict[str, Any]] = field(default_factory=list)  # recovery only
    delivered: int = 0  # history items handed to the tokens
    last_item: int | None = None  # history_id of the last item handed over
    skip: int = 0  # after a resend: items already handed over (CppComet: no history_ids)
    skip_history_id: int | None = None  # after a resend: history_ids <= this were handed over
    deadline: float | None = None
    quiet_since: float | None = None  # CppComet pipe_log: no end frame, so quiet means done
    activity: bool = True

    @property
    def on_the_wire(self) -> bool:
        return self.phase is not _Phase.QUEUED

    def send(self) -> str:
        """QUEUED -> SENT; the frame to write."""
        self.phase = _Phase.SENT
        self.activity = True
        return self.frame()

    def item_arrived(self) -> None:
        """A history item for this request: SENT or ANSWERING -> ANSWERING."""
        self.phase = _Phase.ANSWERING
        self.activity = True

    def connection_lost(self) -> None:
        """SENT or ANSWERING -> QUEUED. A pipe_log is sent again (requests are idempotent) and
        skips what its requesters already got."""
        if self.on_the_wire and self.kind == "pipe_log":
            self.skip = self.delivered
            self.skip_history_id = self.last_item
        self.phase = _Phase.QUEUED

    def can_take_more_tokens(self) -> bool:
        """An identical pipe_log may ride along: this one has not started answering, and is
        not a resumed one (the newcomer would miss the skipped items)."""
        return (not self.recovery and self.phase is not _Phase.ANSWERING
                and self.skip == 0 and self.skip_history_id is None)

    def frame(self) -> str:
        if self.kind == "pipe_count":
            return pipe_count_frame(self.pipe, self.marker)
        if self.kind == "track_pipe_users":
            return track_pipe_users_frame(self.pipe, self.marker)
        # Recovery asks from the last history_id seen on (inclusive, to see that nothing before
        # the gap is missing); only comet_server recovers, and it knows ``since``.
        return pipe_log_frame(self.pipe, self.marker, self.base - 1 if self.recovery else None)


@record(frozen=False)
class _Outgoing:
    _fields = ("seq", "frame", "pipe", "token", "event", "text", "anonymous")
    seq: int
    frame: str
    pipe: str  # report pipe key (no '@')
    token: object
    event: str = ""
    text: str = ""
    anonymous: bool = False


@record(frozen=False)
class _AwaitReport:
    _fields = ("pipe", "token", "deadline", "event", "text", "anonymous")
    pipe: str
    token: object
    deadline: float | None = None
    event: str = ""
    text: str = ""
    anonymous: bool = False


def first_node(uuid: str, count: int) -> int:
    """Index of the node a browser tries first: the same on every load (``uuid`` is kept in
    localStorage), and spread evenly over browsers (32-bit FNV-1a of the uuid). Plain code, not
    ``hash()``: that is salted per process, and every interpreter must pick the same node."""
    if count <= 1:
        return 0
    h = 0x811C9DC5
    for byte in uuid.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h % count


def _copy_tree(value: Any) -> Any:
    """A copy of JSON-decoded data (dicts, lists, scalars), without recursion: MicroPython's
    Python stack is a few hundred frames deep (copy.deepcopy would recurse per level)."""
    top: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(top, 0)]  # (copied container, key of a value to copy)
    while stack:
        parent, key = stack.pop()
        item = parent[key]
        if type(item) is dict:
            parent[key] = fields = dict(item)
            stack.extend((fields, k) for k in fields)
        elif type(item) is list:
            parent[key] = items = list(item)
            stack.extend((items, i) for i in range(len(items)))
    return top[0]


def _default_rng() -> Any:
    # MicroPython has no random.Random: the random module itself has uniform() and choice().
    make = getattr(random, "Random", None)
    return make() if make is not None else random


def _as_live(message: dict[str, Any]) -> dict[str, Any]:
    # Recovered history items are delivered as the live messages they replace.
    info = dict(message["server_info"])
    info["history"] = False
    info["marker"] = None
    return {"data": message["data"], "server_info": info}


# ------------------------------------------------------------------- session


class Session:
    """One (re)connecting server connection, sans-I/O."""

    REQUEST_TIMEOUT = 10.0  # s: pipe_count / pipe_log / recovery answers
    REPORT_TIMEOUT = 10.0  # s: a web_pipe2 delivery report we stop waiting for
    PIPE_LOG_QUIET = 1.0  # s: CppComet sends no end of history; quiet = done
    MAX_QUEUE = 1000  # frames held while the socket is not open
    SEEN_PERSONAL = 1000  # personal message ids remembered to drop redeliveries

    def __init__(
        self,
        options: Options,
        *,
        uuid: str,
        rng: random.Random | None = None,
        page_is_https: bool = False,
        backoff: Backoff | None = None,
    ) -> None:
        self.options = options
        self.uuid = options.uuid or uuid
        self.page_is_https = page_is_https
        self._rng = rng or _default_rng()
        self.backoff = backoff or Backoff(rng=self._rng)

        self.state = State.IDLE
        self.authorized: bool | None = None
        self.server_is_comet_server = False
        self.server = ""
        self.real_user_key = ""

        self._open = False
        self._got_info = False  # serverInfo seen on the current socket
        self._recover_pending = False  # next serverInfo starts recovery
        self._node_index = first_node(self.uuid, len(options.nodes))
        self._seq = itertools.count()
        self._channels: frozenset[str] = frozenset()

        # OrderedDicts where order matters (oldest first): MicroPython's dicts keep none.
        self._requests: OrderedDict[str, _Request] = OrderedDict()  # marker -> request
        self._logs: OrderedDict[str, list[_Request]] = OrderedDict()  # pipe -> pipe_log FIFO
        self._outbox: list[_Outgoing] = []  # web_pipe2 waiting for a socket
        self._reports: list[_AwaitReport] = []  # sent, report pending (oldest first)
        self._last_history_ids: dict[str, int] = {}  # pipe -> last history_id delivered
        self._held: dict[str, list[dict[str, Any]]] = {}  # pipe -> live msgs held during recovery
        self._pending_catch_ups: list[tuple[dict[str, str], object]] = []  # for the next serverInfo
        # ids of the latest personal messages delivered (comet_server resends one until confirmed)
        self._seen_personal: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------ lifecycle

    def url(self) -> str:
        """URL for the next connection (rotates through a node list on each close)."""
        nodes = self.options.nodes
        node = nodes[self._node_index % len(nodes)]
        return build_url(self.options, uuid=self.uuid, page_is_https=self.page_is_https, node=node)

    def update_options(self, options: Options) -> None:
        """New options for ``restart``: the next ``url()`` uses them."""
        self.options = options
        if options.uuid:
            self.uuid = options.uuid
        self._node_index = first_node(self.uuid, len(options.nodes))

    def connecting(self) -> list[Event]:
        """The I/O layer starts opening a socket."""
        self.state = State.CONNECTING
        self._open = False
        self._got_info = False
        # Unknown until this socket's serverInfo: be as careful as with CppComet.
        self.server_is_comet_server = False
        nodes = self.options.nodes
        # Not the URL: it holds the user key, and state details end up in logs.
        return [StateChanged(State.CONNECTING, {"node": nodes[self._node_index % len(nodes)]})]

    def opened(self) -> list[Event]:
        """Socket open: send the subscription, then everything queued, in call order."""
        if self.state == State.CLOSED:
            return []
        self._open = True
        events: list[Event] = []
        if self._channels:
            events.append(Send(subscription_frame(self._channels)))
        pending: list[_Outgoing | _Request] = list(self._outbox)
        self._outbox.clear()
        pending += [req for req in self._requests.values() if req.kind != "pipe_log" and not req.on_the_wire]
        for queue in self._logs.values():
            pending += self._sendable_logs(queue)
        pending.sort(key=lambda item: item.seq)
        for item in pending:
            if isinstance(item, _Outgoing):
                self._reports.append(_AwaitReport(item.pipe, item.token, None, item.event, item.text, item.anonymous))
                events.append(Send(item.frame))
            else:
                events.append(Send(item.send()))
        return events

    def closed(self) -> list[Event]:
        """The socket closed or failed to open: report it and schedule a reconnect."""
        if self.state == State.CLOSED:
            return []
        if self._got_info:
            self._recover_pending = True  # next connect is a reconnect
        self._open = False
        self._got_info = False
        if len(self.options.nodes) > 1:
            self._node_index += 1
        for req in list(self._requests.values()):
            if req.recovery:
                # Recovery restarts from the same base at the next serverInfo;
                # the held messages stay held until then.
                self._drop_request(req)
                if req.catch_up is not None:
                    self._pending_catch_ups.append(({req.pipe: str(req.base)}, req.catch_up))
                continue
            req.connection_lost()
        if self._reports:
            log.debug("connection lost with %d delivery reports pending", len(self._reports))
        self._reports.clear()
        self.state = State.DISCONNECTED
        return [StateChanged(State.DISCONNECTED, {}), Reconnect(self.backoff.next_delay())]

    def stop(self) -> list[Event]:
        """Close for good: fail every pending request and queued send."""
        events: list[Event] = []
        for req in list(self._requests.values()):
            self._drop_request(req)
            for token in req.tokens:
                events.append(Answer(token, None, CallError(CONNECTION_LOST, "the connection was stopped")))
        for out in self._outbox:
            events.append(Answer(out.token, None, CallError(CONNECTION_LOST, "stopped before it was sent")))
        self._outbox.clear()
        self._reports.clear()
        self._held.clear()
        self._pending_catch_ups.clear()
        self._open = False
        self._got_info = False
        if self.state != State.CLOSED:
            self.state = State.CLOSED
            events.append(StateChanged(State.CLOSED, {}))
        return events

    # ---------------------------------------------------------- tab wishes

    def set_channels(self, channels: Iterable[str]) -> list[Event]:
        """The union of server channels; a subscription frame only when it changes."""
        chans = frozenset(check_name(c) for c in channels)  # raises before any change
        if chans == self._channels:
            return []
        for pipe in self._channels - chans:
            # Unsubscribed: recovering from this history_id after a later
            # resubscribe would replay what nobody asked for.
            self._last_history_ids.pop(pipe, None)
        self._channels = chans
        if self._open:
            return [Send(subscription_frame(chans))]
        return []

    def web_pipe(self, pipe: str, event: str, text: str, token: object) -> list[Event]:
        """Publish into a web_* channel; its delivery report goes to ``token``.

        Raises ``ValueError`` for a bad pipe/event or an oversized message.
        """
        frame = web_pipe_frame(pipe, event, text)
        key = pipe.lstrip("@")
        if self.state == State.CLOSED:
            return [Answer(token, None, CallError(CONNECTION_LOST, "the connection was stopped"))]
        anonymous = pipe.startswith("@")
        if self._open:
            self._reports.append(_AwaitReport(key, token, None, event, text, anonymous))
            return [Send(frame)]
        if self._queued() >= self.MAX_QUEUE:
            log.warning("send queue full (%d frames): dropping web_pipe_send to %s", self.MAX_QUEUE, pipe)
            return [Answer(token, None, CallError(QUEUE_FULL, f"send queue full ({self.MAX_QUEUE} frames)"))]
        self._outbox.append(_Outgoing(next(self._seq), frame, key, token, event, text, anonymous))
        return []

    def request(self, kind: str, pipe: str, token: object) -> list[Event]:
        """``pipe_count`` | ``pipe_log`` | ``track_pipe_users``; the result comes as ``Answer``.

        pipe_log items come as ``Dispatch(msg, to=token)`` with history=True,
        then ``Answer(token, number_of_items)``. Raises ``ValueError`` for a
        bad kind or pipe.
        """
        if kind not in REQUEST_KINDS:
            raise ValueError(f"unknown request kind {kind!r}; use one of {', '.join(REQUEST_KINDS)}")
        _Request(0, kind, pipe, "x", []).frame()  # validate before any change
        if self.state == State.CLOSED:
            return [Answer(token, None, CallError(CONNECTION_LOST, "the connection was stopped"))]
        if kind == "pipe_log":
            for req in self._logs.get(pipe, []):
                # Ride along an identical request that has not started answering.
                if req.can_take_more_tokens():
                    req.tokens.append(token)
                    return []
        if not self._open and self._queued() >= self.MAX_QUEUE:
            log.warning("send queue full (%d frames): dropping %s %s", self.MAX_QUEUE, kind, pipe)
            return [Answer(token, None, CallError(QUEUE_FULL, f"send queue full ({self.MAX_QUEUE} frames)"))]
        req = self._new_request(kind, pipe, [token])
        if kind == "pipe_log":
            return self._pump_logs(pipe)
        if self._open:
            return [Send(req.send())]
        return []

    def catch_up(self, last_history_ids: dict[str, str], token: object) -> list[Event]:
        """One tab was away (back from the bfcache, say): fetch what it missed after its own
        history_ids, as ``Dispatch(msg, to=token)`` live messages for it alone (comet_server only:
        CppComet cannot ask from a history_id). Live messages of those pipes wait meanwhile, so
        the tab gets everything in order. Run at the next serverInfo when not connected."""
        if self.state == State.CLOSED:
            return []
        self._pending_catch_ups.append((dict(last_history_ids), token))
        if not (self._open and self._got_info):
            return []
        return self._start_catch_ups()

    def _start_catch_ups(self) -> list[Event]:
        events: list[Event] = []
        pending, self._pending_catch_ups = self._pending_catch_ups, []
        if not self.server_is_comet_server:
            return events
        for history_ids, token in pending:
            for pipe, history_id in sorted(history_ids.items()):
                base, last = history_id_int(history_id), self._last_history_ids.get(pipe)
                if base is None or last is None or base >= last or pipe not in self._channels:
                    continue  # nothing missed (or nothing known to compare with)
                self._held.setdefault(pipe, [])
                req = self._new_request("pipe_log", pipe, [], recovery=True, base=base)
                req.catch_up = token
                events.append(Send(req.send()))
        return events

    def recover(self, last_history_ids: dict[str, str]) -> None:
        """Fetch, at the next (re)connect, what was missed after these history_ids."""
        for pipe, history_id in last_history_ids.items():
            m = history_id_int(history_id)
            if m is not None and m > self._last_history_ids.get(pipe, -1):
                self._last_history_ids[pipe] = m
        self._recover_pending = True

    # --------------------------------------------------------------- input

    def received(self, text: str) -> list[Event]:
        """One WebSocket text frame. Never raises: a bad frame is logged and skipped."""
        found = self.received_fast(text)
        return [Dispatch(found)] if isinstance(found, dict) else found

    def received_fast(self, text: str) -> dict[str, Any] | list[Event]:
        """``received``, with its hot path kept apart: a frame that is one ordinary live channel
        message for every tab gives that message dict alone (``Dispatch(message)`` without the
        event around it), anything else the events ``received`` gives."""
        if self.state is State.CLOSED:
            return []
        # One line of JSON that is too shallow to be too deep (jsonlimit.loads, inline) and is
        # an object from its first character to its last, parsed once. Anything else goes the
        # long way: decode_frame's stripping, its fallback and its log lines.
        if type(text) is str and "\n" not in text and text.count("[") + text.count("{") <= MAX_DEPTH:
            try:
                raw, end = _scan(text, 0)
            except (StopIteration, ValueError):
                end = -1
            if end == len(text) and type(raw) is dict:
                try:
                    message = plain_message(raw, mysql_escaped=not self.server_is_comet_server)
                    if message is None:
                        return self._handle_full(raw)
                    info = message["server_info"]
                    if info["history_id"] is None and not self._held and info["pipe"] != PERSONAL_PIPE:
                        return message  # what _live gives such a message, inline
                    return self._live(message) or []
                except Exception:  # a bug or an odd frame must not stop delivery
                    log.exception("error handling a server frame: %r", raw)
                    return []
        return self._received_lines(text)

    def _received_lines(self, text: str) -> list[Event]:
        events: list[Event] = []
        for raw in decode_frame(text):
            try:
                events.extend(self._handle(raw))
            except Exception:  # a bug or an odd frame must not stop delivery
                log.exception("error handling a server frame: %r", raw)
        return events

    def tick(self, now: float) -> list[Event]:
        """Expire requests, finish CppComet history requests after a quiet period."""
        events: list[Event] = []
        for req in list(self._requests.values()):
            if req.marker not in self._requests:
                continue  # finished by an earlier step of this tick
            if req.deadline is None:
                req.deadline = now + self.REQUEST_TIMEOUT
            elif now >= req.deadline:
                events.extend(self._expire(req))
                continue
            if (
                req.kind == "pipe_log"
                and req.on_the_wire
                and self._open
                and self._got_info
                and not self.server_is_comet_server
            ):
                if req.activity or req.quiet_since is None:
                    req.activity = False
                    req.quiet_since = now
                elif now - req.quiet_since >= self.PIPE_LOG_QUIET:
                    events.extend(self._finish_log(req, req.delivered))
        for rep in list(self._reports):
            if rep.deadline is None:
                rep.deadline = now + self.REPORT_TIMEOUT
            elif now >= rep.deadline:
                # The server refused it (error on sys) or the report was lost.
                self._reports.remove(rep)
                log.debug("no delivery report for a send into %s", rep.pipe)
        return events

    # ------------------------------------------------------------ internals

    def _queued(self) -> int:
        return len(self._outbox) + sum(
            1 for r in self._requests.values() if not r.on_the_wire and not r.recovery
        )

    def _new_request(
        self, kind: str, pipe: str, tokens: list[object], *, recovery: bool = False, base: int = 0
    ) -> _Request:
        marker = new_marker(self._rng)
        while marker in self._requests:
            marker = new_marker(self._rng)
        req = _Request(next(self._seq), kind, pipe, marker, tokens, recovery=recovery, base=base)
        self._requests[marker] = req
        if kind == "pipe_log":
            self._logs.setdefault(pipe, []).append(req)
        return req

    def _drop_request(self, req: _Request) -> None:
        self._requests.pop(req.marker, None)
        queue = self._logs.get(req.pipe)
        if queue is not None and req in queue:
            queue.remove(req)
            if not queue:
                del self._logs[req.pipe]

    def _sendable_logs(self, queue: list[_Request]) -> list[_Request]:
        # Items carry no request marker, so they are routed to the oldest sent
        # request of their pipe. comet_server ends each answer with a marked
        # frame, so several may be in flight; with CppComet only one at a time.
        out: list[_Request] = []
        for req in queue:
            if req.on_the_wire:
                if not self.server_is_comet_server:
                    break
                continue
            out.append(req)
            if not self.server_is_comet_server:
                break
        return out

    def _pump_logs(self, pipe: str) -> list[Event]:
        if not self._open:
            return []
        events: list[Event] = []
        for req in self._sendable_logs(self._logs.get(pipe, [])):
            events.append(Send(req.send()))
        return events

    def _current_log(self, pipe: str) -> _Request | None:
        for req in self._logs.get(pipe, []):
            if req.on_the_wire:
                return req
        return None

    def _finish_log(self, req: _Request, count: int) -> list[Event]:
        self._drop_request(req)
        events: list[Event] = [Answer(t, count) for t in req.tokens]
        return events + self._pump_logs(req.pipe)

    def _expire(self, req: _Request) -> list[Event]:
        if req.recovery:
            log.warning("recovery of %s timed out", req.pipe)
            events = self._finish_recovery(req, timed_out=True)
        else:
            self._drop_request(req)
            error = CallError(
                REQUEST_TIMEOUT,
                f"no answer to {req.kind} {req.pipe!r} within {self.REQUEST_TIMEOUT:g} s",
            )
            events = [Answer(t, None, error) for t in req.tokens]
        return events + self._pump_logs(req.pipe)

    def _handle(self, raw: dict[str, Any]) -> list[Event]:
        message = plain_message(raw, mysql_escaped=not self.server_is_comet_server)
        if message is not None:  # the hot path: an ordinary message on a channel
            return self._on_live(message)
        return self._handle_full(raw)

    def _handle_full(self, raw: dict[str, Any]) -> list[Event]:
        """A frame plain_message turned down: the full rules."""
        # if/isinstance, not match: MicroPython has no match statement
        got = classify_full(raw, mysql_escaped=not self.server_is_comet_server)
        if isinstance(got, AuthInfo):
            return self._on_auth(got)
        if isinstance(got, ChannelMessage):
            return self._on_history_item(got) if got.history else self._on_live(got.message)
        if isinstance(got, MarkerAnswer):
            return self._on_answer(got)
        if isinstance(got, DeliveryReport):
            return self._on_report(got)
        if isinstance(got, SysError):
            return self._on_sys_error(got)
        if isinstance(got, Ignored):
            log.debug("ignoring a frame (%s): %r", got.reason, raw)
        return []

    def _on_auth(self, info: AuthInfo) -> list[Event]:
        self._got_info = True
        self.server = info.server
        self.server_is_comet_server = info.is_comet_server
        self.real_user_key = info.user_key
        self.backoff.reset()
        self.state = State.CONNECTED
        events: list[Event] = []
        if self.authorized is not info.authorized:
            self.authorized = info.authorized
            events.append(AuthChanged(info.authorized))
        events.append(
            StateChanged(State.CONNECTED, {"server": info.server, "authorized": info.authorized})
        )
        # Catch-ups first: the server answers in order, so a returning tab gets its older
        # messages before the newer ones every tab recovers (it would drop them after those).
        events.extend(self._start_catch_ups())
        if self._recover_pending:
            self._recover_pending = False
            events.extend(self._start_recovery())
        if self.server_is_comet_server:
            # Now known to end each history answer: send the queued ones too.
            for pipe in list(self._logs):
                events.extend(self._pump_logs(pipe))
        return events

    def _start_recovery(self) -> list[Event]:
        events: list[Event] = []
        gap: list[str] = []
        if not self.server_is_comet_server:
            gap = sorted(self._channels)
            for pipe in sorted(self._held):
                events.extend(Dispatch(m) for m in self._held.pop(pipe))
        else:
            for pipe in sorted(self._channels):
                base = self._last_history_ids.get(pipe)
                if base is None:
                    gap.append(pipe)  # no history_id: nothing to recover from
                    continue
                self._held.setdefault(pipe, [])
                req = self._new_request("pipe_log", pipe, [], recovery=True, base=base)
                events.append(Send(req.send()))
            for pipe in sorted(set(self._held) - self._channels):
                events.extend(Dispatch(m) for m in self._held.pop(pipe))
        if gap:
            log.info("messages may have been missed on: %s", ", ".join(gap))
            events.append(Gap(gap))
        return events

    def _finish_recovery(self, req: _Request, *, timed_out: bool = False) -> list[Event]:
        self._drop_request(req)
        pipe = req.pipe
        if any(r.recovery for r in self._logs.get(pipe, [])):
            held: list[dict[str, Any]] = []  # another recovery of this pipe releases them
        else:
            held = self._held.pop(pipe, [])
        base = req.base
        if req.catch_up is not None:
            return self._finish_catch_up(req, held)
        ids = [m for m in (history_id_int(i["server_info"].get("history_id")) for i in req.items) if m is not None]
        events: list[Event] = []
        gap = timed_out
        if ids and max(ids) < base:
            # The server's sequence went backwards (a fresh store): the old
            # history_id means nothing any more. Deliver what was held, report a gap.
            gap = True
            self._last_history_ids.pop(pipe, None)
            to_deliver: list[dict[str, Any]] = []
        else:
            # The log holds the newest N messages: if it reaches back to our
            # history_id, nothing before it is missing.
            if not any(m <= base for m in ids):
                gap = True
            to_deliver = [_as_live(i) for i in req.items]
        last = self._last_history_ids.get(pipe)
        for msg in to_deliver + held:
            m = history_id_int(msg["server_info"].get("history_id"))
            if m is not None:
                if last is not None and m <= last:
                    continue  # already delivered (or held and also in the log)
                last = m
            events.append(Dispatch(msg))
        if last is not None:
            self._last_history_ids[pipe] = last
        if gap:
            log.info("could not fully recover %s", pipe)
            events.append(Gap([pipe]))
        return events

    def _finish_catch_up(self, req: _Request, held: list[dict[str, Any]]) -> list[Event]:
        """Items the other tabs had (up to the last delivered) go to the returning tab alone;
        newer ones, and the live messages held meanwhile, to every tab as usual."""
        events: list[Event] = []
        pipe, last = req.pipe, self._last_history_ids.get(req.pipe)
        ids = [history_id_int(i["server_info"].get("history_id")) for i in req.items]
        if not any(m is not None and m <= req.base for m in ids):
            log.info("a returning tab may have missed messages on %s (history too short)", pipe)
            events.append(Gap([pipe], to=req.catch_up))
        for item, m in zip(req.items, ids):
            if m is None or m <= req.base:
                continue
            if last is not None and m <= last:
                events.append(Dispatch(_as_live(item), req.catch_up))
            else:
                last = m
                events.append(Dispatch(_as_live(item)))
        for msg in held:
            m = history_id_int(msg["server_info"].get("history_id"))
            if m is not None:
                if last is not None and m <= last:
                    continue
                last = m
            events.append(Dispatch(msg))
        if last is not None:
            self._last_history_ids[pipe] = last
        return events

    def _on_live(self, message: dict[str, Any]) -> list[Event]:
        return [Dispatch(message)] if self._live(message) is not None else []

    def _live(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """A live message for every tab, or None when it is held back or a duplicate."""
        info = message["server_info"]
        pipe = info["pipe"]
        if pipe == PERSONAL_PIPE:
            return message if self._new_personal(info) else None
        if pipe in self._held:
            self._held[pipe].append(message)  # recovery of this pipe in progress
            return None
        history_id = info.get("history_id")
        if history_id is not None:
            # history_id_int, inline (MicroPython: no str.isascii, and an ASCII-only isdigit)
            m = (int(history_id) if type(history_id) is str and history_id.isdigit()
                 and (_MICROPYTHON or history_id.isascii()) else None)
            if m is not None:
                last = self._last_history_ids.get(pipe)
                if last is not None and m <= last:
                    log.debug("dropping a duplicate on %s (history_id %d <= %d)", pipe, m, last)
                    return None
                self._last_history_ids[pipe] = m
        return message

    def _new_personal(self, info: dict[str, Any]) -> bool:
        """comet_server delivers a personal message at least once, with the same id each time:
        drop an id already delivered. Exact ids, not "at most the last one": a server with a
        fresh store starts its ids again from 1."""
        mid = info.get("uuid")
        if isinstance(mid, str) and mid:
            if mid in self._seen_personal:
                log.debug("dropping a personal message delivered before (id %s)", mid)
                return False
            self._seen_personal[mid] = None
            if len(self._seen_personal) > self.SEEN_PERSONAL:
                del self._seen_personal[next(iter(self._seen_personal))]
        return True

    def _on_history_item(self, c: ChannelMessage) -> list[Event]:
        req = self._current_log(c.pipe)
        if req is None:
            log.debug("history item on %s that no request is waiting for", c.pipe)
            return []
        req.item_arrived()
        m = history_id_int(c.history_id)
        if req.skip_history_id is not None and m is not None:
            if m <= req.skip_history_id:
                return []
        elif req.skip > 0:
            req.skip -= 1
            return []
        if req.recovery:
            req.items.append(c.message)
            return []
        req.delivered += 1
        req.last_item = m
        events: list[Event] = []
        for i, token in enumerate(req.tokens):
            msg = c.message if i == 0 else _copy_tree(c.message)
            events.append(Dispatch(msg, token))
        return events

    def _on_answer(self, a: MarkerAnswer) -> list[Event]:
        req = self._requests.get(a.marker)
        if req is None:
            log.debug("answer with an unknown marker %r (late or not ours)", a.marker)
            return []
        if a.kind == "pipe_log" and req.kind == "pipe_log":
            if req.recovery:
                return self._finish_recovery(req) + self._pump_logs(req.pipe)
            return self._finish_log(req, a.value)
        self._drop_request(req)
        if req.kind == "pipe_count":
            if a.value is None:
                return [Answer(t, None, CallError(SERVER_ERROR, f"unexpected pipe_count answer {a.message['data']!r}")) for t in req.tokens]
            return [Answer(t, a.value) for t in req.tokens]
        return [Answer(t, a.value) for t in req.tokens]

    def _on_report(self, r: DeliveryReport) -> list[Event]:
        for rep in self._reports:
            if rep.pipe == r.pipe:
                self._reports.remove(rep)
                return [Dispatch(r.message, rep.token), Dispatch(self._echo(rep, r), None, rep.token)]
        # Not ours (e.g. sent before a reconnect): every tab may show it.
        return [Dispatch(r.message)]

    def _echo(self, rep: _AwaitReport, r: DeliveryReport) -> dict[str, Any]:
        """The message the server delivered to other connections, for this browser's other tabs
        (they share this connection, and the server never echoes a send to its sender)."""
        report = r.message["data"] if isinstance(r.message.get("data"), dict) else {}
        user_id = report.get("user_id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            user_id = 0 if rep.anonymous or not self.authorized else self.options.user_id
        history_id = report.get("history_id")
        history_id = history_id if isinstance(history_id, str) else None
        time = r.message.get("message_send_time")
        message = make_message_dict(
            decode_data(rep.text, mysql_escaped=False), pipe=rep.pipe, event=rep.event, user_id=user_id,
            time=time if isinstance(time, int) else None, uuid=history_id, history_id=history_id)
        m = history_id_int(message["server_info"]["history_id"])
        if m is not None and rep.pipe in self._channels and m > self._last_history_ids.get(rep.pipe, -1):
            self._last_history_ids[rep.pipe] = m
        return message

    def _on_sys_error(self, e: SysError) -> list[Event]:
        if e.code is not None:
            log.error("server refused the connection: %s (code %s)", e.error, e.code)
        else:
            log.warning("server error: %s", e.error)
        events: list[Event] = []
        text = e.error
        # The server answers commands in order, so a command error belongs to
        # the oldest command of that kind still waiting.
        if "pipe_msg2" in text or "auth_type" in text or "event name" in text:
            if self._reports:
                rep = self._reports.pop(0)
                events.append(Answer(rep.token, None, CallError(SERVER_ERROR, text)))
        elif "pipe_count" in text or "track_pipe_users" in text:
            kind = "pipe_count" if "pipe_count" in text else "track_pipe_users"
            for req in self._requests.values():
                if req.kind == kind and req.on_the_wire:
                    self._drop_request(req)
                    events.extend(Answer(t, None, CallError(SERVER_ERROR, text)) for t in req.tokens)
                    break
        events.append(Dispatch(e.message))
        return events
