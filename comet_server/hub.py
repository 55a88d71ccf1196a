"""In-memory state of comet_server: connections, channels, users, fan-out (design.md §2.2).

Everything here runs on the event-loop thread and is synchronous: writing a frame is a
``transport.write`` of pre-built bytes (see ``Client.write``), so a publish never awaits and the
order of frames on each connection is the order of the calls.

Fan-out: ``publish`` builds the message dict once, wraps it in ``wire.Out`` which serialises it
at most once per protocol format (v4, legacy) into complete WebSocket frame bytes, and writes that
same ``bytes`` object to each subscriber's transport. A subscriber whose transport write buffer
grows past ``max_client_buffer`` is closed with 1013 instead of stalling everybody else.

Personal messages (pipe ``msg``) are delivered at least once: each is a ``users_messages`` row
first, written with its row id (``uuid``), and the row is deleted only when the client answers a
WebSocket ping sent after it (``Client.on_pong``). A connection that goes away first leaves the
rows queued for the next connect. Keepalive: a connection silent for ``ping_interval`` gets a
ping; one that sends nothing for ``ping_timeout`` after a ping is dropped (its user goes offline).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import SERVER_NAME, auth, wire
from .ratelog import RateLimitedLog
from .seams import HubAPI, StoreAPI
from .store import HistoryItem

__all__ = ["Hub", "Client", "ClientInfo", "DEFAULT_MAX_CLIENT_BUFFER", "TRUST_LOG_LENGTH"]

log = logging.getLogger("comet_server.hub")
#: what clients cause (slow readers, dead connections): once per interval, with a count.
client_log = RateLimitedLog(log)

DEFAULT_MAX_CLIENT_BUFFER = 4 * 1024 * 1024
#: trust_* channels are always logged; this many messages are kept when no pipes_settings row exists.
TRUST_LOG_LENGTH = 100
#: a connection silent this long gets a ping ...
DEFAULT_PING_INTERVAL = 25.0
#: ... and is dropped (its user goes offline) when nothing comes back within this long.
DEFAULT_PING_TIMEOUT = 10.0
#: ack pings a connection may leave unanswered before the oldest is forgotten (rows stay queued).
MAX_PENDING_ACKS = 256

#: connection ids: unique in the process; a cluster names a connection "<node_id>/<conn_id>".
_conn_ids = itertools.count(1)


def exclude_id(exclude: Any) -> str | None:
    """The connection id to leave out of a fan-out: ``exclude`` is an id, a Client or None."""
    if exclude is None or isinstance(exclude, str):
        return exclude
    return exclude.conn_id


@dataclass(frozen=True)
class ClientInfo:
    user_id: int
    uuid: str
    user_agent: str
    ip: str
    origin: str
    language: str


class Client:
    """One WebSocket connection. Small on purpose: ``__slots__``, no task or timer of its own (the
    Hub's keepalive sweep looks after every connection), containers created when first needed.

    ``ws`` is the connection layer (ws_connection.WsConnection, or a test stand-in): Client
    uses its ``closed``, ``send_ping(payload)`` and ``send_close(code, reason)``. ``transport``
    is the asyncio transport under it, to which Client writes its pre-built frames."""

    __slots__ = ("conn_id", "ws", "transport", "dev_id", "user_id", "authorized", "uuid", "user_agent", "ip",
                 "origin", "language", "legacy", "pipes", "closed", "hub",
                 "last_rx", "_ping_seq", "_ping_sent", "_ping_deadline",
                 "_unacked", "_acks", "_ack_scheduled")

    def __init__(self, hub: "HubAPI", ws: Any, transport: Any, *, dev_id: int,
                 user_id: int, authorized: bool, uuid: str = "", user_agent: str = "", ip: str = "",
                 origin: str = "", language: str = "", legacy: bool = False) -> None:
        self.hub = hub
        self.conn_id = str(next(_conn_ids))
        self.ws = ws
        self.transport = transport
        self.dev_id = dev_id
        self.user_id = user_id
        self.authorized = authorized
        self.uuid = uuid
        self.user_agent = user_agent
        self.ip = ip
        self.origin = origin
        self.language = language
        self.legacy = legacy
        self.pipes: tuple[str, ...] = ()
        self.closed = False
        # keepalive and acks (loop times); the connection layer sets last_rx per received frame
        self.last_rx = 0.0
        self._ping_seq = 0
        self._ping_sent = 0.0
        self._ping_deadline: float | None = None  # set while a ping waits for any answer
        self._unacked: list[str] | None = None  # users_messages ids written since the last ack ping
        self._acks: dict[bytes, list[str]] | None = None  # ack ping payload -> the ids its pong confirms
        self._ack_scheduled = False

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Client dev={self.dev_id} user={self.user_id} uuid={self.uuid!r} closed={self.closed}>"

    def info(self) -> ClientInfo:
        return ClientInfo(self.user_id, self.uuid, self.user_agent, self.ip, self.origin, self.language)

    # -- output --------------------------------------------------------------------------------
    def write(self, frame: bytes) -> bool:
        """Write one complete WebSocket frame. True when it was handed to the transport."""
        if self.closed:
            return False
        tr = self.transport
        if tr is None or tr.is_closing():
            return False
        try:
            tr.write(frame)
        except Exception:  # noqa: BLE001 - a dying transport must not break a fan-out
            log.debug("write failed", exc_info=True)
            return False
        if tr.get_write_buffer_size() > self.hub.max_client_buffer:
            client_log.report("slow client", "closing slow client dev=%s user=%s uuid=%s: write buffer over %d bytes",
                              self.dev_id, self.user_id, self.uuid, self.hub.max_client_buffer)
            self.kick(1013, "Try again later: client too slow")
        return True

    def send(self, out: wire.Out) -> bool:
        return self.write(out.frame(self.legacy))

    def send_obj(self, obj: dict) -> bool:
        return self.write(wire.Out(obj).frame(self.legacy))

    # -- keepalive and acknowledgements ----------------------------------------------------------
    def check_keepalive(self, now: float, interval: float) -> None:
        """The Hub's sweep: drop this connection when a ping went unanswered past its deadline,
        ping it when it has been silent for ``interval`` (0: never)."""
        if self._ping_deadline is not None:
            if self.last_rx > self._ping_sent:  # heard from it since the ping: alive
                self._ping_deadline = None
            elif now >= self._ping_deadline:
                client_log.report("ping timeout", "dropping dev=%s user=%s uuid=%s: no answer to a ping within %g s",
                                  self.dev_id, self.user_id, self.uuid, self.hub.ping_timeout,
                                  level=logging.INFO)
                self.kick(1011, "No answer to ping")
                return
            else:
                return
        if interval > 0 and now - max(self.last_rx, self._ping_sent) >= interval:
            self._ping(b"k%d" % self._next_ping())

    def _next_ping(self) -> int:
        self._ping_seq += 1
        return self._ping_seq

    def _ping(self, payload: bytes) -> None:
        """Send a ping; the connection must answer (anything) within ping_timeout."""
        loop = self.hub.loop
        if loop is not None:
            now = loop.time()
            self._ping_sent = now
            if self._ping_deadline is None and self.hub.ping_timeout > 0:
                self._ping_deadline = now + self.hub.ping_timeout
        self.send_ping(payload)

    def send_ping(self, payload: bytes) -> None:
        """Write a ping frame (after everything written so far)."""
        ws = self.ws
        if ws is None or ws.closed:
            return
        ws.send_ping(payload)

    def wrote_personal(self, row_id: str) -> None:
        """A users_messages row went into this connection's buffer: ask for a confirmation."""
        if self._unacked is None:
            self._unacked = []
        self._unacked.append(row_id)
        if self._ack_scheduled:
            return
        loop = self.hub.loop
        if loop is None:
            self._send_ack_ping()
            return
        self._ack_scheduled = True  # one ping per loop pass covers every message of the burst
        loop.call_soon(self._send_ack_ping)

    def personal_in_flight(self) -> set[str]:
        """Ids of the personal messages written to this connection and not confirmed yet."""
        ids = set(self._unacked or ())
        for batch in (self._acks or {}).values():
            ids.update(batch)
        return ids

    def _send_ack_ping(self) -> None:
        self._ack_scheduled = False
        if self.closed or not self._unacked:
            return
        payload = b"a%d" % self._next_ping()
        if self._acks is None:
            self._acks = {}
        self._acks[payload] = self._unacked
        self._unacked = None
        if len(self._acks) > MAX_PENDING_ACKS:  # it never answers: the rows just stay queued
            del self._acks[next(iter(self._acks))]
        self._ping(payload)

    def on_pong(self, payload: bytes) -> None:
        """A pong: the client read everything written before the matching ping."""
        acks = self._acks
        if not acks:
            return
        payload = bytes(payload)  # a bytearray from some layers
        if payload not in acks:
            return
        ids: list[str] = []
        for key in list(acks):  # in ping order: this pong confirms the older ones too
            ids.extend(acks.pop(key))
            if key == payload:
                break
        try:
            self.hub.store.delete_user_messages(self.dev_id, self.user_id, ids)
        except Exception:  # noqa: BLE001 - the rows stay queued: delivered again, never lost
            log.exception("deleting %d confirmed personal messages failed", len(ids))

    def kick(self, code: int = 1000, reason: str = "") -> None:
        """Close this connection from anywhere (sync): stop all output to it, drop it from the
        hub, send a close frame and close the transport (the connection layer aborts it if the
        close takes longer than a few seconds)."""
        if self.closed:
            return
        ws, tr = self.ws, self.transport
        self.closed = True
        try:
            if ws is not None:
                ws.send_close(code, reason)
            elif tr is not None and not tr.is_closing():  # a bare transport (in-memory tests)
                tr.write(wire.close_frame(code, reason))
                tr.close()
        except Exception:  # noqa: BLE001 - a dying transport must not stop the kick
            log.debug("close failed", exc_info=True)
        self.hub.unregister(self)


class Hub:
    """In-memory connections and channels; see the module docstring and design.md §2.2."""

    #: SQLite in this process is never "away": its errors are bugs or a broken disk
    store_away: tuple[type[BaseException], ...] = ()

    def __init__(self, store: StoreAPI, password: str, *, server_name: str = SERVER_NAME,
                 max_client_buffer: int = DEFAULT_MAX_CLIENT_BUFFER,
                 ping_interval: float = DEFAULT_PING_INTERVAL, ping_timeout: float = DEFAULT_PING_TIMEOUT,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        #: wall time (Unix seconds) for message_send_time and stored times; tests pass a virtual one
        self.clock = clock
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.password = password
        self.server_name = server_name
        self.max_client_buffer = max_client_buffer
        # (dev_id, pipe) -> ordered set of subscribed clients
        self._pipes: dict[tuple[int, str], dict[Client, None]] = {}
        # (dev_id, user_id) -> authorized connections of that user, in connect order
        self._users: dict[tuple[int, int], list[Client]] = {}
        self._clients: dict[Client, None] = {}
        self._dev_counts: dict[int, int] = {}
        #: the running loop, known from the first connection registered inside one (None:
        #: in-memory use without a loop, then there are no keepalive pings)
        self.loop: asyncio.AbstractEventLoop | None = None
        #: the one timer of the keepalive sweep, while there are connections
        self._sweep: asyncio.TimerHandle | None = None

    def loop_time(self) -> float:
        """The loop's clock (keepalive times); 0 without a loop."""
        loop = self.loop
        return loop.time() if loop is not None else 0.0

    @property
    def sweep_period(self) -> float:
        """How often the keepalive sweep runs: a fifth of the shorter of ping_interval and
        ping_timeout, within [0.05 s, 2 s], so a ping or a drop comes at most that late."""
        spans = [t for t in (self.ping_interval, self.ping_timeout) if t > 0]
        return min(2.0, max(0.05, min(spans) / 5)) if spans else 2.0

    # ==========================================================================================
    # Public API (design.md §2.2): CometQL, HTTP publish and ws.py call these.

    def now(self) -> int:
        """Unix seconds by the hub's clock: every message_send_time and stored time."""
        return int(self.clock())

    def publish(self, dev_id: int, pipe: str, event: str, data: str, *, user_id: int | None = None,
                exclude: Any = None) -> int:
        """Send a channel message to every subscriber (but ``exclude``, a connection id or a
        Client); returns deliveries.

        Logs it first when the channel has history (pipes_settings length > 0, or trust_*), and
        then adds ``"history_id"`` (its position in the log; comet_server only). ``user_id`` None
        (CometQL / HTTP) leaves the key out.
        """
        return self.publish_logged(dev_id, pipe, event, data, user_id=user_id, exclude=exclude)[0]

    def publish_logged(self, dev_id: int, pipe: str, event: str, data: str, *,
                       user_id: int | None = None, exclude: Any = None) -> tuple[int, str | None]:
        """``publish``, also returning the history_id (None when the channel keeps no history)."""
        t = self.now()
        obj: dict[str, Any] = {"data": data, "event": event, "message_send_time": t, "pipe": pipe}
        if user_id is not None:
            obj["user_id"] = user_id
        length = self.history_length(dev_id, pipe)
        history_id = None
        if length > 0:
            history_id = obj["history_id"] = self.store.add_history(dev_id, pipe, event, data, user_id or 0, t, length)
        return self._broadcast(dev_id, pipe, obj, exclude_id(exclude)), history_id

    def send_to_user(self, dev_id: int, user_id: int, event: str, data: str) -> int:
        """Personal message on pipe ``msg`` to every authorized connection of the user.

        Stored first (users_messages), and deleted once a connection confirms it (a pong, see
        ``Client.on_pong``): when it reaches nobody, or nobody confirms it, it is delivered, with
        the same id, on the next connect. Returns the connections it was written to."""
        t = self.now()
        row_id = self.store.queue_user_message(dev_id, user_id, event, data, t)
        if not self.user_connection_count(dev_id, user_id):  # offline everywhere: stays queued
            return 0
        obj = {"data": data, "event": event, "message_send_time": t, "pipe": "msg", "uuid": row_id}
        return self._send_personal(dev_id, user_id, obj)

    def _send_personal(self, dev_id: int, user_id: int, obj: dict) -> int:
        """Write a stored personal message to the user's connections (here: all of them)."""
        return self._deliver_personal(dev_id, user_id, obj)

    def _deliver_personal(self, dev_id: int, user_id: int, obj: dict) -> int:
        """Write it to this process's connections of the user; each confirms it with a pong."""
        conns = self._users.get((dev_id, user_id))
        if not conns:
            return 0
        out = wire.Out(obj)
        n = 0
        for c in list(conns):
            if c.send(out):
                c.wrote_personal(obj["uuid"])
                n += 1
        return n

    def disconnect_user(self, dev_id: int, user_id: int) -> int:
        return self._kick_local_user(dev_id, user_id)

    def _kick_local_user(self, dev_id: int, user_id: int) -> int:
        conns = list(self._users.get((dev_id, user_id), ()))
        for c in conns:
            c.kick(1008, "User disconnected by the server")
        return len(conns)

    def subscriber_count(self, dev_id: int, pipe: str) -> int:
        subs = self._pipes.get((dev_id, pipe))
        return len(subs) if subs else 0

    def subscribers(self, dev_id: int, pipe: str) -> list[ClientInfo]:
        subs = self._pipes.get((dev_id, pipe))
        return [c.info() for c in subs] if subs else []

    def pipes(self, dev_id: int) -> dict[str, int]:
        return {p: len(subs) for (d, p), subs in self._pipes.items() if d == dev_id and subs}

    def is_online(self, dev_id: int, user_id: int) -> bool:
        return self.user_connection_count(dev_id, user_id) > 0

    def user_connection_count(self, dev_id: int, user_id: int) -> int:
        """The presence query: authorized connections of the user (here: in this process)."""
        return len(self._users.get((dev_id, user_id), ()))

    def history(self, dev_id: int, pipe: str, *, after: int = -1) -> list[HistoryItem]:
        """The logged messages of ``pipe``, oldest first; ``after`` >= 0: only those whose
        history_id is greater (markers increase across the whole store)."""
        items = self.store.get_history(dev_id, pipe)
        if after >= 0:
            items = [it for it in items if int(it.history_id) > after]
        return items

    def user_data(self, dev_id: int, user_id: int) -> str | None:
        return self.store.get_user_data(dev_id, user_id)

    def last_seen(self, dev_id: int, user_id: int) -> int:
        """users_time: when the user was last online (-1 = never)."""
        return self.store.get_user_time(dev_id, user_id)

    def login(self, dev_id: int, user_id: int, session: str) -> auth.AuthResult:
        return auth.authenticate(self.store, self.password, dev_id, user_id, session)

    def connection_count(self, dev_id: int | None = None) -> int:
        if dev_id is None:
            return len(self._clients)
        return self._dev_counts.get(dev_id, 0)

    # ==========================================================================================
    # Helpers shared with ws.py

    def history_length(self, dev_id: int, pipe: str) -> int:
        """How many messages the log of ``pipe`` keeps (0 = not logged). Read per use: another
        process (CometQL tool, tests) may change pipes_settings at any time."""
        length = self.store.get_pipe_length(dev_id, pipe)
        if length <= 0 and pipe.startswith("trust_"):
            return TRUST_LOG_LENGTH
        return length

    def _broadcast(self, dev_id: int, pipe: str, obj: dict, exclude: str | None = None) -> int:
        """Fan a channel message out to every subscriber of the deployment (here: the process)."""
        return self._fanout(dev_id, pipe, wire.Out(obj), exclude)

    def _fanout(self, dev_id: int, pipe: str, out: wire.Out, exclude: str | None = None) -> int:
        """Write to this process's subscribers but connection ``exclude``; returns the writes."""
        subs = self._pipes.get((dev_id, pipe))
        if not subs:
            return 0
        n = 0
        # Snapshot: a write may kick a slow client, which removes it from ``subs``.
        for c in tuple(subs):
            if c.conn_id == exclude:
                continue
            if c.write(out.frame(c.legacy)):
                n += 1
        return n

    # -- connections ---------------------------------------------------------------------------
    def register(self, client: Client) -> None:
        """A connection passed the handshake (its serverInfo is already written).

        Authorized: deliver the offline queue (all, in order, ``fromQueue``; the rows are deleted
        when the client confirms them), then link the user, firing ``online`` on the first
        connection."""
        self._clients[client] = None
        self._start_keepalive(client)
        self._dev_counts[client.dev_id] = self._dev_counts.get(client.dev_id, 0) + 1
        if not client.authorized or client.user_id <= 0:
            return
        self.deliver_queue(client)
        if client.closed:
            return
        key = (client.dev_id, client.user_id)
        conns = self._users.get(key)
        if conns is None:
            conns = self._users[key] = []
        conns.append(client)
        if self._user_linked(client):  # the user's first connection anywhere
            self.store.set_user_time(client.dev_id, client.user_id, 0)
            self._presence(client.dev_id, client.user_id, "online")

    def _user_linked(self, client: Client) -> bool:
        """``client`` joined its user's connections: True when it is the only one now."""
        return len(self._users[(client.dev_id, client.user_id)]) == 1

    def _user_unlinked(self, client: Client) -> bool:
        """``client`` left its user's connections: True when none is left anywhere."""
        return (client.dev_id, client.user_id) not in self._users

    def deliver_queue(self, client: Client, skip: set[str] | frozenset[str] = frozenset()) -> int:
        """Write the user's queued messages (but the ids in ``skip``), oldest first; returns how
        many were written."""
        msgs = self.store.queued_user_messages(client.dev_id, client.user_id)
        n = 0
        for m in msgs:
            if m.id in skip:
                continue
            obj = {"data": m.data, "event": m.event, "fromQueue": True, "message_send_time": m.time,
                   "pipe": "msg", "uuid": m.id}
            if not client.send_obj(obj):
                break
            client.wrote_personal(m.id)
            n += 1
        return n

    def unregister(self, client: Client) -> None:
        """Idempotent: drop the connection's subscriptions (track_* unsubscription events), unlink
        the user (``offline`` after the last connection, users_time = last seen)."""
        if client not in self._clients:
            return
        del self._clients[client]
        client.closed = True
        d = client.dev_id
        left = self._dev_counts.get(d, 1) - 1
        if left > 0:
            self._dev_counts[d] = left
        else:
            self._dev_counts.pop(d, None)
        try:
            self.set_subscription(client, ())
        except Exception:  # noqa: BLE001
            log.exception("unsubscribe on close failed")
        if client.authorized and client.user_id > 0:
            key = (d, client.user_id)
            conns = self._users.get(key)
            if conns is not None and client in conns:  # linked (register may have stopped first)
                conns.remove(client)
                if not conns:
                    del self._users[key]
                if self._user_unlinked(client):
                    self._went_offline(d, client.user_id)

    def _went_offline(self, dev_id: int, user_id: int) -> None:
        """The user's last connection anywhere closed: users_time = now, ``offline`` event."""
        try:
            self.store.set_user_time(dev_id, user_id, self.now())
        except Exception:  # noqa: BLE001
            log.exception("users_time update failed")
        self._presence(dev_id, user_id, "offline")

    def _presence(self, dev_id: int, user_id: int, state: str) -> None:
        pipe = f"user_status_{user_id}"
        self._broadcast(dev_id, pipe, {"data": state, "event": state, "message_send_time": self.now(), "pipe": pipe})

    # -- subscriptions -------------------------------------------------------------------------
    def set_subscription(self, client: Client, names: Sequence[str]) -> None:
        """Replace the connection's channel set with ``names`` (already validated, deduplicated).

        Only channels that really change are touched: track_* ``unsubscription`` / ``subscription``
        events go to the other subscribers of that channel, never to the client itself."""
        old = client.pipes
        new = tuple(dict.fromkeys(names)) if not client.closed or not names else ()
        if old == new:
            return
        new_set = set(new)
        old_set = set(old)
        d = client.dev_id
        for p in old:
            if p in new_set:
                continue
            key = (d, p)
            subs = self._pipes.get(key)
            if subs is not None and client in subs:
                del subs[client]
                if not subs:
                    del self._pipes[key]
                self._left_pipe(client, p)
                if p.startswith("track_"):
                    self._track_event(client, p, "unsubscription")
        for p in new:
            if p in old_set:
                continue
            key = (d, p)
            if p.startswith("track_"):
                self._track_event(client, p, "subscription")
            subs = self._pipes.get(key)
            if subs is None:
                subs = self._pipes[key] = {}
            subs[client] = None
            self._joined_pipe(client, p)
        client.pipes = new

    def once_receiving(self, client: Client, pipe: str, then: Callable[[], None]) -> None:
        """Run ``then`` once every message published on ``pipe`` from now on reaches ``client``:
        at once here (a subscription takes effect when it is set). A history read runs this
        way, so that no message falls between the read and the live feed."""
        then()

    def _joined_pipe(self, client: Client, pipe: str) -> None:
        """Hook: ``client`` is now in the subscribers of ``pipe`` (the cluster records it)."""

    def _left_pipe(self, client: Client, pipe: str) -> None:
        """Hook: ``client`` left the subscribers of ``pipe``."""

    def _track_event(self, client: Client, pipe: str, event: str) -> None:
        self._track_broadcast(client.dev_id, pipe, event, client.user_id, client.uuid, client.conn_id)

    def _track_broadcast(self, dev_id: int, pipe: str, event: str, user_id: int, uuid: str,
                         conn_id: str | None) -> None:
        self._broadcast(dev_id, pipe, {"data": {"user_id": user_id, "uuid": uuid}, "event": event,
                                       "message_send_time": self.now(), "pipe": pipe}, conn_id)

    def close_all(self, code: int = 1001, reason: str = "Server shutdown") -> None:
        for c in list(self._clients):
            c.kick(code, reason)
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    # -- keepalive -----------------------------------------------------------------------------
    def _start_keepalive(self, client: Client) -> None:
        """Keepalive for a new connection (nothing without a running loop: in-memory use)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.loop = loop
        client.last_rx = loop.time()
        if self._sweep is None:
            self._sweep = loop.call_later(self.sweep_period, self._keepalive_sweep)

    def _keepalive_sweep(self) -> None:
        """One timer for all connections instead of one per connection (a TimerHandle each
        would cost ~150 bytes per idle connection, bench/README.md §3): ping the silent ones,
        drop those whose ping went unanswered. Stops when no connection is left."""
        self._sweep = None
        loop = self.loop
        if loop is None or not self._clients:
            return
        if self.ping_interval > 0 or self.ping_timeout > 0:
            now = loop.time()
            interval = self.ping_interval
            due = now - interval if interval > 0 else -1.0
            for c in tuple(self._clients):  # a check may kick, which changes _clients
                if c._ping_deadline is not None or (interval > 0 and c.last_rx <= due and c._ping_sent <= due):
                    c.check_keepalive(now, interval)
        if self._clients:
            self._sweep = loop.call_later(self.sweep_period, self._keepalive_sweep)

