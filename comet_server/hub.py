"""In-memory state of comet_server: connections, channels, users, fan-out (design.md §2.2).

Everything here runs on the event-loop thread and is synchronous: writing a frame is a
``transport.write`` of pre-built bytes (see ``Client.write``), so a publish never awaits and the
order of frames on each connection is the order of the calls.

Fan-out: ``publish`` builds the message dict once, wraps it in ``wire.Out`` which serialises it
at most once per protocol format (v4, legacy) into complete WebSocket frame bytes, and writes that
same ``bytes`` object to each subscriber's transport. A subscriber whose transport write buffer
grows past ``max_client_buffer`` is closed with 1013 instead of stalling everybody else.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from . import SERVER_NAME, wire
from .store import Store

from aiohttp import web

__all__ = ["Hub", "Client", "ClientInfo", "HUB_KEY", "DEFAULT_MAX_CLIENT_BUFFER", "TRUST_LOG_LENGTH"]

log = logging.getLogger("comet_server.hub")

DEFAULT_MAX_CLIENT_BUFFER = 4 * 1024 * 1024
#: trust_* channels are always logged; this many messages are kept when no pipes_settings row exists.
TRUST_LOG_LENGTH = 100
#: a kicked client gets this long to flush its close frame before the TCP connection is aborted.
KICK_ABORT_DELAY = 5.0


@dataclass(frozen=True)
class ClientInfo:
    user_id: int
    uuid: str
    user_agent: str
    ip: str
    origin: str
    language: str


class Client:
    """One WebSocket connection. Small on purpose: ``__slots__``, no task of its own."""

    __slots__ = ("ws", "transport", "dev_id", "user_id", "authorized", "uuid", "user_agent", "ip",
                 "origin", "language", "legacy", "pipes", "closed", "hub")

    def __init__(self, hub: "Hub", ws: "web.WebSocketResponse | None", transport: Any, *, dev_id: int,
                 user_id: int, authorized: bool, uuid: str = "", user_agent: str = "", ip: str = "",
                 origin: str = "", language: str = "", legacy: bool = False) -> None:
        self.hub = hub
        self.ws = ws
        # The asyncio transport of the prepared WebSocketResponse (see ws.py: _transport_of), or
        # None when it could not be found; then frames go through ws.send_frame instead.
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
        if tr is None:
            return self._write_fallback(frame)
        if tr.is_closing():
            return False
        try:
            tr.write(frame)
        except Exception:  # noqa: BLE001 - a dying transport must not break a fan-out
            log.debug("write failed", exc_info=True)
            return False
        if tr.get_write_buffer_size() > self.hub.max_client_buffer:
            log.warning("closing slow client dev=%s user=%s uuid=%s: write buffer over %d bytes",
                        self.dev_id, self.user_id, self.uuid, self.hub.max_client_buffer)
            self.kick(1013, "Try again later: client too slow")
        return True

    def _write_fallback(self, frame: bytes) -> bool:
        ws = self.ws
        if ws is None or ws.closed:
            return False
        # Only used if aiohttp's internals changed and no transport was found: strip our header
        # and let aiohttp frame it. Ordering is kept because tasks start in creation order and
        # uncompressed sends complete synchronously in their first step.
        from aiohttp import WSMsgType

        payload = _payload_of(frame)
        try:
            asyncio.get_running_loop().create_task(_safe_send(ws, payload, WSMsgType.TEXT))
        except RuntimeError:
            return False
        return True

    def send(self, out: wire.Out) -> bool:
        return self.write(out.frame(self.legacy))

    def send_obj(self, obj: dict) -> bool:
        return self.write(wire.Out(obj).frame(self.legacy))

    def kick(self, code: int = 1000, reason: str = "") -> None:
        """Close this connection from anywhere (sync): stop all output to it, drop it from the hub,
        send a close frame and close the transport (aborted after ``KICK_ABORT_DELAY``)."""
        if self.closed:
            return
        tr = self.transport
        if tr is not None and not tr.is_closing():
            try:
                tr.write(wire.close_frame(code, reason))
            except Exception:  # noqa: BLE001
                pass
        self.closed = True
        self.hub.unregister(self)
        if tr is not None:
            try:
                tr.close()
                loop = asyncio.get_running_loop()
                loop.call_later(KICK_ABORT_DELAY, _abort_if_open, tr)
            except Exception:  # noqa: BLE001
                pass
        elif self.ws is not None:
            try:
                asyncio.get_running_loop().create_task(self.ws.close(code=code, message=reason.encode()))
            except RuntimeError:
                pass


def _abort_if_open(tr: Any) -> None:
    try:
        if not getattr(tr, "_closed", False):  # selector transports: _closed after connection_lost
            tr.abort()
    except Exception:  # noqa: BLE001
        pass


def _payload_of(frame: bytes) -> bytes:
    n = frame[1] & 0x7F
    if n < 126:
        return frame[2:]
    if n == 126:
        return frame[4:]
    return frame[10:]


async def _safe_send(ws: Any, payload: bytes, opcode: Any) -> None:
    try:
        await ws.send_frame(payload, opcode)
    except Exception:  # noqa: BLE001
        log.debug("fallback send failed", exc_info=True)


class Hub:
    """In-memory connections and channels; see the module docstring and design.md §2.2."""

    def __init__(self, store: Store, password: str, *, server_name: str = SERVER_NAME,
                 max_client_buffer: int = DEFAULT_MAX_CLIENT_BUFFER) -> None:
        self.store = store
        self.password = password
        self.server_name = server_name
        self.max_client_buffer = max_client_buffer
        # (dev_id, pipe) -> ordered set of subscribed clients
        self._pipes: dict[tuple[int, str], dict[Client, None]] = {}
        # (dev_id, user_id) -> authorized connections of that user, in connect order
        self._users: dict[tuple[int, int], list[Client]] = {}
        self._clients: dict[Client, None] = {}
        self._dev_counts: dict[int, int] = {}

    # ==========================================================================================
    # Public API (design.md §2.2): CometQL, HTTP publish and ws.py call these.

    def publish(self, dev_id: int, pipe: str, event: str, data: str, *, user_id: int | None = None,
                exclude: Client | None = None) -> int:
        """Send a channel message to every subscriber (but ``exclude``); returns deliveries.

        Logs it first when the channel has history (pipes_settings length > 0, or trust_*), and
        then adds ``"history_id"`` (its position in the log; comet_server only). ``user_id`` None
        (CometQL / HTTP) leaves the key out.
        """
        return self.publish_logged(dev_id, pipe, event, data, user_id=user_id, exclude=exclude)[0]

    def publish_logged(self, dev_id: int, pipe: str, event: str, data: str, *,
                       user_id: int | None = None, exclude: Client | None = None) -> tuple[int, str | None]:
        """``publish``, also returning the history_id (None when the channel keeps no history)."""
        t = wire.now()
        obj: dict[str, Any] = {"data": data, "event": event, "message_send_time": t, "pipe": pipe}
        if user_id is not None:
            obj["user_id"] = user_id
        length = self.history_length(dev_id, pipe)
        history_id = None
        if length > 0:
            history_id = obj["history_id"] = self.store.add_history(dev_id, pipe, event, data, user_id or 0, t, length)
        return self._fanout(dev_id, pipe, wire.Out(obj), exclude), history_id

    def send_to_user(self, dev_id: int, user_id: int, event: str, data: str) -> int:
        """Personal message on pipe ``msg`` to every authorized connection of the user; queued in
        the store when it reaches none (delivered, all and in order, on the next connect)."""
        t = wire.now()
        out = wire.Out({"data": data, "event": event, "message_send_time": t, "pipe": "msg"})
        n = 0
        for c in list(self._users.get((dev_id, user_id), ())):
            if c.send(out):
                n += 1
        if n == 0:
            self.store.queue_user_message(dev_id, user_id, event, data, t)
        return n

    def disconnect_user(self, dev_id: int, user_id: int) -> int:
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
        return bool(self._users.get((dev_id, user_id)))

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

    def _fanout(self, dev_id: int, pipe: str, out: wire.Out, exclude: Client | None = None) -> int:
        subs = self._pipes.get((dev_id, pipe))
        if not subs:
            return 0
        n = 0
        # Snapshot: a write may kick a slow client, which removes it from ``subs``.
        for c in tuple(subs):
            if c is exclude:
                continue
            if c.write(out.frame(c.legacy)):
                n += 1
        return n

    # -- connections ---------------------------------------------------------------------------
    def register(self, client: Client) -> None:
        """A connection passed the handshake (its serverInfo is already written).

        Authorized: deliver the offline queue (all, in order, ``fromQueue``; each row deleted only
        once written), then link the user, firing ``online`` on the first connection."""
        self._clients[client] = None
        self._dev_counts[client.dev_id] = self._dev_counts.get(client.dev_id, 0) + 1
        if not client.authorized or client.user_id <= 0:
            return
        self.deliver_queue(client)
        if client.closed:
            return
        key = (client.dev_id, client.user_id)
        conns = self._users.get(key)
        if conns is None:
            self._users[key] = [client]
            self.store.set_user_time(client.dev_id, client.user_id, 0)
            self._presence(client.dev_id, client.user_id, "online")
        else:
            conns.append(client)

    def deliver_queue(self, client: Client) -> int:
        msgs = self.store.queued_user_messages(client.dev_id, client.user_id)
        if not msgs:
            return 0
        written: list[str] = []
        for m in msgs:
            obj = {"data": m.data, "event": m.event, "fromQueue": True, "message_send_time": m.time,
                   "pipe": "msg"}
            if not client.send_obj(obj):
                break
            written.append(m.id)
        if written:
            self.store.delete_user_messages(client.dev_id, client.user_id, written)
        return len(written)

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
            if conns is not None:
                try:
                    conns.remove(client)
                except ValueError:
                    pass
                if not conns:
                    del self._users[key]
                    try:
                        self.store.set_user_time(d, client.user_id, wire.now())
                    except Exception:  # noqa: BLE001
                        log.exception("users_time update failed")
                    self._presence(d, client.user_id, "offline")

    def _presence(self, dev_id: int, user_id: int, state: str) -> None:
        pipe = f"user_status_{user_id}"
        self._fanout(dev_id, pipe, wire.Out(
            {"data": state, "event": state, "message_send_time": wire.now(), "pipe": pipe}))

    # -- subscriptions -------------------------------------------------------------------------
    def set_subscription(self, client: Client, names: "tuple[str, ...] | list[str]") -> None:
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
            if subs is not None:
                subs.pop(client, None)
                if not subs:
                    del self._pipes[key]
                if p.startswith("track_") and subs:
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
        client.pipes = new

    def _track_event(self, client: Client, pipe: str, event: str) -> None:
        self._fanout(client.dev_id, pipe, wire.Out({
            "data": {"user_id": client.user_id, "uuid": client.uuid}, "event": event,
            "message_send_time": wire.now(), "pipe": pipe}), exclude=client)

    def close_all(self, code: int = 1001, reason: str = "Server shutdown") -> None:
        for c in list(self._clients):
            c.kick(code, reason)


#: where the aiohttp Application keeps the Hub (``app[HUB_KEY]``).
HUB_KEY: "web.AppKey[Hub]" = web.AppKey("comet_hub", Hub)
