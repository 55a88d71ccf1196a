#!/usr/bin/env python
"""CometQL (MySQL protocol) publishing into comet_server (issue 4 benchmark).

Four figures, each against a fresh comet_server (tests/support/server.ServerProcess: free ports,
temp SQLite db, CometQL on):

1. INSERTs/s on one PyMySQL connection: a plain loop of
   ``INSERT INTO pipes_messages (name, event, message) VALUES (...)`` for --insert-seconds
   (no subscriber on the channel, so this is the statement path: MySQL protocol, parse, publish);
2. INSERT -> delivery latency into 100 subscribers at 100 INSERTs/s (cometload --cometql, send
   time embedded in the message, receive time in the subscriber);
3. deliveries/s at the maximum INSERT rate into 100 subscribers (cometload --rate max: at most
   --window messages in flight against the slowest subscriber);
4. robustness: (a) 4 CometQL clients (processes, one PyMySQL connection each) INSERTing back to
   back, open loop, for --open-loop seconds; (b) 4 concurrent CometQL publishers (cometload --publishers 4 --cometql, one PyMySQL
   connection each) at full rate for --soak seconds into 100 subscribers; then the server must
   still be running and answer a new PyMySQL connection (SELECT) and a new WebSocket.

Reference (issue 4): CppComet 4.09, cometload: 5-6k INSERTs/s on one connection; p50 2.4 ms /
p99 4.3 ms at 100 INSERTs/s into 100 subscribers; 72-91k deliveries/s at max; two concurrent
CometQL clients crashed it 3 runs out of 3.

    .venv/bin/python bench/cometql.py [--insert-seconds 5] [--duration 10] [--soak 60]
"""

from __future__ import annotations

import argparse
import json
import time

import common  # noqa: F401
from common import cometload, dig, load_average, ms, record, table, verdict, wait_quiet

import pymysql
from websockets.sync.client import connect as ws_connect

from tests.support.server import ServerProcess


def pymysql_connect(server):
    return pymysql.connect(host="127.0.0.1", port=server.cometql_port, user="1", password=server.password,
                           database="CometQL_v1", autocommit=True, connect_timeout=10, read_timeout=30)


def inserts_per_second(server, seconds):
    conn = pymysql_connect(server)
    cur = conn.cursor()
    pad = "p" * 150
    n, errors = 0, 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        for _ in range(100):
            try:
                cur.execute(f"INSERT INTO pipes_messages (name, event, message) VALUES ('web_ins', 'e', 'm{n}{pad}')")
            except pymysql.MySQLError:
                errors += 1
            n += 1
        if time.perf_counter() >= end:
            break
    dt = time.perf_counter() - t0
    conn.close()
    return {"inserts": n, "seconds": dt, "rate": n / dt, "errors": errors}


def _hammer(port, password, seconds, idx, out):
    """One CometQL client: INSERTs back to back (open loop) for ``seconds``."""
    n = errors = 0
    first_error = None
    try:
        conn = pymysql.connect(host="127.0.0.1", port=port, user="1", password=password, database="CometQL_v1",
                               autocommit=True, connect_timeout=10, read_timeout=30)
        cur = conn.cursor()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                cur.execute(f"INSERT INTO pipes_messages (name, event, message) VALUES ('web_hammer', 'c{idx}', 'n{n} {'p' * 150}')")
            except pymysql.MySQLError as exc:
                errors += 1
                first_error = first_error or repr(exc)
                if isinstance(exc, pymysql.err.OperationalError):
                    break  # connection gone
            n += 1
        conn.close()
    except Exception as exc:  # noqa: BLE001
        first_error = first_error or repr(exc)
    out.put({"client": idx, "inserts": n, "errors": errors, "first_error": first_error})


