"""RedisStore passes the same StoreAPI tests as the SQLite Store (tests/server/test_store.py)."""

from __future__ import annotations

import inspect
import itertools

import pytest

import tests.server.test_store as sqlite_suite
from comet_server.redis_store import RedisStore

#: checks the database file on disk: test_two_stores_on_one_redis_share_everything stands in
SQLITE_ONLY = {"test_second_store_on_same_file_sees_changes"}
SUITE = [getattr(sqlite_suite, n) for n in sorted(dir(sqlite_suite)) if n.startswith("test_") and n not in SQLITE_ONLY]


@pytest.mark.parametrize("test", SUITE, ids=lambda f: f.__name__)
def test_redis_store_passes_the_store_suite(test, redis_url, monkeypatch, tmp_path):
    prefixes: dict[str, str] = {}
    fresh = itertools.count()

    def store_on_redis(path: str) -> RedisStore:
        # one path = one database (two Stores on one file share it); ":memory:" is always new
        key = f"{path}#{next(fresh)}" if path == ":memory:" else path
        prefix = prefixes.setdefault(key, f"t{id(prefixes)}-{len(prefixes)}:")
        return RedisStore(redis_url, prefix=prefix)

    monkeypatch.setattr(sqlite_suite, "Store", store_on_redis)
    args = {"tmp_path": tmp_path}
    test(**{name: args[name] for name in inspect.signature(test).parameters})


def test_two_stores_on_one_redis_share_everything(redis_url):
    a, b = RedisStore(redis_url, prefix="share:"), RedisStore(redis_url, prefix="share:")
    a.set_user_hash(0, 1, "x")
    assert b.get_user_hash(0, 1) == "x"
    b.set_pipe_length(0, "web_a", 10)
    assert a.get_pipe_length(0, "web_a") == 10
    first = a.add_history(0, "web_a", "e", "one", 0, 1, 10)
    second = b.add_history(0, "web_b", "e", "two", 0, 2, 10)
    assert int(second) > int(first)  # one sequence for every store and every channel
    assert b.delete_history_item(0, first) and a.get_history(0, "web_a") == []
