"""SQLite state of comet_server (design.md §2.1).

One ``Store(path)`` per process; other processes (tests, tools) may open the same file with their
own ``Store``. Nothing here is cached: every call reads or writes the database, so a change made by
another process is seen by the next call. Every table has a ``dev_id`` column and every method
takes ``dev_id`` first.

The connection is opened with ``check_same_thread=False`` and autocommit (``isolation_level=None``):
each statement is its own transaction, multi-statement operations use an explicit
``BEGIN IMMEDIATE``. WAL mode lets readers in other processes run while the server writes.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

__all__ = ["Store", "HistoryItem", "QueuedMessage", "MAX_PIPE_LENGTH"]

#: pipes_settings.length is capped at this (CppComet ``MAX_LOG_LENGTH``).
MAX_PIPE_LENGTH = 1000


@dataclass(frozen=True)
class HistoryItem:
    history_id: str  # str of the row id, increasing
    time: int
    pipe: str
    index: int  # position in the returned log, 0 = oldest
    event: str
    data: str
    user_id: int


@dataclass(frozen=True)
class QueuedMessage:
    id: str
    time: int
    event: str
    data: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS users_auth (
    dev_id INTEGER NOT NULL, user_id INTEGER NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY (dev_id, user_id));
CREATE TABLE IF NOT EXISTS users_data (
    dev_id INTEGER NOT NULL, user_id INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (dev_id, user_id));
CREATE TABLE IF NOT EXISTS pipes_settings (
    dev_id INTEGER NOT NULL, pipe TEXT NOT NULL, length INTEGER NOT NULL,
    PRIMARY KEY (dev_id, pipe));
CREATE TABLE IF NOT EXISTS pipes_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dev_id INTEGER NOT NULL, pipe TEXT NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL,
    user_id INTEGER NOT NULL, time INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS pipes_messages_pipe ON pipes_messages (dev_id, pipe, id);
CREATE TABLE IF NOT EXISTS users_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dev_id INTEGER NOT NULL, user_id INTEGER NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL,
    time INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS users_messages_user ON users_messages (dev_id, user_id, id);
CREATE INDEX IF NOT EXISTS users_messages_time ON users_messages (time);
CREATE TABLE IF NOT EXISTS users_time (
    dev_id INTEGER NOT NULL, user_id INTEGER NOT NULL, time INTEGER NOT NULL,
    PRIMARY KEY (dev_id, user_id));
CREATE TABLE IF NOT EXISTS revoked_tokens (
    dev_id INTEGER NOT NULL, token TEXT NOT NULL,
    PRIMARY KEY (dev_id, token));
"""


