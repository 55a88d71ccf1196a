"""EXPERIMENT (issue 13, goal 1), not server code; comet_server now works this way
(comet_server/ws_connection.py, commit 115f323), so its "comet" kind measures the same design.
Kept as the record of the measurements that chose it: what an idle connection would cost if the
WebSocket path were leaner. Two prototype servers, each with comet_server's real Hub, Client
and command handlers (comet_server.ws.handle_command), so only the connection layer differs:

* ``lean``: comet_server's own app and port (aiohttp serves the site and routes ``/ws/``); the
  ``/ws/`` handler does the handshake with websockets' sans-I/O ``ServerProtocol``, then hands
  the transport to ``LeanConnection`` (an ``asyncio.Protocol`` around a
  ``websockets.protocol.Protocol`` in the OPEN state) and returns: aiohttp's request, handler
  task, parser and RequestHandler are freed. The upgrade and hand-over are now the server's own (``comet_server.ws_connection``).
* ``lean_trimmed``: the same with the small trims the notes name (no per-Client keepalive
  timer, i.e. ``ping_interval=0`` standing in for one Hub-wide sweep; no uuid in websockets'
  Protocol; interned header strings).
* ``wslib`` / ``wslib_defaults``: websockets' own server (``websockets.asyncio.server.serve``),
  one handler coroutine per connection; with comet's settings (no pings of its own, no
  compression) and with the library's defaults (20 s keepalive pings, permessage-deflate).

Run through bench/memory_breakdown.py (``--child lean`` etc.), or on its own:

    .venv/bin/python bench/experiments/lean_ws_probe.py [--conns 2000] [--hold 10]

Not covered here (a real change would need them): fragmented messages (websockets' sans-I/O
layer hands over frames, not messages), a ping/pong-driven keepalive through LeanConnection
(``ping`` is there, not exercised by an idle run), shutdown of detached connections (the Hub's
``close_all`` kicks them; aiohttp no longer knows them).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys
import tempfile

BENCH = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
import common  # noqa: E402,F401 - repo root on sys.path

from aiohttp import web  # noqa: E402
from websockets.frames import Opcode  # noqa: E402
from websockets.protocol import Protocol, Side, State  # noqa: E402

from comet_server import auth, wire  # noqa: E402
from comet_server.appkeys import HUB_KEY  # noqa: E402
from comet_server.hub import Client, Hub  # noqa: E402
from comet_server.ws import MAX_MSG_SIZE, handle_command  # noqa: E402
# the server's own upgrade and hand-over, so the experiment measures what the server does
from comet_server.ws_connection import Detached, detach, handshake  # noqa: E402

PIPE = "web_idle"
#: lean_trimmed: what the small trims of the notes would save (no per-Client keepalive timer, as
#: with one Hub-wide sweep; no per-connection uuid in websockets' Protocol; shared header strings)
TRIM = {"on": False}
#: websockets rejects a message *longer* than max_size; aiohttp (today) one of MAX_MSG_SIZE or more
WS_MAX_SIZE = MAX_MSG_SIZE - 1


class LeanConnection(asyncio.Protocol):
    """One upgraded connection: websockets parses frames (mask check 1002, size 1009), we decode
    text (1007) and run comet's commands; Client writes its prebuilt frames to the transport."""

    __slots__ = ("p", "transport", "hub", "client")

    def __init__(self, transport: asyncio.Transport, hub: Hub) -> None:
        self.p = Protocol(Side.SERVER, state=State.OPEN, max_size=WS_MAX_SIZE)
        if TRIM["on"]:
            self.p.id = None  # only used in websockets' log lines
        self.transport = transport
        self.hub = hub
        self.client: Client | None = None

    # -- what Client uses as its ``ws`` (pings, closed) --------------------------------------
    @property
    def closed(self) -> bool:
        return self.p.state is not State.OPEN

    async def ping(self, payload: bytes = b"") -> None:
        self.p.send_ping(payload)
        self._flush()

    # -- asyncio.Protocol --------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        p, client = self.p, self.client
        p.receive_data(data)
        if client is not None:
            client.last_rx = asyncio.get_running_loop().time()
        for frame in p.events_received():
            op = frame.opcode
            if op is Opcode.TEXT or op is Opcode.BINARY:
                try:
                    text = frame.data.decode("utf-8")
                except UnicodeDecodeError:
                    p.fail(1007, "Invalid UTF-8 text message")
                    break
                if client is not None and not client.closed:
                    handle_command(self.hub, client, text)
            elif op is Opcode.PONG and client is not None:
                client.on_pong(frame.data)
            # PING: websockets has queued the pong; CLOSE: it has queued the reply and the EOF
        self._flush()

    def _flush(self) -> None:
        for chunk in self.p.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:  # websockets' "close the TCP connection now" marker
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        client = self.client
        if client is not None and not client.closed:
            self.hub.unregister(client)
            client.closed = True
        self.p.receive_eof()

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:  # Client checks the write buffer size itself
        pass

    def resume_writing(self) -> None:
        pass


