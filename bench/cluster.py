#!/usr/bin/env python
"""comet_server as a 3-node cluster over Redis against one node (issue 14 benchmark).

All in one run on this machine, each cometload run against fresh servers (tests/support:
ServerProcess on free ports; for the cluster a fresh redis-server, AOF on as in the tests, and
nodes a, b, c with --redis/--node-id), rounds interleaved so a change of machine load hits every
set-up alike:

1. fan-out latency: 20 msgs/s from one web_pipe2 publisher on node a to 1,000 subscribers spread
   round-robin over a, b, c (cometload --sub-url-bases), against the same load on one node
   (SQLite, the default). Latency is reported per node: b and c are the cross-node deliveries.
   The same run gives server CPU per delivery: CPU of all nodes (cometload --server-pid a,
   --watch-pid b c) over the deliveries; Redis's own CPU is reported apart (--watch-pid).
   A third set-up, one node over Redis (1,000 subscribers, same load), splits the cluster's extra
   cost into "running over Redis" and "crossing nodes". A fourth puts all 1,000 subscribers on b
   and c: each load-generator worker reads its sockets in arrival order, so in the spread set-up
   the frames from b and c wait behind those node a wrote first; here none do.
2. CometQL: INSERT on node a's CometQL port, 100 subscribers on node c, 100 INSERTs/s, against
   INSERT and subscribers on one node.

    .venv/bin/python bench/cluster.py [--rounds 3] [--duration 10] [--conns 1000]

Goal (issue 14): cluster CPU per delivery <= 1.5x single node; cross-node p50 < 15 ms at 20 msgs/s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import common  # noqa: F401 - puts the repo root on sys.path
from common import cometload, dig, load_average, ms, record, table, verdict

from tests.support.cluster import Cluster
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess

NODES = ("a", "b", "c")
CPU_GOAL = 1.5
P50_GOAL_MS = 15.0


class Setup:
    """The servers of one run: ``publisher`` takes the publisher (and --server-pid), ``subs`` the
    subscribers, ``watch`` the other pids whose CPU counts (other nodes), ``redis`` apart."""

    def __init__(self, kind: str, cometql: bool) -> None:
        self.kind = kind
        self.redis: RedisServer | None = None
        self.cluster: Cluster | None = None
        if kind == "single":
            self.nodes = {"a": ServerProcess(cometql=cometql, test_pages=False).start()}
            return
        self.cluster = Cluster(NODES if kind == "cluster" else ("a",), cometql=cometql)
        self.redis, self.nodes = self.cluster.redis, self.cluster.nodes

    def ws(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.nodes[name].port}"

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
        else:
            for n in self.nodes.values():
                n.close()


def run(kind: str, extra: list[str], label: str, *, cometql: bool = False, subs_on: tuple[str, ...] = ()) -> dict:
    s = Setup(kind, cometql)
    try:
        a = s.nodes["a"]
        args = list(extra)
        if subs_on:
            args += ["--sub-url-bases", ",".join(s.ws(n) for n in subs_on)]
        if cometql:
            args += ["--cometql", f"127.0.0.1:{a.cometql_port}"]
        others = [n for n in s.nodes if n != "a"]
        for n in others:
            args += ["--watch-pid", str(s.nodes[n].proc.pid)]
        if s.redis is not None:
            args += ["--watch-pid", str(s.redis.proc.pid)]
        res = cometload(a, args, f"{label} [{kind}]")
        # the shown command names ports and pids by role, so it reads the same in every run
        shown = res["_cmd"]
        for name, node in s.nodes.items():
            shown = shown.replace(f"127.0.0.1:{node.port}", f"127.0.0.1:PORT_{name}")
            shown = shown.replace(f"--watch-pid {node.proc.pid}", f"--watch-pid PID_{name}")
            if cometql:
                shown = shown.replace(f"127.0.0.1:{node.cometql_port}", f"127.0.0.1:QL_{name}")
        if s.redis is not None:
            shown = shown.replace(f"--watch-pid {s.redis.proc.pid}", "--watch-pid PID_redis")
        res["_cmd"] = shown
        cu = dig(res, "delivery", "cpu_until_drained") or {}
        watched = cu.get("watched_cpu_pct") or {}
        res["_cpu"] = {
            "nodes_pct": (cu.get("server_cpu_pct") or 0) + sum(watched.get(str(s.nodes[n].proc.pid), 0) for n in others),
            "per_node_pct": {"a": cu.get("server_cpu_pct"), **{n: watched.get(str(s.nodes[n].proc.pid)) for n in others}},
            "redis_pct": watched.get(str(s.redis.proc.pid)) if s.redis is not None else None,
        }
        if subs_on:
            by = dig(res, "delivery", "latency_us_by_sub_url") or {}
            res["_by_node"] = {n: by.get(s.ws(n)) for n in subs_on}
        return res
    finally:
        s.close()


def cpu_us_per_delivery(res: dict, which: str = "nodes_pct") -> float | None:
    rate = dig(res, "delivery", "delivered_per_s")
    pct = (res.get("_cpu") or {}).get(which)
    return pct / 100 / rate * 1e6 if rate and pct is not None else None


def p(res: dict, q: str, node: str | None = None) -> float | None:
    if node is None:
        return ms(dig(res, "delivery", "latency_us", q))
    return ms(((res.get("_by_node") or {}).get(node) or {}).get(q))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f2(x, unit=""):
    return "n/a" if x is None else f"{x:.2f}{unit}"


def ratio(a, b):
    return None if a is None or not b else a / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--ql-conns", type=int, default=100)
    ap.add_argument("--ql-rate", type=int, default=100)
    ap.add_argument("--procs", type=int, default=2, help="cometload subscriber processes (default 2)")
    ap.add_argument("--wait-idle", type=float, default=30.0, help="cometload --wait-idle (s) before each run")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    ap.add_argument("--skip-redis-single", action="store_true", help="leave out the 1-node-over-Redis set-up")
    ap.add_argument("--record-as", default="cluster", metavar="NAME",
                    help="README block and results/NAME.json to write (default cluster; another name keeps a variant apart)")
    args = ap.parse_args()
    t0 = time.monotonic()
    load_before = load_average()
    base = ["--mode", "fanout", "--procs", str(args.procs), "--payload-bytes", "200", "--duration", str(args.duration),
            "--wait-idle", str(args.wait_idle), "--idle-threshold", "30", "--loop", args.loop]
    fan = base + ["--conns", str(args.conns), "--pipe", "web_clat", "--rate", "20"]
    ql = base + ["--conns", str(args.ql_conns), "--pipe", "web_cql", "--rate", str(args.ql_rate)]
    kinds = ["single", "redis1", "cluster"] if not args.skip_redis_single else ["single", "cluster"]
    R: dict[str, list[dict]] = {f"fan_{k}": [] for k in kinds} | {"fan_far": [], "ql_single": [], "ql_cluster": []}
    loads = []
    for r in range(args.rounds):
        loads.append(load_average())
        for k in kinds:
            R[f"fan_{k}"].append(run(k, fan, f"round {r + 1}: 20 msgs/s x {args.conns}", subs_on=NODES if k == "cluster" else ()))
        # the same load with every subscriber on b and c: no frames of the publisher's node a
        # ahead of theirs in the load generator's read queues
        R["fan_far"].append(run("cluster", fan, f"round {r + 1}: 20 msgs/s x {args.conns} on b, c only", subs_on=NODES[1:]))
        R["ql_single"].append(run("single", ql, f"round {r + 1}: CometQL INSERT -> delivery", cometql=True))
        R["ql_cluster"].append(run("cluster", ql, f"round {r + 1}: CometQL INSERT on a -> delivery on c",
                                   cometql=True, subs_on=("c",)))
    elapsed = time.monotonic() - t0

    def per_round(key, fn):
        return [fn(x) for x in R[key]]

    def m(key, fn):
        return med(per_round(key, fn))

    fs, fc = "fan_single", "fan_cluster"
    s50, s99 = m(fs, lambda x: p(x, "50")), m(fs, lambda x: p(x, "99"))
    # cross-node: the worse of the two nodes without the publisher, per round
    x50 = m(fc, lambda x: max(filter(None, (p(x, "50", "b"), p(x, "50", "c"))), default=None))
    x99 = m(fc, lambda x: max(filter(None, (p(x, "99", "b"), p(x, "99", "c"))), default=None))
    l50, l99 = m(fc, lambda x: p(x, "50", "a")), m(fc, lambda x: p(x, "99", "a"))
    c50, c99 = m(fc, lambda x: p(x, "50")), m(fc, lambda x: p(x, "99"))
    f50 = m("fan_far", lambda x: max(filter(None, (p(x, "50", "b"), p(x, "50", "c"))), default=None))
    f99 = m("fan_far", lambda x: max(filter(None, (p(x, "99", "b"), p(x, "99", "c"))), default=None))
    cpu_s = m(fs, cpu_us_per_delivery)
    cpu_c = m(fc, cpu_us_per_delivery)
    cpu_redis = m(fc, lambda x: cpu_us_per_delivery(x, "redis_pct"))
    cpu_ratios = [ratio(cpu_us_per_delivery(c), cpu_us_per_delivery(s)) for s, c in zip(R[fs], R[fc])]
    q50s, q99s = m("ql_single", lambda x: p(x, "50")), m("ql_single", lambda x: p(x, "99"))
    q50c, q99c = m("ql_cluster", lambda x: p(x, "50")), m("ql_cluster", lambda x: p(x, "99"))
    r1 = "fan_redis1" in R
    if r1:
        cpu_r1 = m("fan_redis1", cpu_us_per_delivery)
        cpu_r1_redis = m("fan_redis1", lambda x: cpu_us_per_delivery(x, "redis_pct"))
        r150, r199 = m("fan_redis1", lambda x: p(x, "50")), m("fan_redis1", lambda x: p(x, "99"))

    def losses(key):
        return [f"{dig(x, 'delivery', 'lost')}/{dig(x, 'delivery', 'duplicates')}" for x in R[key]]

    cpu_ok = None if ratio(cpu_c, cpu_s) is None else ratio(cpu_c, cpu_s) <= CPU_GOAL
    rows = [
        [f"20 msgs/s × {args.conns:,}, p50: cross-node (subscribers on b, c; worse node)", f2(x50, " ms"), f2(s50, " ms"),
         f2(ratio(x50, s50)), f"< {P50_GOAL_MS:g} ms", verdict(None if x50 is None else x50 < P50_GOAL_MS)],
        ["… p99: cross-node (worse of b, c)", f2(x99, " ms"), f2(s99, " ms"), f2(ratio(x99, s99)), "", ""],
        ["… p50 / p99: subscribers on the publisher's node a", f"{f2(l50)} / {f2(l99)} ms", f"{f2(s50)} / {f2(s99)} ms",
         f"{f2(ratio(l50, s50))} / {f2(ratio(l99, s99))}", "", ""],
        [f"… p50 / p99: all {args.conns:,} subscribers", f"{f2(c50)} / {f2(c99)} ms", f"{f2(s50)} / {f2(s99)} ms",
         f"{f2(ratio(c50, s50))} / {f2(ratio(c99, s99))}", "", ""],
        [f"… p50 / p99 with all {args.conns:,} subscribers on b and c (none on a; worse node)", f"{f2(f50)} / {f2(f99)} ms",
         f"{f2(s50)} / {f2(s99)} ms", f"{f2(ratio(f50, s50))} / {f2(ratio(f99, s99))}", "", ""],
        ["server CPU per delivery (all nodes summed), same run", f2(cpu_c, " µs"), f2(cpu_s, " µs"), f2(ratio(cpu_c, cpu_s)),
         f"≤ {CPU_GOAL:g}×", verdict(cpu_ok)],
        ["Redis's own CPU per delivery (not in the row above)", f2(cpu_redis, " µs"), "—", "", "", ""],
        [f"CometQL INSERT on a → delivery on c, {args.ql_conns} subscribers, {args.ql_rate}/s, p50",
         f2(q50c, " ms"), f2(q50s, " ms"), f2(ratio(q50c, q50s)), "", ""],
        ["… p99", f2(q99c, " ms"), f2(q99s, " ms"), f2(ratio(q99c, q99s)), "", ""],
    ]
    if r1:
        rows.insert(7, ["1 node over Redis (same 20 msgs/s load): CPU per delivery, node / Redis",
                        f"{f2(cpu_r1)} / {f2(cpu_r1_redis)} µs", f2(cpu_s, " µs"), f2(ratio(cpu_r1, cpu_s)), "", ""])
        rows.insert(8, ["1 node over Redis: p50 / p99", f"{f2(r150)} / {f2(r199)} ms", f"{f2(s50)} / {f2(s99)} ms",
                        f"{f2(ratio(r150, s50))} / {f2(ratio(r199, s99))}", "", ""])

    def node_cpu(x):
        return {k: (round(v) if v is not None else None) for k, v in x["_cpu"]["per_node_pct"].items()}

    per_round_lines = []
    for i in range(args.rounds):
        s, c = R[fs][i], R[fc][i]
        per_round_lines.append(
            f"round {i + 1} (load average {loads[i]}): single p50/p99 {f2(p(s, '50'))}/{f2(p(s, '99'))} ms, "
            f"CPU {f2(cpu_us_per_delivery(s))} µs; cluster p50/p99 a {f2(p(c, '50', 'a'))}/{f2(p(c, '99', 'a'))}, "
            f"b {f2(p(c, '50', 'b'))}/{f2(p(c, '99', 'b'))}, c {f2(p(c, '50', 'c'))}/{f2(p(c, '99', 'c'))} ms, "
            f"CPU {f2(cpu_us_per_delivery(c))} µs (÷ single {f2(cpu_ratios[i])}; nodes' % of a core {node_cpu(c)}, "
            f"Redis {round(c['_cpu']['redis_pct'] or 0)}%)"
            + (f"; 1 node over Redis p50 {f2(p(R['fan_redis1'][i], '50'))} ms, CPU {f2(cpu_us_per_delivery(R['fan_redis1'][i]))} µs"
               if r1 else "")
            + f"; subscribers on b, c only: b {f2(p(R['fan_far'][i], '50', 'b'))}, c {f2(p(R['fan_far'][i], '50', 'c'))} ms p50"
            + f"; CometQL single {f2(p(R['ql_single'][i], '50'))}/{f2(p(R['ql_single'][i], '99'))}, "
            f"a→c {f2(p(R['ql_cluster'][i], '50'))}/{f2(p(R['ql_cluster'][i], '99'))} ms.")
    md = (
        f"Command: `.venv/bin/python bench/cluster.py --rounds {args.rounds} --conns {args.conns} --duration {args.duration:g} "
        f"--procs {args.procs} --loop {args.loop}"
        + (f" --record-as {args.record_as}" if args.record_as != "cluster" else "") + f"` (took {elapsed:.0f} s; load average before/after {load_before} / {load_average()}). "
        f"Figures are medians of {args.rounds} rounds; each round ran, each against fresh servers:\n\n"
        + "\n".join(f"    {R[k][0]['_cmd']}" for k in R)
        + "\n\n" + table(["figure", "3 nodes + Redis", "1 node (SQLite)", "÷ 1 node", "goal (issue 14)", "goal met?"], rows)
        + "\n\nPer round: " + " ".join(per_round_lines)
        + f"\n\nLost/duplicates per round: single {losses(fs)}, cluster {losses(fc)}, cluster b+c {losses('fan_far')}, CometQL single {losses('ql_single')}, "
        f"CometQL cluster {losses('ql_cluster')}. "
        f"System CPU busy before each run (cometload --wait-idle, threshold 30%): "
        f"{[round(dig(x, 'config', 'pre_run_busy_pct') or 0) for k in R for x in R[k]]} %."
    )
    strip = lambda r: {k: v for k, v in r.items() if k != "_stdout"}  # noqa: E731
    record(args.record_as, md, {"args": vars(args), "runs": {k: [strip(x) for x in v] for k, v in R.items()},
                           "loads": loads, "elapsed_s": elapsed})


if __name__ == "__main__":
    main()
