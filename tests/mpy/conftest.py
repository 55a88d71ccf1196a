"""Under CPython, pytest runs the ``async def test_*`` of tests/mpy in a fresh event loop each
(the MicroPython runner awaits them in its own)."""

import asyncio
import inspect

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> "bool | None":
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        asyncio.run(pyfuncitem.obj())
        return True
    return None