async def lean_handle_ws(request: web.Request) -> web.StreamResponse:
    """comet_server.ws.handle_ws reduced to what an idle run needs, on LeanConnection."""
    hub: Hub = request.app[HUB_KEY]
    parsed = wire.parse_ws_url(request.raw_path)
    if isinstance(parsed, wire.UrlError):
        return web.Response(status=400, text="bad url\n")
    accept = handshake(request)
    if accept is None:
        return web.Response(status=400, text="WebSocket upgrade expected\n")
    conn = LeanConnection(request.transport, hub)
    tr, tail = detach(request, conn)
    tr.write(accept)
    login = auth.authenticate(hub.store, hub.password, parsed.dev_id, parsed.user_id, parsed.session)
    headers = request.headers
    shared = sys.intern if TRIM["on"] else str
    client = Client(hub, conn, tr, dev_id=parsed.dev_id, user_id=parsed.user_id if login.authorized else 0,
                    authorized=login.authorized, uuid=parsed.uuid, user_agent=shared(headers.get("User-Agent", "")[:250]),
                    ip=shared(request.remote or ""), origin=shared(headers.get("Origin", "")[:250]),
                    language=shared(headers.get("Accept-Language", "")[:64]), legacy=parsed.major < 4)
    conn.client = client
    client.send_obj({"authorized": login.authorized, "data": login.key, "event": "serverInfo",
                     "message_send_time": wire.now(), "pipe": "sys", "server": hub.server_name})
    hub.register(client)
    if tail:
        conn.data_received(tail)
    return Detached()


async def start_lean(n: int, **config):
    """comet_server's serve() with the /ws/ handler swapped for lean_handle_ws."""
    import comet_server.app
    import memory_breakdown

    comet_server.app.handle_ws = lean_handle_ws
    return await memory_breakdown.start_comet(n, **config)


async def start_lean_trimmed(n: int):
    TRIM["on"] = True
    return await start_lean(n, ping_interval=0)


def _start_wslib(**options):
    async def start(n: int):
        from websockets.asyncio.server import serve
        from websockets.exceptions import ConnectionClosed

        from comet_server.store import Store
        from tests.support.server import free_port

        tmp = tempfile.TemporaryDirectory(prefix="wslib_")
        store = Store(os.path.join(tmp.name, "comet.db"))
        hub = Hub(store, "CometQLPassword")

        async def handler(conn) -> None:
            parsed = wire.parse_ws_url(conn.request.path)
            if isinstance(parsed, wire.UrlError):
                return
            login = auth.authenticate(hub.store, hub.password, parsed.dev_id, parsed.user_id, parsed.session)
            client = Client(hub, None, conn.transport, dev_id=parsed.dev_id,
                            user_id=parsed.user_id if login.authorized else 0, authorized=login.authorized,
                            uuid=parsed.uuid, user_agent=conn.request.headers.get("User-Agent", "")[:250],
                            ip=str(conn.remote_address[0]), legacy=parsed.major < 4)
            client.send_obj({"authorized": login.authorized, "data": login.key, "event": "serverInfo",
                             "message_send_time": wire.now(), "pipe": "sys", "server": hub.server_name})
            hub.register(client)
            try:
                async for msg in conn:
                    handle_command(hub, client, msg if isinstance(msg, str) else msg.decode("utf-8", "replace"))
            except ConnectionClosed:  # cometload closes TCP without a close frame
                pass
            finally:
                hub.unregister(client)
                client.closed = True

        port = free_port()
        server = await serve(handler, "127.0.0.1", port, max_size=WS_MAX_SIZE, **options)

        async def close() -> None:
            server.close()
            await server.wait_closed()
            store.close()
            tmp.cleanup()

        return port, (lambda: hub.subscriber_count(1, PIPE)), close

    return start


