#!/usr/bin/env python
"""EXPERIMENT (issue 13, goal 1): the same fan-out, latency and connect runs as
bench/server_fanout.py, alternately against comet_server from this checkout and from another
source tree (e.g. ``git archive <ref> | tar -x -C DIR``), so that both sides see the same machine
load. Rates move with the load of a shared machine; server CPU per delivery and per connection
(from /proc, cometload ``--server-pid``) move much less, so they are printed too.

    .venv/bin/python bench/experiments/ab_server.py --other DIR [--label-other 2c08e7e] [--rounds 3]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
import common  # noqa: E402
from common import cometload, dig, load_average, ms, record, table  # noqa: E402

from tests.support import server as server_mod  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402


class ServerIn(ServerProcess):
    """ServerProcess whose ``python -m comet_server`` runs from ``root`` (its code, not ours)."""

    def __init__(self, root: pathlib.Path, **kw) -> None:
        super().__init__(cometql=False, **kw)
        self.root = root

    def start(self) -> "ServerIn":
        old = server_mod.ROOT
        server_mod.ROOT = self.root
        try:
            return super().start()  # type: ignore[return-value]
        finally:
            server_mod.ROOT = old


def one_side(root: pathlib.Path, args) -> dict:
    common_args = ["--conns", str(args.conns), "--procs", "1", "--payload-bytes", "200",
                   "--wait-idle", str(args.wait_idle), "--idle-threshold", "30", "--loop", args.loop]
    out = {}
    for name, extra in (("fanout", ["--mode", "fanout", "--pipe", "web_fanout", "--rate", "max", "--window", "10"]),
                        ("latency", ["--mode", "fanout", "--pipe", "web_latency", "--rate", "20"]),
                        ("idle", ["--mode", "idle", "--pipe", "web_idle"])):
        srv = ServerIn(root).start()
        try:
            out[name] = cometload(srv, [*extra, "--duration", str(args.duration), *common_args], name)
        finally:
            srv.close()
    fan, lat, idle = out["fanout"], out["latency"], out["idle"]
    rate = dig(fan, "delivery", "delivered_per_s")
    cpu = dig(fan, "delivery", "cpu_until_drained", "server_cpu_pct")
    conn_cpu = dig(idle, "connect", "cpu", "server_cpu_s")
    ok = dig(idle, "connect", "ok")
    return {"deliveries_per_s": rate,
            "cpu_us_per_delivery": cpu / 100 / rate * 1e6 if rate and cpu is not None else None,
            "p50_ms": ms(dig(lat, "delivery", "latency_us", "50")), "p99_ms": ms(dig(lat, "delivery", "latency_us", "99")),
            "conns_per_s": dig(idle, "connect", "conns_per_s"),
            "cpu_us_per_connect": conn_cpu / ok * 1e6 if conn_cpu is not None and ok else None,
            "other_cpu_pct": [dig(r, "delivery", "other_processes_cpu_pct") or dig(r, "connect", "cpu", "other_processes_cpu_pct")
                              for r in (fan, lat, idle)],
            "cmds": [r["_cmd"] for r in (fan, lat, idle)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", required=True, help="source tree of the other comet_server")
    ap.add_argument("--label-other", default="other")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--wait-idle", type=float, default=30.0)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = ap.parse_args()
    here = common.ROOT
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True).stdout.strip()
    sides = {args.label_other: pathlib.Path(args.other).resolve(), f"this checkout ({head})": here}
    load_before = load_average()
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    for i in range(args.rounds):
        for label, root in sides.items():
            print(f"\n## round {i + 1}: {label}", flush=True)
            runs[label].append(one_side(root, args))
    keys = [("deliveries_per_s", "fan-out deliveries/s (max rate, window 10)", 0),
            ("cpu_us_per_delivery", "server CPU per delivery, µs", 1),
            ("p50_ms", "20 msgs/s × 1,000, p50 ms", 1), ("p99_ms", "20 msgs/s × 1,000, p99 ms", 1),
            ("conns_per_s", f"connect {args.conns:,}, conn/s", 0),
            ("cpu_us_per_connect", "server CPU per connection, µs", 0)]
    a, b = list(sides)
    rows = []
    for key, label, nd in keys:
        va = [r[key] for r in runs[a] if r[key] is not None]
        vb = [r[key] for r in runs[b] if r[key] is not None]
        ma, mb = (statistics.median(v) if v else None for v in (va, vb))
        rows.append([label, ", ".join(f"{x:,.{nd}f}" for x in va), ", ".join(f"{x:,.{nd}f}" for x in vb),
                     f"{mb / ma:.2f}" if ma and mb else "n/a"])
    other = "; ".join(f"{k}: " + " / ".join(str(r["other_cpu_pct"]) for r in v) for k, v in runs.items())
    md = (f"Command: `.venv/bin/python bench/experiments/ab_server.py --other DIR --label-other {args.label_other} "
          f"--rounds {args.rounds} --conns {args.conns} --duration {args.duration:g} --wait-idle {args.wait_idle:g} --loop {args.loop}` "
          f"(load average before/after {load_before} / {load_average()}); sides alternate, every run on a fresh server, "
          f"the cometload commands of server_fanout.py (`--loop {args.loop}`).\n\n"
          + table(["figure (each run, in order)", a, b, "median ÷ median"], rows)
          + f"\n\nOther processes' CPU (% of a core) during fan-out / latency / connect, per run: {other}.")
    record("ab_server", md, {"args": vars(args), "runs": runs})


if __name__ == "__main__":
    main()
