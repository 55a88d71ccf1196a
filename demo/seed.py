"""Seed comet_server's database for the demo (run by ``scripts/demo.sh`` before the server starts).

    python -m demo.seed --db comet_server.db [--dev-id 15] [--room lobby]
    python -m demo.seed --redis redis://127.0.0.1:6390/0      (a cluster's shared state)

Idempotent: it (re)writes the demo users' users_auth hashes (``demo/accounts.json``), turns
history on for each room's chat channel ``web_<room>``, and posts a welcome message into a room
only when its history is empty. Tests call :func:`seed` with their own dev_id and room.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Iterable

from comet_server.seams import StoreAPI
from comet_server.store import Store

ACCOUNTS_FILE = pathlib.Path(__file__).with_name("accounts.json")
HISTORY_LENGTH = 200
WELCOME = ("Welcome to the comet_py demo chat. Pick a name and say hello, or sign in as "
           "alice, bob or carol. Open this page in a second tab: both tabs share one connection.")


def _accounts() -> dict:
    return json.loads(ACCOUNTS_FILE.read_text(encoding="utf-8"))


ACCOUNTS = _accounts()
DEV_ID: int = ACCOUNTS["dev_id"]
ROOM: str = ACCOUNTS["room"]
USERS: list[dict] = ACCOUNTS["users"]


def chat_pipe(room: str) -> str:
    return f"web_{room}"


def seed(store: StoreAPI, dev_id: int = DEV_ID, rooms: Iterable[str] = (ROOM,), *, welcome: bool = True,
         history_length: int = HISTORY_LENGTH) -> None:
    """Seed ``store`` (an open comet_server Store) for ``dev_id``; safe to run any number of times."""
    for user in USERS:
        store.set_user_hash(dev_id, user["id"], user["key"])
    for room in rooms:
        pipe = chat_pipe(room)
        store.set_pipe_length(dev_id, pipe, history_length)
        if welcome and not store.get_history(dev_id, pipe, limit=1):
            text = json.dumps({"text": WELCOME}, ensure_ascii=False)
            store.add_history(dev_id, pipe, "system", text, 0, int(time.time()), history_length)


def seed_db(path: str, dev_id: int = DEV_ID, rooms: Iterable[str] = (ROOM,), *, redis: str | None = None,
            **kwargs) -> None:
    """Open the database file at ``path`` (created if missing), or the cluster's Redis at
    ``redis``, seed it, close it."""
    store: StoreAPI
    if redis:
        from comet_server.redis_store import RedisStore
        store = RedisStore(redis)
    else:
        store = Store(path)
    try:
        seed(store, dev_id, rooms, **kwargs)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.seed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="comet_server.db", help="comet_server's SQLite file (default: %(default)s)")
    parser.add_argument("--redis", metavar="URL", help="seed a cluster's Redis instead of --db")
    parser.add_argument("--dev-id", type=int, default=DEV_ID, help="dev_id of the demo (default: %(default)s)")
    parser.add_argument("--room", action="append", help=f"chat room(s) to enable history for (default: {ROOM})")
    args = parser.parse_args(argv)
    rooms = args.room or [ROOM]
    seed_db(args.db, args.dev_id, rooms, redis=args.redis)
    names = ", ".join(f"{u['name']} (user_id {u['id']})" for u in USERS)
    print(f"demo.seed: dev_id {args.dev_id}: users {names}; history on for "
          + ", ".join(chat_pipe(r) for r in rooms) + f" in {args.redis or args.db}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
