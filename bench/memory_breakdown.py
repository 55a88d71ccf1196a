#!/usr/bin/env python
"""Where an idle subscribed connection's memory goes (issue 13, goal 1).

Two kinds of run, each against a fresh server, each opening N idle connections subscribed to one
channel with bench/cometload.py (``--mode idle``, one worker process):

* **RSS** (no tracemalloc anywhere): the real server (tests/support/server.ServerProcess) and
  cometload; RSS from /proc/<pid>/status before and after connecting (cometload's own
  ``--server-pid`` figures, as in server_fanout), and the split of the growth between the
  malloc heap (``[heap]``, objects over 512 bytes and C allocations) and anonymous mappings
  (pymalloc's arenas, large buffers) from /proc/<pid>/smaps.
* **tracemalloc** (a separate, fresh child process of this script, ``--child``): the same server
  code run in-process (``comet_server.app.serve``) with ``tracemalloc`` on, cometload as a
  subprocess. Every Python allocation made while the connections open is grouped by its owner
  (the component through which it was allocated, see ``owner_of``), and every new object is
  counted by type (gc census, ``sys.getsizeof``, its allocation traceback for the owner).

The gap between the traced bytes and the RSS growth is what tracemalloc cannot see: allocator
slack (pymalloc pools and arenas only partly used, glibc malloc headers and fragmentation) and C
allocations made with plain ``malloc``. Kernel socket buffers are not in RSS at all.

    .venv/bin/python bench/memory_breakdown.py [--conns 2000 10000] [--hold 10]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import common  # noqa: F401 - puts the repo root on sys.path
from common import COMETLOAD, PYTHON, ROOT, load_average, record, table

#: frames kept per tracemalloc trace: enough to reach from asyncio/aiohttp internals up to the
#: comet_server or aiohttp code that caused the allocation
TRACE_FRAMES = 30
PIPE = "web_idle"

OWNERS = {
    "http": "aiohttp request, handler, parser (RequestHandler, Request, HttpRequestParser, headers, URL)",
    "ws": "aiohttp WebSocketResponse, reader, writer",
    "asyncio": "asyncio transport, socket, selector",
    "tasks": "asyncio tasks, futures and coroutines (by type, wherever created)",
    "wsconn": "comet_server WsConnection and handshake (ws_connection.py, ws.py's handler)",
    "comet": "comet_server Client, Hub, connection gate",
    "lean": "experiment's LeanConnection and handshake glue",
    "wslib": "websockets (sans-I/O Protocol; or its asyncio server)",
    "other": "other",
}
#: object types counted as "tasks" whatever code created them
TASK_TYPES = {"Task", "Future", "coroutine", "FutureIter", "TaskStepMethWrapper", "_GatheringFuture",
              "async_generator", "Context"}


def _site_group(filename: str) -> str | None:
    f = filename.replace("\\", "/")
    if "/aiohttp/" in f:
        return "ws" if ("/web_ws.py" in f or "/_websocket/" in f or "/http_websocket.py" in f) else "http"
    if "/multidict/" in f or "/yarl/" in f or "/propcache/" in f:
        return "http"
    if "/comet_server/ws_connection.py" in f:
        return "wsconn"
    if "/comet_server/" in f:
        return "comet"
    if "lean_ws_probe.py" in f:
        return "lean"
    if "/websockets/" in f:
        return "wslib"
    if "/asyncio/" in f or f.endswith("/selectors.py") or f.endswith("/socket.py"):
        return "asyncio"
    return None


def owner_of(frames) -> str:
    """Owner of an allocation from its (filename, lineno) frames, most recent first.

    The first frame in a known component decides, except that an aiohttp HTTP frame (e.g.
    web_response.py) reached from aiohttp's WebSocket code belongs to the WebSocket side: scan
    on through aiohttp frames and let a web_ws.py frame win."""
    found = None
    for filename, _lineno in frames:
        g = _site_group(filename)
        if g is None:
            if found is not None:
                return found
            continue
        if found is None:
            if g != "http":
                return g
            found = g
        elif g == "ws":
            return g
        elif g != "http":
            return found
    return found or "other"


_owner_cache: dict = {}


def owner_of_frames(raw: tuple) -> str:
    """owner_of, memoized, for _tracemalloc's raw frame tuples (most recent first)."""
    g = _owner_cache.get(raw)
    if g is None:
        g = _owner_cache[raw] = owner_of(raw)
    return g


