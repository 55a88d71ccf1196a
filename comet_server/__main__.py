"""``python -m comet_server``: run the CppComet-compatible comet server.

Serves the allow-listed static site and the WebSocket endpoint on one port, CometQL (MySQL wire
protocol) on another. State (users_auth, history, offline queue, ...) lives in a SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import SERVER_NAME
from .app import Config, serve
from .hub import DEFAULT_MAX_CLIENT_BUFFER


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m comet_server",
        description=f"{SERVER_NAME}: a CppComet-compatible comet server (WebSocket + static site "
                    "on one port, CometQL on another, state in SQLite).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (HTTP, WebSocket and CometQL)")
    p.add_argument("--port", type=int, default=8087,
                   help="port of the static site and the WebSocket endpoint /ws/ (0 = pick a free one)")
    p.add_argument("--db", default="comet_server.db",
                   help="SQLite database file (created if missing; ':memory:' for a throwaway one)")
    p.add_argument("--password", default="CometQLPassword",
                   help="CometQL password; also the JWT secret base (secret = password + dev_id)")
    p.add_argument("--cometql-port", type=int, default=3307, help="CometQL (MySQL protocol) port; 0 = off")
    p.add_argument("--test-pages", action="store_true",
                   help="also serve tests/pages/ and bench/pages/ (test and benchmark pages)")
    p.add_argument("--max-client-buffer", type=int, default=DEFAULT_MAX_CLIENT_BUFFER, metavar="BYTES",
                   help="a connection whose unsent output exceeds this is closed (1013) instead of "
                        "slowing down everybody else")
    p.add_argument("--queue-ttl", type=int, default=7 * 24 * 3600, metavar="SECONDS",
                   help="queued personal messages (for offline users) older than this are purged")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], type=str.upper,
                   help="logging level (DEBUG also enables the HTTP access log)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.log_level != "DEBUG":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    cfg = Config(host=args.host, port=args.port, db=args.db, password=args.password,
                 cometql_port=args.cometql_port, test_pages=args.test_pages,
                 max_client_buffer=args.max_client_buffer, queue_ttl=args.queue_ttl,
                 access_log=args.log_level == "DEBUG")
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
