#!/usr/bin/env python
"""comet_server scale curve (issue 13, goal 2): how memory, connect rate and fan-out grow.

Each step runs bench/cometload.py against a FRESH comet_server (tests/support/server.ServerProcess:
free port, temp SQLite db, CometQL off):

* idle 1k, 10k, 50k: open N connections, subscribe each to one channel, hold --hold s
  -> connect rate, server RSS before / after connecting, RSS delta per 1,000 connections;
* fan-out 1k, 5k, 10k: N subscribers of one channel, one web_pipe2 publisher, --rate max
  --window 10 (at most 10 messages in flight against the slowest subscriber), --duration s
  -> deliveries/s, server CPU % of a core and µs of server CPU per delivery, RSS.

What 50k connections from one address need (the bench sets all three):

* descriptors: the server and the load generator each hold one per connection. The bench lifts its
  soft RLIMIT_NOFILE to the hard limit, and the hard limit itself when it is too low and the
  process may (CAP_SYS_RESOURCE). A step the limit still cannot hold runs at the largest size it
  can (hard limit - 1,024) and the table says so. The server is started with a soft limit of
  1,024, as many service managers do, to check that it lifts it to the hard limit itself
  (comet_server.limits.raise_fd_limit); the limit it logged is recorded.
* server caps: by default at most (soft fd limit - 64) / 2 connections, and a quarter of that,
  at most 4,096, per IP address. Every step passes --max-connections N+100
  --max-connections-per-ip 0.
* loopback ports: one (source IP, server address) pair has only net.ipv4.ip_local_port_range
  ports (32768-60999 = 28,232 by default), so cometload binds the subscribers round-robin to
  one source address per 20,000 connections (--source-ips), a separate 127.0.<k>.x range for
  each step so that a previous step's TIME_WAIT ports and other processes' 127.0.0.1 ports are
  never in the way. The system-wide port range is not touched.

    .venv/bin/python bench/scale_curve.py [--idle 1000,10000,50000] [--fanout 1000,5000,10000]
        [--hold 5] [--duration 5] [--procs 1] [--wait-idle 15]
"""

from __future__ import annotations

import argparse
import math
import re
import resource
import time

import common  # noqa: F401 - puts the repo root on sys.path
from common import cometload, dig, fmt, load_average, record, table

from tests.support.server import ServerProcess

#: connections per source address: well inside the 28,232 ports of the default range
CONNS_PER_SOURCE_IP = 20_000
#: descriptors each process needs beyond one per connection (cometload asks for conns + 256)
FD_MARGIN = 1024
#: the soft limit the server starts with (a common service default), to see it lift it itself
SERVER_START_SOFT_FD = 1024
WINDOW = 10


def counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def ensure_fd_limit(need: int) -> tuple[int, int, str]:
    """Soft RLIMIT_NOFILE → hard, and hard → ``need`` if it is lower and we may; (soft, hard, note)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    note = f"bench started with {soft}/{hard}"
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            note += f"; hard limit raised to {need}"
        except (ValueError, OSError) as exc:
            note += f"; could not raise the hard limit to {need} ({exc})"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard, note + f"; now {soft}/{hard}"


def source_ips(step: int, conns: int) -> list[str]:
    return [f"127.0.{10 + step}.{i + 1}" for i in range(max(1, math.ceil(conns / CONNS_PER_SOURCE_IP)))]


def server_fd_limit(server: ServerProcess) -> str:
    """The "soft/hard" descriptor limit the server logged at start (after raising it)."""
    m = re.search(r"limits: .*fd limit (\S+)", server.log())
    return m.group(1) if m else "?"


#: what the server logs when it closes a connection itself (comet_server.hub), by reason
SERVER_CLOSE_LOGS = {"no answer to a ping": "ping timeout", "closing slow client": "slow client"}


def server_closes(server: ServerProcess) -> list[str]:
    """The reasons the server logged for closing connections itself (rate-limited log: no counts)."""
    text = server.log()
    return [reason for needle, reason in SERVER_CLOSE_LOGS.items() if needle in text]


def run_step(step: int, kind: str, asked: int, args, fd_soft: int) -> dict:
    """One cometload run against a fresh server; its result with the server's fd limit. A step
    the descriptor limit cannot hold runs at the largest size it can, and says so."""
    conns = min(asked, fd_soft - FD_MARGIN)
    if conns < 1:
        return {"skipped": f"fd limit {fd_soft} leaves no room"}
    ips = source_ips(step, conns)
    server = ServerProcess(cometql=False, fd_limit=(SERVER_START_SOFT_FD, fd_soft), extra_args=[
        "--max-connections", str(conns + 100), "--max-connections-per-ip", "0"]).start()
    try:
        extra = ["--conns", str(conns), "--procs", str(args.procs), "--payload-bytes", "200",
                 "--source-ips", ",".join(ips), "--wait-idle", str(args.wait_idle), "--idle-threshold", "30"]
        if kind == "idle":
            extra = ["--mode", "idle", "--pipe", "web_idle", "--duration", str(args.hold), *extra]
        else:
            extra = ["--mode", "fanout", "--pipe", "web_fanout", "--rate", "max", "--window", str(WINDOW),
                     "--duration", str(args.duration), *extra]
        res = cometload(server, extra, f"{kind} {conns:,}", max_runtime=args.max_runtime)
        res["_server_fd_limit"] = server_fd_limit(server)
        res["_server_closes"] = server_closes(server)
        if conns < asked:
            res["_capped"] = f"{asked:,} asked: fd limit {fd_soft:,}"
        return res
    finally:
        server.close()


def mib(kib):
    return None if kib is None else kib / 1024


def row(kind: str, conns: int, res: dict) -> list:
    if "skipped" in res:
        return [kind, f"{conns:,}", f"skipped: {res['skipped']}"] + [""] * 6
    ok = dig(res, "connect", "ok")
    rate = dig(res, "connect", "conns_per_s")
    rss0, rss1 = mib(dig(res, "server_rss_before_kib")), mib(dig(res, "server_rss_after_connect_kib"))
    per_1k = dig(res, "server_rss_mib_per_1k_conns")
    if kind == "idle":
        dps = cpu = us = None
        problems = (f"{dig(res, 'connect', 'fail')} failed, {dig(res, 'hold', 'disconnects')} dropped"
                    f", {fmt(dig(res, 'hold', 'alive_at_end'))} alive at end")
    else:
        dps = dig(res, "delivery", "delivered_per_s")
        cpu = dig(res, "delivery", "cpu_until_drained", "server_cpu_pct")
        cpu_s = dig(res, "delivery", "cpu_until_drained", "server_cpu_s")
        got = dig(res, "delivery", "received_unique")
        us = cpu_s / got * 1e6 if cpu_s is not None and got else None
        problems = (f"{dig(res, 'connect', 'fail')} failed; lost/dups {dig(res, 'delivery', 'lost')}/"
                    f"{dig(res, 'delivery', 'duplicates')}, {dig(res, 'delivery', 'disconnects')} dropped")
    if res.get("_server_closes"):
        problems += "; the server logged closes for: " + ", ".join(res["_server_closes"])
    busy = dig(res, "config", "pre_run_busy_pct")
    capped = f" ({res['_capped']})" if "_capped" in res else ""
    return [kind, fmt(ok) + capped, fmt(rate, 0), f"{fmt(rss0)} → {fmt(rss1)}", fmt(per_1k, 2),
            "—" if kind == "idle" else f"{fmt(dps, 0)} ({fmt(cpu, 0)} %, {fmt(us, 1)} µs)",
            problems, "n/a" if busy is None else f"{busy:.0f} %"]


def growth_note(idle: dict, fan: dict) -> str:
    """What the table shows about growth, in one sentence per kind (computed, not claimed)."""
    out = []
    per = [(dig(r, "connect", "ok"), dig(r, "server_rss_mib_per_1k_conns")) for r in idle.values()]
    per = [(n, v) for n, v in per if v is not None]
    if len(per) >= 2:
        out.append("Idle RSS per 1,000 connections: " + ", ".join(f"{v:.2f} MiB at {n:,}" for n, v in per)
                   + f" (last ÷ first {per[-1][1] / per[0][1]:.2f}).")
    rates = [(dig(r, "connect", "ok"), dig(r, "connect", "conns_per_s")) for r in idle.values()]
    rates = [(n, v) for n, v in rates if v]
    if len(rates) >= 2:
        out.append("Connect rate: " + ", ".join(f"{v:,.0f}/s at {n:,}" for n, v in rates) + ".")
    dps = [(dig(r, "connect", "ok"), dig(r, "delivery", "delivered_per_s")) for r in fan.values()]
    dps = [(n, v) for n, v in dps if v]
    if len(dps) >= 2:
        out.append("Fan-out deliveries/s: " + ", ".join(f"{v:,.0f} at {n:,} subscribers ({v / n:,.1f} msgs/s)"
                                                         for n, v in dps)
                   + f" (last ÷ first {dps[-1][1] / dps[0][1]:.2f}).")
    return " ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=counts, default=[1000, 10_000, 50_000], help="idle steps (connections)")
    ap.add_argument("--fanout", type=counts, default=[1000, 5000, 10_000], help="fan-out steps (subscribers)")
    ap.add_argument("--hold", type=float, default=5.0, help="idle: seconds to hold the connections")
    ap.add_argument("--duration", type=float, default=5.0, help="fan-out: seconds to publish")
    ap.add_argument("--procs", type=int, default=1, help="cometload subscriber processes (default 1)")
    ap.add_argument("--wait-idle", type=float, default=15.0, help="cometload --wait-idle (s) before each step")
    ap.add_argument("--max-runtime", type=float, default=300.0, help="cometload --max-runtime per step")
    args = ap.parse_args()
    t0 = time.monotonic()
    load_before = load_average()
    biggest = max(args.idle + args.fanout)
    fd_soft, fd_hard, fd_note = ensure_fd_limit(biggest + FD_MARGIN)
    print(f"RLIMIT_NOFILE: {fd_note}", flush=True)

    steps = [("idle", n) for n in args.idle] + [("fan-out", n) for n in args.fanout]
    results = {}
    for i, (kind, n) in enumerate(steps):
        results[(kind, n)] = run_step(i, kind, n, args, fd_soft)
    elapsed = time.monotonic() - t0
    idle = {n: results[("idle", n)] for n in args.idle}
    fan = {n: results[("fan-out", n)] for n in args.fanout}

    rows = [row(kind, n, results[(kind, n)]) for kind, n in steps]
    server_fd = sorted({r.get("_server_fd_limit", "?") for r in results.values() if "skipped" not in r})
    cmds = [r["_cmd"] for r in results.values() if "_cmd" in r]
    md = (
        f"Command: `.venv/bin/python bench/scale_curve.py --idle {','.join(map(str, args.idle))} "
        f"--fanout {','.join(map(str, args.fanout))} --hold {args.hold:g} --duration {args.duration:g} "
        f"--procs {args.procs}` (took {elapsed:.0f} s; load average before/after {load_before} / {load_average()}). "
        f"RLIMIT_NOFILE: {fd_note}; each server was started with a soft limit of {SERVER_START_SOFT_FD} and "
        f"logged an fd limit of {' / '.join(server_fd)} (soft/hard) after raising it. "
        "It ran, each step against a fresh comet_server with `--max-connections N+100 --max-connections-per-ip 0`:\n\n"
        + "\n".join(f"    {c}" for c in cmds)
        + "\n\n" + table(["step", "connections", "connect rate (conn/s)", "server RSS before → after connect (MiB)",
                          "RSS delta per 1,000 conns (MiB)", "deliveries/s (server CPU % of a core, µs CPU per delivery)",
                          "failures", "machine busy before"], rows)
        + "\n\n" + growth_note(idle, fan)
    )
    strip = lambda r: {k: v for k, v in r.items() if k != "_stdout"}  # noqa: E731
    record("scale_curve", md, {"args": vars(args), "fd_limit": {"soft": fd_soft, "hard": fd_hard, "note": fd_note},
                               "steps": [{"kind": k, "conns": n, "result": strip(results[(k, n)])} for k, n in steps],
                               "stdout": {f"{k} {n}": results[(k, n)].get("_stdout") for k, n in steps},
                               "elapsed_s": elapsed})


if __name__ == "__main__":
    main()