def _clamp_length(length: int) -> int:
    length = int(length)
    if length < 0:
        return 0
    return min(length, MAX_PIPE_LENGTH)


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        # Only for safety if someone calls from a thread (CometQL may run in the loop thread too).
        self._lock = threading.RLock()
        with self._lock:
            if path != ":memory:":
                try:
                    self._db.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError:  # e.g. another process holds an exclusive lock
                    pass
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    # -- helpers -------------------------------------------------------------------------------
    def _exec(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _one(self, sql: str, args: tuple = ()):
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- users_auth ----------------------------------------------------------------------------
    def set_user_hash(self, dev_id: int, user_id: int, hash: str) -> None:
        self._exec("INSERT OR REPLACE INTO users_auth (dev_id, user_id, hash) VALUES (?, ?, ?)",
                   (int(dev_id), int(user_id), str(hash)))

    def get_user_hash(self, dev_id: int, user_id: int) -> str | None:
        row = self._one("SELECT hash FROM users_auth WHERE dev_id=? AND user_id=?", (int(dev_id), int(user_id)))
        return row[0] if row else None

    def delete_user_hash(self, dev_id: int, user_id: int) -> bool:
        cur = self._exec("DELETE FROM users_auth WHERE dev_id=? AND user_id=?", (int(dev_id), int(user_id)))
        return cur.rowcount > 0

    def user_hashes(self, dev_id: int, user_ids: list[int]) -> list[tuple[int, str]]:
        ids = [int(u) for u in user_ids]
        if not ids:
            return []
        out: list[tuple[int, str]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = ",".join("?" * len(chunk))
            out.extend((int(r[0]), r[1]) for r in self._all(
                f"SELECT user_id, hash FROM users_auth WHERE dev_id=? AND user_id IN ({q}) ORDER BY user_id",
                (int(dev_id), *chunk)))
        return out

    # -- users_data ----------------------------------------------------------------------------
    def set_user_data(self, dev_id: int, user_id: int, data: str) -> None:
        self._exec("INSERT OR REPLACE INTO users_data (dev_id, user_id, data) VALUES (?, ?, ?)",
                   (int(dev_id), int(user_id), str(data)))

    def get_user_data(self, dev_id: int, user_id: int) -> str | None:
        row = self._one("SELECT data FROM users_data WHERE dev_id=? AND user_id=?", (int(dev_id), int(user_id)))
        return row[0] if row else None

    def delete_user_data(self, dev_id: int, user_id: int) -> bool:
        cur = self._exec("DELETE FROM users_data WHERE dev_id=? AND user_id=?", (int(dev_id), int(user_id)))
        return cur.rowcount > 0

    # -- pipes_settings ------------------------------------------------------------------------
    def set_pipe_length(self, dev_id: int, pipe: str, length: int) -> None:
        length = _clamp_length(length)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO pipes_settings (dev_id, pipe, length) VALUES (?, ?, ?)",
                    (int(dev_id), pipe, length))
                if length > 0:
                    self._trim(int(dev_id), pipe, length)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_pipe_length(self, dev_id: int, pipe: str) -> int:
        row = self._one("SELECT length FROM pipes_settings WHERE dev_id=? AND pipe=?", (int(dev_id), pipe))
        return int(row[0]) if row else 0

    def delete_pipe_settings(self, dev_id: int, pipe: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM pipes_settings WHERE dev_id=? AND pipe=?", (int(dev_id), pipe))
                self._db.execute("DELETE FROM pipes_messages WHERE dev_id=? AND pipe=?", (int(dev_id), pipe))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- history (pipes_messages) --------------------------------------------------------------
    def _trim(self, dev_id: int, pipe: str, length: int) -> None:
        # keep the newest `length` rows (by id, which is strictly increasing)
        self._db.execute(
            "DELETE FROM pipes_messages WHERE dev_id=? AND pipe=? AND id <= ("
            " SELECT id FROM pipes_messages WHERE dev_id=? AND pipe=? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (dev_id, pipe, dev_id, pipe, length))

    def add_history(self, dev_id: int, pipe: str, event: str, data: str, user_id: int, time: int,
                    length: int) -> str:
        """Append one message to the log of ``pipe`` and trim it to the newest ``length`` rows.

        Returns the history_id (``str`` of the row id; ids increase strictly across the whole
        store and are never reused, thanks to AUTOINCREMENT).
        """
        length = max(1, _clamp_length(length))
        dev_id = int(dev_id)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO pipes_messages (dev_id, pipe, event, data, user_id, time) VALUES (?, ?, ?, ?, ?, ?)",
                    (dev_id, pipe, str(event), str(data), int(user_id), int(time)))
                history_id = str(cur.lastrowid)
                self._trim(dev_id, pipe, length)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return history_id

    def get_history(self, dev_id: int, pipe: str, limit: int = 1000) -> list[HistoryItem]:
        """The newest ``limit`` logged messages of ``pipe``, oldest first."""
        limit = max(0, int(limit))
        rows = self._all(
            "SELECT id, time, event, data, user_id FROM ("
            " SELECT id, time, event, data, user_id FROM pipes_messages WHERE dev_id=? AND pipe=?"
            " ORDER BY id DESC LIMIT ?) ORDER BY id ASC",
            (int(dev_id), pipe, limit))
        return [HistoryItem(history_id=str(r[0]), time=int(r[1]), pipe=pipe, index=i, event=r[2], data=r[3],
                            user_id=int(r[4])) for i, r in enumerate(rows)]

    def clear_history(self, dev_id: int, pipe: str) -> None:
        self._exec("DELETE FROM pipes_messages WHERE dev_id=? AND pipe=?", (int(dev_id), pipe))

    def delete_history_item(self, dev_id: int, history_id: str) -> bool:
        try:
            mid = int(str(history_id))
        except ValueError:
            return False
        cur = self._exec("DELETE FROM pipes_messages WHERE dev_id=? AND id=?", (int(dev_id), mid))
        return cur.rowcount > 0

    # -- users_messages (offline queue) --------------------------------------------------------
    def queue_user_message(self, dev_id: int, user_id: int, event: str, data: str, time: int) -> str:
        cur = self._exec(
            "INSERT INTO users_messages (dev_id, user_id, event, data, time) VALUES (?, ?, ?, ?, ?)",
            (int(dev_id), int(user_id), str(event), str(data), int(time)))
        return str(cur.lastrowid)

    def queued_user_messages(self, dev_id: int, user_id: int) -> list[QueuedMessage]:
        rows = self._all(
            "SELECT id, time, event, data FROM users_messages WHERE dev_id=? AND user_id=? ORDER BY id ASC",
            (int(dev_id), int(user_id)))
        return [QueuedMessage(id=str(r[0]), time=int(r[1]), event=r[2], data=r[3]) for r in rows]

    def delete_user_messages(self, dev_id: int, user_id: int, ids: list[str] | None = None) -> int:
        if ids is None:
            cur = self._exec("DELETE FROM users_messages WHERE dev_id=? AND user_id=?", (int(dev_id), int(user_id)))
            return cur.rowcount
        int_ids = []
        for i in ids:
            try:
                int_ids.append(int(str(i)))
            except ValueError:
                continue
        total = 0
        with self._lock:
            for k in range(0, len(int_ids), 500):
                chunk = int_ids[k:k + 500]
                q = ",".join("?" * len(chunk))
                cur = self._db.execute(
                    f"DELETE FROM users_messages WHERE dev_id=? AND user_id=? AND id IN ({q})",
                    (int(dev_id), int(user_id), *chunk))
                total += cur.rowcount
        return total

    def purge_user_messages(self, older_than: int) -> int:
        """Delete queued messages (all devs) whose time is < ``older_than`` (unix seconds)."""
        cur = self._exec("DELETE FROM users_messages WHERE time < ?", (int(older_than),))
        return cur.rowcount

    # -- users_time ----------------------------------------------------------------------------
    def set_user_time(self, dev_id: int, user_id: int, time: int) -> None:
        self._exec("INSERT OR REPLACE INTO users_time (dev_id, user_id, time) VALUES (?, ?, ?)",
                   (int(dev_id), int(user_id), int(time)))

    def mark_all_offline(self, time: int) -> int:
        """Server start: rows still at 0 (online) were left by a process that died; make them
        'last seen at ``time``'. Not part of the design.md contract (used by app.py only)."""
        return self._exec("UPDATE users_time SET time=? WHERE time=0", (int(time),)).rowcount

    def get_user_time(self, dev_id: int, user_id: int) -> int:
        row = self._one("SELECT time FROM users_time WHERE dev_id=? AND user_id=?", (int(dev_id), int(user_id)))
        return int(row[0]) if row else -1

    # -- revoked_tokens ------------------------------------------------------------------------
    def revoke_token(self, dev_id: int, token: str) -> None:
        self._exec("INSERT OR IGNORE INTO revoked_tokens (dev_id, token) VALUES (?, ?)", (int(dev_id), str(token)))

    def is_token_revoked(self, dev_id: int, token: str) -> bool:
        return self._one("SELECT 1 FROM revoked_tokens WHERE dev_id=? AND token=?", (int(dev_id), str(token))) is not None

    def revoked_tokens(self, dev_id: int) -> list[str]:
        return [r[0] for r in self._all("SELECT token FROM revoked_tokens WHERE dev_id=? ORDER BY rowid", (int(dev_id),))]

    def unrevoke_token(self, dev_id: int, token: str) -> bool:
        cur = self._exec("DELETE FROM revoked_tokens WHERE dev_id=? AND token=?", (int(dev_id), str(token)))
        return cur.rowcount > 0
