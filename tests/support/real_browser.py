"""Chromium the way users run it: headed under Xvfb, tabs of one window, no test-only flags.

Playwright's own launch adds flags that switch off background-timer throttling, renderer
backgrounding, occluded-window backgrounding and the back/forward cache. Here Chromium is started
by us with only the flags below, and Playwright attaches over CDP (``connect_over_cdp`` with
``no_defaults``: its focus emulation would count every tab as captured, hence visible).
Every host other than 127.0.0.1 resolves to nothing, and each request is recorded so a test can
assert that none left the loopback.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

from tests.support.browser import CHROMIUM, LOCAL_PREFIXES

# Intensive wake-up throttling (one wake-up a minute for chained timers of hidden pages) after
# 10 s hidden instead of 5 min, so that a test sees it quickly.
FAST_INTENSIVE_THROTTLING = (
    "--enable-features=IntensiveWakeUpThrottling:grace_period_seconds/10,"
    "QuickIntensiveWakeUpThrottlingAfterLoading:grace_period_seconds_loaded/10"
)
REAL_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--password-store=basic", "--use-mock-keychain", "--disable-features=Translate,MediaRouter",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1200,760", "--window-position=0,0",
    FAST_INTENSIVE_THROTTLING,
]
# Flags Playwright would add and that we must not have (checked against chrome://version).
PLAYWRIGHT_DISABLERS = (
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows", "--disable-back-forward-cache",
)


def _free_display() -> int:
    for n in range(90, 200):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return n
    raise RuntimeError("no free X display number")


def _stop(proc: subprocess.Popen | None) -> None:
    """Stop a process we started, with its process group (Chromium's helpers)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


class Xvfb:
    def __init__(self) -> None:
        if not shutil.which("Xvfb"):
            raise RuntimeError("Xvfb is missing: apt-get install xvfb (scripts/setup.sh installs it)")
        self.display = f":{_free_display()}"
        self.proc = subprocess.Popen(["Xvfb", self.display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        sock = pathlib.Path(f"/tmp/.X11-unix/X{self.display[1:]}")
        deadline = time.monotonic() + 20
        while not sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb {self.display} did not start")
            time.sleep(0.05)

    def close(self) -> None:
        _stop(self.proc)


class RealChromium:
    """Headed Chromium on ``display``, one window; ``browser`` is Playwright's CDP attachment."""

    def __init__(self, playwright: Any, display: str) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="comet_real_chromium_")
        env = {**os.environ, "DISPLAY": display}
        self.proc = subprocess.Popen(
            [CHROMIUM, f"--user-data-dir={self._profile.name}", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", *REAL_ARGS, "about:blank"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = pathlib.Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self.browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}", no_defaults=True)
        self.context = self.browser.contexts[0]  # the default profile: its tabs share one window
        self.requests: list[str] = []
        self.left_loopback: list[str] = []
        self.context.on("request", self._on_request)
        self._first = self.context.pages[0] if self.context.pages else None

    def _on_request(self, request: Any) -> None:
        url = request.url
        if not url.startswith(LOCAL_PREFIXES) and not url.startswith("chrome"):
            self.left_loopback.append(url)

    def command_line(self) -> str:
        """The flags Chromium really runs with (its own /proc entry, not the wrapper's)."""
        out = []
        for pid in subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout.split():
            try:
                out.append(pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                pass
        return "\n".join(out)

    def new_tab(self, url: str) -> Any:
        """A new tab in the same window (CDP Target.createTarget without newWindow)."""
        cdp = self.browser.new_browser_cdp_session()
        with self.context.expect_page() as info:
            cdp.send("Target.createTarget", {"url": "about:blank"})
        cdp.detach()
        page = info.value
        if self._first is not None:  # the start-up about:blank tab is not needed once we have one
            self._first.close()
            self._first = None
        if url:
            page.goto(url)
        return page

    def close(self) -> None:
        try:
            self.browser.close()
        except Exception:
            pass
        _stop(self.proc)
        self._profile.cleanup()
