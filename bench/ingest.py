#!/usr/bin/env python
"""Ingest rate: messages/s a Python callback ingests in one tab, against plain JS (issue 2 §5, issue 13).

Pages (fresh browser context each, one headless Chromium, the two kinds alternating):
* bench/pages/py_ingest.html: cometApi subscribed to the pipe; a Python callback counts and reads
  ``e.data["i"]`` (comet_py has decoded the frame and the JSON data inside it);
* bench/pages/js_ingest.html: a minimal plain-JS client, same URL format, that JSON.parse's each
  frame and its data string, and counts.
Both keep first/last receive times (performance.now()) inside the page; rate = (n-1)/(last-first).

Feeding the same frames to both, faster than either can take them: the page is paused through
CDP (Debugger.pause: JS stops at its next statement, i.e. in the first onmessage, so no frame is
processed while the backlog builds up; Page.setWebLifecycleState "frozen" did not stop
WebSocket delivery in this Chromium), one CPython websockets
connection publishes N messages with web_pipe2 (data ``{"i": k, "pad": 80 x}``, about 190 bytes
per delivered frame) and waits for its N delivery reports (the server has queued every frame to
the page), then the page is resumed (Debugger.resume) and drains the backlog from its socket. So the figure is the
page's own processing rate, not the server's or the feeder's (which is printed too, as "fill").
The server runs with --max-client-buffer 256 MiB so that a paused page's backlog is not cut
(the default 4 MiB closes a connection that lags that much, by design).

After the drain, each page times ``--direct`` frames of the same shape handed straight to its
frame handler (``window.benchDirect``: comet_py's ``Connection._received`` in Pyodide, the JS
page's ``onmessage``): the page's own work per message, without the socket (steadier than the
drain on a loaded machine), and the Python page also times the same frames through two JSON
decodes and nothing else (``window.benchFloor``): what any Python page pays before its own code.
bench/ingest_cpython.py measures the same path in CPython.

    .venv/bin/python bench/ingest.py [--n 20000] [--rounds 3] [--direct 5000] [--wait-idle 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import common  # noqa: F401  (sets sys.path)
from common import chromium_args, load_average, median, record, spread, table, wait_quiet, watch_offline

import websockets
from playwright.async_api import async_playwright

from tests.support.browser import CHROMIUM
from tests.support.server import ServerProcess

OFFSITE: list = []
PAD = "x" * 80
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


async def run_page(browser, server, kind, n, dev_id, pipe, direct):
    pub = await connect(server, dev_id, "feeder" + "0" * 26)
    ctx = await browser.new_context()
    try:
        page = await ctx.new_page()
        watch_offline(page, OFFSITE)
        await page.goto(f"{server.url}/bench/pages/{kind}_ingest.html?dev_id={dev_id}&pipe={pipe}&n={n}")
        await page.wait_for_function("window.benchSubscribed > 0 && typeof window.benchCount === 'function'",
                                     timeout=180_000, polling=50)
        await wait_subscribers(pub, pipe, 1)
        cdp = await ctx.new_cdp_session(page)
        await cdp.send("Debugger.enable")
        await cdp.send("Debugger.pause")  # takes effect at the next JS statement: the first onmessage
        fill_rate = await fill(pub, pipe, n)
        await asyncio.sleep(0.3)
        await cdp.send("Debugger.resume")
        await cdp.send("Debugger.disable")
        t_unfreeze = time.monotonic()
        res = None
        while time.monotonic() - t_unfreeze < 120:
            res = await page.evaluate("window.benchResult")
            if res:
                break
            await asyncio.sleep(0.05)
        count = await page.evaluate("window.benchCount()")
        direct_ms = await page.evaluate(f"window.benchDirect({direct})") if res and direct else None
        # The Python page only: the same frames through two JSON decodes and nothing else.
        floor_ms = (await page.evaluate(f"window.benchFloor({direct})")
                    if res and direct and kind == "py" else None)
    finally:
        await ctx.close()
        await pub.close()
    if not res:
        return {"kind": kind, "rate": None, "received": count, "fill_rate": fill_rate, "error": "timeout"}
    return {"kind": kind, "rate": (res["n"] - 1) / (res["last"] - res["first"]) * 1000, "ms": res["last"] - res["first"],
            "received": res["n"], "fill_rate": fill_rate, "checksum_ok": res["checksum"] == n * (n - 1) // 2,
            "direct_us": direct_ms * 1000 / direct if direct_ms else None,
            "floor_us": floor_ms * 1000 / direct if floor_ms else None}


async def amain(args):
    server = ServerProcess(cometql=False, extra_args=SERVER_ARGS).start()
    results = {"py": [], "js": []}
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
            k = 0
            for r in range(args.rounds):
                for kind in (("py", "js") if r % 2 == 0 else ("js", "py")):
                    k += 1
                    res = await run_page(browser, server, kind, args.n, 1, f"web_ingest{k}", args.direct)
                    results[kind].append(res)
                    print(f"round {r + 1} {kind}: {res}", flush=True)
            await browser.close()
    finally:
        server.close()
    return results


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

    py, js = stats("py"), stats("js")
    ratio = py[0] / js[0] if py[0] and js[0] else None
    bad = [r for rs in results.values() for r in rs if not r.get("checksum_ok")]
    fills = [r["fill_rate"] for rs in results.values() for r in rs if r.get("fill_rate")]

    py_direct, js_direct = stats("py", "direct_us"), stats("js", "direct_us")
    py_floor = stats("py", "floor_us")

    def row(name, s, base, d):
        direct = f"{d[0]:.1f}" if d[0] is not None else "n/a"
        if s[0] is None:
            return [name, "n/a", "", "", direct]
        return [name, f"{s[0]:,.0f}", f"{s[1]:,.0f}–{s[2]:,.0f}", f"{s[0] / base:.2f}" if base else "n/a", direct]

    rows = [row("comet_py, Python callback (py_ingest.html)", py, js[0], py_direct),
            row("plain-JS WebSocket page (js_ingest.html), baseline", js, js[0], js_direct)]
    md = (
        f"Command: `.venv/bin/python bench/ingest.py --n {args.n} --rounds {args.rounds}` — "
        f"{args.rounds} fresh pages of each kind, alternating, {args.n:,} messages each (then {args.direct:,} frames "
        f"handed straight to the page's frame handler: comet_py's `Connection._received`, the JS page's `onmessage`); "
        f"took {elapsed:.0f} s. "
        f"Load average before/after: {load_before} / {load_average()}; CPU busy just before: {busy_before:.0f}%. Requests off 127.0.0.1: {len(OFFSITE)}. "
        f"Runs with a missing message or a wrong checksum: {len(bad)}.\n\n"
        + table(["receiver (draining a backlog of frames)", "msgs/s median", "min–max", "÷ JS",
                 f"µs/msg, {args.direct:,} frames straight to the handler"], rows)
        + (f"\n\nPython/JS = **{ratio:.2f}**; goal ≥ 0.9 (issue 13): **{'met' if ratio >= 0.9 else 'not met'}**." if ratio else "\n\nPython/JS: n/a (a run failed).")
        + (f" In the Python page, the same {args.direct:,} frames through two JSON decodes and nothing else"
           f" (`window.benchFloor`: the frame, then its data string) took {py_floor[0]:.1f} µs/msg (median)."
           if py_floor[0] else "")
        + (f" For scale, the server + CPython feeder filled the backlog at {median(fills):,.0f} msgs/s (median; web_pipe2 in, one subscriber + one delivery report out)." if fills else "")
    )
    record("ingest", md, {"args": vars(args), "results": results, "ratio": ratio, "offsite": OFFSITE, "elapsed_s": elapsed})


if __name__ == "__main__":
    main()
