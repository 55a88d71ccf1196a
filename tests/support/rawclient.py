"""A bare protocol client (websockets, no pings) for tests that play the other side."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from websockets.sync.client import connect


class RawClient:
    def __init__(self, url: str) -> None:
        self.ws = connect(url, ping_interval=None, open_timeout=10, max_size=2**20).__enter__()
        self.frames: list[dict] = []
        self.server_info = self.wait_for(lambda m: m.get("event") == "serverInfo")

    def send(self, frame: str) -> None:
        self.ws.send(frame)

    def subscribe(self, *channels: str) -> None:
        self.send("subscription\n" + "\n".join(channels))

    def publish(self, pipe: str, event: str, message: Any) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self.send(f"web_pipe2\n{pipe}\n{event}\n*\n{text}")

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        """The first frame (seen before or arriving) that matches; liveness bound only."""
        for frame in self.frames:
            if predicate(frame):
                self.frames.remove(frame)
                return frame
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame within {timeout} s; seen {self.frames[-5:]}")
            frame = json.loads(self.ws.recv(timeout=remaining))
            if predicate(frame):
                return frame
            self.frames.append(frame)

    def close(self) -> None:
        self.ws.close()


def wait_subscribers(client: RawClient, pipe: str, count: int, timeout: float = 10.0) -> None:
    """Poll pipe_count until the server sees ``count`` subscribers on ``pipe``."""
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        marker = f"m{int(time.monotonic() * 1e6) % 10**9}"
        client.send(f"pipe_count\n{pipe}\n{marker}\n")
        answer = client.wait_for(lambda m: m.get("marker") == marker)
        data = answer["data"]
        n = data["user_in_pipe"] if isinstance(data, dict) else data[1]
        if n == count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{pipe} has {n} subscribers, not {count}")
