#!/usr/bin/env python3
"""cometload.py: asyncio load generator for CppComet-compatible comet servers.

Part of comet_py's benchmarks: bench/server_fanout.py and bench/cometql.py run it as a separate
process (``python bench/cometload.py ...``) against a fresh comet_server. It was adapted from the
load generator supplied with the project's brief; its command line only gained options
(--source-ips, --sub-url-bases) and its JSON output only gained keys, so the commands recorded in bench/results/*.json
run as they are. It needs ``websockets`` (and ``PyMySQL`` for ``--cometql``), both pinned in
requirements-dev.txt.

It speaks only the client wire protocol, so it can be pointed at any compatible server:

* WebSocket URL:
  <url-base>/ws/sesion=<key>&myid=<uid>&devid=<dev>&v=4.08&uuid=<32 chars [A-Za-z0-9]>&api=js
* client -> server text frames: "subscription\\n<pipe>" and "web_pipe2\\n<pipe>\\n<event>\\n*\\n<json>"
* server -> client: one JSON object per text frame. Frames that do not parse are skipped and
  counted ("unparsable").
* optional CometQL (MySQL protocol) publishing:
  INSERT INTO pipes_messages (name, event, message) VALUES ('<pipe>','<event>','<msg>')

Client behaviour that matters for compatible servers:
* no WebSocket pings are ever sent (some servers drop a connection on a client ping), and
  nothing is sent when idle;
* connections are closed by closing TCP; no close frame is sent;
* message payloads are padded (--payload-bytes, minimum 64) so every data frame the server
  sends back is well above 125 bytes (one known server corrupts frames of 123-125 bytes).

Every message carries the marker  CLM<run>x<publisher>x<seq>x<send time, ns since epoch>x
followed by padding, using only [A-Za-z0-9] so no quoting or escaping layer can change it.
Receivers find it with a regex, whatever escaping the server applied to the data.

Modes:
  connect  open --conns connections as fast as allowed, report connections/s and server RSS,
           hold --duration seconds (default 0), close.
  idle     open --conns connections, subscribe each to --pipe, hold --duration seconds
           sampling server RSS, report drops.
  fanout   --conns subscribers on --pipe; --publishers publisher connections (or CometQL
           connections with --cometql) publish at --rate msgs/s (or 'max') for --duration s, or
           --burst M messages as fast as possible. Reports delivered msgs/s, latency
           percentiles, loss and duplicates per subscriber.

Subscribers run in --procs worker processes (fork); the parent runs the publishers.
With --window W (default 1000 for --rate max / --burst) the publishers keep at most W messages
in flight, counted against the slowest live subscriber, so 'max' measures sustained delivery
instead of filling kernel buffers; latency under 'max' is then roughly W / delivered rate.
Every message is checked per subscriber (bitmap per publisher): lost = expected - unique
received after a bounded drain, duplicates = repeats. Latency = receive time - send time
embedded in the message (same host clock).
Every loop is bounded by a count and a deadline; --max-runtime is a hard stop (SIGALRM).

Example:
  python bench/cometload.py --mode fanout --conns 1000 --pipe web_bench --rate 100 --duration 10 \\
      --payload-bytes 200 --server-pid 12345
"""

import argparse
import asyncio
import ipaddress
import json
import math
import multiprocessing as mp
import os
import random
import re
import resource
import signal
import socket
import sys
import time

try:
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Response
    from websockets.protocol import State
    from websockets.uri import parse_uri
except ImportError:  # pragma: no cover
    sys.exit("cometload.py needs the 'websockets' package (>= 13): pip install websockets")

OP_TEXT, OP_BINARY, OP_CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
WARM_PUB = 9999            # publisher id used for warm-up messages (not counted)
MAX_PUBLISHERS = 1000
MAX_SEQ = 50_000_000       # sanity bound for a sequence number in a received marker
MIN_PAYLOAD = 64
HIST_SIZE = 64 * 64

MARK_RE = re.compile(rb"CLM(\d+)x(\d+)x(\d+)x(\d+)x")
MARK_RE_S = re.compile(r"CLM(\d+)x(\d+)x(\d+)x(\d+)x")
NUMMSG_RE = re.compile(rb'"number_messages"\s*:\s*(-?\d+)')


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------

def hist_key(us):
    """Log-linear histogram key for a latency in microseconds (about 3 % resolution)."""
    if us < 64:
        return us if us > 0 else 0
    sh = us.bit_length() - 6
    return (sh << 6) | (us >> sh)


def hist_value(k):
    if k < 64:
        return float(k)
    sh, m = k >> 6, k & 63
    return float((m << sh) + ((1 << sh) >> 1))


def hist_sparse(h):
    return {i: n for i, n in enumerate(h) if n}


def hist_merge(dst, sparse):
    for k, n in sparse.items():
        dst[int(k)] = dst.get(int(k), 0) + n


def hist_pcts(sparse, pcts=(50, 90, 99, 99.9, 100)):
    """Percentiles (microseconds) from a sparse histogram {key: count}."""
    total = sum(sparse.values())
    out = {}
    if not total:
        return {p: None for p in pcts}
    keys = sorted(sparse)
    for p in pcts:
        target = max(1, math.ceil(p / 100.0 * total))
        cum = 0
        for k in keys:
            cum += sparse[k]
            if cum >= target:
                out[p] = hist_value(k)
                break
    return out


def fmt_us(us):
    if us is None:
        return "n/a"
    if us < 1000:
        return "%.0f us" % us
    if us < 1_000_000:
        return "%.2f ms" % (us / 1000)
    return "%.2f s" % (us / 1e6)


def rusage_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid):
    if not pid:
        return None
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _stat_ticks(path):
    with open(path) as f:
        s = f.read()
    rp = s.rfind(")")
    comm = s[s.find("(") + 1:rp]
    fields = s[rp + 2:].split()
    # fields[0] is state (field 3); utime is field 14, stime 15 -> indexes 11, 12
    return comm, int(fields[11]) + int(fields[12])


def proc_cpu_s(pid):
    if not pid:
        return None
    try:
        return _stat_ticks("/proc/%d/stat" % pid)[1] / CLK_TCK
    except OSError:
        return None


def proc_threads(pid):
    """{tid: (comm, cpu seconds)} for every thread of pid."""
    out = {}
    if not pid:
        return out
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tids:
        try:
            comm, ticks = _stat_ticks("/proc/%d/task/%s/stat" % (pid, t))
            out[int(t)] = (comm, ticks / CLK_TCK)
        except (OSError, ValueError, IndexError):
            pass
    return out


