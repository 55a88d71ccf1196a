"""Shared state of a comet_server cluster in Redis (design.md §5): the ``StoreAPI`` of store.py.

Uses redis-py's *synchronous* client on purpose: ``StoreAPI`` is synchronous (the Hub, CometQL and
the WebSocket commands call it inline, e.g. a publish returns its history_id in the same step),
and a local Redis answers in tens of microseconds. The cluster's pub/sub, heartbeat and
reconnection (redis_hub.py) use redis-py's asyncio client. Short socket timeouts and a single
immediate retry keep a Redis outage from stalling the event loop: a call then raises
``redis.RedisError``, which the layers above answer with an error.

Keys (``P`` = the key prefix, default ``comet:``; ``D`` = dev_id):

========================  ======  =========================================================
``P{D}:auth``             hash    user_id -> users_auth hash
``P{D}:udata``            hash    user_id -> users_data
``P{D}:plen``             hash    pipe -> pipes_settings length
``P{D}:hist:{pipe}``      list    ``"<history_id>:<json [time, event, data, user_id]>"``, oldest first
``P{D}:histpipe``         hash    history_id -> pipe (DELETE FROM pipes_messages by id)
``Phistseq``              string  INCR: history_ids, increasing across the whole cluster
``P{D}:umsg:{user_id}``   hash    message id -> json [time, event, data] (personal queue)
``Pumsgseq``              string  INCR: personal message ids
``Pumsgtime``             zset    ``"{D}:{user_id}:{id}"`` scored by time (the purge)
``P{D}:utime``            hash    user_id -> users_time
``P{D}:revoked``          zset    revoked tokens, scored by ``Prevseq`` (revocation order)
========================  ======  =========================================================
"""

from __future__ import annotations

import json
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .store import MAX_PIPE_LENGTH, HistoryItem, QueuedMessage

__all__ = ["RedisStore", "connect_sync", "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "comet:"
#: a call waits at most this long for Redis (connect, then each reply) before it fails
CONNECT_TIMEOUT = 0.5
REPLY_TIMEOUT = 2.0

# KEYS: seq, list, index; ARGV: pipe, json item, length. Append, then trim to the newest `length`.
_ADD_HISTORY = """
local id = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], id .. ':' .. ARGV[2])
redis.call('HSET', KEYS[3], id, ARGV[1])
local keep = tonumber(ARGV[3])
while redis.call('LLEN', KEYS[2]) > keep do
  local old = redis.call('LPOP', KEYS[2])
  redis.call('HDEL', KEYS[3], string.match(old, '^(%d+):'))
end
return id
"""
# KEYS: list, index; ARGV: keep (0 = all go). Trim the log, dropping the index entries too.
_TRIM_HISTORY = """
local keep = tonumber(ARGV[1])
while redis.call('LLEN', KEYS[1]) > keep do
  local old = redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], string.match(old, '^(%d+):'))
end
return 1
"""
# KEYS: index; ARGV: history id, list key prefix. Remove one logged message by its id.
_DELETE_HISTORY_ITEM = """
local pipe = redis.call('HGET', KEYS[1], ARGV[1])
if not pipe then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local list = ARGV[2] .. pipe
local head = ARGV[1] .. ':'
for _, item in ipairs(redis.call('LRANGE', list, 0, -1)) do
  if string.sub(item, 1, #head) == head then
    redis.call('LREM', list, 1, item)
    return 1
  end
end
return 0
"""
# KEYS: seq, queue hash, time zset; ARGV: json item, time, zset member prefix.
_QUEUE_MESSAGE = """
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3] .. id)
return id
"""


def connect_sync(url: str) -> "redis.Redis":
    """A synchronous client that fails fast: one immediate retry (a stale pooled connection
    after a Redis restart), then the error."""
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT,
                                socket_timeout=REPLY_TIMEOUT, retry=Retry(NoBackoff(), 1),
                                health_check_interval=0)


def _clamp_length(length: int) -> int:
    return max(0, min(int(length), MAX_PIPE_LENGTH))


