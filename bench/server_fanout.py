#!/usr/bin/env python
"""comet_server fan-out, latency and footprint under bench/cometload.py (issue 2 §5).

Three cometload runs, each against a fresh comet_server (tests/support/server.ServerProcess:
free port, temp SQLite db, CometQL off), one after the other:

1. fan-out at max rate: 1,000 subscribers of one channel, one web_pipe2 publisher, --rate max
   (the publisher keeps at most --window messages in flight against the slowest subscriber)
   -> deliveries/s, server CPU;
2. latency: 20 msgs/s x 1,000 subscribers for 10 s -> p50/p99 (send time embedded in the
   message, receive time in the subscriber, same host clock);
3. footprint: 1,000 idle connections subscribed to one channel, held 10 s -> server RSS delta.

The exact cometload command lines are printed and recorded. cometload runs its subscribers in
--procs worker processes; on this 2-core machine the server, the workers and the publisher
share the two cores, so the max-rate figure is bounded by whichever saturates first; the server
CPU % (from /proc, --server-pid) says which. Reference (issue 2): CppComet 4.09, same tool,
2 cores shared with the load generator: ~60k deliveries/s, p50 10 ms / p99 27 ms, 3.5 MiB per
1,000 idle connections.

    .venv/bin/python bench/server_fanout.py [--procs 1] [--duration 10] [--conns 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import tempfile
import time

import common
from common import COMETLOAD, PYTHON, load_average, record, table

from tests.support.server import ServerProcess

REF = {"fanout": 60_000, "p50_ms": 10.0, "p99_ms": 27.0, "idle_mib": 3.5}


def cometload(server, extra, label, max_runtime=240):
    out = tempfile.NamedTemporaryFile(prefix="cometload_", suffix=".json", delete=False).name
    argv = [PYTHON, str(COMETLOAD), "--url-base", f"ws://127.0.0.1:{server.port}",
            "--server-pid", str(server.proc.pid), "--max-runtime", str(max_runtime), *extra, "--json-out", out]
    shown = "python bench/cometload.py --url-base ws://127.0.0.1:PORT --server-pid PID " \
            f"--max-runtime {max_runtime} " + " ".join(shlex.quote(a) for a in extra)
    print(f"\n### {label}\n$ {shown}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=common.ROOT, capture_output=True, text=True, timeout=max_runtime + 60)
    print(proc.stdout[-4000:], proc.stderr[-2000:], flush=True)
    res = {}
    try:
        with open(out) as f:
            res = json.load(f)
    except (OSError, ValueError):
        res = {"error": f"no json (exit {proc.returncode})"}
    finally:
        if os.path.exists(out):
            os.unlink(out)
    res["_cmd"] = shown
    res["_elapsed_s"] = time.monotonic() - t0
    res["_stdout"] = proc.stdout
    return res


def with_server(fn):
    server = ServerProcess(cometql=False).start()
    try:
        return fn(server)
    finally:
        server.close()


def ms(us):
    return None if us is None else us / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=1, help="cometload subscriber processes (default 1)")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--wait-idle", type=float, default=60.0, help="cometload --wait-idle (s) before each run")
    args = ap.parse_args()
    t0 = time.monotonic()
    load_before = load_average()
    common_args = ["--conns", str(args.conns), "--procs", str(args.procs), "--payload-bytes", "200",
                   "--wait-idle", str(args.wait_idle), "--idle-threshold", "30"]
    fan = with_server(lambda s: cometload(s, ["--mode", "fanout", "--pipe", "web_fanout", "--rate", "max", "--window", "1000",
                                               "--duration", str(args.duration), *common_args], "fan-out, max rate"))
    lat = with_server(lambda s: cometload(s, ["--mode", "fanout", "--pipe", "web_latency", "--rate", "20",
                                               "--duration", str(args.duration), *common_args], "latency, 20 msgs/s"))
    idle = with_server(lambda s: cometload(s, ["--mode", "idle", "--pipe", "web_idle", "--duration", str(args.duration),
                                                *common_args], "idle connections"))
    elapsed = time.monotonic() - t0

    def get(res, *path):
        for p in path:
            if not isinstance(res, dict) or p not in res:
                return None
            res = res[p]
        return res

    rate = get(fan, "delivery", "delivered_per_s")
    fan_cpu = get(fan, "delivery", "cpu_until_drained", "server_cpu_pct")
    fan_loss = (get(fan, "delivery", "lost"), get(fan, "delivery", "duplicates"))
    p50, p99 = ms(get(lat, "delivery", "latency_us", "50")), ms(get(lat, "delivery", "latency_us", "99"))
    lat_loss = (get(lat, "delivery", "lost"), get(lat, "delivery", "duplicates"))
    rss0, rss1 = get(idle, "server_rss_before_kib"), get(idle, "server_rss_after_connect_kib")
    idle_mib = (rss1 - rss0) / 1024 if rss0 is not None and rss1 is not None else None
    idle_kib_conn = (rss1 - rss0) / args.conns if idle_mib is not None else None

    def busy(res):
        b = get(res, "config", "pre_run_busy_pct")
        return None if b is None else round(b)

    def yesno(ok):
        return "n/a" if ok is None else ("**met**" if ok else "**not met**")

    rows = [
        ["fan-out to 1,000 subscribers, 1 publisher, max rate", f"{rate:,.0f} deliveries/s" if rate else "n/a",
         "~60,000 deliveries/s", f"{rate / REF['fanout']:.2f}" if rate else "n/a", "≥ CppComet", yesno(rate >= REF["fanout"] if rate else None)],
        ["20 msgs/s × 1,000 subscribers, p50", f"{p50:.2f} ms" if p50 is not None else "n/a", "10 ms",
         f"{p50 / REF['p50_ms']:.2f}" if p50 is not None else "n/a", "≤ CppComet", yesno(p50 <= REF["p50_ms"] if p50 is not None else None)],
        ["20 msgs/s × 1,000 subscribers, p99", f"{p99:.2f} ms" if p99 is not None else "n/a", "27 ms",
         f"{p99 / REF['p99_ms']:.2f}" if p99 is not None else "n/a", "≤ CppComet", yesno(p99 <= REF["p99_ms"] if p99 is not None else None)],
        ["1,000 idle connections, server RSS delta", f"{idle_mib:.1f} MiB ({idle_kib_conn:.1f} KiB/conn)" if idle_mib is not None else "n/a",
         "3.5 MiB (3.6 KiB/conn)", f"{idle_mib / REF['idle_mib']:.2f}" if idle_mib is not None else "n/a", "≤ 2× CppComet (7 MiB)",
         yesno(idle_mib <= 2 * REF["idle_mib"] if idle_mib is not None else None)],
    ]
    md = (
        f"Command: `.venv/bin/python bench/server_fanout.py --procs {args.procs} --conns {args.conns} --duration {args.duration:g}` "
        f"(took {elapsed:.0f} s; load average before/after {load_before} / {load_average()}). It ran, each against a fresh comet_server:\n\n"
        + "\n".join(f"    {r['_cmd']}" for r in (fan, lat, idle))
        + "\n\n" + table(["figure", "comet_server", "CppComet 4.09 (issue 2)", "÷ CppComet", "goal", "goal met?"], rows)
        + "\n\nDetails: max-rate run — server CPU "
        + (f"{fan_cpu:.0f}%" if fan_cpu is not None else "n/a") + " of a core until drained, load-generator workers "
        + f"{get(fan, 'delivery', 'worker_cpu_pct_each')}% of a core each, other processes ~{get(fan, 'delivery', 'other_processes_cpu_pct')}% of a core; "
        + f"published {get(fan, 'publish', 'sent')} messages, lost/duplicates {fan_loss[0]}/{fan_loss[1]}. "
        + f"Latency run: lost/duplicates {lat_loss[0]}/{lat_loss[1]}, p90 {ms(get(lat, 'delivery', 'latency_us', '90'))} ms, max {ms(get(lat, 'delivery', 'latency_us', '100'))} ms, "
        + f"server CPU {round(get(lat, 'delivery', 'cpu_until_drained', 'server_cpu_pct') or 0)}% of a core. "
        + f"Idle: RSS before {rss0} KiB, after connect {rss1} KiB, peak {get(idle, 'server_rss_peak_kib')} KiB. "
        + f"System CPU busy before each run (cometload --wait-idle, threshold 30%): {busy(fan)}, {busy(lat)}, {busy(idle)} %."
    )
    strip = lambda r: {k: v for k, v in r.items() if k != "_stdout"}  # noqa: E731
    record("server_fanout", md, {"args": vars(args), "fanout": strip(fan), "latency": strip(lat), "idle": strip(idle),
                                 "stdout": {"fanout": fan.get("_stdout"), "latency": lat.get("_stdout"), "idle": idle.get("_stdout")},
                                 "elapsed_s": elapsed})


if __name__ == "__main__":
    main()