def sys_cpu():
    """(busy_ticks, total_ticks) from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
        vals = [int(x) for x in parts]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        total = sum(vals[:8])
        return total - idle, total
    except (OSError, ValueError):
        return 0, 0


class ServerProbe:
    """Samples RSS and CPU of a server process (by pid) from /proc."""

    def __init__(self, pid, watch=()):
        self.pid = pid
        self.watch = list(watch or ())
        self.rss_peak = None

    def rss(self):
        v = proc_rss_kib(self.pid)
        if v is not None and (self.rss_peak is None or v > self.rss_peak):
            self.rss_peak = v
        return v

    def snap(self):
        return {"t": time.monotonic(), "rss_kib": self.rss(), "cpu_s": proc_cpu_s(self.pid),
                "threads": proc_threads(self.pid), "sys": sys_cpu(), "self_cpu": rusage_cpu(),
                "watch": {p: proc_cpu_s(p) for p in self.watch}}


def snap_delta(a, b):
    """CPU use between two ServerProbe snapshots."""
    wall = max(1e-9, b["t"] - a["t"])
    out = {"wall_s": wall}
    if a["cpu_s"] is not None and b["cpu_s"] is not None:
        out["server_cpu_s"] = b["cpu_s"] - a["cpu_s"]
        out["server_cpu_pct"] = 100.0 * out["server_cpu_s"] / wall
        thr = []
        for tid, (comm, c1) in b["threads"].items():
            c0 = a["threads"].get(tid, (comm, 0.0))[1]
            if c1 - c0 > 0.005:
                thr.append((tid, comm, round(100.0 * (c1 - c0) / wall, 1)))
        thr.sort(key=lambda x: -x[2])
        out["server_threads_pct"] = thr[:8]
    bt = b["sys"][1] - a["sys"][1]
    if bt > 0:
        out["system_busy_pct_of_all_cpus"] = 100.0 * (b["sys"][0] - a["sys"][0]) / bt
    out["parent_cpu_pct"] = 100.0 * (b["self_cpu"] - a["self_cpu"]) / wall
    watched = {}
    for p, c1 in b.get("watch", {}).items():
        c0 = a.get("watch", {}).get(p)
        if c0 is not None and c1 is not None:
            watched[p] = round(100.0 * (c1 - c0) / wall, 1)
    if watched:
        out["watched_cpu_pct"] = watched
    out["watched_total_pct"] = sum(watched.values())
    return out


def make_uuid(run_id, kind, i):
    """Exactly 32 chars of [A-Za-z0-9]."""
    return ("L%s%06d%024d" % (kind, run_id % 1000000, i))[:32]


def build_url(cfg, uid, uuid, base=None):
    base = (base or cfg.url_base).rstrip("/")
    return "%s%ssesion=%s&myid=%s&devid=%s&v=%s&uuid=%s&api=js" % (
        base, cfg.ws_path, cfg.session, uid, cfg.dev_id, cfg.api_version, uuid)


def host_port(url_base):
    u = parse_uri(url_base.rstrip("/") + "/")
    return u.host, u.port


def build_msg(run_id, pub, seq, size, quote):
    """Marker + padding, total length `size`. quote=True gives a JSON string literal."""
    core = "CLM%dx%dx%dx%dx" % (run_id, pub, seq, time.time_ns())
    pad = size - len(core) - (2 if quote else 0)
    body = core + ("p" * pad if pad > 0 else "")
    return '"' + body + '"' if quote else body


# ----------------------------------------------------------------------------------------------
# WebSocket connections
# ----------------------------------------------------------------------------------------------

class WSConn(asyncio.Protocol):
    """A WebSocket client connection: websockets' sans-I/O ClientProtocol on an asyncio transport.

    No keepalive pings; close() closes TCP without a close frame."""

    def __init__(self, url, on_frame, max_size=1 << 20):
        self.proto = ClientProtocol(parse_uri(url), max_size=max_size)
        self.on_frame = on_frame
        self.transport = None
        self.open_fut = asyncio.get_running_loop().create_future()
        self.frag = None
        self.t_start = self.t_open = self.t_first = 0
        self.closed = False
        self.closing = False
        self.paused = False
        self._resume = None
        self.on_lost = None
        # per-subscriber receive state (used by workers)
        self.idx = -1
        self.uniq = 0
        self.warm = False
        self.bms = None
        self.nframes = 0

    # asyncio.Protocol callbacks
    def connection_made(self, transport):
        self.transport = transport
        self.proto.send_request(self.proto.connect())
        self._flush()

    def _flush(self):
        for chunk in self.proto.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def data_received(self, data):
        proto = self.proto
        proto.receive_data(data)
        for ev in proto.events_received():
            if type(ev) is Frame:
                op = ev.opcode
                if op is OP_TEXT or op is OP_BINARY:
                    if ev.fin:
                        self.on_frame(self, ev.data)
                    else:
                        self.frag = [ev.data]
                elif op is OP_CONT and self.frag is not None:
                    self.frag.append(ev.data)
                    if ev.fin:
                        d = b"".join(self.frag)
                        self.frag = None
                        self.on_frame(self, d)
            elif isinstance(ev, Response):
                if proto.state is State.OPEN:
                    self.t_open = time.time_ns()
                    if not self.open_fut.done():
                        self.open_fut.set_result(True)
                else:
                    exc = proto.handshake_exc or ConnectionError("handshake failed")
                    if not self.open_fut.done():
                        self.open_fut.set_exception(exc)
        self._flush()

    def eof_received(self):
        self.proto.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc):
        self.closed = True
        if not self.open_fut.done():
            self.open_fut.set_exception(exc or ConnectionError("closed before handshake"))
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)
        if self.on_lost is not None:
            self.on_lost(self, exc)

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)

    # API
    def send_nowait(self, data):
        if self.closed:
            raise ConnectionError("connection closed")
        self.proto.send_text(data)
        self._flush()

    async def send(self, data, timeout=30.0):
        self.send_nowait(data)
        if self.paused and not self.closed:
            self._resume = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self._resume, timeout)

    def close(self):
        self.closing = True
        if self.transport is not None and not self.closed:
            self.transport.close()


class LibConn:
    """Same interface as WSConn, on websockets.asyncio.client.connect (ping_interval=None)."""

    def __init__(self, url, on_frame, local_addr=None):
        self.url = url
        self.on_frame = on_frame
        self.local_addr = local_addr
        self.ws = None
        self.task = None
        self.t_start = self.t_open = self.t_first = 0
        self.closed = False
        self.closing = False
        self.on_lost = None
        self.idx = -1
        self.uniq = 0
        self.warm = False
        self.bms = None
        self.nframes = 0

    async def open(self, timeout):
        from websockets.asyncio.client import connect
        extra = {"local_addr": self.local_addr} if self.local_addr else {}
        self.ws = await connect(self.url, ping_interval=None, compression=None,
                                open_timeout=timeout, close_timeout=1, user_agent_header=None,
                                max_size=1 << 20, **extra)
        self.t_open = time.time_ns()
        self.task = asyncio.get_running_loop().create_task(self._reader())

    async def _reader(self):
        exc = None
        try:
            while True:
                data = await self.ws.recv(decode=False)
                self.on_frame(self, data)
        except Exception as e:  # ConnectionClosed and friends
            exc = e
        finally:
            self.closed = True
            if self.on_lost is not None:
                self.on_lost(self, exc)

    def send_nowait(self, data):
        asyncio.get_running_loop().create_task(self.send(data))

    async def send(self, data, timeout=30.0):
        await asyncio.wait_for(self.ws.send(data, text=True), timeout)

    def close(self):
        self.closing = True
        if self.ws is not None and not self.closed:
            self.ws.transport.abort()   # TCP close, no close frame


#: Linux's IP_BIND_ADDRESS_NO_PORT (not in every Python's socket module)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def bound_socket(local_addr):
    """A non-blocking TCP socket bound to ``local_addr`` whose port connect() chooses. A plain
    bind() to port 0 must find a port free for every destination, and on Linux that takes
    milliseconds per socket once about half of ip_local_port_range is in use."""
    family = socket.AF_INET6 if ":" in local_addr[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if sys.platform.startswith("linux"):
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind(local_addr)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def source_addr(cfg, i):
    """(address, 0) to bind subscriber ``i`` to, round-robin over --source-ips; None = any."""
    return (cfg.source_ips[i % len(cfg.source_ips)], 0) if cfg.source_ips else None


async def open_conn(cfg, url, on_frame, timeout, local_addr=None, addr=None):
    loop = asyncio.get_running_loop()
    t0 = time.time_ns()
    if cfg.client == "lib":
        c = LibConn(url, on_frame, local_addr)
        c.t_start = t0
        await c.open(timeout)
        return c
    host, port = addr or (cfg.host, cfg.port)

    async def _go():
        if local_addr is None:
            _, proto = await loop.create_connection(lambda: WSConn(url, on_frame), host, port)
        else:
            sock = bound_socket(local_addr)
            try:
                await loop.sock_connect(sock, (host, port))
            except BaseException:
                sock.close()
                raise
            _, proto = await loop.create_connection(lambda: WSConn(url, on_frame), sock=sock)
        proto.t_start = t0
        try:
            await proto.open_fut
        except BaseException:
            proto.close()
            raise
        return proto
    return await asyncio.wait_for(_go(), timeout)


# ----------------------------------------------------------------------------------------------
# subscriber worker process
# ----------------------------------------------------------------------------------------------

class RecvStats:
    def __init__(self, sub_bases=()):
        self.frames = 0
        self.unparsable = 0
        self.other = 0
        self.foreign = 0
        self.dups = 0
        self.neg_lat = 0
        self.first_recv_ns = 0
        self.last_recv_ns = 0
        self.hist = [0] * HIST_SIZE
        # one more histogram per --sub-url-bases entry (None without it)
        self.hist_by_base = [[0] * HIST_SIZE for _ in sub_bases] if sub_bases else None
        self.tl = {}
        self.n_warm = 0
        self.warm_dirty = False
        self.disconnects = 0


def make_frame_handler(st, cfg, npubs):
    """Returns on_frame(conn, data) for subscriber connections (hot path)."""
    run_id = cfg.run_id
    parse_json = cfg.parse == "json"
    pipe_s = cfg.pipe
    pipe_q = ('"%s"' % cfg.pipe).encode()
    search_b = MARK_RE.search
    search_s = MARK_RE_S.search
    loads = json.loads
    dumps = json.dumps
    hist = st.hist
    by_base = st.hist_by_base
    tl = st.tl
    time_ns = time.time_ns

    def on_frame(conn, data):
        now = time_ns()
        st.frames += 1
        conn.nframes += 1
        if not conn.t_first:
            conn.t_first = now
        if parse_json:
            try:
                obj = loads(data)
            except ValueError:
                st.unparsable += 1
                return
            if type(obj) is not dict or obj.get("pipe") != pipe_s:
                st.other += 1
                return
            d = obj.get("data")
            if type(d) is not str:
                d = dumps(d)
            m = search_s(d)
        else:
            # cheap structural check instead of a full JSON parse
            if data[:1] != b"{" or data[-1:] != b"}":
                st.unparsable += 1
                return
            if pipe_q not in data:
                st.other += 1
                return
            m = search_b(data)
        if m is None:
            st.other += 1
            return
        run, pub, seq, tns = m.groups()
        if int(run) != run_id:
            st.foreign += 1
            return
        pub = int(pub)
        if pub >= npubs:
            if pub == WARM_PUB:
                if not conn.warm:
                    conn.warm = True
                    st.n_warm += 1
                    st.warm_dirty = True
            else:
                st.foreign += 1
            return
        seq = int(seq)
        if seq >= MAX_SEQ:
            st.foreign += 1
            return
        bm = conn.bms[pub]
        if seq >= len(bm):
            bm.extend(bytes(max(seq + 1 - len(bm), len(bm))))
        if bm[seq]:
            st.dups += 1
            return
        bm[seq] = 1
        conn.uniq += 1
        us = (now - int(tns)) // 1000
        if us < 64:
            if us < 0:
                st.neg_lat += 1
                us = 0
            k = us
        else:
            sh = us.bit_length() - 6
            k = (sh << 6) | (us >> sh)
            if k >= HIST_SIZE:
                k = HIST_SIZE - 1
        hist[k] += 1
        if by_base is not None:
            by_base[conn.base_idx][k] += 1
        s = now // 1_000_000_000
        tl[s] = tl.get(s, 0) + 1
        if not st.first_recv_ns:
            st.first_recv_ns = now
        st.last_recv_ns = now

    return on_frame


def worker_entry(widx, cfg, ctl, sub_ids):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.alarm(int(cfg.max_runtime) + 30)
    try:
        run_loop(cfg, worker_async(widx, cfg, ctl, sub_ids))
    finally:
        try:
            ctl.close()
        except OSError:
            pass
    os._exit(0)


def run_loop(cfg, coro):
    factory = None
    if cfg.loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as r:
        return r.run(coro)


async def worker_async(widx, cfg, ctl, sub_ids):
    loop = asyncio.get_running_loop()
    inbox = asyncio.Queue()

    def on_ctl():
        try:
            msg = ctl.recv()
        except (EOFError, OSError):
            loop.remove_reader(ctl.fileno())
            inbox.put_nowait(("eof",))
            return
        inbox.put_nowait(msg)

    loop.add_reader(ctl.fileno(), on_ctl)
    hard_deadline = time.monotonic() + cfg.max_runtime + 20

    async def get_msg(timeout):
        timeout = max(0.0, min(timeout, hard_deadline - time.monotonic()))
        try:
            return await asyncio.wait_for(inbox.get(), timeout)
        except asyncio.TimeoutError:
            return ("timeout",)

    st = RecvStats(cfg.sub_url_bases)
    npubs = cfg.publishers
    on_frame = make_frame_handler(st, cfg, npubs)
    conns = []
    bm_init = cfg.bitmap_init

    def on_lost(c, exc):
        if not c.closing:
            st.disconnects += 1

    ctl.send(("hello", widx))
    msg = await get_msg(120)
    if msg[0] != "connect":
        return
    subscribe = msg[1]
    cpu0 = rusage_cpu()
    sem = asyncio.Semaphore(cfg.connect_concurrency)
    fails = {}
    hs_hist = [0] * HIST_SIZE

    async def open_one(j):
        async with sem:
            bi = j % len(cfg.sub_url_bases) if cfg.sub_url_bases else 0
            base = cfg.sub_url_bases[bi] if cfg.sub_url_bases else None
            url = build_url(cfg, cfg.uid, make_uuid(cfg.run_id, "s", j), base)
            try:
                c = await open_conn(cfg, url, on_frame, cfg.connect_timeout, source_addr(cfg, j),
                                    host_port(base) if base else None)
            except Exception as e:  # noqa: BLE001 - count every failure kind
                name = type(e).__name__
                fails[name] = fails.get(name, 0) + 1
                return
            c.idx = j
            c.base_idx = bi
            c.on_lost = on_lost
            c.bms = [bytearray(bm_init) for _ in range(npubs)]
            conns.append(c)
            hs_hist[min(HIST_SIZE - 1, hist_key((c.t_open - c.t_start) // 1000))] += 1

    await asyncio.gather(*(open_one(j) for j in sub_ids))
    t_open_min = min((c.t_start for c in conns), default=0)
    t_open_max = max((c.t_open for c in conns), default=0)
    if subscribe:
        frame = ("subscription\n%s" % cfg.pipe).encode()
        for i, c in enumerate(conns):
            if not c.closed:
                try:
                    await c.send(frame)
                except Exception:  # noqa: BLE001
                    pass
            if i % 200 == 199:
                await asyncio.sleep(0)
    # give early frames (e.g. serverInfo) a moment before counting first frames
    await asyncio.sleep(0.2)
    ctl.send(("connected", widx, {
        "ok": len(conns), "fail": sum(fails.values()), "fail_kinds": fails,
        "t_first_start_ns": t_open_min, "t_last_open_ns": t_open_max,
        "hs_hist": hist_sparse(hs_hist),
        "with_first_frame": sum(1 for c in conns if c.t_first),
        "cpu_s": rusage_cpu() - cpu0}))

    # ---- run phase: progress reports until "stop"
    run_cpu0, run_t0 = rusage_cpu(), time.monotonic()
    last_prog = None
    stop = None
    while time.monotonic() < hard_deadline:
        if st.warm_dirty:
            st.warm_dirty = False
            ctl.send(("warm", widx, st.n_warm))
        live = [c.uniq for c in conns if not c.closed]
        prog = (min(live) if live else None, sum(c.uniq for c in conns))
        if prog != last_prog:
            last_prog = prog
            ctl.send(("prog", widx, prog[0], prog[1]))
        msg = await get_msg(cfg.progress_interval)
        if msg[0] == "timeout":
            continue
        if msg[0] == "run":
            run_cpu0, run_t0 = rusage_cpu(), time.monotonic()
            if len(msg) > 1 and msg[1]:
                for c in conns:
                    if isinstance(c, WSConn) and c.transport is not None and not c.closed:
                        c.transport.pause_reading()
            continue
        if msg[0] == "resume":
            for c in conns:
                if isinstance(c, WSConn) and c.transport is not None and not c.closed:
                    c.transport.resume_reading()
            continue
        if msg[0] in ("stop", "eof"):
            stop = msg
            break
    # ---- drain
    expected = sum(stop[1]) if stop and stop[0] == "stop" else 0
    drain_timeout = stop[2] if stop and stop[0] == "stop" else 0
    idle_timeout = stop[3] if stop and stop[0] == "stop" else 0
    t_stop = time.monotonic()
    d_deadline = min(hard_deadline, t_stop + drain_timeout)
    last_total, last_change = -1, t_stop
    complete = False
    while True:
        now = time.monotonic()
        total = sum(c.uniq for c in conns)
        if all(c.uniq >= expected for c in conns):
            complete = True
            break
        if total != last_total:
            last_total, last_change = total, now
        elif now - last_change > idle_timeout:
            break
        if now >= d_deadline:
            break
        await asyncio.sleep(0.05)
    t_drained = time.monotonic()
    losses = [max(0, expected - c.uniq) for c in conns]
    report = {
        "subs": len(conns), "expected_per_sub": expected,
        "uniq_total": sum(c.uniq for c in conns),
        "lost_total": sum(losses), "subs_with_loss": sum(1 for x in losses if x),
        "max_loss_per_sub": max(losses, default=0),
        "subs_closed": sum(1 for c in conns if c.closed),
        "disconnects": st.disconnects, "frames": st.frames, "unparsable": st.unparsable,
        "other": st.other, "foreign": st.foreign, "dups": st.dups, "neg_lat": st.neg_lat,
        "first_recv_ns": st.first_recv_ns, "last_recv_ns": st.last_recv_ns,
        "hist": hist_sparse(st.hist), "tl": st.tl, "complete": complete,
        "hist_by_base": [hist_sparse(h) for h in st.hist_by_base] if st.hist_by_base else None,
        "drain_s": t_drained - t_stop, "run_cpu_s": rusage_cpu() - run_cpu0,
        "run_wall_s": t_drained - run_t0,
    }
    ctl.send(("final", widx, report))
    msg = await get_msg(30)
    # close in batches: a mass disconnect is a separate scenario (--close-batch 0 = all at once)
    for i, c in enumerate(conns):
        c.close()
        if cfg.close_batch and (i + 1) % cfg.close_batch == 0:
            await asyncio.sleep(cfg.close_pause)
    await asyncio.sleep(0.1)


# ----------------------------------------------------------------------------------------------
# publishers (parent process)
# ----------------------------------------------------------------------------------------------

class PubShared:
    def __init__(self, npubs):
        self.sent = [0] * npubs
        self.sent_total = 0
        self.errors = 0
        self.error_kinds = {}
        self.min_prog = 0          # min over workers of the slowest live subscriber's count
        self.prog_known = False
        self.last_prog_change = time.monotonic()
        self.forgiven = 0
        self.stalls = 0
        self.window_wait_s = 0.0
        self.prog_event = None
        self.answers = 0
        self.answers_num = 0
        self.answers_run = 0
        self.t_last_answer_ns = 0
        self.answers_event = None
        self.pub_frames_other = 0
        self.q_hist = [0] * HIST_SIZE   # CometQL query round-trip times
        self.t_first_send_ns = 0
        self.t_last_send_ns = 0
        self.stop = False

    def err(self, e):
        self.errors += 1
        n = type(e).__name__
        self.error_kinds[n] = self.error_kinds.get(n, 0) + 1


def pub_plan(cfg, k):
    """(max messages, interval seconds, start offset seconds) for publisher k."""
    K = cfg.publishers
    if cfg.burst:
        return cfg.burst // K + (1 if k < cfg.burst % K else 0), 0.0, 0.0
    if cfg.rate_max:
        return 10 ** 8, 0.0, 0.0
    per = cfg.rate / K
    n = int(math.ceil(per * cfg.duration))
    return n, 1.0 / per, k / cfg.rate


def in_flight(sh):
    return sh.sent_total - sh.min_prog - sh.forgiven


def window_open(cfg, sh, t0, deadline):
    """True when a publisher that started waiting at ``t0`` may send: the window has room, the
    run is over, or the subscribers made no progress for --stall-timeout (their in-flight
    messages are then forgiven)."""
    if in_flight(sh) < cfg.window:
        return True
    now = time.monotonic()
    if now >= deadline or sh.stop:
        return True
    if now - max(sh.last_prog_change, t0) > cfg.stall_timeout:
        sh.forgiven += in_flight(sh)
        sh.stalls += 1
        return True
    return False


async def window_wait_async(cfg, sh, deadline):
    if not cfg.window or not sh.prog_known:
        return
    t0 = time.monotonic()
    while not window_open(cfg, sh, t0, deadline):
        sh.prog_event.clear()
        try:
            await asyncio.wait_for(sh.prog_event.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
    sh.window_wait_s += time.monotonic() - t0


def window_wait_sync(cfg, sh, deadline):
    if not cfg.window or not sh.prog_known:
        return
    t0 = time.monotonic()
    while not window_open(cfg, sh, t0, deadline):
        time.sleep(0.001)
    sh.window_wait_s += time.monotonic() - t0


def make_pub_frame_handler(sh, run_id):
    """Publisher connections: count the server's delivery reports (if the server sends any)."""
    def on_frame(conn, data):
        m = NUMMSG_RE.search(data)
        if m is not None:
            sh.answers += 1
            sh.answers_num += max(0, int(m.group(1)))
            mk = MARK_RE.search(data)
            if mk is not None and int(mk.group(1)) == run_id and int(mk.group(2)) != WARM_PUB:
                sh.answers_run += 1
                sh.t_last_answer_ns = time.time_ns()
                if sh.answers_run >= sh.sent_total and sh.answers_event is not None:
                    sh.answers_event.set()
        else:
            sh.pub_frames_other += 1
    return on_frame


