"""The Hub of one node of a comet_server cluster over Redis (design.md §5).

Each node keeps its own connections exactly as ``hub.Hub`` does and writes frames the same way;
Redis carries what crosses nodes:

* fan-out: a channel message is PUBLISHed on ``P{D}:ch:{pipe}``; a node SUBSCRIBEs only to the
  channels it has local subscribers for (and ``P{D}:uch:{user_id}`` for its local users:
  personal messages and kicks). The publishing node writes to its own subscribers directly and
  ignores its own echo.
* presence: who is subscribed where (``P{D}:subs:{pipe}``, field ``node/conn`` -> info), the
  pipes with subscribers (``P{D}:pipes``), each user's connections (``P{D}:user:{user_id}``) and
  each node's connections (``Pconns:{node}``, what to clean up when it dies). Counts, track_*
  lists and online status are read from there, so they are true across the cluster; the online /
  offline and track_* leave decisions are atomic Redis replies (HDEL says 1 to one caller only),
  so each event fires once.
* liveness: every ``HEARTBEAT`` s a node refreshes ``Pnode:{node}`` (TTL ``NODE_TTL``) and its
  membership of ``Pnodes``. A node whose key expired (kill -9, partition) is claimed by the first
  survivor that removes it from ``Pnodes`` (SREM answers 1 once); that survivor removes its
  connections and fires their leave / offline events. Bound: ``NODE_TTL + HEARTBEAT`` s.
* Redis outages: commands fail fast (redis_store.connect_sync); the pub/sub and heartbeat tasks
  retry with backoff (``BACKOFF``). A failed presence write marks the node dirty, and the next
  successful heartbeat rewrites its whole presence from its local state (``_resync``), as it
  does when it finds itself missing from ``Pnodes`` (swept while cut off, or Redis lost data).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from typing import Any, Callable, Sequence

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import wire
from .hub import Client, ClientInfo, Hub
from .ratelog import RateLimitedLog
from .redis_store import CONNECT_TIMEOUT, RedisStore

__all__ = ["RedisHub", "default_node_id", "HEARTBEAT", "NODE_TTL", "PRESENCE_BOUND"]

log = logging.getLogger("comet_server.cluster")
redis_log = RateLimitedLog(log)

#: seconds between two refreshes of a node's liveness key (and two sweeps for dead nodes)
HEARTBEAT = 1.0
#: a node's liveness key expires this long after its last refresh
NODE_TTL = 3.0
#: a killed node's connections leave the presence within this many seconds (documented bound)
PRESENCE_BOUND = NODE_TTL + 2 * HEARTBEAT
#: history reads one channel may hold back while its SUBSCRIBE is unconfirmed (once_receiving)
MAX_PENDING_READS = 256
#: reconnect delays after a Redis failure (the last one repeats)
BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)
#: after an outage, the track_*, offline and online events of our connections the other nodes
#: missed are announced to them this long after Redis answers again: every node's subscriber
#: connection has retried by then
ANNOUNCE_DELAY = BACKOFF[-1] + HEARTBEAT


def default_node_id() -> str:
    """Unique enough for a cluster: host name, pid and random bits."""
    host = "".join(ch for ch in socket.gethostname() if ch.isalnum() or ch in "-_")[:24] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisHub(Hub):
    """``HubAPI`` for one node of a cluster; see the module docstring."""

    store_away: tuple[type[BaseException], ...] = (redis.RedisError,)

    def __init__(self, store: RedisStore, password: str, *, node_id: str | None = None, **kw: Any) -> None:
        super().__init__(store, password, **kw)
        self.node_id = node_id or default_node_id()
        # serverInfo's "server" names the node: which one a client reached, in its own log
        self.server_name = f"{self.server_name} node {self.node_id}"
        self.prefix = store.prefix
        self.r: Any = store.r  # synchronous: every write of the hub, in call order
        self._url = store.url
        self._wanted: set[str] = {self._ctl_channel()}
        self._subscribed: set[str] = set()  # SUBSCRIBE sent on the current connection
        self._confirmed: set[str] = set()  # ... and confirmed by Redis: messages reach us
        # channel -> (client, pipe) whose subscriber entry waits for that confirmation
        self._pending_joins: dict[str, list[tuple[Client, str]]] = {}
        # channel -> history reads that wait for the same confirmation (once_receiving)
        self._pending_reads: dict[str, list[Callable[[], None]]] = {}
        self._sub_changed = asyncio.Event()
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._dirty = False
        self.redis_ok = False
        # (conn_id, dev_id, pipe): track_* joins whose ``subscription`` event reached local
        # watchers only (Redis was away); announced to the other nodes after the next _resync
        self._unannounced: set[tuple[str, int, str]] = set()
        # (dev_id, pipe, message): leave / offline events of our connections that closed while
        # Redis was away, for the other nodes only, found by _resync and announced with the joins
        self._missed: list[tuple[int, str, dict]] = []
        self._announce_timer: asyncio.TimerHandle | None = None

    # -- names ---------------------------------------------------------------------------------
    def _field(self, client: Client) -> str:
        return f"{self.node_id}/{client.conn_id}"

    def _k(self, dev_id: int, name: str) -> str:
        return f"{self.prefix}{int(dev_id)}:{name}"

    def _pipe_channel(self, dev_id: int, pipe: str) -> str:
        return self._k(dev_id, "ch:" + pipe)

    def _user_channel(self, dev_id: int, user_id: int) -> str:
        return self._k(dev_id, f"uch:{user_id}")

    def _parse_channel(self, channel: str) -> tuple[str, int, str]:
        """``P{D}:ch:{pipe}`` / ``P{D}:uch:{user_id}`` -> (kind, dev_id, pipe or user_id)."""
        dev, kind, name = channel[len(self.prefix):].split(":", 2)
        return kind, int(dev), name

    def _ctl_channel(self) -> str:
        return self.prefix + "ctl"

    def _node_key(self, node: str) -> str:
        return f"{self.prefix}node:{node}"

    def _conns_key(self, node: str) -> str:
        return f"{self.prefix}conns:{node}"

    # ==========================================================================================
    # Lifecycle

    async def start(self) -> None:
        """Join the cluster: clean up what a previous run under this node id left, then run the
        heartbeat and the pub/sub reader. Returns at once when Redis is down (they retry)."""
        try:
            self._heartbeat_once(first=True)
        except redis.RedisError as e:
            log.warning("redis %s unreachable at start (%s); retrying in the background", self._url, e)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeat_loop()), loop.create_task(self._pubsub_loop()),
                       loop.create_task(self._subscription_loop())]

    async def stop(self) -> None:
        """Leave the cluster (after close_all): our key and membership go at once."""
        if self._announce_timer is not None:
            self._announce_timer.cancel()
            self._announce_timer = None
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except BaseException:  # noqa: BLE001
                pass
        try:
            p = self.r.pipeline()
            p.delete(self._node_key(self.node_id), self._conns_key(self.node_id))
            p.srem(self.prefix + "nodes", self.node_id)
            p.execute()
        except redis.RedisError:
            pass
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except Exception:  # noqa: BLE001
                pass

    def _redis_failed(self, what: str, exc: BaseException) -> None:
        self._dirty = True
        if self.redis_ok:
            log.warning("redis lost (%s: %s)", what, exc)
        self.redis_ok = False
        redis_log.report("redis " + what, "redis %s failed: %s", what, exc)

    # -- heartbeat, sweeping dead nodes ----------------------------------------------------------
    def _heartbeat_once(self, first: bool = False) -> None:
        nodes_key = self.prefix + "nodes"
        if first:
            # A previous process with this node id died without cleaning up: its connections
            # are gone, so they leave now (events fire once, like any dead node's).
            if self.r.srem(nodes_key, self.node_id) or self.r.exists(self._conns_key(self.node_id)):
                self._sweep_presence(self.node_id)
        p = self.r.pipeline()
        p.set(self._node_key(self.node_id), "1", px=int(NODE_TTL * 1000))
        p.sadd(nodes_key, self.node_id)
        _, added = p.execute()
        was_ok = self.redis_ok
        self.redis_ok = True
        if (added and not first) or self._dirty:
            self._dirty = False
            self._resync(swept=bool(added) and not first)
        if not was_ok and not first:
            log.warning("redis back: presence of node %s rewritten", self.node_id)
        for node in self.r.smembers(nodes_key):
            if node != self.node_id and not self.r.exists(self._node_key(node)):
                if self.r.srem(nodes_key, node):  # we claimed it: nobody else sweeps it
                    log.info("node %s is gone: its connections leave", node)
                    self._sweep_presence(node)

    async def _heartbeat_loop(self) -> None:
        failures = 0
        while True:
            try:
                self._heartbeat_once()
                failures = 0
                await asyncio.sleep(HEARTBEAT)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Redis down or anything else: retry, never die
                self._redis_failed("heartbeat", e)
                await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1

    def _sweep_presence(self, node: str, keep: "dict[str, Client] | None" = None, *, here: bool = True) -> None:
        """Remove ``node``'s connections (but the live ones in ``keep``, field -> Client) from
        the presence; fire track_* ``unsubscription`` and ``offline`` where this call removed
        the last trace. A kept connection only loses the channels it has left since.
        ``here=False`` (our own resync): the events go to the other nodes only, since the local
        watchers had them when the connection closed or left."""
        keep = keep or {}

        def announce(dev_id: int, pipe: str, obj: dict) -> None:
            if here:
                self._event_broadcast(dev_id, pipe, obj, None)
            else:
                self._missed.append((dev_id, pipe, obj))

        conns = self.r.hgetall(self._conns_key(node))
        for conn, raw in conns.items():
            field = f"{node}/{conn}"
            try:
                info = json.loads(raw)
                dev_id, user_id, uuid, pipes = int(info["d"]), int(info["u"]), str(info["id"]), info["p"]
            except (ValueError, KeyError, TypeError):
                continue
            live = keep.get(field)
            if live is not None:
                pipes = [p for p in pipes if p not in live.pipes]
            for pipe in pipes:
                if self._redis_leave_pipe(dev_id, pipe, field) and pipe.startswith("track_"):
                    announce(dev_id, pipe, self._track_obj(pipe, "unsubscription", user_id, uuid))
            if live is None and user_id > 0 and self._redis_unlink_user(dev_id, user_id, field):
                if here:
                    self._went_offline(dev_id, user_id)
                else:
                    self.store.set_user_time(dev_id, user_id, self.now())
                    announce(dev_id, f"user_status_{user_id}", self._status_obj(user_id, "offline"))
            if live is None:
                self.r.hdel(self._conns_key(node), conn)

    def _resync(self, swept: bool = False) -> None:
        """Rewrite this node's presence from its local state: what Redis holds of connections
        that closed meanwhile leaves (with its events), every live connection is written again.

        track_* joins the other nodes missed are announced (``subscription``): the ones made while
        Redis was away, to the other nodes only (local watchers saw them then), ``ANNOUNCE_DELAY``
        s later; and, after this node was swept as dead (``swept``), every join Redis had lost, to
        everyone at once (the sweep's ``unsubscription`` may have reached local watchers too).
        ``online`` goes the same two ways: to everyone after a sweep, else (a user linked while
        Redis was away) to the other nodes only."""
        self._sweep_presence(self.node_id, keep={self._field(c): c for c in self._clients if not c.closed}, here=False)
        for c in list(self._clients):
            if c.closed:
                continue
            self._write_conn(c)
            for pipe in c.pipes:
                added = self._redis_join_pipe(c, pipe)
                if swept and added and pipe.startswith("track_") and (c.conn_id, c.dev_id, pipe) not in self._unannounced:
                    self._track_broadcast(c.dev_id, pipe, "subscription", c.user_id, c.uuid, c.conn_id)
            if self._is_linked(c) and self._redis_link_user(c):
                self.store.set_user_time(c.dev_id, c.user_id, 0)
                if swept:
                    self._presence(c.dev_id, c.user_id, "online")
                else:  # linked while Redis was away: the local watchers heard it then
                    self._missed.append((c.dev_id, f"user_status_{c.user_id}", self._status_obj(c.user_id, "online")))
        if (self._unannounced or self._missed) and self._announce_timer is None:
            self._announce_timer = asyncio.get_running_loop().call_later(ANNOUNCE_DELAY, self._announce_missed)

    def _announce_missed(self) -> None:
        """Publish the events of our connections the other nodes missed during an outage (to
        them only: our echo is ignored): leaves, offlines and onlines found by _resync, then the joins.
        Waiting ``ANNOUNCE_DELAY`` lets every node's subscriber connection, retrying with
        ``BACKOFF``, come back first; what fails waits for the next resync."""
        self._announce_timer = None
        while self._missed:
            dev_id, pipe, obj = self._missed[0]
            try:
                self._publish(self._pipe_channel(dev_id, pipe), {"o": obj})
            except redis.RedisError as e:
                self._redis_failed("announce", e)
                return
            del self._missed[0]
        live = {c.conn_id: c for c in self._clients if not c.closed}
        for key in sorted(self._unannounced):
            conn_id, dev_id, pipe = key
            c = live.get(conn_id)
            if c is None or pipe not in c.pipes:
                self._unannounced.discard(key)
                continue
            try:
                self._publish(self._pipe_channel(dev_id, pipe), {"o": self._track_obj(pipe, "subscription", c.user_id, c.uuid)})
            except redis.RedisError as e:
                self._redis_failed("announce", e)
                return
            self._unannounced.discard(key)

    # -- pub/sub ---------------------------------------------------------------------------------
    async def _pubsub_loop(self) -> None:
        failures = 0
        while True:
            client = None
            try:
                client = aioredis.Redis.from_url(self._url, decode_responses=True,
                                                 socket_connect_timeout=CONNECT_TIMEOUT,
                                                 retry=Retry(NoBackoff(), 0))
                pubsub = client.pubsub()
                self._subscribed = set()
                self._confirmed = set()
                wanted = sorted(self._wanted)
                await pubsub.subscribe(*wanted)
                self._subscribed = set(wanted)
                self._pubsub = pubsub
                self._sub_changed.set()
                failures = 0
                while True:
                    msg = await pubsub.get_message(timeout=None)
                    if msg is None:
                        continue
                    kind = msg.get("type")
                    if kind == "message":
                        self._on_message(msg["channel"], msg["data"])
                    elif kind == "subscribe":
                        self._subscription_confirmed(msg["channel"])
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - reconnect, never die
                self._pubsub = None
                self._redis_failed("pub/sub", e)
                if client is not None:
                    try:
                        await client.aclose()
                    except Exception:  # noqa: BLE001
                        pass
                await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1

    async def _subscription_loop(self) -> None:
        """Follow interest: SUBSCRIBE / UNSUBSCRIBE so that the node's Redis channels are the ones
        it has local subscribers (or users) for."""
        while True:
            await self._sub_changed.wait()
            self._sub_changed.clear()
            pubsub = self._pubsub
            if pubsub is None:
                continue  # the reader subscribes to all wanted channels when it reconnects
            try:
                add = sorted(self._wanted - self._subscribed)
                drop = sorted(self._subscribed - self._wanted)
                if add:
                    self._subscribed.update(add)
                    await pubsub.subscribe(*add)
                if drop:
                    self._subscribed.difference_update(drop)
                    self._confirmed.difference_update(drop)
                    await pubsub.unsubscribe(*drop)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the reader reconnects and subscribes again
                self._redis_failed("subscribe", e)

    def _subscription_confirmed(self, channel: str) -> None:
        """Redis delivers ``channel`` to us from now on: announce the subscribers that waited,
        and answer the history reads that waited."""
        self._confirmed.add(channel)
        waiting = self._pending_joins.pop(channel, ())
        try:
            for client, pipe in waiting:
                if not client.closed and pipe in client.pipes:
                    self._redis_join_pipe(client, pipe)
        except redis.RedisError as e:
            self._redis_failed("join", e)
        self._run_reads(channel)
        if channel.startswith(self.prefix) and channel != self._ctl_channel():
            kind, dev_id, name = self._parse_channel(channel)
            if kind == "uch":
                self._deliver_missed(dev_id, int(name))

    def _deliver_missed(self, dev_id: int, user_id: int) -> None:
        """Our user channel just started: a personal message sent from another node after the
        user's connection here was counted online, and before that, reached the queue only. Its
        connections here get what is queued and was not written to them yet."""
        try:
            for client in list(self._users.get((dev_id, user_id), ())):
                if not client.closed:
                    self.deliver_queue(client, skip=client.personal_in_flight())
        except redis.RedisError as e:
            self._redis_failed("queue", e)

    def once_receiving(self, client: Client, pipe: str, then: Callable[[], None]) -> None:
        """A subscription reaches messages from other nodes only once Redis confirms our
        SUBSCRIBE. A history read made before that (a client's recovery right after it
        subscribed) waits for it: a message published in between is then in the history read or
        in the live feed (the client drops the copy it gets twice, by history_id). Without that,
        a node change could lose it. Past MAX_PENDING_READS waiting on one channel, reads run at
        once (a client flooding pipe_log during a Redis outage must not grow memory)."""
        channel = self._pipe_channel(client.dev_id, pipe)
        waiting = self._pending_reads.get(channel)
        if channel in self._confirmed or pipe not in client.pipes or \
                (waiting is not None and len(waiting) >= MAX_PENDING_READS):
            then()
            return
        self._pending_reads.setdefault(channel, []).append(then)

    def _run_reads(self, channel: str) -> None:
        for then in self._pending_reads.pop(channel, ()):
            try:
                then()
            except Exception:  # noqa: BLE001 - one failed read must not stop the others
                redis_log.report("history read", "history read on %r failed", channel[:100],
                                 exc_info=True, level=logging.ERROR)

    def _want(self, channel: str, wanted: bool) -> None:
        if wanted == (channel in self._wanted):
            return
        if wanted:
            self._wanted.add(channel)
        else:
            self._wanted.discard(channel)
            self._run_reads(channel)  # nobody here waits for that channel's messages any more
        self._sub_changed.set()

    def _on_message(self, channel: str, data: str) -> None:
        try:
            msg = json.loads(data)
            if msg.get("n") == self.node_id:
                return  # our own publish: already written to our subscribers
            kind, dev_id, name = self._parse_channel(channel)
            obj = msg.get("o")
            if kind == "ch":
                if not isinstance(obj, dict) or obj.get("pipe") != name:
                    raise ValueError("not a message of this channel")
                self._fanout(dev_id, name, wire.Out(obj))
            elif kind != "uch":
                raise ValueError("unknown channel kind")
            elif msg.get("k") == "msg":
                if not isinstance(obj, dict) or obj.get("pipe") != "msg" or not isinstance(obj.get("uuid"), str):
                    raise ValueError("not a personal message")
                self._deliver_personal(dev_id, int(name), obj)
            elif msg.get("k") == "kick":
                self._kick_local_user(dev_id, int(name))
        except Exception:  # noqa: BLE001 - one bad message must not stop the reader
            redis_log.report("bad cluster message", "cluster message on %r failed", channel[:100],
                             exc_info=True, level=logging.ERROR)

    # ==========================================================================================
    # Sending

    def _publish(self, channel: str, msg: dict, count_key: str | None = None) -> int:
        """PUBLISH (raises on a Redis failure); with ``count_key`` also return its HLEN."""
        msg["n"] = self.node_id
        payload = json.dumps(msg, ensure_ascii=False, separators=(",", ":"))
        if count_key is None:
            self.r.publish(channel, payload)
            return 0
        p = self.r.pipeline(transaction=False)
        p.publish(channel, payload)
        p.hlen(count_key)
        return int(p.execute()[1])

    def _broadcast(self, dev_id: int, pipe: str, obj: dict, exclude: str | None = None) -> int:
        """Redis first (a failure raises: the message reaches nobody and the sender learns it),
        then our own subscribers. Returns deliveries counted over the whole cluster."""
        everywhere = self._publish(self._pipe_channel(dev_id, pipe), {"o": obj}, self._k(dev_id, "subs:" + pipe))
        here = self._pipes.get((dev_id, pipe))
        remote = max(0, everywhere - (len(here) if here else 0))
        return self._fanout(dev_id, pipe, wire.Out(obj), exclude) + remote

    def _event_broadcast(self, dev_id: int, pipe: str, obj: dict, exclude: str | None) -> None:
        """Presence and track_* events: local subscribers get them even when Redis is down."""
        try:
            self._broadcast(dev_id, pipe, obj, exclude)
        except redis.RedisError as e:
            self._redis_failed("event publish", e)
            self._fanout(dev_id, pipe, wire.Out(obj), exclude)

    def _status_obj(self, user_id: int, state: str) -> dict:
        return {"data": state, "event": state, "message_send_time": self.now(), "pipe": f"user_status_{user_id}"}

    def _presence(self, dev_id: int, user_id: int, state: str) -> None:
        self._event_broadcast(dev_id, f"user_status_{user_id}", self._status_obj(user_id, state), None)

    def _track_obj(self, pipe: str, event: str, user_id: int, uuid: str) -> dict:
        return {"data": {"user_id": user_id, "uuid": uuid}, "event": event, "message_send_time": self.now(), "pipe": pipe}

    def _track_broadcast(self, dev_id: int, pipe: str, event: str, user_id: int, uuid: str,
                         conn_id: str | None) -> None:
        obj = self._track_obj(pipe, event, user_id, uuid)
        key = (conn_id or "", dev_id, pipe)
        if event == "unsubscription":
            self._unannounced.discard(key)  # a join the other nodes missed needs no announcing now
        try:
            self._broadcast(dev_id, pipe, obj, conn_id)
        except redis.RedisError as e:
            self._redis_failed("event publish", e)
            self._fanout(dev_id, pipe, wire.Out(obj), conn_id)
            if event == "subscription" and conn_id is not None:
                self._unannounced.add(key)

    def _send_personal(self, dev_id: int, user_id: int, obj: dict) -> int:
        everywhere = self._publish(self._user_channel(dev_id, user_id), {"k": "msg", "o": obj},
                                   self._k(dev_id, f"user:{user_id}"))
        here = len(self._users.get((dev_id, user_id), ()))
        return self._deliver_personal(dev_id, user_id, obj) + max(0, everywhere - here)

    def disconnect_user(self, dev_id: int, user_id: int) -> int:
        everywhere = self._publish(self._user_channel(dev_id, user_id), {"k": "kick"},
                                   self._k(dev_id, f"user:{user_id}"))
        here = self._kick_local_user(dev_id, user_id)
        return here + max(0, everywhere - here)

    # ==========================================================================================
    # Queries: the whole cluster

    def subscriber_count(self, dev_id: int, pipe: str) -> int:
        return int(self.r.hlen(self._k(dev_id, "subs:" + pipe)))

    def subscribers(self, dev_id: int, pipe: str) -> list[ClientInfo]:
        out = []
        for raw in self.r.hvals(self._k(dev_id, "subs:" + pipe)):
            try:
                uid, uuid, ua, ip, origin, lang = json.loads(raw)
                out.append(ClientInfo(int(uid), uuid, ua, ip, origin, lang))
            except (ValueError, TypeError):
                continue
        return out

    def pipes(self, dev_id: int) -> dict[str, int]:
        names = sorted(self.r.smembers(self._k(dev_id, "pipes")))
        if not names:
            return {}
        p = self.r.pipeline(transaction=False)
        for n in names:
            p.hlen(self._k(dev_id, "subs:" + n))
        return {n: int(c) for n, c in zip(names, p.execute()) if c}

    def user_connection_count(self, dev_id: int, user_id: int) -> int:
        return int(self.r.hlen(self._k(dev_id, f"user:{user_id}")))

    # ==========================================================================================
    # Presence writes (hooks of Hub). A Redis failure never breaks a connection: the node is
    # marked dirty and the next heartbeat rewrites its presence.

    def _write_conn(self, client: Client, *, user_id: int | None = None,
                    pipes: "Sequence[str] | None" = None) -> None:
        """Record ``client`` in this node's connections: what a successor sweeps if we die."""
        if user_id is None:
            user_id = client.user_id if self._is_linked(client) else 0
        info = {"d": client.dev_id, "u": user_id, "id": client.uuid,
                "p": list(client.pipes if pipes is None else pipes)}
        self.r.hset(self._conns_key(self.node_id), client.conn_id, json.dumps(info))

    def _is_linked(self, client: Client) -> bool:
        return client in self._users.get((client.dev_id, client.user_id), ())

    # The connection's record is written *before* the presence entries it covers (user link,
    # subscriber entries): a node killed between two writes leaves nothing its successor cannot
    # sweep. A record naming more than is linked is harmless: the sweep's HDEL then removes
    # nothing and fires nothing.

    def register(self, client: Client) -> None:
        if not client.closed:
            try:
                self._write_conn(client, user_id=client.user_id if client.authorized and client.user_id > 0 else 0)
            except redis.RedisError as e:
                self._redis_failed("register", e)
        super().register(client)

    def unregister(self, client: Client) -> None:
        known = client in self._clients
        super().unregister(client)
        if self._unannounced:
            self._unannounced = {k for k in self._unannounced if k[0] != client.conn_id}
        if known:
            try:
                self.r.hdel(self._conns_key(self.node_id), client.conn_id)
            except redis.RedisError as e:
                self._redis_failed("unregister", e)

    def set_subscription(self, client: Client, names: Sequence[str]) -> None:
        before = client.pipes
        known = client in self._clients
        try:
            if known and not set(names) <= set(before):
                self._write_conn(client, pipes=tuple(dict.fromkeys((*before, *names))))
        except redis.RedisError as e:
            self._redis_failed("subscription", e)
        super().set_subscription(client, names)
        if client.pipes != before and known:
            try:
                self._write_conn(client)
            except redis.RedisError as e:
                self._redis_failed("subscription", e)

    def _joined_pipe(self, client: Client, pipe: str) -> None:
        channel = self._pipe_channel(client.dev_id, pipe)
        self._want(channel, True)
        if channel not in self._confirmed:
            # Counted in Redis only once messages from other nodes reach this node: a publisher
            # that sees the subscriber in pipe_count is sure to reach it.
            self._pending_joins.setdefault(channel, []).append((client, pipe))
            return
        try:
            self._redis_join_pipe(client, pipe)
        except redis.RedisError as e:
            self._redis_failed("join", e)

    def _left_pipe(self, client: Client, pipe: str) -> None:
        channel = self._pipe_channel(client.dev_id, pipe)
        waiting = self._pending_joins.get(channel)
        if waiting:
            waiting[:] = [(c, p) for c, p in waiting if c is not client]
        if (client.dev_id, pipe) not in self._pipes:
            self._want(channel, False)
            self._pending_joins.pop(channel, None)
        try:
            self._redis_leave_pipe(client.dev_id, pipe, self._field(client))
        except redis.RedisError as e:
            self._redis_failed("leave", e)

    def _redis_join_pipe(self, client: Client, pipe: str) -> bool:
        """True when this call created the subscriber entry (it was not in Redis)."""
        info = json.dumps([client.user_id, client.uuid, client.user_agent, client.ip, client.origin, client.language])
        p = self.r.pipeline()
        p.hset(self._k(client.dev_id, "subs:" + pipe), self._field(client), info)
        p.sadd(self._k(client.dev_id, "pipes"), pipe)
        return bool(p.execute()[0])

    def _redis_leave_pipe(self, dev_id: int, pipe: str, field: str) -> bool:
        """True when this call removed the entry (the leave is ours to announce)."""
        p = self.r.pipeline()
        subs = self._k(dev_id, "subs:" + pipe)
        p.hdel(subs, field)
        p.hlen(subs)
        removed, left = p.execute()
        if not left:
            # a join racing in between re-adds the name with its own SADD
            self.r.srem(self._k(dev_id, "pipes"), pipe)
        return bool(removed)

    def _user_linked(self, client: Client) -> bool:
        self._want(self._user_channel(client.dev_id, client.user_id), True)
        try:
            return self._redis_link_user(client)
        except redis.RedisError as e:
            self._redis_failed("online", e)
            return super()._user_linked(client)

    def _redis_link_user(self, client: Client) -> bool:
        p = self.r.pipeline()
        key = self._k(client.dev_id, f"user:{client.user_id}")
        p.hset(key, self._field(client), "1")
        p.hlen(key)
        added, count = p.execute()
        return bool(added) and int(count) == 1

    def _user_unlinked(self, client: Client) -> bool:
        if (client.dev_id, client.user_id) not in self._users:
            self._want(self._user_channel(client.dev_id, client.user_id), False)
        try:
            return self._redis_unlink_user(client.dev_id, client.user_id, self._field(client))
        except redis.RedisError as e:
            self._redis_failed("offline", e)
            return super()._user_unlinked(client)

    def _redis_unlink_user(self, dev_id: int, user_id: int, field: str) -> bool:
        p = self.r.pipeline()
        key = self._k(dev_id, f"user:{user_id}")
        p.hdel(key, field)
        p.hlen(key)
        removed, count = p.execute()
        return bool(removed) and int(count) == 0

    def _went_offline(self, dev_id: int, user_id: int) -> None:
        try:
            self.store.set_user_time(dev_id, user_id, self.now())
        except redis.RedisError as e:
            self._redis_failed("users_time", e)
        self._presence(dev_id, user_id, "offline")
