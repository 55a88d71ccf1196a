"""Stock MySQL clients against the real comet_server subprocess.

The server and the per-test dev_id come from tests/cometql/conftest.py (imported, so both
packages run the same server code). A client that is not installed is skipped with the reason,
except under CI=true, where every client must run (scripts/setup_clients.sh installs them all).
"""

from __future__ import annotations

import os

import pytest

from tests.cometql.conftest import dev, server  # noqa: F401  (fixtures shared, not copied)

from .drivers import Client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow_install: the client takes long to install (see scripts/setup_clients.sh)")


def require(client: Client) -> None:
    reason = client.missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{client.name}: {reason}; CI=true needs every client (run scripts/setup_clients.sh)")
    pytest.skip(f"{client.name}: {reason}")