async def ws_publisher(cfg, k, conn, sh, t0, deadline):
    count, interval, offset = pub_plan(cfg, k)
    head = ("web_pipe2\n%s\n%s\n*\n" % (cfg.pipe, cfg.event)).encode()
    next_t = t0 + offset
    run_id, size = cfg.run_id, cfg.payload_bytes
    for seq in range(count):
        now = time.monotonic()
        if now >= deadline or sh.stop or conn.closed:
            break
        if interval:
            delay = next_t - now
            if delay > 0.0005:
                await asyncio.sleep(delay)
            next_t += interval
        await window_wait_async(cfg, sh, deadline)
        msg = build_msg(run_id, k, seq, size, True)
        try:
            await conn.send(head + msg.encode())
        except Exception as e:  # noqa: BLE001
            sh.err(e)
            break
        sh.sent[k] += 1
        sh.sent_total += 1
        if not sh.t_first_send_ns:
            sh.t_first_send_ns = time.time_ns()
        if not interval and (seq & 31) == 31:
            await asyncio.sleep(0)
    sh.t_last_send_ns = max(sh.t_last_send_ns, time.time_ns())


# ---- CometQL

def cometql_connect(cfg):
    import pymysql

    class CometQLConnection(pymysql.connections.Connection):
        def _get_server_information(self):
            super()._get_server_information()
            v = self.server_version or ""
            if not re.match(r"^\d+\.", v):   # e.g. "CppComet community 4.09 ..."
                self.server_version = "5.7.0-" + v

    host, _, port = cfg.cometql.rpartition(":")
    return CometQLConnection(host=host or "127.0.0.1", port=int(port), user=cfg.cometql_user,
                             password=cfg.cometql_password, database=cfg.cometql_db,
                             ssl_disabled=True, connect_timeout=10, read_timeout=30,
                             write_timeout=30, autocommit=None)  # None: no SET AUTOCOMMIT


