"""``comet-server`` / ``python -m comet_server``: run comet_server.

Serves the allow-listed static site and the WebSocket endpoint on one port, CometQL (MySQL wire
protocol) on another. State (users_auth, history, offline queue, ...) lives in a SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import re
import sys

from . import SERVER_NAME, limits
from .app import Config, serve
from .hub import DEFAULT_MAX_CLIENT_BUFFER, DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT

log = logging.getLogger("comet_server")

#: CppComet's documented default password: public, so only for loopback.
DEFAULT_PASSWORD = "CometQLPassword"
#: read when --password is not given
PASSWORD_ENV = "COMET_PASSWORD"


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m comet_server" if name in ("", "__main__.py", "-c") else name


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o for o in (part.strip() for part in text.split(",")) if o)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=_prog(),
        description=f"{SERVER_NAME}: WebSocket endpoint and static site on one port, CometQL "
                    "(MySQL protocol) on another, state in SQLite.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (HTTP, WebSocket and CometQL)")
    p.add_argument("--port", type=int, default=8087,
                   help="port of the static site and the WebSocket endpoint /ws/ (0 = pick a free one)")
    p.add_argument("--db", default="comet_server.db",
                   help="SQLite database file (created if missing; ':memory:' for a throwaway one)")
    p.add_argument("--password", default=argparse.SUPPRESS,
                   help=f"CometQL password; also the JWT secret base (secret = password + dev_id). "
                        f"Default: ${PASSWORD_ENV}, else the public {DEFAULT_PASSWORD!r}, which is "
                        "refused for a --host other than loopback")
    p.add_argument("--cometql-port", type=int, default=3307, help="CometQL (MySQL protocol) port; 0 = off")
    # unset = cometql/server.py's DEFAULT_LOGIN_TIMEOUT and DEFAULT_PREAUTH_MAX_PACKET
    p.add_argument("--cometql-login-timeout", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                   help="a CometQL connection that has not logged in within this time is closed "
                        "(default: 10)")
    p.add_argument("--cometql-preauth-max-packet", type=int, default=argparse.SUPPRESS, metavar="BYTES",
                   help="largest packet a CometQL client may send before it has logged in (>= 1024); "
                        "a bigger one closes the connection (default: 65536)")
    p.add_argument("--demo", action="store_true",
                   help="demo mode: also serve the server console /demo/console/ and the demo users' "
                        "keys /demo/accounts.json (scripts/demo.sh sets it)")
    p.add_argument("--site", metavar="DIR", default=argparse.SUPPRESS,
                   help="serve your own pages from DIR next to /vendor/ and /comet_py/ (/ is "
                        "DIR/index.html; no dotfiles, database files or symlinks out of DIR)")
    p.add_argument("--test-pages", action="store_true",
                   help="also serve tests/pages/ and bench/pages/ (test and benchmark pages)")
    p.add_argument("--allowed-origins", type=_origins, default=argparse.SUPPRESS, metavar="ORIGIN[,ORIGIN...]",
                   help="accept WebSocket upgrades only from pages of these origins (e.g. "
                        "https://chat.example.com); requests without an Origin header (non-browser "
                        "clients) still pass. Off by default, as in CppComet: a user's key travels in "
                        "the WebSocket URL, not in a cookie, so a page of another site cannot act "
                        "as your users; without the list it can only connect anonymously, as "
                        "anyone can")
    p.add_argument("--header-timeout", type=float, default=limits.DEFAULT_HEADER_TIMEOUT, metavar="SECONDS",
                   help="close a connection that has not sent a complete HTTP request head (or "
                        "WebSocket handshake) within this time; also the idle keep-alive time")
    p.add_argument("--max-connections", type=int, default=0, metavar="N",
                   help="HTTP/WebSocket connections open at once; more are answered 503 and closed "
                        f"(0 = auto: (soft fd limit - {limits.FD_RESERVE}) / 2)")
    p.add_argument("--max-connections-per-ip", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="HTTP/WebSocket connections open at once from one IP address (default: "
                        f"a quarter of --max-connections, at most {limits.DEFAULT_MAX_PER_IP}; 0 = no cap). "
                        "Behind a reverse proxy every connection has the proxy's address: raise it or use 0")
    p.add_argument("--max-client-buffer", type=int, default=DEFAULT_MAX_CLIENT_BUFFER, metavar="BYTES",
                   help="a connection whose unsent output exceeds this is closed (1013) instead of "
                        "slowing down everybody else")
    p.add_argument("--ping-interval", type=float, default=DEFAULT_PING_INTERVAL, metavar="SECONDS",
                   help="a WebSocket connection silent this long gets a ping (0 = no keepalive pings)")
    p.add_argument("--ping-timeout", type=float, default=DEFAULT_PING_TIMEOUT, metavar="SECONDS",
                   help="a connection that answers nothing this long after a ping is closed (1011) and "
                        "its user counts as offline; their personal messages are queued (0 = never)")
    p.add_argument("--queue-ttl", type=int, default=7 * 24 * 3600, metavar="SECONDS",
                   help="queued personal messages (for offline users) older than this are purged")
    p.add_argument("--redis", metavar="URL", default=argparse.SUPPRESS,
                   help="join a cluster of nodes over this Redis (redis://host:port/db): shared state, "
                        "fan-out and presence go through Redis instead of --db (docs/design.md §5)")
    p.add_argument("--node-id", metavar="NAME", default=argparse.SUPPRESS,
                   help="this node's name in the cluster (default: host name, pid and random bits); "
                        "letters, digits, '-' and '_'")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], type=str.upper,
                   help="logging level (DEBUG also enables the HTTP access log)")
    return p


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or "0.0.0.0"/"" style wildcard: may face the network


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.log_level != "DEBUG":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    site = getattr(args, "site", None)
    allowed_origins = getattr(args, "allowed_origins", ())
    password = getattr(args, "password", None)
    if password is None:
        password = os.environ.get(PASSWORD_ENV) or DEFAULT_PASSWORD
    if password == DEFAULT_PASSWORD:
        if not is_loopback(args.host):
            print(f"comet_server: refusing --host {args.host} with the default password "
                  f"{DEFAULT_PASSWORD!r}: it is public (CppComet's documentation), and it is the CometQL "
                  f"password and the JWT secret base, so anyone could publish, read users' data and "
                  f"sign tokens. Set your own with --password SECRET or the {PASSWORD_ENV} "
                  f"environment variable.", file=sys.stderr)
            return 2
        log.warning("the CometQL password is the public default %r (also the JWT secret base): fine "
                    "on loopback, set --password or %s before listening on another address",
                    DEFAULT_PASSWORD, PASSWORD_ENV)
    if site is not None and not os.path.isdir(site):
        parser.error(f"--site {site}: not a directory")
    for name in ("header_timeout", "cometql_login_timeout"):
        if getattr(args, name, 1) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    for name in ("max_connections", "max_connections_per_ip", "ping_interval", "ping_timeout"):
        if (getattr(args, name, None) or 0) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if getattr(args, "cometql_preauth_max_packet", 1024) < 1024:
        parser.error("--cometql-preauth-max-packet must be >= 1024")
    node_id = getattr(args, "node_id", None)
    if node_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", node_id):
        parser.error("--node-id: 1 to 64 of A-Za-z0-9_-")
    if node_id is not None and not hasattr(args, "redis"):
        parser.error("--node-id needs --redis")
    soft, hard = limits.raise_fd_limit()
    log.debug("RLIMIT_NOFILE %s/%s", soft, hard)
    cfg = Config(host=args.host, port=args.port, db=args.db, password=password,
                 cometql_port=args.cometql_port, test_pages=args.test_pages,
                 max_client_buffer=args.max_client_buffer, queue_ttl=args.queue_ttl,
                 access_log=args.log_level == "DEBUG", header_timeout=args.header_timeout,
                 max_connections=args.max_connections, max_connections_per_ip=getattr(args, "max_connections_per_ip", None),
                 allowed_origins=allowed_origins, demo=args.demo, site=site,
                 cometql_login_timeout=getattr(args, "cometql_login_timeout", None),
                 cometql_preauth_max_packet=getattr(args, "cometql_preauth_max_packet", None),
                 ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
                 redis=getattr(args, "redis", None), node_id=node_id)
    try:
        asyncio.run(serve(cfg))
    except KeyboardInterrupt:  # pragma: no cover - SIGINT before the handler was installed
        pass
    except OSError as exc:
        print(f"comet_server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