def owner_of_traceback(tb) -> str:
    """owner_of for a tracemalloc.Traceback (its frames are stored oldest first)."""
    return owner_of_frames(tuple(reversed(tb._frames)))


# ------------------------------------------------------------------------------------------
# /proc

def proc_status_kib(pid: int, key: str = "VmRSS") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def smaps_split(pid: int) -> dict:
    """Rss (KiB) of the process split into [heap], anonymous mappings and file-backed ones."""
    out = {"heap": 0, "anon": 0, "file": 0, "stack": 0}
    cur = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split()
                if not head:
                    continue
                if not head[0].endswith(":") or "-" in head[0]:
                    name = head[5] if len(head) > 5 else ""
                    cur = ("heap" if name == "[heap]" else "stack" if name.startswith("[stack") else
                           "anon" if not name or name.startswith("[anon") else
                           "file" if not name.startswith("[") else "stack")
                elif head[0] == "Rss:" and cur is not None:
                    out[cur] += int(head[1])
    except OSError:
        pass
    return out


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE to the hard limit, as comet_server does; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def cometload_argv(port: int, n: int, hold: float, pid: int, json_out: str) -> list[str]:
    return [PYTHON, str(COMETLOAD), "--url-base", f"ws://127.0.0.1:{port}", "--mode", "idle",
            "--pipe", PIPE, "--conns", str(n), "--procs", "1", "--duration", str(hold),
            "--server-pid", str(pid), "--connect-timeout", "60", "--max-runtime", str(int(hold + 240)),
            "--json-out", json_out]


def shown(argv: list[str]) -> str:
    """A cometload command line as recorded (port, pid and output file replaced)."""
    out, skip = [], None
    for a in argv[1:]:
        if skip:
            out.append(skip)
            skip = None
            continue
        out.append(os.path.relpath(a, ROOT) if a == str(COMETLOAD) else a)
        skip = {"--url-base": "ws://127.0.0.1:PORT", "--server-pid": "PID", "--json-out": "OUT.json"}.get(a)
    return "python " + " ".join(out)


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
    finally:
        if os.path.exists(path):
            os.unlink(path)


# ------------------------------------------------------------------------------------------
# RSS run: the real server process, no tracemalloc

def rss_run(n: int, hold: float) -> dict:
    from tests.support.server import ServerProcess

    server = ServerProcess(cometql=False, test_pages=False, extra_args=[
        "--max-connections", str(n + 1000), "--max-connections-per-ip", "0"]).start()
    try:
        pid = server.proc.pid
        time.sleep(1.0)
        before = {"rss": proc_status_kib(pid), **smaps_split(pid)}
        out = tempfile.NamedTemporaryFile(prefix="memload_", suffix=".json", delete=False).name
        argv = cometload_argv(server.port, n, hold, pid, out)
        print(f"\n### RSS, {n:,} idle connections\n$ {shown(argv)}", flush=True)
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        peak = dict(before)
        while proc.poll() is None:
            s = {"rss": proc_status_kib(pid), **smaps_split(pid)}
            if (s["rss"] or 0) > (peak["rss"] or 0):
                peak = s
            time.sleep(0.5)
        text = proc.stdout.read() if proc.stdout else ""
        print(text[-1500:], flush=True)
        res = read_json(out)
    finally:
        server.close()
    ok = (res.get("connect") or {}).get("ok") or 0
    rb, ra = res.get("server_rss_before_kib"), res.get("server_rss_after_connect_kib")
    return {"conns": n, "ok": ok, "cmd": shown(argv), "rss_before_kib": rb, "rss_after_connect_kib": ra,
            "mib_per_1k": (ra - rb) / 1024 / (ok / 1000) if ok and rb and ra else None,
            "smaps_before": before, "smaps_peak": peak,
            "dropped": (res.get("idle") or {}).get("dropped"), "conns_per_s": (res.get("connect") or {}).get("conns_per_s")}


# ------------------------------------------------------------------------------------------
# In-process child: tracemalloc breakdown (or RSS of a prototype server without tracemalloc)

