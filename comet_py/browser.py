"""The browser, seen from Python: the only module that touches ``js`` and the FFI, on Pyodide
(``pyodide.ffi``) and on MicroPython (``jsffi``, PyScript's ``type="mpy"``).

Every JavaScript callback is a ``create_proxy`` that its owner keeps referenced and destroys
when done, so nothing leaks and nothing is called after it is gone. MicroPython's proxies have
no ``destroy()`` (JS garbage collection frees them): there, removing the listener is the release.

MicroPython 1.27 differences handled here: a JS exception thrown by a synchronous call unwinds
past Python's ``try`` (so calls that can throw are guarded in JS), a JS integer beyond 32 bits
comes back truncated (so the clock is ``time.time()``), JS arrays have no ``to_py()``, and a JS
object a Python callback returns may reach JS as undefined (so ``HeldLock``'s promise is made in JS).
"""

import logging
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

import js  # type: ignore[import-not-found]

from . import aio

MICROPYTHON = sys.implementation.name == "micropython"
if MICROPYTHON:
    from jsffi import JsException, create_proxy, to_js  # type: ignore[import-not-found]

    run_js = js.eval  # a global (indirect) eval, as pyodide.code.run_js
    _js_object = to_js  # a dict becomes a plain JS object
else:
    from pyodide.code import run_js  # type: ignore[import-not-found, no-redef]
    from pyodide.ffi import JsException, create_proxy, to_js  # type: ignore[import-not-found]

    def _js_object(d: "dict[str, Any]") -> Any:
        return to_js(d, dict_converter=js.Object.fromEntries)

log = logging.getLogger("comet_py")


class _Proxies:
    """Keeps the proxies of one owner alive and destroys them together."""

    def __init__(self) -> None:
        self._items: list[Any] = []

    def add(self, fn: Callable[..., Any]) -> Any:
        proxy = create_proxy(fn)
        self._items.append(proxy)
        return proxy

    def destroy(self) -> None:
        for proxy in () if MICROPYTHON else self._items:
            try:
                proxy.destroy()
            except Exception:  # already destroyed
                pass
        self._items.clear()


# -- clocks, page -------------------------------------------------------------------------------

def now_ms() -> float:
    """Wall clock in ms (Date.now), comparable across tabs and immune to timer throttling."""
    return time.time() * 1000.0 if MICROPYTHON else float(js.Date.now())


def page_is_https() -> bool:
    return str(js.location.protocol) == "https:"


def in_worker() -> bool:
    """True in a dedicated worker (``<script type="py" worker>``): there ``js`` is the worker's
    global scope, with WebSocket, BroadcastChannel and navigator.locks but no window.

    Not PyScript's own test (no ``document``): on a cross-origin isolated page PyScript 0.7.31
    puts the page's document on the worker's ``js`` before user code runs, but still no
    ``window`` (and ``WorkerGlobalScope`` exists only in workers)."""
    return getattr(js, "WorkerGlobalScope", None) is not None or getattr(js, "window", None) is None


IN_WORKER = in_worker()


_NOT_LOOKED = object()
_main_document: Any = _NOT_LOOKED


def _page_document() -> Any:
    """The page's document as a worker sees it: PyScript's main-thread proxy (it needs
    SharedArrayBuffer, i.e. a cross-origin isolated page), else None. Looked up once."""
    global _main_document
    if _main_document is _NOT_LOOKED:
        _main_document = None
        try:
            from pyscript.context import document  # type: ignore[import-not-found]

            str(document.visibilityState)  # PyScript's NotSupported stand-in raises here
            _main_document = document
        except Exception:
            log.info("comet_py: in a worker without the page's document: counted as visible")
    return _main_document


def page_visible() -> bool:
    """In a worker, the page's visibility through PyScript when it can give it; otherwise the
    worker counts as visible (it may then take over from a frozen master; a live one is never
    robbed, since a steal needs an unanswered probe)."""
    document = _page_document() if IN_WORKER else js.document
    if document is None:
        return True
    try:
        return str(document.visibilityState) == "visible"
    except Exception:
        return True


