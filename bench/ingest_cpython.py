#!/usr/bin/env python
"""Ingest cost in CPython, without a browser: CPU µs per message through ``Connection._received``.

One tab (the master, alone) of the fake browser (tests/support/fake_browser.py) runs the real
CometApi, Coordinator, MasterRole, Connection and Session, connected to the in-memory
comet_server; a callback like bench/pages/py_ingest.html's counts each message and reads
``e.data["i"]``. The frames are the ones comet_server sends for a web_pipe2 into a channel
(``wire.dumps`` of data/event/message_send_time/pipe/user_id, data ``{"i": k, "pad": 80 x}``), with
a ``history_id`` too in the "logged channel" case. They are handed straight to the master's
``Connection._received(text)``, which is what the browser's WebSocket listener calls per frame,
so the figure is comet_py's own work per message (in the browser add the JS→Python crossing).

Then one cProfile pass counts, per message, the calls of the builtins the issue named
(``isinstance``, ``dict.get``) and of the platform clock (``now_ms``: a JS FFI call in the
browser). ``--two-tabs`` adds a follower tab, so the master also encodes and posts each message
(the figure then includes the fake BroadcastChannel's own work: it decodes each post to record it).

    .venv/bin/python bench/ingest_cpython.py [--n 20000] [--rounds 5] [--two-tabs] [--against main]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import common  # noqa: F401  (sets sys.path)

if os.environ.get("COMET_PY_PATH"):  # --against: another comet_py/ first (the rest is this tree's)
    sys.path.insert(0, os.environ["COMET_PY_PATH"])

from comet_server import wire
from tests.support.fake_browser import Origin, run
from comet_py.api import CometApi
from tests.unit.test_coordinator import OPTS

PAD = "x" * 80
PIPE = "web_ingest"


def frames(n: int, *, history: bool, start: int = 0) -> list[str]:
    out = []
    for k in range(start, start + n):
        obj: dict[str, Any] = {"data": json.dumps({"i": k, "pad": PAD}), "event": "m",
                               "message_send_time": 1_700_000_000, "pipe": PIPE, "user_id": 0}
        if history:
            obj["history_id"] = str(k + 1)
        out.append(wire.dumps(obj))
    return out


def _builtin_calls(stats: pstats.Stats, names: tuple[str, ...]) -> int:
    total = 0
    for (_file, _line, func), (_cc, nc, *_rest) in stats.stats.items():  # type: ignore[attr-defined]
        if func in names:
            total += nc
    return total


def measure(n: int, rounds: int, *, history: bool, two_tabs: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}

    async def scenario(o: Origin) -> None:
        got = {"count": 0, "checksum": 0}

        def on_message(e: Any) -> None:  # what bench/pages/py_ingest.html's callback does
            got["count"] += 1
            got["checksum"] += e.data["i"]

        apis = []
        for k in range(2 if two_tabs else 1):
            page = o.page()
            api = CometApi(platform=page)
            page.run(api.subscription, PIPE, on_message if k == 0 else (lambda e: None))
            page.run(api.start, dict(OPTS))
            apis.append(api)
            await o.until(lambda: api.state == "connected", 10, what="connected")
        master = apis[0]  # the first tab to start gets the lock
        assert master.isMaster()
        role = master._coordinator._master()
        received: Callable[[str], None] = role.connection._received
        page = master._platform
        clock_calls = {"n": 0}
        real_now = page.now_ms

        def counting_now() -> float:
            clock_calls["n"] += 1
            return real_now()

        page.now_ms = counting_now  # type: ignore[method-assign]
        got["count"] = got["checksum"] = 0
        times = []
        base = 0
        for _ in range(rounds):
            batch = frames(n, history=history, start=base)
            base += n
            t0 = time.process_time()
            for text in batch:
                page.run(received, text)
            times.append((time.process_time() - t0) / n * 1e6)
        assert got["count"] == rounds * n, got
        assert got["checksum"] == base * (base - 1) // 2
        clock_calls["n"] = 0
        batch = frames(n, history=history, start=base)
        prof = cProfile.Profile()
        prof.enable()
        for text in batch:
            page.run(received, text)
        prof.disable()
        stats = pstats.Stats(prof)
        result.update(
            us_per_message=statistics.median(times), us_min=min(times), us_max=max(times),
            isinstance_per_message=_builtin_calls(stats, ("<built-in method builtins.isinstance>",)) / n,
            dict_get_per_message=_builtin_calls(stats, ("<method 'get' of 'dict' objects>",)) / n,
            now_ms_per_message=clock_calls["n"] / n,
            function_calls_per_message=stats.total_calls / n,  # type: ignore[attr-defined]
        )
        await o.settle(0.1)  # the follower's posts

    run(scenario)
    return result


def _checkout(ref: str) -> str:
    """comet_py/ of a git ref, in a temporary directory (the tests and server stay this tree's)."""
    out = tempfile.mkdtemp(prefix="ingest_ref_")
    archive = subprocess.run(["git", "-C", str(common.ROOT), "archive", ref, "comet_py"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
    return out


def _rows(results: list[tuple[str, dict[str, Any]]]) -> None:
    print(f"{'comet_py / frames':<34} {'CPU µs/msg median':>17} {'min-max':>13} {'calls':>6} "
          f"{'isinstance':>10} {'dict.get':>8} {'now_ms':>6}")
    for name, r in results:
        print(f"{name:<34} {r['us_per_message']:>17.2f} {r['us_min']:>6.2f}-{r['us_max']:<6.2f} "
              f"{r['function_calls_per_message']:>6.0f} {r['isinstance_per_message']:>10.1f} "
              f"{r['dict_get_per_message']:>8.1f} {r['now_ms_per_message']:>6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="messages per round (default 20000)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5); the median is shown")
    ap.add_argument("--two-tabs", action="store_true", help="a follower tab too: the master relays each message")
    ap.add_argument("--against", metavar="REF", help="also measure comet_py/ of this git ref (e.g. main), "
                    "alternating with this tree's, one process per round: a before/after on one loaded machine")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one side of --against
    args = ap.parse_args()
    if args.json:
        print(json.dumps({str(h): measure(args.n, args.rounds, history=h, two_tabs=args.two_tabs)
                          for h in (False, True)}))
        return
    if not args.against:
        _rows([("with history_id" if h else "no history_id",
                measure(args.n, args.rounds, history=h, two_tabs=args.two_tabs)) for h in (False, True)])
        return
    sides = {"this tree": None, args.against: _checkout(args.against)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, path in sides.items():
            env = dict(os.environ, COMET_PY_PATH=path or "")
            cmd = [sys.executable, __file__, "--json", "--n", str(args.n), "--rounds", "1"]
            if args.two_tabs:
                cmd.append("--two-tabs")
            runs[name].append(json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True,
                                                        text=True).stdout))
    shutil.rmtree(sides[args.against] or "", ignore_errors=True)
    rows = []
    for name in sides:
        for h in ("False", "True"):
            per_round = [r[h] for r in runs[name]]
            us = [r["us_per_message"] for r in per_round]
            rows.append((f"{name}, {'with' if h == 'True' else 'no'} history_id",
                         {**per_round[0], "us_per_message": statistics.median(us), "us_min": min(us),
                          "us_max": max(us)}))
    _rows(rows)


if __name__ == "__main__":
    main()