class Census:
    """Objects made after this baseline: new gc objects and the untracked objects (str, bytes,
    int, atomic tuples) they refer to, with their raw allocation frames. The baseline objects are
    kept alive so that their ids are not reused."""

    def __init__(self) -> None:
        gc.collect()
        self.keep = gc.get_objects()
        self.ids = {id(o) for o in self.keep}

    def new_objects(self):
        from _tracemalloc import _get_object_traceback  # raw frames: no Traceback object per call

        gc.collect()
        objs = gc.get_objects()
        seen = set(self.ids)
        seen.update((id(objs), id(seen), id(self.keep), id(self.ids)))
        for o in objs:
            if id(o) in seen:
                continue
            seen.add(id(o))
            for x in (o, *gc.get_referents(o)):
                if x is not o and (gc.is_tracked(x) or id(x) in seen):
                    continue
                seen.add(id(x))
                tb = _get_object_traceback(x)
                if tb is not None:
                    yield x, tb


def breakdown(snap0, snap1, census: Census, n: int) -> dict:
    """Traced bytes by owner (allocation site; task/future/coroutine objects in their own row)
    and new objects by type."""
    t0 = time.monotonic()

    by_owner = collections.Counter()
    blocks = collections.Counter()
    for st in snap1.compare_to(snap0, "traceback"):
        if st.size_diff == 0 and st.count_diff == 0:
            continue
        g = owner_of_traceback(st.traceback)
        by_owner[g] += st.size_diff
        blocks[g] += st.count_diff
    traced = sum(by_owner.values())
    progress(f"owners from traces: {time.monotonic() - t0:.1f} s")

    types = collections.defaultdict(lambda: [0, 0, collections.Counter()])
    obj_owner = collections.Counter()
    obj_count = collections.Counter()
    moved = collections.Counter()  # task-type bytes taken out of their allocation site's row
    for o, tb in census.new_objects():
        t = type(o)
        name = t.__name__ if t.__module__ in ("builtins", None) else f"{t.__module__}.{t.__qualname__}"
        size = sys.getsizeof(o)
        site = owner_of_frames(tb)
        g = "tasks" if t.__name__ in TASK_TYPES else site
        if g == "tasks":  # one block each
            moved[site] += size
            blocks[site] -= 1
            blocks["tasks"] += 1
        rec = types[name]
        rec[0] += 1
        rec[1] += size
        rec[2][g] += 1
        obj_owner[g] += size
        obj_count[g] += 1
    progress(f"census: {time.monotonic() - t0:.1f} s")
    for site, size in moved.items():
        by_owner[site] -= size
        by_owner["tasks"] += size
    owners = {g: {"bytes_per_conn": by_owner.get(g, 0) / n, "blocks_per_conn": blocks.get(g, 0) / n,
                  "objects_per_conn": obj_count.get(g, 0) / n, "object_bytes_per_conn": obj_owner.get(g, 0) / n}
              for g in OWNERS if by_owner.get(g) or obj_count.get(g)}
    top = sorted(types.items(), key=lambda kv: -kv[1][1])[:25]
    return {"traced_bytes_per_conn": traced / n, "owners": owners,
            "types": [{"type": k, "objects_per_conn": v[0] / n, "bytes_per_conn": v[1] / n,
                       "owner": v[2].most_common(1)[0][0]} for k, v in top],
            "top_sites": top_sites(snap0, snap1, n)}


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def top_sites(snap0, snap1, n: int, k: int = 15) -> list:
    rows = []
    for st in snap1.compare_to(snap0, "lineno")[:k]:
        fr = st.traceback[0]
        rows.append({"site": f"{short_path(fr.filename)}:{fr.lineno}", "bytes_per_conn": st.size_diff / n,
                     "blocks_per_conn": st.count_diff / n})
    return rows


