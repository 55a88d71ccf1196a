"""aiohttp Application and server lifecycle (design.md §1, api.md §7).

One port serves the static site, ``GET /info``, ``GET /stats`` and the WebSocket endpoint
(``/ws/…``, ``//ws/…``, ``/comet-server/ws/…``, ``//comet-server/ws/…``). CometQL runs on its own
port (``cometql.start_cometql``), the HTTP publish API is added by ``http_api.setup_routes``.
The HTTP/WebSocket port runs behind limits.py: header timeout, total and per-IP connection caps,
an accept loop that backs off when descriptors run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from . import SERVER_NAME, limits, wire
from .cometql import start_cometql
from .http_api import setup_routes
from .appkeys import HUB_KEY
from .hub import DEFAULT_MAX_CLIENT_BUFFER, DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, Hub
from .seams import HubAPI, StoreAPI
from .static import StaticSite
from .store import Store
from .ws import ALLOWED_ORIGINS_KEY, handle_ws, is_ws_path, normalize_origin

__all__ = ["Config", "create_app", "serve", "REPO_ROOT", "NODE_NAME"]

log = logging.getLogger("comet_server")

REPO_ROOT = Path(__file__).resolve().parent.parent
#: ``GET /info`` of a single process reports this, padded to 10 chars with '_' as CppComet does
#: ("n1________"); a cluster node reports its --node-id as given.
NODE_NAME = "n1"
#: how often queued personal messages older than --queue-ttl are purged.
PURGE_INTERVAL = 600.0

STATIC_KEY: web.AppKey[StaticSite] = web.AppKey("comet_static", StaticSite)
#: the "node" of ``GET /info``
NODE_KEY: web.AppKey[str] = web.AppKey("comet_node", str)


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 8087
    db: str = "comet_server.db"
    password: str = "CometQLPassword"
    cometql_port: int = 3307
    test_pages: bool = False
    max_client_buffer: int = DEFAULT_MAX_CLIENT_BUFFER
    queue_ttl: int = 7 * 24 * 3600
    root: str = str(REPO_ROOT)
    access_log: bool = False
    #: a connection must deliver a complete request head within this many seconds of opening
    #: (and of its previous response); also the idle keep-alive time
    header_timeout: float = limits.DEFAULT_HEADER_TIMEOUT
    #: HTTP/WebSocket connections in total (0 = auto from the descriptor limit) and per peer IP
    #: (None = auto: a quarter of the total, at most 4096; 0 = no per-IP cap)
    max_connections: int = 0
    max_connections_per_ip: int | None = None
    #: WebSocket upgrades only from these Origins (empty = any, as CppComet)
    allowed_origins: tuple[str, ...] = ()
    #: serve the demo's server console and accounts.json
    demo: bool = False
    #: a directory of the user's own pages, served next to /vendor/ and /comet_py/
    site: str | None = None
    #: CometQL before login: seconds to complete it and largest packet (None = cometql's defaults,
    #: 10 s and 64 KiB)
    cometql_login_timeout: float | None = None
    cometql_preauth_max_packet: int | None = None
    #: WebSocket keepalive: a connection silent this long gets a ping (0 = never), and one that
    #: then answers nothing within ping_timeout is closed and its user counts as offline (0 = never)
    ping_interval: float = DEFAULT_PING_INTERVAL
    ping_timeout: float = DEFAULT_PING_TIMEOUT
    #: a Redis URL: run as one node of a cluster (redis_store / redis_hub); None = SQLite at db
    redis: str | None = None
    #: this node's name in the cluster (None = unique default)
    node_id: str | None = None


_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET",
    "Access-Control-Allow-Headers": "origin, content-type, accept",
}


async def handle_info(request: web.Request) -> web.Response:
    body = '{"status":"ok","node":%s}' % json.dumps(request.app[NODE_KEY])  # CppComet's key order
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=_CORS)


async def handle_stats(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    dev_id = request.query.get("dev_id", "")
    count = hub.connection_count(int(dev_id)) if dev_id.isdigit() else hub.connection_count()
    return web.Response(text=wire.dumps({"connections": count}),
                        content_type="application/json", headers=_CORS)


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Catch-all route: the WebSocket prefixes are matched on the raw target (aiohttp would
    otherwise treat ``//ws/…`` oddly), everything else goes to the allow-listed static site."""
    raw = request.raw_path
    try:
        if is_ws_path(raw):
            return await handle_ws(request)
        path = raw.split("?", 1)[0]
        if request.method == "OPTIONS":
            return web.Response(text="+OK", headers=_CORS)
        if path in ("/info", "/comet-server/info") and request.method in ("GET", "HEAD"):
            return await handle_info(request)
        if path == "/stats" and request.method in ("GET", "HEAD"):
            return await handle_stats(request)
        return await request.app[STATIC_KEY].handle(request)
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:  # noqa: BLE001
        log.exception("request %s %r failed", request.method, raw[:200])
        raise web.HTTPInternalServerError()


