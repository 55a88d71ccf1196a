"""Run the real comet_server as a subprocess for tests and benchmarks: the one launcher.

tests/server (``server`` fixture, CometQL off), tests/cometql (``server`` fixture, CometQL on),
the hostile and e2e suites and bench/ all start the server through ``ServerProcess``.
"""

from __future__ import annotations

import os
import pathlib
import random
import resource
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
PASSWORD = "CometQLPassword"
#: what the server prints once the HTTP/WebSocket port and (when on) the CometQL port listen
READY_TEXT = "comet_server listening on"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_uuid() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=32))


class ServerProcess:
    """comet_server on free ports with its own database; restartable on the same ports and db."""

    def __init__(self, *, cometql: bool = True, test_pages: bool = True, demo: bool = False,
                 extra_args: list[str] | tuple[str, ...] | None = None, fd_limit: tuple[int, int] | None = None,
                 directory: str | os.PathLike[str] | None = None,
                 cometql_defaults: dict[str, object] | None = None, redis_url: str | None = None,
                 node_id: str | None = None) -> None:
        """``demo``: pass --demo (server console, accounts.json); ``fd_limit``: (soft, hard)
        RLIMIT_NOFILE the server process starts with; ``directory``: where the db and the log
        live (default: a temporary directory, ``tmp``, removed by ``close()``);
        ``cometql_defaults``: module-level defaults of ``comet_server.cometql.server`` to override
        in the child (e.g. ``{"DEFAULT_LOGIN_TIMEOUT": 1.0}``); ``redis_url`` / ``node_id``: run
        as a cluster node (--redis, --node-id)."""
        self.host = "127.0.0.1"
        self.port = free_port()
        self.cometql_port = free_port() if cometql else 0
        self.tmp = tempfile.TemporaryDirectory(prefix="comet_server_") if directory is None else None
        base = os.fspath(directory) if directory is not None else self.tmp.name  # type: ignore[union-attr]
        self.db = os.path.join(base, "comet.db")
        self.log_path = os.path.join(base, "server.log")
        self.password = PASSWORD
        self.test_pages = test_pages
        self.demo = demo
        self.fd_limit = fd_limit
        self.extra_args = list(extra_args or [])
        self.cometql_defaults = dict(cometql_defaults or {})
        self.redis_url = redis_url
        self.node_id = node_id
        self.proc: subprocess.Popen | None = None
        #: the line the server printed when it was ready (host, port, CometQL port or "off")
        self.ready_line = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, *, dev_id: object = 1, user_id: object = "", session: str = "", uuid: str | None = None,
               v: str = "4.08", prefix: str = "/ws/") -> str:
        """A connect URL; ``uuid`` is random unless given."""
        uuid = uuid if uuid is not None else random_uuid()
        return (f"ws://{self.host}:{self.port}{prefix}sesion={session}&myid={user_id}&devid={dev_id}"
                f"&v={v}&uuid={uuid}&api=js")

    def _command(self) -> list[str]:
        if self.cometql_defaults:
            code = ("import sys; from comet_server.cometql import server as s; "
                    f"[setattr(s, k, v) for k, v in {self.cometql_defaults!r}.items()]; "
                    "from comet_server.__main__ import main; sys.exit(main(sys.argv[1:]))")
            head = [PYTHON, "-c", code]
        else:
            head = [PYTHON, "-m", "comet_server"]
        args = [*head, "--host", self.host, "--port", str(self.port), "--cometql-port", str(self.cometql_port),
                "--db", self.db, "--password", self.password]
        if self.test_pages:
            args.append("--test-pages")
        if self.demo:
            args.append("--demo")
        if self.redis_url:
            args += ["--redis", self.redis_url]
        if self.node_id:
            args += ["--node-id", self.node_id]
        return args + self.extra_args

    def start(self) -> "ServerProcess":
        fd_limit = self.fd_limit
        preexec = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, fd_limit)) if fd_limit else None
        log_from = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=preexec)
        self.ready_line = self._wait_ready(log_from)
        return self

    def _wait_ready(self, log_from: int) -> str:
        """The ready line this start wrote to the log (after ``log_from``); raises if none comes."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(log_from)
                for line in f.read().decode("utf-8", "replace").splitlines(keepends=True):
                    if line.startswith(READY_TEXT) and line.endswith("\n"):
                        return line
            if self.proc.poll() is not None:
                raise RuntimeError(f"comet_server exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"comet_server not ready after {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, SIGKILL after ``timeout`` s; the exit code (None if it was never started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL: the process dies without cleaning anything up (kill -9)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Stop (asserting a clean exit on SIGTERM) and start again on the same ports and db."""
        rc = self.stop()
        assert rc in (0, None), f"server exit code {rc}\n{self.log()}"
        self.start()

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def store(self):  # -> comet_server.store.Store, on the same db file
        from comet_server.store import Store
        return Store(self.db)

    def close(self) -> None:
        self.stop()
        if self.tmp is not None:
            self.tmp.cleanup()
