#!/usr/bin/env python
"""Where a page's time to "connected" goes: bench/pages/connect_trace.html, N fresh loads.

Prints the median time of each performance.now() mark after ``cometApi.start`` (lock requests
and grants, the WebSocket's events, the Python start path) and, per module, the median time
its import took (compile or .pyc read / module body, nested imports left out). A diagnostic:
it records nothing into bench/README.md.

    .venv/bin/python bench/connect_trace.py [--n 7]
"""

from __future__ import annotations

import argparse
import collections

import common  # noqa: F401  (sets sys.path)
from common import chromium_args, median, wait_quiet

from playwright.sync_api import sync_playwright

from tests.support.browser import CHROMIUM
from tests.support.server import ServerProcess


def load(browser, server, dev_id, query=""):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(f"{server.url}/bench/pages/connect_trace.html?dev_id={dev_id}{query}")
        page.wait_for_function("window.benchReady > 0 && window.benchImports", timeout=90_000, polling=10)
        page.wait_for_timeout(50)
        return page.evaluate("({marks: window.benchMarks, imports: window.benchImports,"
                             " ready: window.benchReady, py: window.benchPyStart, gc: window.benchGc})")
    finally:
        ctx.close()


def self_times(imports):
    """(name, load_ms, body_ms) per module, each without the modules it imported."""
    out = []
    for name, t0, t1, t2 in imports:
        children = [(c0, c2) for n, c0, _, c2 in imports if n != name and t0 <= c0 and c2 <= t2]
        # only direct children: drop those inside another child
        direct = [c for c in children if not any(o != c and o[0] <= c[0] and c[1] <= o[1] for o in children)]
        nested = sum(c2 - c0 for c0, c2 in direct)
        nested_in_body = sum(c2 - c0 for c0, c2 in direct if c0 >= t1)
        out.append((name, (t1 - t0) - (nested - nested_in_body), (t2 - t1) - nested_in_body))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=7)
    ap.add_argument("--wait-idle", type=float, default=60.0)
    ap.add_argument("--gc-off", action="store_true", help="the page disables the garbage collector around import and start")
    args = ap.parse_args()
    wait_quiet(args.wait_idle)
    server = ServerProcess(cometql=False).start()
    runs = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
            load(browser, server, 1)  # warm-up
            for i in range(args.n):
                runs.append(load(browser, server, 200 + i, "&gc=off" if args.gc_off else ""))
            browser.close()
    finally:
        server.close()

    marks = collections.defaultdict(list)
    order: dict[str, float] = {}
    for run in runs:
        base = next(t for n, t in run["marks"] if n == "py: cometApi.start")
        seen = set()
        for name, t in run["marks"]:
            if name in seen:
                continue
            seen.add(name)
            marks[name].append(t - base)
            order.setdefault(name, t - base)
    print(f"marks, ms after cometApi.start (median of {len(runs)}):")
    for name in sorted(marks, key=lambda n: median(marks[n])):
        print(f"  {median(marks[name]):8.1f}  {name}")
    imp = collections.defaultdict(lambda: ([], []))
    for run in runs:
        for name, load_ms, body_ms in self_times(run["imports"]):
            imp[name][0].append(load_ms)
            imp[name][1].append(body_ms)
    print("\nimports (median ms, nested imports left out): load (compile/.pyc)  body")
    tl = tb = 0.0
    for name in sorted(imp, key=lambda n: -(median(imp[n][0]) + median(imp[n][1]))):
        lm, bm = median(imp[name][0]), median(imp[name][1])
        tl += lm
        tb += bm
        print(f"  {lm:7.1f} {bm:7.1f}  {name}")
    print(f"  {tl:7.1f} {tb:7.1f}  total")
    gcs = [sum(e - s for s, _, e in r["gc"]) for r in runs]
    print(f"\ngarbage collections before connected: {median([len(r['gc']) for r in runs])} taking {median(gcs):.1f} ms (medians)")
    print(f"import comet_py: {median([next(t for n, t in r['marks'] if n == 'py: imported comet_py') - next(t for n, t in r['marks'] if n == 'py: import comet_py') for r in runs]):.1f} ms;"
          f" start -> connected (incl. coordinator import): {median([r['ready'] - next(t for n, t in r['marks'] if n == 'py: imported comet_py') for r in runs]):.1f} ms")


if __name__ == "__main__":
    main()
