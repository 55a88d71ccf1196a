"""comet_py.browser in a PyScript worker, on CPython: ``js`` is the worker's global scope (no
``document``/``window``, no pagehide/visibilitychange; ``online``/``offline`` on the global)."""

from __future__ import annotations

import importlib
import sys
import types

import pytest


class _Target:
    def __init__(self) -> None:
        self.listeners: list[tuple[str, object]] = []

    def addEventListener(self, event, proxy):  # noqa: N802 (the JS name)
        self.listeners.append((event, proxy))

    def removeEventListener(self, event, proxy):  # noqa: N802
        self.listeners.remove((event, proxy))


class _Proxy:
    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)

    def destroy(self) -> None:
        pass


def _fake_modules(worker: bool, main_document=None, isolated: bool = False) -> dict:
    js = types.ModuleType("js")
    if worker:
        js.WorkerGlobalScope = object
        if isolated:  # PyScript lends a cross-origin isolated page's document to the worker
            js.document = main_document
    scope = _Target()
    js.addEventListener = scope.addEventListener
    js.removeEventListener = scope.removeEventListener
    js.navigator = types.SimpleNamespace(locks=types.SimpleNamespace(request=lambda *a: None))
    js.location = types.SimpleNamespace(protocol="https:")
    if not worker:
        js.window = _Target()
        js.document = _Target()
        js.document.visibilityState = "hidden"
    pyodide = types.ModuleType("pyodide")
    code = types.ModuleType("pyodide.code")

    def run_js(source):
        if "localStorage" in source:  # browser.py's storage helper: what its JS does
            def get(key):
                try:
                    return js.localStorage.getItem(key)
                except AttributeError:  # JS: a ReferenceError, caught there
                    return None
            return types.SimpleNamespace(get=get, set=lambda key, value: False)
        return lambda *a: None
    code.run_js = run_js
    ffi = types.ModuleType("pyodide.ffi")
    ffi.JsException = Exception
    ffi.create_proxy = _Proxy
    ffi.to_js = lambda obj, **kw: obj
    mods = {"js": js, "pyodide": pyodide, "pyodide.code": code, "pyodide.ffi": ffi, "_scope": scope}
    if main_document is not None:
        pyscript = types.ModuleType("pyscript")
        context = types.ModuleType("pyscript.context")
        context.document = main_document
        mods.update({"pyscript": pyscript, "pyscript.context": context})
    return mods


@pytest.fixture
def load_browser(monkeypatch):
    def load(worker: bool, main_document=None, isolated: bool = False):
        mods = _fake_modules(worker, main_document, isolated)
        scope = mods.pop("_scope")
        for name, mod in mods.items():
            monkeypatch.setitem(sys.modules, name, mod)
        monkeypatch.delitem(sys.modules, "comet_py.browser", raising=False)
        browser = importlib.import_module("comet_py.browser")
        return browser, mods["js"], scope
    yield load
    sys.modules.pop("comet_py.browser", None)


class _NotSupported:
    """PyScript's stand-in for the page's document in a worker without SharedArrayBuffer."""

    def __getattr__(self, name):
        raise AttributeError("Unable to use `window` or `document` in worker")


def test_in_a_worker_the_page_counts_as_visible_and_only_online_offline_are_bound(load_browser):
    browser, js, scope = load_browser(worker=True)
    assert browser.in_worker() and browser.page_visible()
    assert browser.locks_available() and browser.page_is_https()
    assert browser.storage_get("x") is None          # no localStorage in a worker: no crash
    events = browser.PageEvents()
    got = []
    for event in ("pagehide", "online", "offline"):
        events.on("window", event, lambda e=event: got.append(e))
    events.on("window", "pageshow", lambda persisted: got.append(("pageshow", persisted)), field="persisted")
    events.on("document", "visibilitychange", lambda: got.append("visibility"))
    assert [e for e, _ in scope.listeners] == ["online", "offline"]
    for _, proxy in scope.listeners:
        proxy(None)
    assert got == ["online", "offline"]
    events.close()
    assert scope.listeners == []


def test_on_the_main_thread_visibility_and_page_events_come_from_the_document(load_browser):
    browser, js, _scope = load_browser(worker=False)
    assert not browser.in_worker() and not browser.page_visible()
    events = browser.PageEvents()
    got = []
    events.on("window", "pageshow", lambda persisted: got.append(persisted), field="persisted")
    events.on("document", "visibilitychange", lambda: got.append("visibility"))
    [(name, proxy)] = js.window.listeners
    proxy(types.SimpleNamespace(persisted=True))
    js.document.listeners[0][1](types.SimpleNamespace())
    assert name == "pageshow" and got == [True, "visibility"]


def test_a_worker_takes_the_page_visibility_from_pyscripts_main_thread_document(load_browser):
    page_document = types.SimpleNamespace(visibilityState="hidden")
    browser, _js, _scope = load_browser(worker=True, main_document=page_document)
    assert not browser.page_visible()
    page_document.visibilityState = "visible"
    assert browser.page_visible()


def test_a_worker_without_shared_array_buffer_counts_as_visible(load_browser):
    browser, _js, _scope = load_browser(worker=True, main_document=_NotSupported())
    assert browser.page_visible()


def test_a_worker_of_a_cross_origin_isolated_page_is_still_a_worker(load_browser):
    """PyScript sets the worker's js.document to the page's document there; comet_py once took
    that for the main thread and failed at start with AttributeError: window."""
    page_document = types.SimpleNamespace(visibilityState="hidden")
    browser, _js, scope = load_browser(worker=True, main_document=page_document, isolated=True)
    assert browser.in_worker() and not browser.page_visible()
    events = browser.PageEvents()
    events.on("window", "online", lambda: None)
    events.on("document", "visibilitychange", lambda: None)
    assert [e for e, _ in scope.listeners] == ["online"]
    events.close()
