"""Connection floods and slow clients are bounded (issue 8 item 5).

Each test starts its own comet_server subprocess (tests/support/server.ServerProcess), some with
a lowered descriptor limit, and floods it from 127.0.0.2 with request heads that never complete
(no blank line), while a legitimate client on 127.0.0.1 asks for ``/info``. Everything stays
on loopback; every wait has a generous bound.
"""

from __future__ import annotations

import re
import select
import socket
import time

import pytest

from tests.support.server import ServerProcess

FLOOD_IP = "127.0.0.2"  # Linux routes all of 127/8 to lo: a second "client address" for free
PARTIAL_HEAD = b"GET /info HTTP/1.1\r\nHost: x\r\n"  # no blank line: the head never completes
LOW_FDS = (256, 256)  # soft and hard, so start-up cannot raise it


@pytest.fixture
def start():
    made: list[ServerProcess] = []

    def make(*args: str, fd_limit: tuple[int, int] | None = None) -> ServerProcess:
        srv = ServerProcess(cometql=False, test_pages=False, extra_args=list(args), fd_limit=fd_limit)
        made.append(srv)
        return srv.start()

    yield make
    for srv in made:
        srv.close()


def half_open(port: int, n: int, src: str = FLOOD_IP) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(3)
        try:
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            s.sendall(PARTIAL_HEAD)
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def get_status(port: int, src: str = "127.0.0.1", timeout: float = 3.0) -> int | None:
    """Status of ``GET /info`` from ``src``, or None when nothing came back in time."""
    with socket.socket() as s:
        s.settimeout(timeout)
        try:
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = s.recv(64)
        except OSError:
            return None
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    return int(m.group(1)) if m else None


def served_within(port: int, seconds: float, src: str = "127.0.0.1") -> float | None:
    """Seconds until ``GET /info`` from ``src`` gets 200 (retrying), or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if get_status(port, src) == 200:
            return time.monotonic() - t0
        time.sleep(0.2)
    return None


def answer_and_close(sock: socket.socket, timeout: float) -> bytes | None:
    """What the server sent before closing ``sock`` within ``timeout``; None if still open."""
    out = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            break
        try:
            chunk = sock.recv(4096)
        except OSError:
            return out  # reset: closed too
        if not chunk:
            return out
        out += chunk
    return None


def closed_within(socks: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """The sockets the server closed within ``timeout`` (all watched at once), with what each got."""
    got: dict[socket.socket, bytes] = {s: b"" for s in socks}
    done: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + timeout
    while got and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select(list(got), [], [], left)
        for s in ready:
            try:
                chunk = s.recv(4096)
            except OSError:
                chunk = b""  # reset: closed as well
            if chunk:
                got[s] += chunk
            else:
                done[s] = got.pop(s)
    return done


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def open_files_limits(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/<pid>/limits")


def test_soft_descriptor_limit_is_raised_to_the_hard_limit(start):
    srv = start(fd_limit=(256, 4096))
    assert open_files_limits(srv.proc.pid) == (4096, 4096)


def test_half_sent_and_trickled_request_heads_are_closed_after_the_header_timeout(start):
    srv = start("--header-timeout", "1")
    idle, trickle = half_open(srv.port, 2, src="127.0.0.1")
    t0 = time.monotonic()
    closed_at = None
    # one byte every 0.2 s keeps a slowloris client "active"; the deadline must not move
    while time.monotonic() - t0 < 10 and closed_at is None:
        try:
            trickle.send(b"X")
        except OSError:
            closed_at = time.monotonic() - t0
            break
        if answer_and_close(trickle, 0.2) is not None:
            closed_at = time.monotonic() - t0
    assert closed_at is not None, "a trickling request head stayed open for 10 s"
    assert answer_and_close(idle, 5) is not None, "a half-sent request head stayed open"
    assert closed_at < 8
    assert get_status(srv.port) == 200  # and the server still serves
    close_all([idle, trickle])


def test_flood_of_half_open_requests_beyond_the_descriptor_limit_does_not_lock_others_out(start):
    # defaults except a short header timeout: the total cap follows the descriptor limit
    srv = start("--header-timeout", "2", fd_limit=LOW_FDS)
    flood = half_open(srv.port, 300)
    try:
        assert len(flood) == 300
        waited = served_within(srv.port, 30)
        assert waited is not None, "a legitimate client was locked out for 30 s\n" + srv.log()[-2000:]
        assert len(closed_within(flood, 1)) == 300  # refused at once, or closed by the header timeout
    finally:
        close_all(flood)
    lines = srv.log().splitlines()
    assert len(lines) < 40, f"{len(lines)} log lines:\n" + "\n".join(lines[:60])


def test_per_ip_cap_refuses_the_flooder_at_once_and_serves_everybody_else(start):
    srv = start("--max-connections-per-ip", "20", fd_limit=LOW_FDS)
    flood = half_open(srv.port, 200)
    try:
        refused = closed_within(flood, 3)
        # refused at once: a 503, or a reset when the unread request head made close() send RST
        assert len(refused) == 180 and all(a == b"" or a.startswith(b"HTTP/1.1 503") for a in refused.values())
        # the 20 admitted ones are still open (header timeout 10 s): others are served right away
        assert get_status(srv.port, src="127.0.0.1") == 200
        assert get_status(srv.port, src=FLOOD_IP) == 503
    finally:
        close_all(flood)
    log = srv.log()
    assert log.count("per-IP cap") <= 2 and len(log.splitlines()) < 30, log[-3000:]


def test_out_of_descriptors_is_logged_once_per_interval_and_service_resumes(start):
    # a connection cap above the descriptor limit, so accept() itself runs out (EMFILE)
    srv = start("--max-connections", "5000", "--header-timeout", "3", fd_limit=LOW_FDS)
    flood = half_open(srv.port, 400)
    try:
        assert len(flood) == 400
        time.sleep(2)  # accept() has been failing for a while now
        waited = served_within(srv.port, 30)
        assert waited is not None, "not served after the flood timed out\n" + srv.log()[-2000:]
    finally:
        close_all(flood)
    log = srv.log()
    lines = log.splitlines()
    assert "Too many open files" in log  # it was really out of descriptors
    assert sum(1 for ln in lines if "accept" in ln) <= 3, "\n".join(lines[:40])
    assert len(lines) < 40 and "Traceback" not in log, f"{len(lines)} lines:\n" + "\n".join(lines[:40])
