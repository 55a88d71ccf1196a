"""Playwright helpers: Debian Chromium, offline contexts, and tabs driven through the harness page."""

from __future__ import annotations

import json
import os
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCAL_PREFIXES = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
PY_READY_TIMEOUT_MS = 90_000


class PyError(AssertionError):
    """Python code run in a tab raised; the message is its traceback."""


class OfflineContext:
    """A browser context whose every non-loopback request is aborted and recorded."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.base_url = base_url
        self.context = browser.new_context()
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.context.route("**/*", self._route)
        self.tabs: list[Tab] = []

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(LOCAL_PREFIXES):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, path: str = "/tests/pages/harness.html", *, ready: str = "window.pyReady === true") -> "Tab":
        page = self.context.new_page()
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        page.goto(self.base_url + path)
        page.wait_for_function(ready, timeout=PY_READY_TIMEOUT_MS)
        tab = Tab(page)
        self.tabs.append(tab)
        return tab

    def close(self) -> None:
        self.context.close()
        assert not self.blocked, f"requests left 127.0.0.1: {self.blocked}"


class Tab:
    """One page of the harness: run Python in it, read values back as JSON."""

    def __init__(self, page: Any) -> None:
        self.page = page

    @staticmethod
    def _unwrap(raw: str) -> Any:
        answer = json.loads(raw)
        if not answer["ok"]:
            raise PyError(answer["value"])
        return answer["value"]

    def run(self, code: str) -> Any:
        """Run statements (top-level await allowed); returns the last expression's value."""
        return self._unwrap(self.page.evaluate("code => window.py_exec(code)", code))

    def eval(self, expr: str) -> Any:
        return self._unwrap(self.page.evaluate("expr => window.py_eval(expr)", expr))

    def wait(self, expr: str, timeout_ms: int = 15_000) -> Any:
        """Wait until a Python expression is truthy (liveness bound only), then return it."""
        # Truthiness is Python's (an empty list is false), not JavaScript's.
        self.page.wait_for_function(
            "expr => { const a = JSON.parse(window.py_eval(expr)); if (!a.ok) throw new Error(a.value); return a.value; }",
            arg=f"bool({expr})", timeout=timeout_ms, polling=50,
        )
        return self.eval(expr)
