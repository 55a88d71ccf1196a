"""Cluster tests: one real redis-server and real comet_server nodes as subprocesses.

``cluster``: Redis + nodes a, b, c (CometQL on), shared by the tests of a module that only read
and write (each test uses its own dev_id). Tests that kill a node or restart Redis build their own
with ``make_cluster``. Clients are raw WebSocket clients (tests/support/rawclient.py) and pymysql.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import Callable, Iterator

import pymysql
import pytest

from tests.support.cluster import Cluster
from tests.support.rawclient import RawClient
from tests.support.redis_server import RedisServer, have_redis_server
from tests.support.server import PASSWORD, ServerProcess

if not have_redis_server():  # scripts/setup.sh installs it
    pytest.skip("redis-server is not installed (run scripts/setup.sh)", allow_module_level=True)

DB = "CometQL_v1"


@contextlib.contextmanager
def make_cluster(names: tuple[str, ...] = ("a", "b", "c")) -> Iterator[Cluster]:
    c = Cluster(names)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with make_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis of the module's own, for tests that run hubs and stores in-process."""
    r = RedisServer().start()
    yield r.url
    r.close()


@pytest.fixture
def dev() -> int:
    return random.randint(1000, 99999)


@pytest.fixture
def clients() -> Iterator[list[RawClient]]:
    """Append the RawClients a test opens: closed at the end."""
    opened: list[RawClient] = []
    yield opened
    for c in opened:
        with contextlib.suppress(Exception):
            c.close()


def collect(client: RawClient, until: Callable[[list[dict]], bool], timeout: float = 10.0,
            quiet: float = 0.3) -> list[dict]:
    """Every frame so far and to come, until ``until(frames)`` holds (liveness bound only: a
    loaded machine may carry cross-node events slowly), then ``quiet`` seconds more to catch a
    duplicate; the client's buffer is emptied."""
    deadline = time.monotonic() + timeout
    frames = drain(client, 0)
    while not until(frames):
        if time.monotonic() > deadline:
            raise TimeoutError(f"expected frames not seen within {timeout} s; seen {frames[-5:]}")
        frames += drain(client, 0.05)
    return frames + drain(client, quiet)


def events(frames: list[dict], pipe: str) -> list[str]:
    return [f["event"] for f in frames if f.get("pipe") == pipe]


def sql(node: ServerProcess, dev_id: int, statement: str, args: tuple = ()) -> tuple[int, list[tuple]]:
    """Run one CometQL statement on ``node``: (affected rows, rows)."""
    conn = pymysql.connect(host="127.0.0.1", port=node.cometql_port, user=str(dev_id), password=PASSWORD,
                           database=DB, autocommit=True, connect_timeout=5, read_timeout=10)
    try:
        with conn.cursor() as cur:
            n = cur.execute(statement, args)
            return n, list(cur.fetchall())
    finally:
        conn.close()


def ask(client: RawClient, command: str, marker_key: str = "marker") -> dict:
    """Send a command whose answer carries our marker; return the answer."""
    marker = f"m{random.randrange(10**9)}"
    client.send(command.replace("{marker}", marker))
    return client.wait_for(lambda m: m.get(marker_key) == marker)


def pipe_count(client: RawClient, pipe: str) -> int:
    return ask(client, f"pipe_count\n{pipe}\n{{marker}}\n")["data"]["user_in_pipe"]


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``check`` until true (liveness bound only)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


def drain(client: RawClient, seconds: float) -> list[dict]:
    """Every frame that arrived so far or arrives within ``seconds``; the client's buffer is
    emptied."""
    try:
        client.wait_for(lambda m: False, timeout=seconds)
    except TimeoutError:
        pass
    frames = list(client.frames)
    client.frames.clear()
    return frames
