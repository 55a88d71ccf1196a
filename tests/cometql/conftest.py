"""Fixtures for CometQL tests.

* ``cq`` (session): CometQL in-process, on the real Hub with an in-memory Store, its event loop
  in a background thread. Fast; used for the SQL surface (every table, every error code).
  ``cq.call(fn, *args)`` runs ``fn`` on the loop thread (the Hub is not thread-safe).
* ``server`` (session): the real ``python -m comet_server`` subprocess (tests/support/server.py:
  WebSocket + CometQL + HTTP publish on free ports, temp SQLite db), for end-to-end tests with
  WebSocket clients, the mysql CLI and curl-like HTTP. ``ws_open``/``ws_recv``/``ws_sync`` are
  tests/server/helpers.py's ``connect``/``recv_json``/``sync`` under this suite's names.
* ``dev``: a random dev_id per test, so tests sharing a server never see each other's data.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
from pathlib import Path

import pymysql
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from comet_server import cometql  # noqa: E402
from comet_server.hub import Hub  # noqa: E402
from comet_server.store import Store  # noqa: E402
from tests.server.helpers import connect as ws_open  # noqa: E402,F401 - the WebSocket helpers of both suites
from tests.server.helpers import recv_json as ws_recv  # noqa: E402,F401
from tests.server.helpers import sync as ws_sync  # noqa: E402,F401
from tests.support.server import PASSWORD, ServerProcess  # noqa: E402

DB = "CometQL_v1"


class InProcess:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = Store(":memory:")
        self.hub = Hub(self.store, PASSWORD)
        self.password = PASSWORD
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            cometql.start_cometql(self.hub, "127.0.0.1", 0), self.loop).result(10)
        self.port = self.server.port

    def call(self, fn, *args, **kw):
        async def run():
            return fn(*args, **kw)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="session")
def cq():
    srv = InProcess()
    yield srv
    srv.close()


def cometql_server(cometql_defaults: dict | None = None) -> ServerProcess:
    """The real comet_server, CometQL on, in a temporary directory (``srv.tmp``)."""
    return ServerProcess(cometql=True, test_pages=False, cometql_defaults=cometql_defaults)


@pytest.fixture(scope="session")
def server():
    srv = cometql_server()
    srv.start()
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        rc = srv.stop()
        assert rc == 0, f"server exit code {rc}\n{srv.log()}"
    srv.tmp.cleanup()


@pytest.fixture
def dev() -> int:
    return random.randint(1000, 99998)


def connect_db(port: int, dev_id: int | str = 1, *, password: str = PASSWORD, database: str | None = DB,
               **kw) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=port, user=str(dev_id), password=password,
                           database=database, autocommit=True, connect_timeout=5, read_timeout=10, **kw)


def mysql_cli(port: int, sql: str, *, dev_id: int | str = 1, password: str = PASSWORD,
              database: str | None = DB, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the Debian mysql (MariaDB) client in batch mode (tab-separated output)."""
    cmd = ["mysql", "-h127.0.0.1", f"-P{port}", f"-u{dev_id}", f"-p{password}", "--skip-ssl", "--batch",
           *extra]
    if database:
        cmd.append(f"-D{database}")
    cmd += ["-e", sql]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20)
