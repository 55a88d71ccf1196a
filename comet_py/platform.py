"""What comet_py asks of the browser: the ``platform`` the Coordinator and Connection are given.

Two things satisfy ``Platform``, and mypy checks both: the module ``comet_py.browser`` (its
functions and classes are the members) and the test fake ``tests.support.fake_browser.FakePage``
(methods of the same names). Only what comet_py calls is listed here.

Sans-I/O: this module imports nothing from ``js`` and runs in CPython 3.11, Pyodide and
MicroPython (where the Protocol classes are plain classes and the annotations are not evaluated).
"""

from typing import Callable, Protocol

__all__ = ["Platform", "PlatformChannel", "PlatformLock", "PlatformPageEvents", "PlatformSocket"]


class PlatformSocket(Protocol):
    """A WebSocket carrying text frames. ``close()`` is the owner's: it calls no on_close."""

    @property
    def is_open(self) -> bool: ...

    def send(self, text: str) -> bool:
        """False (and nothing sent) unless open."""
        ...

    def close(self) -> None: ...


class PlatformChannel(Protocol):
    """A BroadcastChannel: a post reaches the channel's other objects, never the poster."""

    def post(self, text: str) -> None: ...

    def close(self) -> None: ...


class PlatformLock(Protocol):
    """A Web Lock request: held from on_granted until ``release()`` (queued until then)."""

    def release(self) -> None: ...


class PlatformPageEvents(Protocol):
    """Window/document listeners, all removed by ``close()``."""

    def on(self, target: str, event: str, fn: Callable[..., None], *, field: str | None = None) -> None:
        """``fn()`` on each ``event`` of ``target`` ("window" or "document"), or
        ``fn(event[field])`` with a field."""
        ...

    def close(self) -> None: ...


class Platform(Protocol):
    def now_ms(self) -> float:
        """Wall clock in ms, comparable across tabs."""
        ...

    def page_is_https(self) -> bool: ...

    def page_visible(self) -> bool: ...

    def random_id(self, length: int) -> str: ...

    def storage_get(self, key: str) -> str | None: ...

    def storage_set(self, key: str, value: str) -> bool:
        """False when storage is unavailable."""
        ...

    def locks_available(self) -> bool: ...

    # The browser module's classes: called like constructors, hence the capitalised names.
    def PageEvents(self) -> PlatformPageEvents: ...  # noqa: N802

    def Socket(  # noqa: N802
        self,
        url: str,
        on_open: Callable[[], None],
        on_text: Callable[[str], None],
        on_close: Callable[[int, str], None],
    ) -> PlatformSocket: ...

    def Channel(self, name: str, on_text: Callable[[str], None]) -> PlatformChannel: ...  # noqa: N802

    def HeldLock(  # noqa: N802
        self,
        name: str,
        on_granted: Callable[[], None],
        on_lost: Callable[[str], None] | None = None,
        *,
        steal: bool = False,
    ) -> PlatformLock: ...