def short_path(p: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in p:
            return p.split(marker, 1)[1]
    return p


async def start_comet(n: int, **config):
    """comet_server in this process (as ``serve`` runs it; ``config``: more Config fields).
    Returns (port, count, stop)."""
    from tests.support.server import free_port
    from comet_server.app import Config, serve
    from comet_server.hub import Hub

    port = free_port()
    tmp = tempfile.TemporaryDirectory(prefix="memchild_")
    cfg = Config(port=port, db=os.path.join(tmp.name, "comet.db"), cometql_port=0,
                 max_connections=n + 1000, max_connections_per_ip=0, **config)
    stop = asyncio.Event()
    ready = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(serve(cfg, ready=ready, stop=stop))
    await ready
    hub = next(o for o in gc.get_objects() if isinstance(o, Hub))

    async def close():
        stop.set()
        await task
        tmp.cleanup()

    return port, (lambda: hub.subscriber_count(1, PIPE)), close


async def child_main(kind: str, n: int, hold: float, trace: bool) -> dict:
    import tracemalloc

    raise_fd_limit()
    if kind == "comet":
        port, count, close = await start_comet(n)
    else:
        sys.path.insert(0, str(ROOT / "bench" / "experiments"))
        import lean_ws_probe
        port, count, close = await lean_ws_probe.START[kind](n)
    await asyncio.sleep(0.5)
    if trace:  # started once the server runs: only what comes after is traced (and fast to sort)
        tracemalloc.start(TRACE_FRAMES)
        await asyncio.sleep(0.2)
    census = Census() if trace else None
    snap0 = tracemalloc.take_snapshot() if trace else None
    gc.collect()
    rss0, split0 = proc_status_kib(os.getpid()), smaps_split(os.getpid())
    out = tempfile.NamedTemporaryFile(prefix="memload_", suffix=".json", delete=False).name
    argv = cometload_argv(port, n, hold, os.getpid(), out)
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120 + n / 100
    while count() < n and time.monotonic() < deadline and proc.returncode is None:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # as cometload's --settle
    subscribed = count()
    progress(f"{subscribed} subscribed")
    gc.collect()
    rss1, split1 = proc_status_kib(os.getpid()), smaps_split(os.getpid())
    res = {"kind": kind, "conns": n, "subscribed": subscribed, "trace": trace, "cmd": shown(argv),
           "rss_before_kib": rss0, "rss_after_kib": rss1, "smaps_before": split0, "smaps_after": split1,
           "rss_kib_per_conn": (rss1 - rss0) / max(1, subscribed),
           "mib_per_1k": (rss1 - rss0) / 1024 / max(1, subscribed) * 1000}
    if trace:
        snap1 = tracemalloc.take_snapshot()
        progress("snapshot taken")
        snap0 = snap0.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        snap1 = snap1.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        res["tracemalloc_overhead_kib"] = tracemalloc.get_tracemalloc_memory() / 1024
        res.update(breakdown(snap0, snap1, census, max(1, subscribed)))
        del census
    await proc.wait()
    res["cometload"] = read_json(out)
    await close()
    return res


def run_child(kind: str, n: int, hold: float, trace: bool) -> dict:
    """One fresh child process of this script (or of lean_ws_probe's servers)."""
    out = tempfile.NamedTemporaryFile(prefix="memchild_", suffix=".json", delete=False).name
    argv = [PYTHON, str(common.BENCH / "memory_breakdown.py"), "--child", kind, "--conns", str(n),
            "--hold", str(hold), "--json-out", out] + (["--trace"] if trace else [])
    label = "tracemalloc" if trace else "RSS"
    print(f"\n### {kind}: {label}, {n:,} idle connections (in-process server)", flush=True)
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=hold + 600 + n / 10)
    except subprocess.TimeoutExpired:
        read_json(out)
        return {"error": "timed out"}
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-4000:], flush=True)
    res = read_json(out)
    if not res:
        res = {"error": f"child exited {proc.returncode}", "stderr": proc.stderr[-4000:]}
    return res


# ------------------------------------------------------------------------------------------
# Report

def fnum(x, nd=0):
    return "n/a" if x is None else f"{x:,.{nd}f}"


def owner_table(tr: dict, rss_kib_per_conn: float | None) -> str:
    rows = []
    for g, label in OWNERS.items():
        o = tr.get("owners", {}).get(g)
        if not o:
            continue
        rows.append([label, fnum(o["bytes_per_conn"]), fnum(o["blocks_per_conn"], 1),
                     fnum(o["objects_per_conn"], 1)])
    traced = tr.get("traced_bytes_per_conn")
    rows.append(["**all traced Python allocations**", f"**{fnum(traced)}**", "", ""])
    if rss_kib_per_conn is not None and traced is not None:
        rss_b = rss_kib_per_conn * 1024
        rows.append(["RSS growth per connection (separate run, no tracemalloc)", fnum(rss_b), "", ""])
        rows.append(["gap: RSS − traced (allocator slack, untraced C allocations)", fnum(rss_b - traced), "", ""])
    return table(["owner (allocation site)", "bytes/conn", "blocks/conn", "objects/conn (gc census)"], rows)