def cometql_sql(cfg, msg):
    return "INSERT INTO pipes_messages (name, event, message) VALUES ('%s', '%s', '%s')" % (
        cfg.pipe, cfg.event, msg)


class CliCometQL:
    """Fallback: one long-running `mysql` CLI process fed statements on stdin."""

    def __init__(self, cfg):
        import subprocess
        host, _, port = cfg.cometql.rpartition(":")
        self.p = subprocess.Popen(
            ["mysql", "-h", host or "127.0.0.1", "-P", port, "-u", cfg.cometql_user,
             "-p" + cfg.cometql_password, "-D", cfg.cometql_db, "--skip-ssl", "--force", "-N",
             "-B"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def execute(self, sql):
        self.p.stdin.write((sql + ";\n").encode())
        self.p.stdin.flush()

    def close(self):
        try:
            self.p.stdin.close()
            _, err = self.p.communicate(timeout=60)
            return err.decode(errors="replace").count("ERROR")
        except Exception:  # noqa: BLE001
            self.p.kill()
            return -1


def cometql_publisher_sync(cfg, k, link, sh, t0, deadline):
    count, interval, offset = pub_plan(cfg, k)
    next_t = t0 + offset
    cur = link.cursor() if cfg.cometql_client == "pymysql" else link
    run_id, size = cfg.run_id, cfg.payload_bytes
    for seq in range(count):
        now = time.monotonic()
        if now >= deadline or sh.stop:
            break
        if interval:
            delay = next_t - now
            if delay > 0.0002:
                time.sleep(delay)
            next_t += interval
        window_wait_sync(cfg, sh, deadline)
        sql = cometql_sql(cfg, build_msg(run_id, k, seq, size, False))
        q0 = time.time_ns()
        try:
            cur.execute(sql)
        except Exception as e:  # noqa: BLE001
            sh.err(e)
            if sh.errors > 100:
                break
            continue
        q1 = time.time_ns()
        sh.q_hist[min(HIST_SIZE - 1, hist_key((q1 - q0) // 1000))] += 1
        sh.sent[k] += 1
        sh.sent_total += 1
        if not sh.t_first_send_ns:
            sh.t_first_send_ns = q0
    sh.t_last_send_ns = max(sh.t_last_send_ns, time.time_ns())


# ----------------------------------------------------------------------------------------------
# parent / orchestration
# ----------------------------------------------------------------------------------------------

class Worker:
    def __init__(self, idx, proc, ctl, nsubs):
        self.idx = idx
        self.proc = proc
        self.ctl = ctl
        self.nsubs = nsubs
        self.q = None
        self.min_prog = None
        self.tot_prog = 0
        self.warm = 0
        self.connected = None
        self.final = None


def spawn_workers(cfg):
    ctx = mp.get_context("fork")
    workers = []
    n = cfg.conns
    P = max(1, min(cfg.procs, n)) if n else 0
    for w in range(P):
        ids = list(range(w, n, P))
        a, b = ctx.Pipe(duplex=True)
        p = ctx.Process(target=worker_entry, args=(w, cfg, b, ids), daemon=True)
        p.start()
        b.close()
        workers.append(Worker(w, p, a, len(ids)))
    return workers


async def parent_main(cfg, workers):
    loop = asyncio.get_running_loop()
    probe = ServerProbe(cfg.server_pid, cfg.watch_pid)
    sh = PubShared(cfg.publishers)
    sh.prog_event = asyncio.Event()
    warm_event = asyncio.Event()
    res = {"config": {k: v for k, v in vars(cfg).items()}, "notes": []}

    def dispatch(w):
        def cb():
            try:
                msg = w.ctl.recv()
            except (EOFError, OSError):
                loop.remove_reader(w.ctl.fileno())
                w.q.put_nowait(("eof",))
                return
            kind = msg[0]
            if kind == "prog":
                w.min_prog, w.tot_prog = msg[2], msg[3]
                mins = [x.min_prog for x in workers if x.min_prog is not None]
                if mins:
                    m = min(mins)
                    sh.prog_known = True
                    if m != sh.min_prog:
                        sh.min_prog = m
                        sh.last_prog_change = time.monotonic()
                        sh.prog_event.set()
            elif kind == "warm":
                w.warm = msg[2]
                warm_event.set()
            else:
                w.q.put_nowait(msg)
        return cb

    for w in workers:
        w.q = asyncio.Queue()
        loop.add_reader(w.ctl.fileno(), dispatch(w))

    async def expect(w, kind, timeout):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = await asyncio.wait_for(w.q.get(), left)
            except asyncio.TimeoutError:
                return None
            if msg[0] == kind:
                return msg
            if msg[0] == "eof":
                return None

    for w in workers:
        if await expect(w, "hello", 30) is None:
            raise SystemExit("worker %d did not start" % w.idx)

    rss_samples = []
    sampler_stop = asyncio.Event()

    async def sampler():
        t0 = time.monotonic()
        for _ in range(int(cfg.max_runtime / cfg.sample_interval) + 2):
            rss_samples.append((round(time.monotonic() - t0, 2), probe.rss()))
            try:
                await asyncio.wait_for(sampler_stop.wait(), cfg.sample_interval)
                return
            except asyncio.TimeoutError:
                pass

    sampler_task = loop.create_task(sampler()) if cfg.server_pid else None
    s_before = probe.snap()
    res["server_rss_before_kib"] = s_before["rss_kib"]

    # ---- connect phase
    subscribe = cfg.mode in ("fanout", "idle")
    t_go = time.time_ns()
    for w in workers:
        w.ctl.send(("connect", subscribe))
    conn_timeout = cfg.connect_timeout + 30 + cfg.conns / 200.0
    for w in workers:
        m = await expect(w, "connected", conn_timeout)
        w.connected = m[2] if m else {"ok": 0, "fail": w.nsubs, "fail_kinds": {"no_report": 1},
                                      "t_first_start_ns": 0, "t_last_open_ns": 0, "hs_hist": {},
                                      "with_first_frame": 0, "cpu_s": 0}
    s_conn = probe.snap()
    ok = sum(w.connected["ok"] for w in workers)
    fail = sum(w.connected["fail"] for w in workers)
    starts = [w.connected["t_first_start_ns"] for w in workers if w.connected["ok"]]
    opens = [w.connected["t_last_open_ns"] for w in workers if w.connected["ok"]]
    hs = {}
    fk = {}
    for w in workers:
        hist_merge(hs, w.connected["hs_hist"])
        for k2, v in w.connected["fail_kinds"].items():
            fk[k2] = fk.get(k2, 0) + v
    est_s = (max(opens) - min(starts)) / 1e9 if opens else 0.0
    res["connect"] = {
        "requested": cfg.conns, "ok": ok, "fail": fail, "fail_kinds": fk,
        "establish_s": est_s, "conns_per_s": ok / est_s if est_s > 0 else None,
        "handshake_us": hist_pcts(hs), "with_first_frame": sum(
            w.connected["with_first_frame"] for w in workers),
        "worker_cpu_s": sum(w.connected["cpu_s"] for w in workers),
        "go_to_report_s": (time.time_ns() - t_go) / 1e9,
        "cpu": snap_delta(s_before, s_conn) if cfg.server_pid else None,
    }
    cc = res["connect"]["cpu"]
    if cc and "system_busy_pct_of_all_cpus" in cc:
        cc["other_processes_cpu_pct"] = round(
            cc["system_busy_pct_of_all_cpus"] * (os.cpu_count() or 1) - cc.get("server_cpu_pct", 0)
            - cc["parent_cpu_pct"] - 100.0 * res["connect"]["worker_cpu_s"] / cc["wall_s"]
            - cc["watched_total_pct"], 1)
    await asyncio.sleep(cfg.settle)
    s_settled = probe.snap()
    res["server_rss_after_connect_kib"] = s_settled["rss_kib"]

    # ---- mode-specific phase
    pub_conns = []
    cql_links = []
    if cfg.mode == "fanout":
        pub_on_frame = make_pub_frame_handler(sh, cfg.run_id)
        sh.answers_event = asyncio.Event()
        if cfg.cometql:
            for k in range(cfg.publishers):
                try:
                    link = await loop.run_in_executor(
                        None, cometql_connect if cfg.cometql_client == "pymysql" else CliCometQL,
                        cfg)
                except Exception as e:  # noqa: BLE001
                    raise SystemExit("CometQL connect failed: %r" % (e,))
                cql_links.append(link)
        else:
            for k in range(cfg.publishers):
                url = build_url(cfg, cfg.pub_uid, make_uuid(cfg.run_id, "p", k))
                pub_conns.append(await open_conn(cfg, url, pub_on_frame, cfg.connect_timeout))

        async def send_warm(i):
            if cql_links:
                sql = cometql_sql(cfg, build_msg(cfg.run_id, WARM_PUB, i, cfg.payload_bytes, False))
                await loop.run_in_executor(None, cql_links[0].cursor().execute
                                           if cfg.cometql_client == "pymysql"
                                           else cql_links[0].execute, sql)
            else:
                head = ("web_pipe2\n%s\n%s\n*\n" % (cfg.pipe, cfg.event)).encode()
                await pub_conns[0].send(
                    head + build_msg(cfg.run_id, WARM_PUB, i, cfg.payload_bytes, True).encode())

        # warm-up: publish until every subscriber has seen a warm-up message
        t_w = time.monotonic()
        warm_sent = 0
        if ok:
            for i in range(max(1, int(cfg.warmup_timeout / 0.3))):
                if sum(w.warm for w in workers) >= ok:
                    break
                await send_warm(i)
                warm_sent += 1
                warm_event.clear()
                try:
                    await asyncio.wait_for(warm_event.wait(), 0.3)
                except asyncio.TimeoutError:
                    pass
            await asyncio.sleep(0.2)
        res["warmup"] = {"subs_confirmed": sum(w.warm for w in workers), "of": ok,
                         "messages": warm_sent, "s": time.monotonic() - t_w}
        if ok and res["warmup"]["subs_confirmed"] < ok:
            res["notes"].append("not every subscriber confirmed its subscription in warm-up")
        await asyncio.sleep(cfg.settle)

        # ---- publish
        paused = bool(cfg.paused_receivers and not cql_links)
        for w in workers:
            w.ctl.send(("run", paused))
        s_run = probe.snap()
        t0 = time.monotonic() + 0.05
        deadline = t0 + (cfg.burst_timeout if cfg.burst else cfg.duration)
        t_pub0 = time.time_ns()
        if cql_links:
            futs = [loop.run_in_executor(None, cometql_publisher_sync, cfg, k, cql_links[k], sh,
                                         t0, deadline) for k in range(cfg.publishers)]
            await asyncio.gather(*futs)
        else:
            await asyncio.gather(*(ws_publisher(cfg, k, pub_conns[k], sh, t0, deadline)
                                   for k in range(cfg.publishers)))
        t_pub1 = time.time_ns()
        server_only = None
        if paused:
            # receivers are not reading: the server's delivery reports alone show its pace
            try:
                await asyncio.wait_for(sh.answers_event.wait(), cfg.drain_timeout)
            except asyncio.TimeoutError:
                pass
            s_srv = probe.snap()
            span = (sh.t_last_answer_ns - sh.t_first_send_ns) / 1e9 if sh.t_last_answer_ns else 0
            server_only = {
                "answers": sh.answers_run, "of": sh.sent_total, "span_s": span,
                "deliveries_reported": sh.answers_num,
                "deliveries_per_s": (sh.answers_run * ok / span) if span > 0 else None,
                "cpu": snap_delta(s_run, s_srv) if cfg.server_pid else None}
            for w in workers:
                w.ctl.send(("resume",))
        s_pub_end = probe.snap()
        for w in workers:
            w.ctl.send(("stop", list(sh.sent), cfg.drain_timeout, cfg.idle_timeout))
        for w in workers:
            m = await expect(w, "final", cfg.drain_timeout + 30)
            w.final = m[2] if m else None
        s_end = probe.snap()
        # let publisher sockets read remaining answers
        await asyncio.sleep(0.2)
        res["publish"] = {
            "via": "cometql" if cql_links else "web_pipe2",
            "sent": sum(sh.sent), "sent_per_pub": list(sh.sent), "errors": sh.errors,
            "error_kinds": sh.error_kinds,
            "publish_s": (t_pub1 - t_pub0) / 1e9,
            "achieved_rate": sum(sh.sent) / max(1e-9, (t_pub1 - t_pub0) / 1e9),
            "target": "burst %d" % cfg.burst if cfg.burst else ("max" if cfg.rate_max
                                                                 else cfg.rate),
            "window": cfg.window, "window_wait_s": sh.window_wait_s, "window_stalls": sh.stalls,
            "server_answers": sh.answers, "server_answers_number_messages": sh.answers_num,
            "cometql_query_us": hist_pcts(hist_sparse(sh.q_hist)) if cql_links else None,
            "paused_receivers": server_only,
            "cpu_publish_window": snap_delta(s_run, s_pub_end) if cfg.server_pid else None,
        }
        cw = res["publish"]["cpu_publish_window"]
        if cw and "system_busy_pct_of_all_cpus" in cw and not workers:
            cw["other_processes_cpu_pct"] = round(
                cw["system_busy_pct_of_all_cpus"] * (os.cpu_count() or 1)
                - cw.get("server_cpu_pct", 0) - cw["parent_cpu_pct"] - cw["watched_total_pct"], 1)
        if cfg.server_pid is None:
            res["publish"]["parent_cpu_pct_publish_window"] = snap_delta(s_run, s_pub_end)[
                "parent_cpu_pct"]
        finals = [w.final for w in workers if w.final]
        if ok:
            H = {}
            tl = {}
            for f in finals:
                hist_merge(H, f["hist"])
                for s, n in f["tl"].items():
                    tl[int(s)] = tl.get(int(s), 0) + n
            uniq = sum(f["uniq_total"] for f in finals)
            expected = sum(f["expected_per_sub"] * f["subs"] for f in finals)
            last_recv = max((f["last_recv_ns"] for f in finals), default=0)
            span = (last_recv - sh.t_first_send_ns) / 1e9 if last_recv and sh.t_first_send_ns \
                else 0.0
            full = sorted(tl.items())
            inner = [n for s, n in full if s * 1e9 >= t_pub0 + 1e9 and (s + 1) * 1e9 <= t_pub1]
            res["delivery"] = {
                "subscribers": sum(f["subs"] for f in finals),
                "expected": expected, "received_unique": uniq,
                "lost": sum(f["lost_total"] for f in finals),
                "subs_with_loss": sum(f["subs_with_loss"] for f in finals),
                "max_loss_per_sub": max((f["max_loss_per_sub"] for f in finals), default=0),
                "duplicates": sum(f["dups"] for f in finals),
                "unparsable_frames": sum(f["unparsable"] for f in finals),
                "other_frames": sum(f["other"] for f in finals),
                "foreign_frames": sum(f["foreign"] for f in finals),
                "disconnects": sum(f["disconnects"] for f in finals),
                "negative_latency": sum(f["neg_lat"] for f in finals),
                "complete": all(f["complete"] for f in finals) and len(finals) == len(workers),
                "drain_s": max((f["drain_s"] for f in finals), default=0),
                "span_s": span,
                "delivered_per_s": uniq / span if span > 0 else None,
                "per_s_inside_publish_window": {
                    "min": min(inner), "median": sorted(inner)[len(inner) // 2],
                    "max": max(inner)} if inner else None,
                "latency_us": hist_pcts(H),
                "latency_us_by_sub_url": by_sub_url(cfg, finals),
                "worker_cpu_s": sum(f["run_cpu_s"] for f in finals),
                "worker_wall_s": max((f["run_wall_s"] for f in finals), default=0),
                "cpu_until_drained": snap_delta(s_run, s_end) if cfg.server_pid else None,
            }
            d = res["delivery"]
            d["worker_cpu_pct_each"] = [round(100.0 * f["run_cpu_s"] / max(1e-9, f["run_wall_s"]),
                                              1) for f in finals]
            cu = d["cpu_until_drained"]
            if cu and "system_busy_pct_of_all_cpus" in cu:
                d["other_processes_cpu_pct"] = round(
                    cu["system_busy_pct_of_all_cpus"] * (os.cpu_count() or 1)
                    - cu.get("server_cpu_pct", 0) - cu["parent_cpu_pct"]
                    - sum(d["worker_cpu_pct_each"]) - cu["watched_total_pct"], 1)
            if res["warmup"]["subs_confirmed"] < ok:
                res["notes"].append("unconfirmed subscribers may show as loss")
        res["server_rss_end_kib"] = probe.rss()
    else:
        # connect / idle: hold, watching for drops
        hold_end = time.monotonic() + cfg.duration
        while time.monotonic() < hold_end:
            await asyncio.sleep(min(0.5, max(0.0, hold_end - time.monotonic())))
        s_hold = probe.snap()
        for w in workers:
            w.ctl.send(("stop", [], 0, 0))
        for w in workers:
            m = await expect(w, "final", 30)
            w.final = m[2] if m else None
        finals = [w.final for w in workers if w.final]
        res["hold"] = {
            "s": cfg.duration,
            "disconnects": sum(f["disconnects"] for f in finals),
            "alive_at_end": sum(f["subs"] - f["subs_closed"] for f in finals),
            "frames_received": sum(f["frames"] for f in finals),
            "unparsable_frames": sum(f["unparsable"] for f in finals),
            "cpu": snap_delta(s_settled, s_hold) if cfg.server_pid else None,
        }
        res["server_rss_end_kib"] = s_hold["rss_kib"]

    # ---- close everything
    for c in pub_conns:
        c.close()
    for link in cql_links:
        try:
            r = link.close()
            if isinstance(r, int) and r > 0:
                res["notes"].append("mysql CLI reported %d errors" % r)
        except Exception:  # noqa: BLE001
            pass
    for w in workers:
        try:
            w.ctl.send(("close",))
        except OSError:
            pass
    await asyncio.sleep(cfg.settle + 0.3)
    res["server_rss_after_close_kib"] = probe.rss()
    if cfg.server_pid and s_before["rss_kib"] is not None and res["server_rss_after_close_kib"] is None:
        res["notes"].append("server pid %d disappeared during the run (crash or restart?): its CPU "
                            "and RSS figures are incomplete" % cfg.server_pid)
    if cfg.after_close > 0:
        t_ac = time.monotonic() + cfg.after_close
        while time.monotonic() < t_ac:
            await asyncio.sleep(min(0.5, max(0.0, t_ac - time.monotonic())))
        res["server_rss_after_close_wait_kib"] = probe.rss()
    res["server_rss_peak_kib"] = probe.rss_peak
    if sampler_task:
        sampler_stop.set()
        await sampler_task
    res["server_rss_samples"] = rss_samples
    b, a = res.get("server_rss_before_kib"), res.get("server_rss_after_connect_kib")
    if b is not None and a is not None and ok:
        res["server_rss_mib_per_1k_conns"] = (a - b) / 1024.0 / (ok / 1000.0)
    return res


def by_sub_url(cfg, finals):
    """Latency percentiles of the subscribers of each --sub-url-bases entry (None without it)."""
    if not cfg.sub_url_bases:
        return None
    out = {}
    for i, base in enumerate(cfg.sub_url_bases):
        H = {}
        for f in finals:
            if f.get("hist_by_base"):
                hist_merge(H, f["hist_by_base"][i])
        out[base] = hist_pcts(H)
    return out


def print_report(cfg, res):
    P = print
    mib = lambda k: "n/a" if k is None else "%.1f MiB" % (k / 1024.0)  # noqa: E731
    pub = ""
    if cfg.mode == "fanout":
        pub = " publishers=%d via %s %s payload=%dB window=%s" % (
            cfg.publishers, "cometql" if cfg.cometql else "web_pipe2",
            ("burst=%d" % cfg.burst) if cfg.burst else ("rate=%s" % ("max" if cfg.rate_max
                                                                     else cfg.rate)),
            cfg.payload_bytes, cfg.window)
    P("=== cometload %s: url=%s conns=%d pipe=%s%s duration=%ss procs=%d client=%s loop=%s "
      "parse=%s cpu_count=%d server_pid=%s" % (
          cfg.mode, cfg.url_base, cfg.conns, cfg.pipe, pub, cfg.duration, cfg.procs, cfg.client,
          cfg.loop, cfg.parse, os.cpu_count(), cfg.server_pid))
    if cfg.pre_run_busy_pct is not None:
        P("machine busy before start: %.0f%% of all cpus" % cfg.pre_run_busy_pct)
    c = res["connect"]
    P("connect: ok=%d fail=%d %s in %.2f s -> %s conn/s; handshake p50 %s p99 %s max %s; "
      "first frame on %d" % (
          c["ok"], c["fail"], c["fail_kinds"] or "", c["establish_s"],
          "%.0f" % c["conns_per_s"] if c["conns_per_s"] else "n/a",
          fmt_us(c["handshake_us"].get(50)), fmt_us(c["handshake_us"].get(99)),
          fmt_us(c["handshake_us"].get(100)), c["with_first_frame"]))
    if c.get("cpu"):
        cc = c["cpu"]
        P("connect cpu: server %.0f%% of a core, load generator workers %.2f s cpu, system busy "
          "%.0f%% of %d cpus, other processes ~%s%% of a core" % (
              cc.get("server_cpu_pct", 0), c["worker_cpu_s"],
              cc.get("system_busy_pct_of_all_cpus", 0), os.cpu_count(),
              cc.get("other_processes_cpu_pct")))
    if cfg.server_pid:
        per = res.get("server_rss_mib_per_1k_conns")
        P("server RSS: before %s, after connect %s (%s per 1k conns), end %s, after close %s, "
          "peak %s" % (mib(res["server_rss_before_kib"]), mib(res["server_rss_after_connect_kib"]),
                       "%.2f MiB" % per if per is not None else "n/a",
                       mib(res.get("server_rss_end_kib")), mib(res.get("server_rss_after_close_kib")),
                       mib(res.get("server_rss_peak_kib"))))
        if "server_rss_after_close_wait_kib" in res:
            P("server RSS %.0f s after close: %s" % (
                cfg.after_close, mib(res["server_rss_after_close_wait_kib"])))
    if "hold" in res:
        h = res["hold"]
        P("hold %ss: disconnects=%d alive_at_end=%d frames=%d unparsable=%d" % (
            h["s"], h["disconnects"], h["alive_at_end"], h["frames_received"],
            h["unparsable_frames"]))
    if "publish" in res:
        p = res["publish"]
        P("warm-up: %d/%d subscribers confirmed with %d messages in %.2f s" % (
            res["warmup"]["subs_confirmed"], res["warmup"]["of"], res["warmup"]["messages"],
            res["warmup"]["s"]))
        P("publish (%s): sent=%d in %.2f s -> %.1f msg/s (target %s), errors=%d %s, window=%s "
          "waited %.2f s, stalls=%d, server answers=%d (sum number_messages=%d)" % (
              p["via"], p["sent"], p["publish_s"], p["achieved_rate"], p["target"], p["errors"],
              p["error_kinds"] or "", p["window"], p["window_wait_s"], p["window_stalls"],
              p["server_answers"], p["server_answers_number_messages"]))
        if p.get("paused_receivers"):
            so = p["paused_receivers"]
            P("paused receivers: server reported %d/%d messages done in %.2f s -> %s deliveries/s "
              "(server-side pace, receivers not reading; server cpu %s%%)" % (
                  so["answers"], so["of"], so["span_s"],
                  "%.0f" % so["deliveries_per_s"] if so["deliveries_per_s"] else "n/a",
                  "%.0f" % so["cpu"]["server_cpu_pct"] if so["cpu"] and "server_cpu_pct" in
                  so["cpu"] else "n/a"))
        if p.get("cometql_query_us"):
            q = p["cometql_query_us"]
            P("cometql query round trip: p50 %s p99 %s max %s" % (
                fmt_us(q.get(50)), fmt_us(q.get(99)), fmt_us(q.get(100))))
        if p.get("cpu_publish_window"):
            cw = p["cpu_publish_window"]
            P("cpu during publish window: server %.0f%% of a core (threads %s), parent %.0f%%, "
              "system busy %.0f%% of %d cpus%s" % (
                  cw.get("server_cpu_pct", 0), cw.get("server_threads_pct"), cw["parent_cpu_pct"],
                  cw.get("system_busy_pct_of_all_cpus", 0), os.cpu_count(),
                  ", other processes ~%s%% of a core" % cw["other_processes_cpu_pct"]
                  if "other_processes_cpu_pct" in cw else ""))
            if cw.get("watched_cpu_pct"):
                P("watched pids cpu %% of a core (publish window): %s" % cw["watched_cpu_pct"])
    if "delivery" in res:
        d = res["delivery"]
        exp = d["expected"]
        P("delivery: subscribers=%d expected=%d received=%d (%.3f%%) lost=%d (subs with loss %d, "
          "max per sub %d) dups=%d unparsable=%d disconnects=%d complete=%s drain=%.2f s" % (
              d["subscribers"], exp, d["received_unique"],
              100.0 * d["received_unique"] / exp if exp else 0.0, d["lost"], d["subs_with_loss"],
              d["max_loss_per_sub"], d["duplicates"], d["unparsable_frames"], d["disconnects"],
              d["complete"], d["drain_s"]))
        P("throughput: %s delivered msgs/s over %.2f s (first send -> last receipt); "
          "per-second inside publish window %s" % (
              "%.0f" % d["delivered_per_s"] if d["delivered_per_s"] else "n/a", d["span_s"],
              d["per_s_inside_publish_window"]))
        L = d["latency_us"]
        P("latency: p50 %s p90 %s p99 %s p99.9 %s max %s" % (
            fmt_us(L.get(50)), fmt_us(L.get(90)), fmt_us(L.get(99)), fmt_us(L.get(99.9)),
            fmt_us(L.get(100))))
        for base, Lb in (d.get("latency_us_by_sub_url") or {}).items():
            P("  subscribers on %s: p50 %s p99 %s max %s" % (
                base, fmt_us(Lb.get(50)), fmt_us(Lb.get(99)), fmt_us(Lb.get(100))))
        cu = d.get("cpu_until_drained")
        P("load generator cpu (publish+drain): workers %s%% of a core each, parent %s" % (
            d["worker_cpu_pct_each"],
            "%.0f%%" % cu["parent_cpu_pct"] if cu else "n/a"))
        if cu:
            P("server cpu (publish+drain): %.0f%% of a core, threads %s; system busy %.0f%% of "
              "%d cpus; other processes ~%s%% of a core" % (
                  cu.get("server_cpu_pct", 0), cu.get("server_threads_pct"),
                  cu.get("system_busy_pct_of_all_cpus", 0), os.cpu_count(),
                  d.get("other_processes_cpu_pct")))
            if cu.get("watched_cpu_pct"):
                P("watched pids cpu %% of a core (publish+drain): %s" % cu["watched_cpu_pct"])
    for n in res["notes"]:
        P("note: " + n)


def _ip_list(text):
    try:
        return [str(ipaddress.ip_address(a.strip())) for a in text.split(",") if a.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def _url_list(text):
    urls = [u.strip() for u in text.split(",") if u.strip()]
    for u in urls:
        try:
            host_port(u)
        except Exception as e:  # noqa: BLE001 - websockets' InvalidURI and friends
            raise argparse.ArgumentTypeError("%s: %s" % (u, e))
    return urls


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--url-base", default="ws://127.0.0.1:8087")
    ap.add_argument("--ws-path", default="/ws/", help="path before the query (default /ws/)")
    ap.add_argument("--mode", choices=("fanout", "connect", "idle"), default="fanout")
    ap.add_argument("--conns", type=int, default=100, help="subscriber / idle connections")
    ap.add_argument("--pipe", default="web_bench")
    ap.add_argument("--event", default="bench")
    ap.add_argument("--publishers", type=int, default=1)
    ap.add_argument("--rate", default="100",
                    help="total msgs/s over all publishers, or 'max' (as fast as --window "
                         "allows; 0 also means max)")
    ap.add_argument("--burst", type=int, default=0,
                    help="send this many messages as fast as possible instead of --rate")
    ap.add_argument("--payload-bytes", type=int, default=200,
                    help="size of the published message text (min %d)" % MIN_PAYLOAD)
    ap.add_argument("--duration", type=float, default=None,
                    help="publish seconds (fanout, default 10) / hold seconds (idle default 10, "
                         "connect default 0)")
    ap.add_argument("--window", type=int, default=None,
                    help="max messages in flight (sent but not yet received by the slowest live "
                         "subscriber); 0 = open loop. Default 1000 with --rate max or --burst, "
                         "else 0")
    ap.add_argument("--server-pid", type=int, default=None, help="sample VmRSS/CPU of this pid")
    ap.add_argument("--watch-pid", type=int, action="append", default=[],
                    help="also report CPU of this pid (e.g. the server's database); repeatable")
    ap.add_argument("--cometql", default=None, metavar="HOST:PORT",
                    help="publish with CometQL INSERT INTO pipes_messages instead of web_pipe2 "
                         "(one MySQL-protocol connection per publisher). Caution: CppComet 4.09 "
                         "segfaulted within 1 s under 2 concurrent CometQL connections")
    ap.add_argument("--cometql-client", choices=("pymysql", "cli"), default="pymysql")
    ap.add_argument("--cometql-user", default=None, help="default: --dev-id")
    ap.add_argument("--cometql-password", default="CometQLPassword")
    ap.add_argument("--cometql-db", default="CometQL_v1")
    ap.add_argument("--dev-id", default="1")
    ap.add_argument("--uid", default="0", help="myid for subscribers")
    ap.add_argument("--pub-uid", default="0", help="myid for publishers")
    ap.add_argument("--session", default="null", help="sesion= value (user key / JWT)")
    ap.add_argument("--api-version", default="4.08")
    ap.add_argument("--procs", type=int, default=1, help="subscriber worker processes")
    ap.add_argument("--client", choices=("sansio", "lib"), default="sansio",
                    help="sansio: websockets ClientProtocol on asyncio.Protocol (fast); "
                         "lib: websockets.asyncio.client.connect")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--parse", choices=("fast", "json"), default="json",
                    help="json: json.loads every frame (skip unparsable); fast: structural "
                         "check + regex only")
    ap.add_argument("--paused-receivers", action="store_true",
                    help="fanout: subscribers stop reading while publishing, so the server's "
                         "pace is measured from its delivery reports (_answer_to_<pipe>) without "
                         "receiver CPU; keep the burst small enough for socket buffers. Caveat: "
                         "unread loopback sockets make the kernel collapse receive queues, which "
                         "is charged to the sender, so this can read lower than normal delivery")
    ap.add_argument("--source-ips", type=_ip_list, default=[], metavar="IP[,IP...]",
                    help="bind subscriber connections to these local addresses, round-robin "
                         "(e.g. 127.0.0.1,127.0.0.2): each (source IP, server) pair has only "
                         "net.ipv4.ip_local_port_range ports (~28k by default), so more "
                         "connections need more source addresses. Default: the kernel's choice")
    ap.add_argument("--sub-url-bases", type=_url_list, default=[], metavar="URL[,URL...]",
                    help="connect subscriber i to the i-th of these (round-robin) instead of "
                         "--url-base, e.g. the nodes of a cluster; publishers stay on --url-base. "
                         "Latency is then also reported per entry (latency_us_by_sub_url)")
    ap.add_argument("--connect-concurrency", type=int, default=200,
                    help="connection attempts in flight per process")
    ap.add_argument("--connect-timeout", type=float, default=15.0)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--warmup-timeout", type=float, default=15.0)
    ap.add_argument("--drain-timeout", type=float, default=60.0)
    ap.add_argument("--idle-timeout", type=float, default=5.0,
                    help="stop draining after this long without new deliveries")
    ap.add_argument("--burst-timeout", type=float, default=120.0)
    ap.add_argument("--stall-timeout", type=float, default=3.0)
    ap.add_argument("--progress-interval", type=float, default=0.02)
    ap.add_argument("--sample-interval", type=float, default=1.0)
    ap.add_argument("--max-runtime", type=float, default=900.0, help="hard stop (seconds)")
    ap.add_argument("--close-batch", type=int, default=250,
                    help="close connections in batches of this size per process (0 = all at "
                         "once)")
    ap.add_argument("--close-pause", type=float, default=0.02,
                    help="pause between close batches (seconds)")
    ap.add_argument("--after-close", type=float, default=0.0,
                    help="keep sampling server RSS this many seconds after closing")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before starting, wait up to this many seconds for the machine to be "
                         "idle (system CPU busy < --idle-threshold over 1 s)")
    ap.add_argument("--idle-threshold", type=float, default=15.0)
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--run-id", type=int, default=None)
    cfg = ap.parse_args(argv)
    if cfg.duration is None:
        cfg.duration = 0.0 if cfg.mode == "connect" else 10.0
    cfg.rate_max = str(cfg.rate).lower() in ("max", "inf", "0")
    cfg.rate = 0.0 if cfg.rate_max else float(cfg.rate)
    if cfg.window is None:
        cfg.window = 1000 if (cfg.rate_max or cfg.burst) else 0
    if cfg.payload_bytes < MIN_PAYLOAD:
        print("note: --payload-bytes raised to %d so server frames stay >= 126 bytes"
              % MIN_PAYLOAD, file=sys.stderr)
        cfg.payload_bytes = MIN_PAYLOAD
    if not 1 <= cfg.publishers <= MAX_PUBLISHERS:
        ap.error("--publishers must be 1..%d" % MAX_PUBLISHERS)
    if cfg.conns < 0 or cfg.procs < 1:
        ap.error("--conns must be >= 0 and --procs >= 1")
    if cfg.mode != "fanout" and cfg.conns == 0:
        ap.error("--conns must be > 0 for connect/idle")
    if not re.fullmatch(r"[A-Za-z0-9_-]{2,64}", cfg.pipe) or not re.fullmatch(
            r"[A-Za-z0-9_-]{1,64}", cfg.event):
        ap.error("--pipe/--event must be [A-Za-z0-9_-] (pipe 2..64 chars)")
    if cfg.mode == "fanout" and not cfg.cometql and not cfg.pipe.startswith(("web_", "webauth_")):
        print("note: web_pipe2 publishing normally needs a web_* pipe", file=sys.stderr)
    if cfg.cometql_user is None:
        cfg.cometql_user = str(cfg.dev_id)
    if cfg.run_id is None:
        cfg.run_id = random.randint(100000, 999999)
    cfg.host, cfg.port = host_port(cfg.url_base)
    cfg.pre_run_busy_pct = None
    if cfg.burst:
        est = cfg.burst // cfg.publishers + 1
    elif cfg.rate_max:
        est = 4096
    else:
        est = int(cfg.rate * cfg.duration / cfg.publishers) + 16
    cfg.bitmap_init = max(64, min(est, 1 << 20))
    return cfg


def wait_idle(max_wait, threshold):
    """Wait (bounded) until system CPU busy over 1 s is below threshold %. Returns last busy %."""
    busy = None
    end = time.monotonic() + max_wait
    for _ in range(int(max_wait) + 1):
        a = sys_cpu()
        time.sleep(1.0)
        b = sys_cpu()
        busy = 100.0 * (b[0] - a[0]) / max(1, b[1] - a[1])
        if busy < threshold or time.monotonic() >= end:
            break
    return busy


def main(argv=None):
    cfg = parse_args(argv)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = cfg.conns + 256
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    except (ValueError, OSError):
        pass
    if cfg.wait_idle > 0:
        cfg.pre_run_busy_pct = wait_idle(cfg.wait_idle, cfg.idle_threshold)
        if cfg.pre_run_busy_pct is not None and cfg.pre_run_busy_pct >= cfg.idle_threshold:
            print("note: machine still %.0f%% busy after waiting %.0f s for idle" % (
                cfg.pre_run_busy_pct, cfg.wait_idle), file=sys.stderr)
    workers = spawn_workers(cfg)

    def on_alarm(signum, frame):
        for w in workers:
            if w.proc.is_alive():
                w.proc.kill()
        os._exit(3)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(cfg.max_runtime))
    try:
        res = run_loop(cfg, parent_main(cfg, workers))
    finally:
        for w in workers:
            w.proc.join(timeout=10)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
        signal.alarm(0)
    print_report(cfg, res)
    if cfg.json_out:
        with open(cfg.json_out, "w") as f:
            json.dump(res, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
