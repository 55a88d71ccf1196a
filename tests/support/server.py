"""Run the real comet_server as a subprocess for tests and benchmarks."""

from __future__ import annotations

import os
import pathlib
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
PASSWORD = "CometQLPassword"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"comet_server exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class ServerProcess:
    """comet_server on free ports with its own database; restartable on the same ports and db."""

    def __init__(self, *, cometql: bool = True, test_pages: bool = True, demo: bool = False,
                 extra_args: list[str] | None = None, fd_limit: tuple[int, int] | None = None) -> None:
        """``demo``: pass --demo (server console, accounts.json); ``fd_limit``: (soft, hard)
        RLIMIT_NOFILE the server process starts with."""
        self.port = free_port()
        self.cometql_port = free_port() if cometql else 0
        self._tmp = tempfile.TemporaryDirectory(prefix="comet_server_")
        self.db = os.path.join(self._tmp.name, "comet.db")
        self.password = PASSWORD
        self.test_pages = test_pages
        self.demo = demo
        self.fd_limit = fd_limit
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self._tmp.name, "server.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, *, dev_id: int = 1, user_id: int | str = "", key: str = "", uuid: str = "u" * 32, v: str = "4.08") -> str:
        return f"ws://127.0.0.1:{self.port}/ws/sesion={key}&myid={user_id}&devid={dev_id}&v={v}&uuid={uuid}&api=js"

    def start(self) -> "ServerProcess":
        args = [PYTHON, "-m", "comet_server", "--host", "127.0.0.1", "--port", str(self.port),
                "--cometql-port", str(self.cometql_port), "--db", self.db, "--password", self.password]
        if self.test_pages:
            args.append("--test-pages")
        if self.demo:
            args.append("--demo")
        args += self.extra_args
        fd_limit = self.fd_limit
        preexec = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, fd_limit)) if fd_limit else None
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
        log.close()
        wait_for_port(self.port, proc=self.proc)
        if self.cometql_port:
            wait_for_port(self.cometql_port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()
