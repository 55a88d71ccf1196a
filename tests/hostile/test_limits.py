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
    # defaults except a short header timeout: the caps follow the descriptor limit (total
    # (256 - 64) / 2 = 96, per IP a quarter of that)
    srv = start("--header-timeout", "2", fd_limit=LOW_FDS)
    flood = half_open(srv.port, 300)
    try:
        assert len(flood) == 300
        waited = served_within(srv.port, 30)
        assert waited is not None, "a legitimate client was locked out for 30 s\n" + srv.log()[-2000:]
        # each flood socket was refused at once (per-IP or total cap) or closed by the header timeout
        assert len(closed_within(flood, 10)) == 300
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


def test_cometql_pre_login_limits_are_set_from_the_command_line():
    srv = ServerProcess(cometql=True, test_pages=False,
                        extra_args=["--cometql-login-timeout", "1", "--cometql-preauth-max-packet", "1024"]).start()
    try:
        idle = socket.create_connection(("127.0.0.1", srv.cometql_port), timeout=5)
        big = socket.create_connection(("127.0.0.1", srv.cometql_port), timeout=5)
        for s in (idle, big):
            assert s.recv(4096)  # the server's handshake
        # a handshake response announcing 2,000 bytes: over the 1,024-byte pre-login limit
        big.sendall((2000).to_bytes(3, "little") + b"\x01" + b"x" * 1500)
        t0 = time.monotonic()
        assert answer_and_close(big, 5) is not None, "an oversized pre-login packet was accepted"
        assert answer_and_close(idle, 8) is not None, "an idle pre-login connection stayed open"
        assert time.monotonic() - t0 < 8
        idle.close()
        big.close()
    finally:
        srv.close()


def test_cometql_port_shares_the_per_ip_cap_and_refuses_with_error_1040():
    srv = ServerProcess(cometql=True, test_pages=False, extra_args=["--max-connections-per-ip", "20"]).start()
    flood: list[socket.socket] = []
    try:
        for _ in range(30):  # pre-login sockets from one address: 20 admitted, 10 refused
            s = socket.socket()
            s.settimeout(3)
            s.bind((FLOOD_IP, 0))
            s.connect(("127.0.0.1", srv.cometql_port))
            flood.append(s)
        refused = closed_within(flood, 3)
        assert len(refused) == 10, f"{len(refused)} of 30 closed"
        for answer in refused.values():  # MySQL's "Too many connections" in place of the handshake
            assert answer[4] == 0xFF and int.from_bytes(answer[5:7], "little") == 1040, answer
        # another address still gets CometQL's handshake (protocol version 10) and the site
        with socket.create_connection(("127.0.0.1", srv.cometql_port), timeout=3) as ok:
            assert ok.recv(5)[4] == 10
        assert get_status(srv.port) == 200
        log = srv.log()
        assert log.count("CometQL: refused connections") == 1, log[-3000:]
    finally:
        close_all(flood)
        srv.close()


def test_keepalive_is_set_from_the_command_line():
    """--ping-interval/--ping-timeout reach the hub: a client that never answers pings is closed
    with 1011 after about interval + timeout."""
    srv = ServerProcess(cometql=False, test_pages=False,
                        extra_args=["--ping-interval", "0.5", "--ping-timeout", "0.5"]).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(b"GET /ws/sesion=&myid=0&devid=1&v=4.08&uuid=abc&api=js HTTP/1.1\r\nHost: x\r\n"
                      b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            t0 = time.monotonic()
            data = b""
            while time.monotonic() - t0 < 5:  # read (and never answer) until the server closes
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            waited = time.monotonic() - t0
        assert b"\x88" in data and (1011).to_bytes(2, "big") in data.split(b"\x88", 1)[1][:4], data[-40:]
        assert waited < 4, waited
    finally:
        srv.close()
