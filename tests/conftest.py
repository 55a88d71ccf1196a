"""Suite-wide ordering: the fast CPython tests first, the browser tests last.

Playwright's sync API keeps an asyncio loop running in the main thread for the rest of the
session once a browser test ran, and tests that call asyncio.run() would then fail.
"""


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: "/tests/e2e" in str(item.path))  # tests/e2e/ and tests/e2e_real/
