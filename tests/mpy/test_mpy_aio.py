"""comet_py.aio: timers, futures and tasks that behave alike under CPython's asyncio and
MicroPython's (which has no Future, call_later or ensure_future)."""

import asyncio

from comet_py import aio
from tests.mpy.helpers import raises


async def test_call_later_calls_once_after_the_delay_with_its_arguments():
    calls = []
    aio.call_later(0.02, calls.append, "a")
    await asyncio.sleep(0)
    assert calls == []
    await asyncio.sleep(0.1)
    assert calls == ["a"]
    await asyncio.sleep(0.05)
    assert calls == ["a"]


async def test_a_cancelled_timer_never_calls():
    calls = []
    handle = aio.call_later(0.01, calls.append, 1)
    handle.cancel()
    handle.cancel()  # twice is harmless
    await asyncio.sleep(0.05)
    assert calls == []


async def test_a_future_is_awaited_for_its_result():
    fut = aio.create_future()
    assert not fut.done()
    aio.call_later(0.01, fut.set_result, 42)
    assert await fut == 42
    assert fut.done() and fut.result() == 42 and fut.exception() is None
    assert await fut == 42  # awaiting a done future gives the result again


async def test_a_future_with_an_exception_raises_it_when_awaited():
    fut = aio.create_future()
    fut.set_exception(KeyError("k"))
    err = None
    try:
        await fut
    except KeyError as exc:
        err = exc
    assert isinstance(err, KeyError) and isinstance(fut.exception(), KeyError)
    raises(KeyError, fut.result)


async def test_a_future_is_set_once():
    fut = aio.create_future()
    fut.set_result(1)
    raises(Exception, fut.set_result, 2)
    raises(Exception, fut.set_exception, ValueError("late"))
    assert fut.result() == 1


async def test_done_callbacks_run_soon_after_not_inside_set_result():
    fut = aio.create_future()
    seen = []
    fut.add_done_callback(lambda f: seen.append(("first", f.result())))
    fut.add_done_callback(lambda f: seen.append(("second", f.result())))
    fut.set_result("v")
    assert seen == []
    await asyncio.sleep(0.01)
    assert seen == [("first", "v"), ("second", "v")]
    fut.add_done_callback(lambda f: seen.append(("late", f.result())))  # already done: soon
    await asyncio.sleep(0.01)
    assert seen[-1] == ("late", "v")


async def test_a_removed_callback_does_not_run():
    fut = aio.create_future()
    seen = []
    fut.add_done_callback(seen.append)
    assert fut.remove_done_callback(seen.append) == 1
    fut.set_result(0)
    await asyncio.sleep(0.01)
    assert seen == []


async def test_cancel_makes_the_await_raise():
    fut = aio.create_future()
    assert fut.cancel() and fut.cancelled() and fut.done()
    assert not fut.cancel()
    failed = False
    try:
        await fut
    except BaseException:  # CancelledError: a BaseException in CPython
        failed = True
    assert failed


async def test_ensure_future_runs_a_coroutine():
    seen = []

    async def work():
        await asyncio.sleep(0.01)
        seen.append("done")
        return 7

    task = aio.ensure_future(work())
    assert await task == 7 and seen == ["done"]
