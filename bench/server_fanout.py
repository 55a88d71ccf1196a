#!/usr/bin/env python
"""comet_server fan-out, latency and footprint under bench/cometload.py (issue 2 §5).

Three cometload runs, each against a fresh comet_server (tests/support/server.ServerProcess:
free port, temp SQLite db, CometQL off), one after the other:

1. fan-out at max rate: 1,000 subscribers of one channel, one web_pipe2 publisher, --rate max
   --window 10 (the publisher keeps at most 10 messages in flight against the slowest subscriber)
   -> deliveries/s, server CPU;
2. latency: 20 msgs/s x 1,000 subscribers for 10 s -> p50/p99 (send time embedded in the
   message, receive time in the subscriber, same host clock);
3. footprint: 1,000 idle connections subscribed to one channel, held 10 s -> server RSS delta.

The exact cometload command lines are printed and recorded. cometload runs its subscribers in
--procs worker processes; on this 2-core machine the server, the workers and the publisher
share the two cores, so the max-rate figure is bounded by whichever saturates first; the server
CPU % (from /proc, --server-pid) says which. Reference (issue 13): CppComet 4.09 measured on
this kind of machine with the same tool and the same window of 10, in one run with comet_server:
58k deliveries/s at 16.8 µs of server CPU per delivery, p50 15.2 ms / p99 60.9 ms, 3.7 MiB per
1,000 idle connections, 8.2k connections/s (2,000 connections). The idle run also gives the
connect rate. (Issue 2's older table, ~60k/s, p50 10 / p99 27 ms, 3.5 MiB, was taken
with a window of 1,000.)

    .venv/bin/python bench/server_fanout.py [--procs 1] [--duration 10] [--conns 1000]
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401 - puts the repo root on sys.path
from common import cometload, dig, load_average, ms, record, table, verdict

from tests.support.server import ServerProcess

REF = {"fanout": 58_000, "cpu_us": 16.8, "p50_ms": 15.2, "p99_ms": 60.9, "idle_mib": 3.7, "connect": 8_200}
#: messages in flight in the max-rate run: issue 13's figure. 1,000 overloads both servers (and
#: the subscriber worker), so it measured the overload, not sustained delivery.
MAX_RATE_WINDOW = 10


def with_server(fn):
    server = ServerProcess(cometql=False).start()
    try:
        return fn(server)
    finally:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=1, help="cometload subscriber processes (default 1)")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--wait-idle", type=float, default=60.0, help="cometload --wait-idle (s) before each run")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop",
                    help="cometload's event loop (default uvloop, as issue 13 measured; pinned in requirements-dev.txt)")
    args = ap.parse_args()
    t0 = time.monotonic()
    load_before = load_average()
    common_args = ["--conns", str(args.conns), "--procs", str(args.procs), "--payload-bytes", "200",
                   "--wait-idle", str(args.wait_idle), "--idle-threshold", "30", "--loop", args.loop]
    fan = with_server(lambda s: cometload(s, ["--mode", "fanout", "--pipe", "web_fanout", "--rate", "max", "--window", str(MAX_RATE_WINDOW),
                                               "--duration", str(args.duration), *common_args], "fan-out, max rate"))
    lat = with_server(lambda s: cometload(s, ["--mode", "fanout", "--pipe", "web_latency", "--rate", "20",
                                               "--duration", str(args.duration), *common_args], "latency, 20 msgs/s"))
    idle = with_server(lambda s: cometload(s, ["--mode", "idle", "--pipe", "web_idle", "--duration", str(args.duration),
                                                *common_args], "idle connections"))
    elapsed = time.monotonic() - t0

    rate = dig(fan, "delivery", "delivered_per_s")
    fan_cpu = dig(fan, "delivery", "cpu_until_drained", "server_cpu_pct")
    fan_loss = (dig(fan, "delivery", "lost"), dig(fan, "delivery", "duplicates"))
    p50, p99 = ms(dig(lat, "delivery", "latency_us", "50")), ms(dig(lat, "delivery", "latency_us", "99"))
    lat_loss = (dig(lat, "delivery", "lost"), dig(lat, "delivery", "duplicates"))
    rss0, rss1 = dig(idle, "server_rss_before_kib"), dig(idle, "server_rss_after_connect_kib")
    idle_mib = (rss1 - rss0) / 1024 if rss0 is not None and rss1 is not None else None
    idle_kib_conn = (rss1 - rss0) / args.conns if idle_mib is not None else None
    conn_rate = dig(idle, "connect", "conns_per_s")

    def busy(res):
        b = dig(res, "config", "pre_run_busy_pct")
        return None if b is None else round(b)

    cpu_us = fan_cpu / 100 / rate * 1e6 if rate and fan_cpu is not None else None
    rows = [
        ["fan-out to 1,000 subscribers, 1 publisher, max rate (window 10)", f"{rate:,.0f} deliveries/s" if rate else "n/a",
         "58,000 deliveries/s", f"{rate / REF['fanout']:.2f}" if rate else "n/a", "≥ CppComet", verdict(rate >= REF["fanout"] if rate else None)],
        ["server CPU per delivery (max-rate run)", f"{cpu_us:.1f} µs" if cpu_us is not None else "n/a", "16.8 µs",
         f"{cpu_us / REF['cpu_us']:.2f}" if cpu_us is not None else "n/a", "≤ CppComet", verdict(cpu_us <= REF["cpu_us"] if cpu_us is not None else None)],
        ["20 msgs/s × 1,000 subscribers, p50", f"{p50:.2f} ms" if p50 is not None else "n/a", "15.2 ms",
         f"{p50 / REF['p50_ms']:.2f}" if p50 is not None else "n/a", "≤ CppComet", verdict(p50 <= REF["p50_ms"] if p50 is not None else None)],
        ["20 msgs/s × 1,000 subscribers, p99", f"{p99:.2f} ms" if p99 is not None else "n/a", "60.9 ms",
         f"{p99 / REF['p99_ms']:.2f}" if p99 is not None else "n/a", "≤ CppComet", verdict(p99 <= REF["p99_ms"] if p99 is not None else None)],
        ["1,000 idle connections, server RSS delta", f"{idle_mib:.1f} MiB ({idle_kib_conn:.1f} KiB/conn)" if idle_mib is not None else "n/a",
         "3.7 MiB (3.8 KiB/conn)", f"{idle_mib / REF['idle_mib']:.2f}" if idle_mib is not None else "n/a", "≤ CppComet (issue 13)",
         verdict(idle_mib <= REF["idle_mib"] if idle_mib is not None else None)],
        [f"connect rate, {args.conns:,} connections (idle run)", f"{conn_rate:,.0f} conn/s" if conn_rate else "n/a",
         "8,200 conn/s (2,000 connections)", f"{conn_rate / REF['connect']:.2f}" if conn_rate else "n/a",
         "not below issue 13's 7,400 conn/s", verdict(conn_rate >= 7_400 if conn_rate else None)],
    ]
    md = (
        f"Command: `.venv/bin/python bench/server_fanout.py --procs {args.procs} --conns {args.conns} --duration {args.duration:g} --loop {args.loop}` "
        f"(took {elapsed:.0f} s; load average before/after {load_before} / {load_average()}). It ran, each against a fresh comet_server:\n\n"
        + "\n".join(f"    {r['_cmd']}" for r in (fan, lat, idle))
        + "\n\n" + table(["figure", "comet_server", "CppComet 4.09 (issue 13, window 10)", "÷ CppComet", "goal", "goal met?"], rows)
        + "\n\nDetails: max-rate run — server CPU "
        + (f"{fan_cpu:.0f}%" if fan_cpu is not None else "n/a") + " of a core until drained, load-generator workers "
        + f"{dig(fan, 'delivery', 'worker_cpu_pct_each')}% of a core each, other processes ~{dig(fan, 'delivery', 'other_processes_cpu_pct')}% of a core; "
        + f"published {dig(fan, 'publish', 'sent')} messages, lost/duplicates {fan_loss[0]}/{fan_loss[1]}. "
        + f"Latency run: lost/duplicates {lat_loss[0]}/{lat_loss[1]}, p90 {ms(dig(lat, 'delivery', 'latency_us', '90'))} ms, max {ms(dig(lat, 'delivery', 'latency_us', '100'))} ms, "
        + f"server CPU {round(dig(lat, 'delivery', 'cpu_until_drained', 'server_cpu_pct') or 0)}% of a core. "
        + f"Idle: RSS before {rss0} KiB, after connect {rss1} KiB, peak {dig(idle, 'server_rss_peak_kib')} KiB. "
        + f"System CPU busy before each run (cometload --wait-idle, threshold 30%): {busy(fan)}, {busy(lat)}, {busy(idle)} %."
    )
    strip = lambda r: {k: v for k, v in r.items() if k != "_stdout"}  # noqa: E731
    record("server_fanout", md, {"args": vars(args), "fanout": strip(fan), "latency": strip(lat), "idle": strip(idle),
                                 "stdout": {"fanout": fan.get("_stdout"), "latency": lat.get("_stdout"), "idle": idle.get("_stdout")},
                                 "elapsed_s": elapsed})


if __name__ == "__main__":
    main()
