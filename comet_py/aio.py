"""The few asyncio services comet_py needs, on CPython/Pyodide and on MicroPython.

``call_later(delay, fn, *args)`` (a handle with ``cancel()``), ``create_future()`` and
``ensure_future(awaitable)``. On CPython and Pyodide they are the running loop's own (so tests
that drive the loop in virtual time see no difference). MicroPython's asyncio has no Future,
``call_later`` or ``ensure_future``: there a timer is a task that sleeps then calls, and
``Future`` below is the small subset comet_py and its users rely on (result or exception, done
callbacks, ``await``).
"""

import asyncio
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable, List, Optional

__all__ = ["call_later", "create_future", "ensure_future"]

if TYPE_CHECKING or sys.implementation.name != "micropython":

    def call_later(delay: float, fn: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        """Call ``fn(*args)`` after ``delay`` seconds, unless the handle is cancelled first."""
        return asyncio.get_event_loop().call_later(delay, fn, *args)

    def create_future() -> "asyncio.Future[Any]":
        """A pending future of the running loop."""
        return asyncio.get_event_loop().create_future()

    def ensure_future(awaitable: Awaitable[Any]) -> "asyncio.Future[Any]":
        """Run a coroutine (or wrap an awaitable) as a task."""
        return asyncio.ensure_future(awaitable)

else:  # MicroPython

    class CancelledError(Exception):
        pass

    class InvalidStateError(Exception):
        pass

    class _Timer:
        def __init__(self, delay: float, fn: Callable[..., Any], args: tuple) -> None:
            self._cancelled = False
            self._task = asyncio.create_task(self._run(delay, fn, args))

        async def _run(self, delay: float, fn: Callable[..., Any], args: tuple) -> None:
            await asyncio.sleep(delay)
            if not self._cancelled:
                fn(*args)

        def cancel(self) -> None:
            if not self._cancelled:
                self._cancelled = True
                self._task.cancel()

        def cancelled(self) -> bool:
            return self._cancelled

    def call_later(delay: float, fn: Callable[..., Any], *args: Any) -> _Timer:
        return _Timer(delay, fn, args)

    class Future:
        """A result or an exception set once; ``await`` waits for it. Done callbacks get the
        future and run soon after it is set (as asyncio's do: never inside set_result)."""

        def __init__(self) -> None:
            self._done = False
            self._cancelled = False
            self._result: Any = None
            self._exception: Optional[BaseException] = None
            self._callbacks: List[Callable[["Future"], Any]] = []
            self._event = asyncio.Event()

        def done(self) -> bool:
            return self._done

        def cancelled(self) -> bool:
            return self._cancelled

        def result(self) -> Any:
            if not self._done:
                raise InvalidStateError("result is not set")
            if self._exception is not None:
                raise self._exception
            return self._result

        def exception(self) -> Optional[BaseException]:
            if not self._done:
                raise InvalidStateError("exception is not set")
            return self._exception

        def set_result(self, value: Any) -> None:
            self._finish(value, None)

        def set_exception(self, exc: BaseException) -> None:
            self._finish(None, exc)

        def cancel(self) -> bool:
            if self._done:
                return False
            self._cancelled = True
            self._finish(None, CancelledError("cancelled"))
            return True

        def _finish(self, value: Any, exc: Optional[BaseException]) -> None:
            if self._done:
                raise InvalidStateError("the future is already done")
            self._done, self._result, self._exception = True, value, exc
            self._event.set()
            if self._callbacks:
                asyncio.create_task(self._call_back())

        async def _call_back(self) -> None:
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                try:
                    callback(self)
                except Exception as exc:  # one failing callback does not stop the others
                    sys.print_exception(exc)  # type: ignore[attr-defined]

        def add_done_callback(self, fn: Callable[["Future"], Any]) -> None:
            self._callbacks.append(fn)
            if self._done and len(self._callbacks) == 1:
                asyncio.create_task(self._call_back())

        def remove_done_callback(self, fn: Callable[["Future"], Any]) -> int:
            before = len(self._callbacks)
            self._callbacks = [cb for cb in self._callbacks if cb != fn]  # bound methods: ==, not is
            return before - len(self._callbacks)

        def __await__(self) -> Any:
            if not self._done:
                yield from self._event.wait()
            return self.result()

        __iter__ = __await__  # MicroPython awaits through __iter__

    def create_future() -> Future:
        return Future()

    def ensure_future(awaitable: Any) -> Any:
        return asyncio.create_task(awaitable)