def create_app(hub: HubAPI, *, root: str | Path = REPO_ROOT, test_pages: bool = False, demo: bool = False,
               site: str | Path | None = None, deny_files: tuple[str, ...] = (),
               allowed_origins: tuple[str, ...] = (), node_id: str | None = None) -> web.Application:
    """``node_id``: the cluster node's name, reported by ``GET /info`` (None: one process)."""
    app = web.Application(client_max_size=1024 * 1024)
    app[HUB_KEY] = hub
    app[NODE_KEY] = node_id if node_id is not None else NODE_NAME.ljust(10, "_")
    app[STATIC_KEY] = StaticSite(root, test_pages=test_pages, demo=demo, site=site, deny_files=deny_files)
    app[ALLOWED_ORIGINS_KEY] = frozenset(normalize_origin(o) for o in allowed_origins)
    # Imported and called directly: a broken HTTP API must stop the server, not switch itself off.
    setup_routes(app, hub)
    # registered last: the catch-all only gets what no other route matched
    app.router.add_route("*", "/{tail:.*}", dispatch)

    async def on_shutdown(app: web.Application) -> None:
        hub.close_all(1001, "Server shutdown")

    app.on_shutdown.append(on_shutdown)
    return app


async def _maintenance(hub: HubAPI, queue_ttl: int) -> None:
    while True:
        try:
            n = hub.store.purge_user_messages(wire.now() - queue_ttl)
            if n:
                log.info("purged %d queued personal messages older than %d s", n, queue_ttl)
        except Exception:  # noqa: BLE001
            log.exception("queue purge failed")
        await asyncio.sleep(PURGE_INTERVAL)


async def serve(cfg: Config, *, ready: "asyncio.Future[tuple[int, int]] | None" = None,
                stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
    loop = asyncio.get_running_loop()
    hub_options: dict[str, Any] = dict(server_name=SERVER_NAME, max_client_buffer=cfg.max_client_buffer,
                       ping_interval=cfg.ping_interval, ping_timeout=cfg.ping_timeout)
    store: StoreAPI
    hub: HubAPI
    cluster = None
    if cfg.redis:
        # imported here: the single-process server never loads redis-py
        from .redis_hub import RedisHub
        from .redis_store import RedisStore
        store = RedisStore(cfg.redis)
        hub = cluster = RedisHub(store, cfg.password, node_id=cfg.node_id, **hub_options)
        await cluster.start()
        log.info("cluster node %s on redis %s", cluster.node_id, cfg.redis)
    else:
        store = Store(cfg.db)
        try:
            store.mark_all_offline(wire.now())  # users_time rows left at 0 by a previous crash
        except Exception:  # noqa: BLE001
            log.exception("users_time reset failed")
        hub = Hub(store, cfg.password, **hub_options)
    app = create_app(hub, root=cfg.root, test_pages=cfg.test_pages, demo=cfg.demo, site=cfg.site,
                     deny_files=(cfg.db,) if cfg.db != ":memory:" and not cfg.redis else (),
                     allowed_origins=cfg.allowed_origins, node_id=cluster.node_id if cluster is not None else None)
    # keepalive_timeout is aiohttp's timer that also closes a connection whose request head is
    # incomplete when it fires (see limits.py), i.e. our header timeout.
    runner = web.AppRunner(app, handle_signals=False, access_log=log if cfg.access_log else None,
                           shutdown_timeout=2.0, keepalive_timeout=cfg.header_timeout)
    await runner.setup()
    max_total = cfg.max_connections or limits.auto_max_connections()
    per_ip = (limits.auto_max_per_ip(max_total) if cfg.max_connections_per_ip is None
              else cfg.max_connections_per_ip)
    conn_limits = limits.ConnectionLimits(max_total, per_ip)
    site = limits.GatedTCPSite(runner, cfg.host, cfg.port, conn_limits, backlog=4096)
    # stays installed: asyncio's stale accept-retry timers may fire after serve() returns
    loop.set_exception_handler(limits.accept_error_guard(loop))
    cometql_server = None
    maint: asyncio.Task[None] | None = None
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        port = site.port
        log.info("limits: header timeout %g s, at most %d connections (%s per IP), fd limit %s",
                 cfg.header_timeout, max_total, per_ip or "no cap",
                 "/".join(map(str, limits.fd_limits())))
        cq_port = 0
        if cfg.cometql_port:
            cometql_server = await start_cometql(
                hub, cfg.host, cfg.cometql_port, login_timeout=cfg.cometql_login_timeout,
                preauth_max_packet=cfg.cometql_preauth_max_packet, limits=conn_limits)
            cq_port = cfg.cometql_port
        cq_text = f"CometQL {cfg.host}:{cq_port}" if cq_port else "CometQL off"
        node_text = f", cluster node {cluster.node_id}" if cluster is not None else ""
        print(f"comet_server listening on http://{cfg.host}:{port}/ (ws /ws/, {cq_text}{node_text})", flush=True)
        if ready is not None and not ready.done():
            ready.set_result((port, cq_port))
        maint = loop.create_task(_maintenance(hub, cfg.queue_ttl))
        await stop.wait()
        log.info("shutting down")
    finally:
        if maint is not None:
            maint.cancel()
            with contextlib.suppress(BaseException):
                await maint
        if cometql_server is not None:
            try:
                await cometql_server.close()
            except Exception:  # noqa: BLE001
                log.exception("CometQL close failed")
        try:
            hub.close_all(1001, "Server shutdown")
            await runner.cleanup()
            if cluster is not None:
                await cluster.stop()
        finally:
            store.close()