def type_table(tr: dict, k: int = 15) -> str:
    rows = [[f"`{t['type']}`", fnum(t["objects_per_conn"], 2), fnum(t["bytes_per_conn"]), t["owner"]]
            for t in tr.get("types", [])[:k]]
    return table(["type", "objects/conn", "bytes/conn (getsizeof)", "owner"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--trace-conns", type=int, nargs="*", default=[2000],
                    help="connection counts of the tracemalloc breakdown (default 2000; 10000 takes many minutes)")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds cometload holds the connections")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json-out", help=argparse.SUPPRESS)
    ap.add_argument("--from-json", help="record the figures saved in this results file again (no new runs)")
    args = ap.parse_args()
    if args.child:
        res = asyncio.run(child_main(args.child, args.conns[0], args.hold, args.trace))
        with open(args.json_out, "w") as f:
            json.dump(res, f, default=str)
        return

    if args.from_json:
        saved = json.loads(open(args.from_json).read())
        ints = lambda d: {int(k): v for k, v in d.items()}  # noqa: E731 - JSON keys are strings
        meta = {k: saved[k] for k in ("elapsed_s", "load", "fd_limit")}
        meta["measured"] = saved.get("measured") or saved.get("recorded")
        report(args, ints(saved["rss"]), ints(saved["in_process"]), ints(saved["traced"]), meta)
        return
    soft, hard = raise_fd_limit()
    t0 = time.monotonic()
    load_before = load_average()
    rss = {n: rss_run(n, args.hold) for n in args.conns}
    inproc = {n: run_child("comet", n, args.hold, trace=False) for n in args.conns}
    traced = {n: run_child("comet", n, args.hold, trace=True) for n in args.trace_conns}
    report(args, rss, inproc, traced, {"elapsed_s": time.monotonic() - t0, "load": [load_before, load_average()],
                                       "fd_limit": [soft, hard]})


def report(args, rss: dict, inproc: dict, traced: dict, meta: dict) -> None:
    rss_rows = []
    for n in args.conns:
        r, c = rss[n], inproc.get(n) or {}
        pk, b = r["smaps_peak"], r["smaps_before"]
        grown = max(1, (pk["heap"] - b["heap"]) + (pk["anon"] - b["anon"]))
        rss_rows.append([f"{n:,}", f"{r['ok']:,}", fnum(r["mib_per_1k"], 2), fnum(c.get("mib_per_1k"), 2),
                         f"{100 * (pk['heap'] - b['heap']) / grown:.0f} % / {100 * (pk['anon'] - b['anon']) / grown:.0f} %"])
    (load_before, load_after), (soft, hard) = meta["load"], meta["fd_limit"]
    md = [f"Command: `.venv/bin/python bench/memory_breakdown.py --conns {' '.join(map(str, args.conns))} "
          f"--trace-conns {' '.join(map(str, args.trace_conns))} --hold {args.hold:g}` (took {meta['elapsed_s']:.0f} s; "
          f"load average before/after {load_before} / {load_after}; fd limit {soft}/{hard}). Each run is a fresh "
          "server; the connections were opened with:\n",
          *([f"(Measured {meta['measured']}; this block was rendered again from the saved results with `--from-json`.)\n"]
            if meta.get("measured") else []),
          "\n".join(f"    {rss[n]['cmd']}" for n in args.conns[:1]) + "\n",
          "**RSS per 1,000 idle subscribed connections** (no tracemalloc). The last column splits the growth "
          "between the malloc heap (`[heap]`: objects over 512 bytes, C allocations) and anonymous mappings "
          "(pymalloc's arenas), from /proc/PID/smaps at the run's peak:\n",
          table(["connections", "opened", "comet_server process, MiB/1k", "same code in-process, MiB/1k",
                 "growth in [heap] / anon mappings"], rss_rows) + "\n"]
    for n in args.trace_conns:
        tr = traced[n]
        if "owners" not in tr:
            md.append(f"tracemalloc run with {n:,} connections failed: {tr.get('error')}\n")
            continue
        c = inproc.get(n) or {}
        md.append(f"**Where it goes, {n:,} connections** (tracemalloc, {TRACE_FRAMES} frames per trace, fresh "
                  f"in-process server; {tr['subscribed']:,} subscribed):\n")
        md.append(owner_table(tr, c.get("rss_kib_per_conn")) + "\n")
        md.append(f"Largest object types ({n:,} connections):\n")
        md.append(type_table(tr) + "\n")
    record("memory_breakdown", "\n".join(md), {"args": vars(args), "rss": rss, "in_process": inproc,
                                               "traced": traced, **meta})


if __name__ == "__main__":
    main()
