#!/usr/bin/env python
"""Ingest rate: messages/s a Python callback ingests in one tab, against plain JS (issues 2, 13, 15).

Pages (one fresh headless Chromium each, own profile; the kinds take turns being first):
* bench/pages/py_ingest.html (Pyodide) and mpy_ingest.html (MicroPython), one Python source,
  bench/pages/ingest_page.py: cometApi subscribed to the pipe; a Python callback counts and
  reads ``e.data["i"]`` (comet_py has decoded the frame and the JSON data inside it);
* bench/pages/js_ingest.html: a minimal plain-JS client, same URL format, that JSON.parse's each
  frame and its data string, and counts.
Each keeps first/last receive times (performance.now()) inside the page; rate = (n-1)/(last-first).

No DevTools client is attached. Under Playwright, every WebSocket frame also became a CDP
event (the Network domain is on), which cost about 60 µs of the renderer's main thread, 70 µs
of the browser process and 15–40 µs of Playwright's driver per frame, more than the pages' own
work; and pausing the page with Debugger.pause made V8 switch the page's WebAssembly to debug
code, which it then recompiled during the drain. So the browser is started by hand and the page
talks to this script over HTTP (bench/pages/ingest_driver.js): once subscribed, its main thread
waits in a synchronous XHR to ``/hold``; meanwhile one CPython websockets connection publishes N
messages with web_pipe2 (data ``{"i": k, "pad": 80 x}``, about 190 bytes per delivered frame)
and waits for its N delivery reports (the server has queued every frame to the page); then
``/hold`` answers and the page drains the backlog from its socket. So the figure is the page's
own processing rate, not the server's or the feeder's (printed too, as "fill"). The server runs
with --max-client-buffer 256 MiB so that a held page's backlog is not cut (the default 4 MiB
closes a connection that lags that much, by design). The browser's proxy is a port of this
script that counts and refuses every request that would leave 127.0.0.1.

During the drain, /proc gives the CPU of each of our processes (server, Chromium's browser,
renderer and its threads, network service): µs per frame per process, and how many cores they
kept busy. After the drain, each page times ``--direct`` frames of the same shape handed
straight to its frame handler (``window.benchDirect``: comet_py's ``Connection._received``, the
JS page's ``onmessage``): the page's own work per message, without the socket; the Python pages
also time the same frames through two ``json.loads`` and nothing else (``window.benchFloor``):
what any Python page pays before its own code. bench/ingest_cpython.py measures the same path in
CPython.

    .venv/bin/python bench/ingest.py [--n 20000] [--rounds 3] [--direct 5000] [--wait-idle 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time

import common  # noqa: F401  (sets sys.path)
from common import chromium_args, descendant_cpu, load_average, median, record, spread, table, wait_quiet

import websockets
from aiohttp import web

from tests.support.browser import CHROMIUM
from tests.support.server import ServerProcess

OFFSITE: list = []
PAD = "x" * 80
#: the pages: comet_py on Pyodide, comet_py on MicroPython, the plain-JS baseline
KINDS = ("py", "mpy", "js")
SERVER_ARGS = ["--max-client-buffer", str(256 * 2**20)]


async def connect(server, dev_id, uuid):
    ws = await websockets.connect(server.ws_url(dev_id=dev_id, uuid=uuid), ping_interval=None,
                                  max_size=2**20, max_queue=None)
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first.get("event") == "serverInfo", first
    return ws


async def wait_subscribers(ws, pipe, count, timeout=30.0):
    """pipe_count until the server sees ``count`` subscribers."""
    deadline = time.monotonic() + timeout
    k = 0
    while time.monotonic() < deadline:
        k += 1
        marker = f"wc{k}"
        await ws.send(f"pipe_count\n{pipe}\n{marker}\n")
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if m.get("marker") == marker:
                break
        data = m["data"]
        n = data["user_in_pipe"] if isinstance(data, dict) else data[1]
        if n >= count:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{pipe}: no {count} subscribers after {timeout} s")


async def fill(pub, pipe, n, timeout=180.0):
    """Publish n messages as fast as the server takes them; return when all n reports are back."""
    reports = 0
    done = asyncio.Event()

    async def read_reports():
        nonlocal reports
        async for frame in pub:
            if '"_answer_to_' in frame:
                reports += 1
                if reports >= n:
                    done.set()
                    return

    reader = asyncio.create_task(read_reports())
    t0 = time.perf_counter()
    for k in range(n):
        await pub.send(f'web_pipe2\n{pipe}\nm\n*\n{{"i": {k}, "pad": "{PAD}"}}')
        if k % 500 == 499:
            await asyncio.sleep(0)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        reader.cancel()
    return n / (time.perf_counter() - t0)


class Driver:
    """The bench's HTTP side on 127.0.0.1, for bench/pages/ingest_driver.js: ``/hold`` answers
    when the backlog is filled, ``/drained`` and ``/result`` come from the page. A second port
    is the browser's proxy: a request that would leave 127.0.0.1 reaches it, is counted and
    refused."""

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/hold", self._hold)
        app.router.add_post("/drained", self._drained)
        app.router.add_post("/result", self._result)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._proxy = await asyncio.start_server(self._offsite, "127.0.0.1", 0)
        self.proxy_port = self._proxy.sockets[0].getsockname()[1]
        return self

    def expect(self):
        """Fresh events for the next page."""
        self.arrived, self.release, self.drained = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.result = asyncio.get_running_loop().create_future()

    async def _hold(self, request):
        self.arrived.set()
        await self.release.wait()
        return web.Response(text="go", headers=CORS)

    async def _drained(self, request):
        self.drained.set()
        return web.Response(headers=CORS)

    async def _result(self, request):
        if not self.result.done():
            self.result.set_result(json.loads(await request.text()))
        return web.Response(headers=CORS)

    async def _offsite(self, reader, writer):
        line = await reader.readline()
        OFFSITE.append(line.decode(errors="replace").strip())
        writer.close()

    async def __aexit__(self, *exc):
        self._proxy.close()
        await self._runner.cleanup()


CORS = {"Access-Control-Allow-Origin": "*"}
#: Chromium's own background requests off (as Playwright's launch does), so that what reaches
#: the counting proxy is the page's
QUIET_BROWSER = [
    "--disable-field-trial-config", "--disable-client-side-phishing-detection", "--disable-default-apps",
    "--disable-extensions", "--disable-component-extensions-with-background-pages", "--no-service-autorun",
    "--metrics-recording-only", "--disable-breakpad", "--no-default-browser-check", "--password-store=basic",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
    "CertificateTransparencyComponentUpdater",
]


async def run_page(driver, server, kind, n, dev_id, pipe, direct):
    """One fresh headless Chromium (own profile, no DevTools attached) on one page kind."""
    pub = await connect(server, dev_id, "feeder" + "0" * 26)
    driver.expect()
    profile = tempfile.mkdtemp(prefix="ingest-")
    url = (f"{server.url}/bench/pages/{kind}_ingest.html?dev_id={dev_id}&pipe={pipe}&n={n}"
           f"&direct={direct}&driver={driver.url}")
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", *chromium_args(), *QUIET_BROWSER, f"--user-data-dir={profile}",
         f"--proxy-server=http://127.0.0.1:{driver.proxy_port}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    named = {server.proc.pid: "server"}
    try:
        await asyncio.wait_for(driver.arrived.wait(), 180)  # subscribed, and its main thread held
        await wait_subscribers(pub, pipe, 1)
        fill_rate = await fill(pub, pipe, n)
        await asyncio.sleep(0.3)
        cpu_before = descendant_cpu(named, threads_of=("renderer",))
        t_release = time.monotonic()
        driver.release.set()
        await asyncio.wait_for(driver.drained.wait(), 120)
        drain_s = time.monotonic() - t_release
        cpu_after = descendant_cpu(named, threads_of=("renderer",))
        out = await asyncio.wait_for(driver.result, 120)
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)
        await pub.close()
    res = out.get("result")
    if not res:
        return {"kind": kind, "rate": None, "received": out.get("count"), "fill_rate": fill_rate,
                "error": out.get("error", "timeout")}
    direct_ms, floor_ms = out.get("direct_ms"), out.get("floor_ms")
    return {"kind": kind, "rate": (res["n"] - 1) / (res["last"] - res["first"]) * 1000, "ms": res["last"] - res["first"],
            "received": res["n"], "fill_rate": fill_rate, "checksum_ok": res["checksum"] == n * (n - 1) // 2,
            "direct_us": direct_ms * 1000 / direct if direct_ms else None,
            "floor_us": floor_ms * 1000 / direct if floor_ms else None,
            # CPU of each process kind during the drain, per frame; and cores busy on average
            "cpu_us": {k: (cpu_after.get(k, 0) - v) * 1e6 / n for k, v in cpu_before.items()},
            "cores_busy": sum(cpu_after.get(k, 0) - v for k, v in cpu_before.items() if "/" not in k) / drain_s}


async def amain(args):
    server = ServerProcess(cometql=False, extra_args=SERVER_ARGS).start()
    results = {kind: [] for kind in KINDS}
    try:
        async with Driver() as driver:
            k = 0
            for r in range(args.rounds):
                for kind in KINDS[r % len(KINDS):] + KINDS[:r % len(KINDS)]:  # each kind first in turn
                    k += 1
                    res = await run_page(driver, server, kind, args.n, 1, f"web_ingest{k}", args.direct)
                    results[kind].append(res)
                    print(f"round {r + 1} {kind}: {res}", flush=True)
    finally:
        server.close()
    return results


#: hosts Chromium itself calls at start (component updater, network time, accounts)
CHROMIUM_SERVICES = {"clients2.google.com", "update.googleapis.com", "accounts.google.com"}


def offsite_text() -> str:
    """The refused requests, split into Chromium's own services and anything else."""
    hosts = [line.split()[1].split("//")[-1].split("/")[0].rsplit(":", 1)[0] for line in OFFSITE if " " in line]
    own = [h for h in hosts if h in CHROMIUM_SERVICES]
    other = sorted(set(hosts) - CHROMIUM_SERVICES) + (["?"] if len(hosts) < len(OFFSITE) else [])
    return (f"Requests that would have left 127.0.0.1, all refused at the bench's proxy: {len(OFFSITE)}; "
            f"{len(own)} of them Chromium's own services ({', '.join(sorted(set(own))) or 'none'}); "
            f"others: {', '.join(other) or 'none'}.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="messages per page (default 20000)")
    ap.add_argument("--rounds", type=int, default=3, help="pages of each kind (default 3)")
    ap.add_argument("--direct", type=int, default=5000,
                    help="then hand this many frames straight to the page's frame handler (default 5000; 0: skip)")
    ap.add_argument("--wait-idle", type=float, default=120.0, help="wait up to this long for the machine to be < 30%% busy first")
    args = ap.parse_args()
    busy_before = wait_quiet(args.wait_idle)
    t0 = time.monotonic()
    load_before = load_average()
    results = asyncio.run(amain(args))
    elapsed = time.monotonic() - t0

    def stats(kind, key="rate"):
        return spread(r[key] for r in results[kind] if r.get(key))

    rates = {kind: stats(kind) for kind in KINDS}
    js_rate = rates["js"][0]
    ratios = {kind: rates[kind][0] / js_rate if rates[kind][0] and js_rate else None for kind in KINDS}
    bad = [r for rs in results.values() for r in rs if not r.get("checksum_ok")]
    fills = [r["fill_rate"] for rs in results.values() for r in rs if r.get("fill_rate")]

    def num(x, fmt="{:.1f}"):
        return fmt.format(x) if x is not None else "n/a"

    names = {"py": "comet_py on Pyodide, Python callback (py_ingest.html)",
             "mpy": "comet_py on MicroPython, Python callback (mpy_ingest.html)",
             "js": "plain-JS WebSocket page (js_ingest.html), baseline"}
    rows = []
    for kind in KINDS:
        med, lo, hi = rates[kind]
        rows.append([names[kind], num(med, "{:,.0f}"), f"{lo:,.0f}–{hi:,.0f}" if med else "", num(ratios[kind], "{:.2f}"),
                     num(stats(kind, "direct_us")[0]), num(stats(kind, "floor_us")[0]) if kind != "js" else "—"])

    # CPU per frame in the drain, by process: where a page's frames cost, beyond its own handler
    labels = ["renderer", "network service", "browser", "gpu", "server"]
    cpu_rows = []
    for kind in KINDS:
        per = [r["cpu_us"] for r in results[kind] if r.get("cpu_us")]
        if not per:
            continue
        cells = [num(median(p.get(label, 0) for p in per)) for label in labels]
        total = median(sum(v for k, v in p.items() if "/" not in k) for p in per)
        busy = median(r["cores_busy"] for r in results[kind] if r.get("cores_busy") is not None)
        wall = 1e6 / rates[kind][0] if rates[kind][0] else None
        cpu_rows.append([kind, *cells, num(total), num(wall), f"{busy:.2f}"])

    md = (
        f"Command: `.venv/bin/python bench/ingest.py --n {args.n} --rounds {args.rounds}` — "
        f"{args.rounds} fresh pages of each kind, each kind first in turn, {args.n:,} messages each (then {args.direct:,} frames "
        f"handed straight to the page's frame handler: comet_py's `Connection._received`, the JS page's `onmessage`); "
        f"took {elapsed:.0f} s. "
        f"Load average before/after: {load_before} / {load_average()}; CPU busy just before: {busy_before:.0f}%. {offsite_text()} "
        f"Runs with a missing message or a wrong checksum: {len(bad)}.\n\n"
        + table(["receiver (draining a backlog of frames)", "msgs/s median", "min–max", "÷ JS",
                 f"µs/msg, {args.direct:,} frames straight to the handler", "µs/msg, two JSON decodes only"], rows)
        + (f"\n\nPyodide/JS = **{ratios['py']:.2f}**; goal ≥ 0.9 (issue 13): **{'met' if ratios['py'] >= 0.9 else 'not met'}**."
           if ratios["py"] else "\n\nPyodide/JS: n/a (a run failed).")
        + (f" MicroPython/JS = **{ratios['mpy']:.2f}** (issue 15: reported, no goal)." if ratios["mpy"] else "")
        + (f" For scale, the server + CPython feeder filled the backlog at {median(fills):,.0f} msgs/s (median; web_pipe2 in, one subscriber + one delivery report out)." if fills else "")
        + "\n\nCPU per frame during the drain, by process (µs, median of the pages; from /proc, our own processes only), "
          "against the wall time per frame; cores busy = all these processes' CPU ÷ drain time (2 cores here):\n\n"
        + table(["page", *labels, "all", "wall µs/frame", "cores busy"], cpu_rows)
    )
    record("ingest", md, {"args": vars(args), "results": results, "ratio": ratios["py"], "ratios": ratios, "offsite": OFFSITE, "elapsed_s": elapsed})


if __name__ == "__main__":
    main()
