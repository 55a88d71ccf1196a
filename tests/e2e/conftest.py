import itertools

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, OfflineContext
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def comet_server():
    server = ServerProcess(demo=True).start()  # test_demo.py uses the server console
    yield server
    server.close()


_dev_ids = itertools.count(1000)


@pytest.fixture
def dev_id():
    """A fresh dev_id per test: its channels, users and history are its own."""
    return next(_dev_ids)


@pytest.fixture
def new_context(browser, comet_server):
    """Factory of offline browser contexts (one per simulated user); closed and checked after the test."""
    made = []

    def make():
        ctx = OfflineContext(browser, comet_server.url)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture(scope="module")
def shared_context(browser, comet_server):
    ctx = OfflineContext(browser, comet_server.url)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def tab(shared_context):
    """One harness tab reused by a module's single-tab tests (Pyodide starts once)."""
    return shared_context.open()


@pytest.fixture(scope="module")
def tab2(shared_context):
    return shared_context.open()
