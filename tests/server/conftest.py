"""Fixtures for comet_server tests: ``server`` (session-scoped real server subprocess with a temp
db; ``server.restart()``), ``dev`` (a random dev_id per test, so tests sharing the server never
collide) and ``store`` (a ``Store`` on the server's db file). Helpers live in helpers.py."""

from __future__ import annotations

import random

import pytest

from .helpers import server_in


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = server_in(tmp_path_factory.mktemp("comet_server"))
    srv.start()
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        rc = srv.stop()
        assert rc == 0, f"server exit code {rc}\n{srv.log()}"


@pytest.fixture
def dev() -> int:
    return random.randint(1000, 99999)


@pytest.fixture
def store(server):
    s = server.store()
    yield s
    s.close()


