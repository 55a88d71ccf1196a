#!/usr/bin/env python
"""Page load: navigation -> comet_py connected, against a bare PyScript hello page (issue 2 §5).

Both pages use the same /pyscript.toml (so both fetch Pyodide, PyScript and comet_py's files):
* bench/pages/hello.html   sets window.benchReady = performance.now() when its Python runs;
* bench/pages/connect.html imports comet_py, starts cometApi and sets window.benchReady when
  the state becomes "connected" (WebSocket open and serverInfo received).
* bench/pages/hello_mpy.html, connect_mpy.html: the same two on MicroPython (type="mpy",
  /pyscript-mpy.toml: the vendored MicroPython and comet_py.zip), compared with each other and
  with the Pyodide pages of the same rounds.

Bytes: the body bytes a page fetched (document + every resource in its Resource Timing, fresh
context, so nothing cached), and how many requests.

Every sample is a fresh page in a fresh browser context (offline: non-loopback requests are
aborted and counted), in one headless Chromium; the two pages alternate (ABAB.., the order
swapped every round), after one unrecorded warm-up load of each. performance.now() is ms since
navigation start. Goal (issue 13): connect median <= 1.02 x hello median. On shared cores a
single load varies by 30-200 ms, so the table also gives the mean of the fastest three loads of
each page and the median of the per-round ratios (the two loads of a round are neighbours in
time, so they share the machine's load).

    .venv/bin/python bench/page_load.py [--n 7]
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (sets sys.path)
from common import chromium_args, load_average, median, record, spread, table, wait_quiet, watch_offline

from playwright.sync_api import sync_playwright

from tests.support.browser import CHROMIUM
from tests.support.server import ServerProcess

PAGES = {"hello": "/bench/pages/hello.html", "connect": "/bench/pages/connect.html",
         "hello_mpy": "/bench/pages/hello_mpy.html", "connect_mpy": "/bench/pages/connect_mpy.html"}


OFFSITE: list = []


def load(browser, server, name, dev_id):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        watch_offline(page, OFFSITE)
        t0 = time.perf_counter()
        path = PAGES[name] + (f"?dev_id={dev_id}" if name.startswith("connect") else "")
        page.goto(server.url + path)
        page.wait_for_function("window.benchReady > 0", timeout=90_000, polling=10)
        wall = (time.perf_counter() - t0) * 1000
        marks = page.evaluate("({ready: window.benchReady, py: window.benchPyStart, imp: window.benchImported || null,"
                              " bytes: performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
                              ".reduce((a, e) => a + e.encodedBodySize, 0),"
                              " requests: 1 + performance.getEntriesByType('resource').length})")
        page.close()
    finally:
        ctx.close()
    return {"ready": marks["ready"], "py_start": marks["py"], "imported": marks["imp"], "wall": wall,
            "bytes": marks["bytes"], "requests": marks["requests"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=7, help="fresh pages of each kind (default 7)")
    ap.add_argument("--wait-idle", type=float, default=120.0, help="wait up to this long for the machine to be < 30%% busy first")
    args = ap.parse_args()
    busy_before = wait_quiet(args.wait_idle)
    t_start = time.monotonic()
    load_before = load_average()
    server = ServerProcess(cometql=False).start()
    samples = {name: [] for name in PAGES}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
            for name in PAGES:  # warm-up (OS caches, server), not recorded
                load(browser, server, name, 1)
            for i in range(args.n):
                order = tuple(PAGES) if i % 2 == 0 else tuple(reversed(PAGES))
                for name in order:
                    s = load(browser, server, name, 100 + i)
                    samples[name].append(s)
                    print(f"round {i + 1} {name:8s} ready {s['ready']:7.0f} ms (python started {s['py_start']:6.0f}, wall {s['wall']:6.0f})", flush=True)
            browser.close()
    finally:
        server.close()
    elapsed = time.monotonic() - t_start

    def stats(name, key="ready"):
        return spread(s[key] for s in samples[name] if s[key] is not None)

    def fastest3(name):
        values = sorted(s["ready"] for s in samples[name])[:3]
        return sum(values) / len(values)

    h, c = stats("hello"), stats("connect")
    ratio = c[0] / h[0]
    h3, c3 = fastest3("hello"), fastest3("connect")
    pair_ratio = median([cs["ready"] / hs["ready"] for hs, cs in zip(samples["hello"], samples["connect"])])
    imports = [s["imported"] - s["py_start"] for s in samples["connect"]]
    starts = [s["ready"] - s["imported"] for s in samples["connect"]]
    hw, cw = stats("hello", "wall"), stats("connect", "wall")
    hp, cp = stats("hello", "py_start"), stats("connect", "py_start")
    mh, mc = stats("hello_mpy"), stats("connect_mpy")
    mh3, mc3 = fastest3("hello_mpy"), fastest3("connect_mpy")
    mhw, mcw = stats("hello_mpy", "wall"), stats("connect_mpy", "wall")
    mhp, mcp = stats("hello_mpy", "py_start"), stats("connect_mpy", "py_start")
    mpy_ratio = mc[0] / mh[0]
    mpy_pair_ratio = median([cs["ready"] / hs["ready"] for hs, cs in zip(samples["hello_mpy"], samples["connect_mpy"])])
    mpy_imports = [s["imported"] - s["py_start"] for s in samples["connect_mpy"]]
    mpy_starts = [s["ready"] - s["imported"] for s in samples["connect_mpy"]]

    def size(name):
        kib = median([s["bytes"] for s in samples[name]]) / 1024
        return f"{kib:,.0f} KiB / {median([s['requests'] for s in samples[name]]):.0f}"

    rows = [
        ["bare PyScript hello (baseline)", f"{h[0]:.0f}", f"{h[1]:.0f}–{h[2]:.0f}", f"{h3:.0f}", f"{hp[0]:.0f}", f"{hw[0]:.0f}", "1.000", "1.000", size("hello")],
        ["comet_py connected", f"{c[0]:.0f}", f"{c[1]:.0f}–{c[2]:.0f}", f"{c3:.0f}", f"{cp[0]:.0f}", f"{cw[0]:.0f}",
         f"**{ratio:.3f}**", f"{c3 / h3:.3f}", size("connect")],
        ["MicroPython: bare hello (its baseline)", f"{mh[0]:.0f}", f"{mh[1]:.0f}–{mh[2]:.0f}", f"{mh3:.0f}", f"{mhp[0]:.0f}", f"{mhw[0]:.0f}",
         f"1.000 ({mh[0] / h[0]:.3f} of Pyodide's)", f"1.000 ({mh3 / h3:.3f})", size("hello_mpy")],
        ["MicroPython: comet_py connected", f"{mc[0]:.0f}", f"{mc[1]:.0f}–{mc[2]:.0f}", f"{mc3:.0f}", f"{mcp[0]:.0f}", f"{mcw[0]:.0f}",
         f"**{mpy_ratio:.3f}** ({mc[0] / c[0]:.3f} of Pyodide's)", f"{mc3 / mh3:.3f} ({mc3 / c3:.3f})", size("connect_mpy")],
    ]
    md = (
        f"Command: `.venv/bin/python bench/page_load.py --n {args.n}` — {args.n} fresh pages of each kind, "
        f"alternating, one browser; took {elapsed:.0f} s. Load average before/after: {load_before} / {load_average()}; CPU busy just before: {busy_before:.0f}%. "
        f"Requests off 127.0.0.1: {len(OFFSITE)}.\n\n"
        + table(["page", "ready median (ms since navigation)", "min–max", "fastest 3 (mean)", "Python started (median)",
                 "wall from goto (median)", "ratio of medians", "ratio of fastest 3", "fetched (median) / requests"], rows)
        + f"\n\nGoal ≤ 1.02: **{'met' if ratio <= 1.02 else 'not met'}** (ratio of medians {ratio:.3f}, "
        f"{c[0] - h[0]:+.0f} ms; median of the {args.n} per-round ratios {pair_ratio:.3f}). In the comet_py page, "
        f"`import comet_py` took {median(imports):.1f} ms (median; fastest {min(imports):.1f}) "
        f"and start → connected {median(starts):.1f} ms (fastest {min(starts):.1f}). "
        f"On MicroPython: connect/hello ratio of medians {mpy_ratio:.3f} ({mc[0] - mh[0]:+.0f} ms; per-round median "
        f"{mpy_pair_ratio:.3f}); `import comet_py` {median(mpy_imports):.1f} ms (fastest {min(mpy_imports):.1f}), "
        f"start → connected {median(mpy_starts):.1f} ms (fastest {min(mpy_starts):.1f})."
    )
    record("page_load", md, {"n": args.n, "samples": samples, "offsite": OFFSITE, "ratio": ratio,
                             "ratio_fastest3": c3 / h3, "ratio_per_round_median": pair_ratio, "elapsed_s": elapsed,
                             "mpy_ratio": mpy_ratio, "mpy_ratio_per_round_median": mpy_pair_ratio})


if __name__ == "__main__":
    main()