class RedisStore:
    """``StoreAPI`` on Redis; every call is one round trip (a pipeline or a Lua script)."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        # Any: redis-py's stubs type replies as bytes | str whatever decode_responses says
        self.r: Any = connect_sync(url)
        self._add_history = self.r.register_script(_ADD_HISTORY)
        self._trim_history = self.r.register_script(_TRIM_HISTORY)
        self._delete_history_item = self.r.register_script(_DELETE_HISTORY_ITEM)
        self._queue_message = self.r.register_script(_QUEUE_MESSAGE)

    def close(self) -> None:
        try:
            self.r.close()
        except redis.RedisError:
            pass

    def _k(self, dev_id: int, name: str) -> str:
        return f"{self.prefix}{int(dev_id)}:{name}"

    # -- users_auth ----------------------------------------------------------------------------
    # users_auth and users_data are one Redis hash each per dev_id, keyed by user id
    def _user_set(self, dev_id: int, table: str, user_id: int, value: str) -> None:
        self.r.hset(self._k(dev_id, table), str(int(user_id)), str(value))

    def _user_get(self, dev_id: int, table: str, user_id: int) -> str | None:
        return self.r.hget(self._k(dev_id, table), str(int(user_id)))

    def _user_delete(self, dev_id: int, table: str, user_id: int) -> bool:
        return bool(self.r.hdel(self._k(dev_id, table), str(int(user_id))))

    def set_user_hash(self, dev_id: int, user_id: int, hash: str) -> None:
        self._user_set(dev_id, "auth", user_id, hash)

    def get_user_hash(self, dev_id: int, user_id: int) -> str | None:
        return self._user_get(dev_id, "auth", user_id)

    def delete_user_hash(self, dev_id: int, user_id: int) -> bool:
        return self._user_delete(dev_id, "auth", user_id)

    def user_hashes(self, dev_id: int, user_ids: list[int]) -> list[tuple[int, str]]:
        ids = sorted({int(u) for u in user_ids})
        if not ids:
            return []
        values = self.r.hmget(self._k(dev_id, "auth"), [str(u) for u in ids])
        return [(u, h) for u, h in zip(ids, values) if h is not None]

    # -- users_data ----------------------------------------------------------------------------
    def set_user_data(self, dev_id: int, user_id: int, data: str) -> None:
        self._user_set(dev_id, "udata", user_id, data)

    def get_user_data(self, dev_id: int, user_id: int) -> str | None:
        return self._user_get(dev_id, "udata", user_id)

    def delete_user_data(self, dev_id: int, user_id: int) -> bool:
        return self._user_delete(dev_id, "udata", user_id)

    # -- pipes_settings ------------------------------------------------------------------------
    def set_pipe_length(self, dev_id: int, pipe: str, length: int) -> None:
        length = _clamp_length(length)
        self.r.hset(self._k(dev_id, "plen"), pipe, length)
        if length > 0:
            self._trim_history(keys=[self._k(dev_id, "hist:" + pipe), self._k(dev_id, "histpipe")], args=[length])

    def get_pipe_length(self, dev_id: int, pipe: str) -> int:
        v = self.r.hget(self._k(dev_id, "plen"), pipe)
        return int(v) if v is not None else 0

    def delete_pipe_settings(self, dev_id: int, pipe: str) -> None:
        self.r.hdel(self._k(dev_id, "plen"), pipe)
        self.clear_history(dev_id, pipe)

    # -- history -------------------------------------------------------------------------------
    def add_history(self, dev_id: int, pipe: str, event: str, data: str, user_id: int, time: int,
                    length: int) -> str:
        item = json.dumps([int(time), str(event), str(data), int(user_id)], ensure_ascii=False)
        hid = self._add_history(keys=[self.prefix + "histseq", self._k(dev_id, "hist:" + pipe),
                                      self._k(dev_id, "histpipe")],
                                args=[pipe, item, max(1, _clamp_length(length))])
        return str(hid)

    def get_history(self, dev_id: int, pipe: str, limit: int = 1000) -> list[HistoryItem]:
        limit = max(0, int(limit))
        if limit == 0:
            return []
        raw = self.r.lrange(self._k(dev_id, "hist:" + pipe), -limit, -1)
        out = []
        for i, entry in enumerate(raw):
            hid, _, body = entry.partition(":")
            t, event, data, uid = json.loads(body)
            out.append(HistoryItem(history_id=hid, time=int(t), pipe=pipe, index=i, event=event, data=data,
                                   user_id=int(uid)))
        return out

    def clear_history(self, dev_id: int, pipe: str) -> None:
        self._trim_history(keys=[self._k(dev_id, "hist:" + pipe), self._k(dev_id, "histpipe")], args=[0])

    def delete_history_item(self, dev_id: int, history_id: str) -> bool:
        hid = str(history_id)
        if not hid.isdigit():
            return False
        return bool(self._delete_history_item(keys=[self._k(dev_id, "histpipe")],
                                              args=[str(int(hid)), self._k(dev_id, "hist:")]))

    # -- personal-message queue ------------------------------------------------------------------
    def queue_user_message(self, dev_id: int, user_id: int, event: str, data: str, time: int) -> str:
        item = json.dumps([int(time), str(event), str(data)], ensure_ascii=False)
        mid = self._queue_message(keys=[self.prefix + "umsgseq", self._k(dev_id, f"umsg:{int(user_id)}"),
                                        self.prefix + "umsgtime"],
                                  args=[item, int(time), f"{int(dev_id)}:{int(user_id)}:"])
        return str(mid)

    def queued_user_messages(self, dev_id: int, user_id: int) -> list[QueuedMessage]:
        rows = self.r.hgetall(self._k(dev_id, f"umsg:{int(user_id)}"))
        out = []
        for mid in sorted(rows, key=int):
            t, event, data = json.loads(rows[mid])
            out.append(QueuedMessage(id=mid, time=int(t), event=event, data=data))
        return out

    def delete_user_messages(self, dev_id: int, user_id: int, ids: list[str] | None = None) -> int:
        key = self._k(dev_id, f"umsg:{int(user_id)}")
        if ids is None:
            wanted = list(self.r.hkeys(key))
        else:
            wanted = [str(int(i)) for i in map(str, ids) if i.isdigit()]
        if not wanted:
            return 0
        p = self.r.pipeline()
        p.hdel(key, *wanted)
        p.zrem(self.prefix + "umsgtime", *(f"{int(dev_id)}:{int(user_id)}:{m}" for m in wanted))
        return int(p.execute()[0])

    def purge_user_messages(self, older_than: int) -> int:
        zkey = self.prefix + "umsgtime"
        old = self.r.zrangebyscore(zkey, "-inf", f"({int(older_than)}")
        if not old:
            return 0
        p = self.r.pipeline()
        for member in old:
            dev, uid, mid = member.split(":")
            p.hdel(self._k(int(dev), f"umsg:{uid}"), mid)
        p.zrem(zkey, *old)
        return sum(int(n) for n in p.execute()[:-1])

    # -- users_time ----------------------------------------------------------------------------
    def set_user_time(self, dev_id: int, user_id: int, time: int) -> None:
        self.r.hset(self._k(dev_id, "utime"), str(int(user_id)), int(time))

    def get_user_time(self, dev_id: int, user_id: int) -> int:
        v = self.r.hget(self._k(dev_id, "utime"), str(int(user_id)))
        return int(v) if v is not None else -1

    def mark_all_offline(self, time: int) -> int:
        """Nothing to do: in a cluster a dead node's users go offline by its presence expiring
        (redis_hub.py), not by the next start of some process."""
        return 0

    # -- revoked_tokens ------------------------------------------------------------------------
    def revoke_token(self, dev_id: int, token: str) -> None:
        key = self._k(dev_id, "revoked")
        if self.r.zscore(key, str(token)) is None:
            self.r.zadd(key, {str(token): self.r.incr(self.prefix + "revseq")}, nx=True)

    def is_token_revoked(self, dev_id: int, token: str) -> bool:
        return self.r.zscore(self._k(dev_id, "revoked"), str(token)) is not None

    def revoked_tokens(self, dev_id: int) -> list[str]:
        return list(self.r.zrange(self._k(dev_id, "revoked"), 0, -1))

    def unrevoke_token(self, dev_id: int, token: str) -> bool:
        return bool(self.r.zrem(self._k(dev_id, "revoked"), str(token)))