START = {
    "lean": start_lean,
    "lean_trimmed": start_lean_trimmed,
    "wslib": _start_wslib(ping_interval=None, compression=None,
                          select_subprotocol=lambda _c, offered: offered[0] if offered else None),
    "wslib_defaults": _start_wslib(),
}


def main() -> None:
    import argparse
    import json

    import memory_breakdown as mb

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--kinds", nargs="+", default=["comet", *START])
    ap.add_argument("--from-json", help="record the runs saved in this JSON file again (no new runs)")
    ap.add_argument("--measured", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(pathlib.Path(args.from_json).read_text())
        runs = saved.get("runs", saved)
        measured = saved.get("measured") or saved.get("recorded") or args.measured
        note = f"\n\n(Measured {measured}; rendered again from the saved results with `--from-json`.)" if measured else ""
        common.record("lean_ws_probe", report(args, runs) + note, {"args": vars(args), "runs": runs, "measured": measured})
        return
    mb.raise_fd_limit()
    out = {}
    for kind in args.kinds:
        out[kind] = {"rss": mb.run_child(kind, args.conns, args.hold, trace=False),
                     "traced": mb.run_child(kind, args.conns, args.hold, trace=True)}
        r, t = out[kind]["rss"], out[kind]["traced"]
        print(f"{kind}: {r.get('subscribed')} subscribed, RSS {r.get('mib_per_1k', 0):.2f} MiB/1k "
              f"({r.get('rss_kib_per_conn', 0):.2f} KiB/conn); traced {t.get('traced_bytes_per_conn', 0):,.0f} B/conn",
              flush=True)
    common.record("lean_ws_probe", report(args, out), {"args": vars(args), "runs": out})


LABELS = {
    "comet": "comet_server at the recorded commit (before 115f323: aiohttp WebSocketResponse, handler task per connection; since: WsConnection)",
    "lean": "**lean**: aiohttp routes /ws/, websockets ServerProtocol answers the upgrade, then LeanConnection (websockets sans-I/O Protocol, OPEN) owns the transport",
    "lean_trimmed": "lean, trimmed: no per-Client keepalive timer (ping_interval 0, as with one Hub-wide sweep), no Protocol uuid, interned header strings",
    "wslib": "websockets.asyncio.server, comet's settings (no library pings, no compression)",
    "wslib_defaults": "websockets.asyncio.server, library defaults (20 s pings, permessage-deflate)",
}


def report(args, out: dict) -> str:
    from common import fmt, table

    import memory_breakdown as mb

    rows = []
    for kind, res in out.items():
        r, t = res["rss"], res["traced"]
        owners = sorted((t.get("owners") or {}).items(), key=lambda kv: -kv[1]["bytes_per_conn"])[:4]
        rows.append([LABELS.get(kind, kind), fmt(r.get("subscribed")), fmt(r.get("mib_per_1k"), 2),
                     fmt(r.get("rss_kib_per_conn"), 2), fmt(t.get("traced_bytes_per_conn"), 0),
                     "; ".join(f"{g} {o['bytes_per_conn']:,.0f}" for g, o in owners)])
    return (f"Command: `.venv/bin/python bench/experiments/lean_ws_probe.py --conns {args.conns} --hold {args.hold:g}` "
            f"— each row two fresh in-process servers (one without tracemalloc for RSS, one with it), "
            f"{args.conns:,} idle subscribed connections from cometload (`{mb.shown(mb.cometload_argv(0, args.conns, args.hold, 0, 'x'))}`). "
            "Goal: ≤ 3.7 MiB per 1,000 (CppComet 4.09).\n\n"
            + table(["connection layer (same Hub, Client, commands)", "subscribed", "RSS MiB per 1,000", "KiB/conn",
                     "traced B/conn", "largest owners (B/conn)"], rows))


if __name__ == "__main__":
    main()
