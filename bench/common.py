"""Shared helpers for the benchmarks: repo paths, statistics, recording into bench/README.md.

Every benchmark prints its figures, writes them as JSON into bench/results/<name>.json and
replaces its own block in bench/README.md (between ``<!-- BEGIN name -->`` and
``<!-- END name -->``). Nothing here ever fails on a timing: speed is measured, not asserted.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pathlib
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = pathlib.Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

README = BENCH / "README.md"
RESULTS = BENCH / "results"
#: the load generator of the server benchmarks (COMETLOAD=... runs another copy)
COMETLOAD = pathlib.Path(os.environ.get("COMETLOAD", str(BENCH / "cometload.py")))
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


#: Chromium flags for benchmarks: the tests' flags, plus a resolver that fails every host name
#: except 127.0.0.1, so pages are offline without routing each request through Playwright
#: (tests/support/browser.OfflineContext routes every request through the Python driver, which
#: adds latency to every fetch; fine for tests, not for timings).
def chromium_args():
    from tests.support.browser import CHROMIUM_ARGS
    return CHROMIUM_ARGS + ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


LOCAL_PREFIXES = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")


def watch_offline(page, sink: list) -> None:
    """Record every request of ``page`` that is not to loopback (should stay empty)."""
    page.on("request", lambda r: None if r.url.startswith(LOCAL_PREFIXES) else sink.append(r.url))


def load_average() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def cpu_busy(interval=1.0) -> float:
    """System CPU busy % (all cores) over ``interval`` seconds, from /proc/stat."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v) - v[3] - v[4], sum(v)
    import time as _t
    a = snap()
    _t.sleep(interval)
    b = snap()
    return 100.0 * (b[0] - a[0]) / max(1, b[1] - a[1])


def _process_label(pid: int, cmdline: list[str], named: dict[int, str]) -> str:
    if pid in named:
        return named[pid]
    args = " ".join(cmdline)
    if "chrom" not in (cmdline[0] if cmdline else ""):
        return "other"
    for needle, label in (("--type=renderer", "renderer"), ("NetworkService", "network service"),
                          ("--type=gpu-process", "gpu"), ("--type=zygote", "zygote"), ("--type=", "other chromium")):
        if needle in args:
            return label
    return "browser"


def descendant_cpu(named: dict[int, str] | None = None, root: int | None = None,
                   threads_of: tuple[str, ...] = ()) -> dict[str, float]:
    """CPU seconds (user + system) so far of every live descendant of ``root`` (default: this
    process), summed by kind: Chromium's "browser", "renderer", "network service", "gpu", ..., or
    the label ``named`` gives a pid (and its descendants, e.g. the server). Only our own children:
    other Chromiums on the machine are not counted. For the kinds in ``threads_of``, also
    "<kind>/<thread name>" for each of their threads."""
    named = dict(named or {})
    root = os.getpid() if root is None else root
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    stat: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parent[pid], stat[pid] = int(fields[1]), fields
    totals: dict[str, float] = {}
    for pid, fields in stat.items():
        chain, p = [], pid
        while p in parent and p != root and p > 1:
            chain.append(p)
            p = parent[p]
        if p != root or pid == root:
            continue
        inherited = next((named[c] for c in chain if c in named), None)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        label = inherited or _process_label(pid, cmdline, named)
        # utime, stime: fields 14 and 15 of /proc/<pid>/stat (11, 12 after the name)
        totals[label] = totals.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        if label in threads_of:
            for name, seconds in _thread_cpu(pid, tick).items():
                key = f"{label}/{name}"
                totals[key] = totals.get(key, 0.0) + seconds
    return totals


def _thread_cpu(pid: int, tick: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``, summed by thread name (Chromium names its threads)."""
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def wait_quiet(max_wait: float = 120.0, threshold: float = 30.0) -> float:
    """Wait (bounded) until the machine is below ``threshold`` % busy over 1 s; returns the last
    busy %. The benchmarks share 2 cores with whatever else runs: this is recorded, not hidden."""
    import time as _t
    end = _t.monotonic() + max_wait
    busy = cpu_busy()
    while busy >= threshold and _t.monotonic() < end:
        busy = cpu_busy()
    print(f"machine busy before start: {busy:.0f}% of all cores", flush=True)
    return busy


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a list; None if empty."""
    xs = sorted(values)
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def ms(us):
    """Microseconds (cometload's unit) as milliseconds; None stays None."""
    return None if us is None else us / 1000


def dig(res, *path):
    """``res[path[0]][path[1]]...``, or None where a step is missing (a failed run's JSON)."""
    for p in path:
        if not isinstance(res, dict) or p not in res:
            return None
        res = res[p]
    return res


def verdict(ok):
    """A README table cell for a target: met, not met, or n/a (not measured)."""
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def median(values):
    return statistics.median(values) if values else None


def spread(values):
    """(median, min, max) of a list; three Nones if it is empty."""
    xs = list(values)
    return (statistics.median(xs), min(xs), max(xs)) if xs else (None, None, None)


def fmt(x, nd=1):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "?"
    try:
        chromium = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        chromium = "?"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, {chromium}")


def now() -> str:
    return _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "?"


def table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def record(name: str, markdown: str, data: dict) -> None:
    """Print the figures, save them as JSON and put them into README.md's block ``name``."""
    header = f"_Recorded {now()} at commit {git_rev()} on {machine()}._\n\n"
    body = header + markdown.strip() + "\n"
    print(body)
    RESULTS.mkdir(exist_ok=True)
    data = {"recorded": now(), "commit": git_rev(), "machine": machine(), **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body}{end}"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{block}\n"
    README.write_text(text)


# ------------------------------------------------------------------------------------------
# cometload runs (server_fanout.py, cometql.py)


def cometload(server, extra, label, max_runtime=240):
    """Run bench/cometload.py against ``server`` with ``extra`` arguments; its JSON result."""
    out = tempfile.NamedTemporaryFile(prefix="cometload_", suffix=".json", delete=False).name
    argv = [PYTHON, str(COMETLOAD), "--url-base", f"ws://127.0.0.1:{server.port}",
            "--server-pid", str(server.proc.pid), "--max-runtime", str(max_runtime), *extra, "--json-out", out]
    shown = "python bench/cometload.py --url-base ws://127.0.0.1:PORT --server-pid PID " \
            f"--max-runtime {max_runtime} " + " ".join(shlex.quote(a) for a in extra)
    print(f"\n### {label}\n$ {shown}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=max_runtime + 60)
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