def open_loop(server, clients, seconds):
    """``clients`` processes, one PyMySQL connection each, INSERTing as fast as they can."""
    import multiprocessing as mp
    q = mp.Queue()
    procs = [mp.Process(target=_hammer, args=(server.cometql_port, server.password, seconds, i, q)) for i in range(clients)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    res = [q.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(10)
    dt = time.monotonic() - t0
    total = sum(r["inserts"] for r in res)
    return {"clients": res, "seconds": dt, "total": total, "rate": total / dt, "errors": sum(r["errors"] for r in res)}


def cometload_ql(server, extra, label, max_runtime=240):
    """cometload with PORTQL replaced by this server's CometQL port (kept as PORTQL in the shown command)."""
    res = cometload(server, [a.replace("PORTQL", str(server.cometql_port)) for a in extra], label, max_runtime)
    res["_cmd"] = res["_cmd"].replace(f"127.0.0.1:{server.cometql_port}", "127.0.0.1:PORTQL")
    return res


def alive(server):
    """Still running, and answering a new CometQL connection and a new WebSocket?"""
    out = {"process_running": server.proc is not None and server.proc.poll() is None}
    try:
        conn = pymysql_connect(server)
        cur = conn.cursor()
        cur.execute("SELECT * FROM pipes_settings WHERE name = 'web_soak'")
        cur.fetchall()
        cur.execute("INSERT INTO pipes_messages (name, event, message) VALUES ('web_after', 'e', 'ok')")
        conn.close()
        out["cometql_answers"] = True
    except Exception as exc:  # noqa: BLE001
        out["cometql_answers"] = f"{type(exc).__name__}: {exc}"
    try:
        with ws_connect(server.ws_url(dev_id=1), open_timeout=10, ping_interval=None) as ws:
            out["websocket_answers"] = json.loads(ws.recv(timeout=10)).get("event") == "serverInfo"
    except Exception as exc:  # noqa: BLE001
        out["websocket_answers"] = f"{type(exc).__name__}: {exc}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--insert-seconds", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of the latency and max-rate runs")
    ap.add_argument("--soak", type=float, default=60.0, help="seconds of the 4-client run")
    ap.add_argument("--open-loop", type=float, default=30.0, help="seconds of the 4 open-loop PyMySQL clients")
    ap.add_argument("--procs", type=int, default=1, help="cometload subscriber processes")
    ap.add_argument("--wait-idle", type=float, default=30.0)
    args = ap.parse_args()
    wait_quiet(args.wait_idle)
    t0 = time.monotonic()
    load_before = load_average()
    results = {}

    server = ServerProcess(cometql=True).start()
    try:
        results["insert"] = inserts_per_second(server, args.insert_seconds)
        print("INSERTs on one PyMySQL connection:", results["insert"], flush=True)
    finally:
        server.close()

    def ql(extra, label, runtime=240):
        server = ServerProcess(cometql=True).start()
        try:
            res = cometload_ql(server, ["--mode", "fanout", "--conns", "100", "--procs", str(args.procs), "--payload-bytes", "200",
                                     "--cometql", "127.0.0.1:PORTQL", "--wait-idle", str(args.wait_idle), "--idle-threshold", "30",
                                     *extra], label, max_runtime=runtime)
            res["_alive"] = alive(server)
            print("after the run:", res["_alive"], flush=True)
            return res
        finally:
            server.close()

    server = ServerProcess(cometql=True).start()
    try:
        results["open_loop"] = open_loop(server, 4, args.open_loop)
        results["open_loop"]["_alive"] = alive(server)
        print("4 open-loop PyMySQL clients:", results["open_loop"], flush=True)
    finally:
        server.close()
    results["latency"] = ql(["--pipe", "web_qlat", "--rate", "100", "--duration", str(args.duration)], "INSERT -> delivery, 100/s")
    results["max"] = ql(["--pipe", "web_qmax", "--rate", "max", "--window", "1000", "--duration", str(args.duration)], "max INSERT rate")
    results["soak"] = ql(["--pipe", "web_soak", "--publishers", "4", "--rate", "max", "--window", "1000",
                          "--duration", str(args.soak)], "4 concurrent CometQL clients", runtime=int(args.soak) + 240)
    elapsed = time.monotonic() - t0

    ins = results["insert"]["rate"]
    p50 = ms(dig(results["latency"], "delivery", "latency_us", "50"))
    p99 = ms(dig(results["latency"], "delivery", "latency_us", "99"))
    mx = dig(results["max"], "delivery", "delivered_per_s")
    soak = results["soak"]
    soak_alive = soak["_alive"]
    soak_ok = soak_alive["process_running"] and soak_alive["cometql_answers"] is True and soak_alive["websocket_answers"] is True
    ol = results["open_loop"]
    ol_alive = ol["_alive"]
    ol_ok = ol_alive["process_running"] and ol_alive["cometql_answers"] is True and ol_alive["websocket_answers"] is True
    soak_sent = dig(soak, "publish", "sent")
    soak_rate = dig(soak, "publish", "achieved_rate")

    def r0(x):
        return None if x is None else round(x)

    def rng(x, lo, hi):
        if not x:
            return "n/a"
        return "**met**" if x >= hi else ("**within CppComet's range**" if x >= lo else "**not met**")

    rows = [
        ["INSERTs/s, one PyMySQL connection", f"{ins:,.0f}", "5–6k", f"{ins / 5500:.2f}", "≥ CppComet", rng(ins, 5000, 6000)],
        ["INSERT → delivery, 100 subscribers, 100 INSERTs/s, p50", f"{p50:.2f} ms" if p50 is not None else "n/a", "2.4 ms",
         f"{p50 / 2.4:.2f}" if p50 is not None else "n/a", "≤ CppComet", verdict(p50 <= 2.4 if p50 is not None else None)],
        ["INSERT → delivery, p99", f"{p99:.2f} ms" if p99 is not None else "n/a", "4.3 ms",
         f"{p99 / 4.3:.2f}" if p99 is not None else "n/a", "≤ CppComet", verdict(p99 <= 4.3 if p99 is not None else None)],
        ["deliveries/s at max INSERT rate (100 subscribers)", f"{mx:,.0f}" if mx else "n/a", "72–91k",
         f"{mx / 81500:.2f}" if mx else "n/a", "≥ CppComet", rng(mx, 72000, 91000)],
        [f"4 concurrent CometQL clients, full rate, {args.soak:g} s", "0 crashes" if soak_ok else f"FAILED: {soak_alive}",
         "2 clients: crashed 3 runs out of 3", "", "0 crashes", verdict(soak_ok)],
        [f"4 concurrent CometQL clients, open loop (no window, no subscriber), {args.open_loop:g} s",
         (f"0 crashes, {ol['rate']:,.0f} INSERTs/s in all, {ol['errors']} errors") if ol_ok else f"FAILED: {ol_alive}",
         "", "", "0 crashes", verdict(ol_ok)],
    ]
    md = (
        f"Command: `.venv/bin/python bench/cometql.py --insert-seconds {args.insert_seconds:g} --duration {args.duration:g} --soak {args.soak:g} --open-loop {args.open_loop:g}` "
        f"(took {elapsed:.0f} s; load average before/after {load_before} / {load_average()}). Figure 1 is a PyMySQL loop in the script "
        f"({results['insert']['inserts']:,} INSERTs, {results['insert']['errors']} errors); the others ran, each against a fresh comet_server:\n\n"
        + "\n".join(f"    {results[k]['_cmd']}" for k in ("latency", "max", "soak"))
        + "\n\n" + table(["figure", "comet_server", "CppComet 4.09 (issue 4)", "÷ CppComet", "goal", "goal met?"], rows)
        + f"\n\nDetails: the 4-client run published {soak_sent} messages ({soak_rate and round(soak_rate):,} INSERTs/s over the 4 connections, "
        f"errors {dig(soak, 'publish', 'errors')}), delivered {dig(soak, 'delivery', 'delivered_per_s') and round(dig(soak, 'delivery', 'delivered_per_s')):,} /s, "
        f"lost/duplicates {dig(soak, 'delivery', 'lost')}/{dig(soak, 'delivery', 'duplicates')}, subscriber disconnects {dig(soak, 'delivery', 'disconnects')}; "
        f"afterwards: {soak_alive}. Max-rate run: server CPU {r0(dig(results['max'], 'delivery', 'cpu_until_drained', 'server_cpu_pct'))}% of a core, "
        f"INSERTs/s {r0(dig(results['max'], 'publish', 'achieved_rate'))}, lost/dups {dig(results['max'], 'delivery', 'lost')}/{dig(results['max'], 'delivery', 'duplicates')}. "
        f"Latency run: lost/dups {dig(results['latency'], 'delivery', 'lost')}/{dig(results['latency'], 'delivery', 'duplicates')}, "
        f"INSERT round trip (PyMySQL execute) p50/p99 {ms((dig(results['latency'], 'publish', 'cometql_query_us') or {}).get('50'))}/{ms((dig(results['latency'], 'publish', 'cometql_query_us') or {}).get('99'))} ms. "
        f"System CPU busy before each cometload run: {[r0(dig(results[k], 'config', 'pre_run_busy_pct')) for k in ('latency', 'max', 'soak')]} %."
    )
    strip = lambda r: {k: v for k, v in r.items() if k != "_stdout"}  # noqa: E731
    record("cometql", md, {"args": vars(args), "insert": results["insert"], "open_loop": results["open_loop"],
                           **{k: strip(results[k]) for k in ("latency", "max", "soak")},
                           "stdout": {k: results[k].get("_stdout") for k in ("latency", "max", "soak")}, "elapsed_s": elapsed})


if __name__ == "__main__":
    main()