def random_id(length: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    # One conversion to bytes: indexing the JS array would be a call into JS per character.
    values = js.crypto.getRandomValues(js.Uint8Array.new(length))
    values = values if MICROPYTHON else values.to_bytes()
    return "".join(alphabet[v % len(alphabet)] for v in values)


# Storage can throw (disabled, sandboxed, full, none in a worker): caught in JS, on both
# interpreters, since MicroPython cannot catch a JS throw.
_STORAGE = run_js("""({
  get(key) { try { return localStorage.getItem(key); } catch (e) { return null; } },
  set(key, value) { try { localStorage.setItem(key, value); return true; } catch (e) { return false; } },
})""")


def storage_get(key: str) -> "Optional[str]":
    value = _STORAGE.get(key)
    return None if value is None else str(value)


def storage_set(key: str, value: str) -> bool:
    return bool(_STORAGE.set(key, value))


# What a worker's global scope fires of the window events comet_py listens to.
_WORKER_EVENTS = frozenset({"online", "offline"})


class PageEvents:
    """Window/document listeners (pagehide, pageshow, visibilitychange, online, offline) with
    managed proxies. In a worker only online/offline exist (on its global scope): the others
    are not bound (the worker dies with its page)."""

    def __init__(self) -> None:
        self._proxies = _Proxies()
        self._bound: list[tuple[Any, str, Any]] = []

    def on(self, target: str, event: str, fn: Callable[..., None], *, field: "Optional[str]" = None) -> None:
        """``fn()`` on each event, or ``fn(event[field])`` (e.g. pageshow's ``persisted``)."""
        if IN_WORKER:
            if target != "window" or event not in _WORKER_EVENTS:
                return
            obj = js
        else:
            obj = js.window if target == "window" else js.document
        if field is None:
            proxy = self._proxies.add(lambda _e=None: fn())
        else:
            proxy = self._proxies.add(lambda e=None: fn(bool(getattr(e, field, False))))
        obj.addEventListener(event, proxy)
        self._bound.append((obj, event, proxy))

    def close(self) -> None:
        for obj, event, proxy in self._bound:
            obj.removeEventListener(event, proxy)
        self._bound.clear()
        self._proxies.destroy()


# -- WebSocket -----------------------------------------------------------------------------------

# Frames are queued in JS and handed to Python in batches, one task later: under load, one
# call into Python (and one array conversion) carries many frames instead of one each.
# It also opens the socket: a URL the browser refuses comes back as the error's text (MicroPython
# cannot catch a JS throw).
_FRAME_BATCHER = run_js("""
(url, deliver) => {
  let ws;
  try { ws = new WebSocket(url); } catch (e) { return String(e); }
  let queue = [];
  let scheduled = false;
  const wake = new MessageChannel();
  const drain = () => {
    scheduled = false;
    if (queue.length) { const batch = queue; queue = []; deliver(batch); }
  };
  wake.port1.onmessage = drain;
  const onMessage = (e) => {
    if (typeof e.data !== "string") return;  // binary frames are not part of the protocol
    queue.push(e.data);
    if (!scheduled) { scheduled = true; wake.port2.postMessage(null); }
  };
  ws.addEventListener("message", onMessage);
  return {
    ws,
    drain,
    stop() { ws.removeEventListener("message", onMessage); wake.port1.onmessage = null; wake.port1.close(); queue = []; },
  };
}
""")


class Socket:
    """A browser WebSocket. Never sends pings (CppComet drops a connection that pings)."""

    def __init__(
        self,
        url: str,
        on_open: Callable[[], None],
        on_text: Callable[[str], None],
        on_close: Callable[[int, str], None],
    ) -> None:
        self._proxies = _Proxies()
        self._closed = False
        self._on_close = on_close
        self._batcher = _FRAME_BATCHER(url, self._proxies.add(lambda batch: self._frames(batch, on_text)))
        if isinstance(self._batcher, str):
            self._proxies.destroy()
            raise ValueError(self._batcher)
        self._ws = self._batcher.ws
        self._listeners = [
            ("open", self._proxies.add(lambda _e: on_open())),
            ("close", self._proxies.add(self._closed_event)),
        ]
        for event, proxy in self._listeners:
            self._ws.addEventListener(event, proxy)

    def _frames(self, batch: Any, on_text: Callable[[str], None]) -> None:
        for text in batch if MICROPYTHON else batch.to_py():
            if self._closed:
                return  # closed by the owner while handling an earlier frame
            on_text(text)

    def _closed_event(self, event: Any) -> None:
        if self._closed:
            return
        code, reason = int(event.code), str(event.reason)
        self._batcher.drain()  # frames that arrived before the close come first
        if self._closed:
            return
        self._release()
        self._on_close(code, reason)

    def _release(self) -> None:
        """Detach and destroy the listeners: no event may reach a destroyed proxy."""
        self._closed = True
        self._batcher.stop()
        for event, proxy in self._listeners:
            self._ws.removeEventListener(event, proxy)
        self._proxies.destroy()

    @property
    def is_open(self) -> bool:
        return not self._closed and int(self._ws.readyState) == 1

    def send(self, text: str) -> bool:
        if not self.is_open:
            return False
        self._ws.send(text)
        return True

    def close(self) -> None:
        """Close without calling on_close: the owner asked for it."""
        if self._closed:
            return
        self._release()
        try:
            self._ws.close()
        except JsException:
            pass


# -- BroadcastChannel ----------------------------------------------------------------------------

class Channel:
    """A BroadcastChannel carrying JSON strings (no structured-clone conversions)."""

    def __init__(self, name: str, on_text: Callable[[str], None]) -> None:
        self._proxies = _Proxies()
        self._bc = js.BroadcastChannel.new(name)
        self._bc.addEventListener("message", self._proxies.add(lambda e: on_text(str(e.data))))
        self._open = True

    def post(self, text: str) -> None:
        if self._open:
            self._bc.postMessage(text)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._bc.close()
            self._proxies.destroy()


# -- Web Locks -----------------------------------------------------------------------------------

def locks_available() -> bool:
    try:
        return bool(js.navigator.locks) and hasattr(js.navigator.locks, "request")
    except Exception:
        return False


# The lock is held until a promise made here settles, never one a Python callback returns:
# MicroPython 1.27 hands JS undefined for a callback's return value when a GC ran as the call
# returned (the JsProxy is freed first; fixed upstream by micropython/micropython#19141, after
# 1.27), which released the lock the moment it was granted.
_LOCKS = run_js("""({
  request(name, options, granted) {
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const request = navigator.locks.request(name, options, () => { granted(); return held; });
    return { request, release };
  },
})""")


class HeldLock:
    """Requests a Web Lock and holds it until release() or until the page dies.

    on_granted runs when the browser grants it; on_lost runs if it is taken away (another tab
    stole it). Followers simply stay queued: there is no timeout on the request.
    """

    def __init__(
        self,
        name: str,
        on_granted: Callable[[], None],
        on_lost: "Optional[Callable[[str], None]]" = None,
        *,
        steal: bool = False,
    ) -> None:
        self.name = name
        self.held = False
        self._released = False
        self._on_granted = on_granted
        self._on_lost = on_lost
        self._proxies = _Proxies()
        granted = self._proxies.add(self._granted)
        # A queued request can be withdrawn with an AbortSignal; the spec forbids one with steal.
        abort = None if steal else js.AbortController.new()
        self._abort = abort
        options: "dict[str, Any]" = {"steal": True} if abort is None else {"signal": abort.signal}
        handle = _LOCKS.request(name, _js_object(options), granted)
        self._resolve: Any = handle.release  # lets the lock go (a no-op once it has)
        # The request's promise settles when the lock is released, and rejects if it is stolen:
        # watching it is the only way to notice a steal.
        self._watch = aio.ensure_future(self._watch_request(handle.request))

    def _granted(self) -> None:
        if self._released:
            self._resolve()  # released while queued: let it go at once
            return
        self.held = True
        self._on_granted()

    async def _watch_request(self, request: Any) -> None:
        reason = "released"
        try:
            await request
        except Exception as exc:  # AbortError: stolen
            reason = str(exc)
        was_held, self.held = self.held, False
        if was_held and not self._released and self._on_lost is not None:
            self._on_lost(reason)
        self._proxies.destroy()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self.held:
            self._resolve()
        elif self._abort is not None:
            self._abort.abort()  # still queued: leave the queue
        self.held = False


if TYPE_CHECKING:
    # mypy checks that this module, as a whole, is the Platform the Coordinator is given.
    from . import browser as _this_module
    from .platform import Platform

    _platform_check: Platform = _this_module
