"""Per-input logging is bounded: comet_server.ratelog and ws.handle_command's error path."""

from __future__ import annotations

import logging

import pytest

from comet_server import ws
from comet_server.hub import Client, Hub
from comet_server.ratelog import RateLimitedLog
from comet_server.store import Store
from tests.support.memory_transport import RecordingTransport


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_same_event_logged_once_per_interval_then_with_its_count(caplog):
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("t.ratelog"), interval=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t.ratelog"):
        assert rl.report("bad", "bad input %d", 1) is True
        for i in range(499):
            assert rl.report("bad", "bad input %d", i) is False
        assert rl.report("other", "other input") is True  # another kind is not held back
        assert rl.suppressed("bad") == 499
        clock.t += 61
        assert rl.report("bad", "bad input %d", 2) is True
    assert [r.getMessage() for r in caplog.records] == [
        "bad input 1", "other input", "bad: 499 more in the last 61 s (not logged one by one)", "bad input 2"]


@pytest.fixture
def client():
    hub = Hub(Store(":memory:"), "CometQLPassword", server_name="test")
    c = Client(hub, None, RecordingTransport(), dev_id=1, user_id=0, authorized=False)
    hub.register(c)
    return hub, c


def test_a_failing_command_answers_every_time_but_logs_one_traceback(client, caplog, monkeypatch):
    hub, c = client

    def broken(hub, client, args):
        raise RuntimeError("a bug reached by input")

    monkeypatch.setitem(ws.COMMANDS, "broken", broken)
    monkeypatch.setattr(ws, "input_log", RateLimitedLog(ws.log))
    with caplog.at_level(logging.DEBUG, logger="comet_server"):
        for _ in range(300):
            ws.handle_command(hub, c, "broken\nx")
    errors = [m for m in c.transport.messages() if m["event"] == "error"]
    assert len(errors) == 300 and errors[0]["data"]["error"] == "Internal server error"
    assert len([r for r in caplog.records if r.exc_info]) == 1
