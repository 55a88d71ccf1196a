"""An in-memory stand-in for the asyncio transport a comet_server ``hub.Client`` writes its
pre-built WebSocket frames to: it records every frame and reads them back decoded."""

from __future__ import annotations

import json
from typing import Any

from comet_server import wire


def is_text(frame: bytes) -> bool:
    return frame[0] == 0x81  # FIN + text: the server never fragments


def is_close(frame: bytes) -> bool:
    return frame[0] & 0x0F == 0x8


def text_of(frame: bytes) -> str:
    """The text of a text frame; any other frame fails the test."""
    assert is_text(frame), frame[:2]
    return wire.payload_of(frame).decode("utf-8")


def close_of(frame: bytes) -> tuple[int, str]:
    """The code and reason of a close frame."""
    payload = wire.payload_of(frame)
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8")


class RecordingTransport:
    """Keeps every frame written (``frames``, the bytes objects themselves). ``buffer`` is what
    ``get_write_buffer_size`` reports: set it past ``hub.max_client_buffer`` to play a slow
    client. ``closing`` turns true on ``close``/``abort``."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closing = False
        self.buffer = 0
        self._taken = 0

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffer

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.close()

    # reading back -------------------------------------------------------------------------------
    def texts(self) -> list[str]:
        """Every text frame's payload, in order (close frames left out)."""
        return [text_of(f) for f in self.frames if is_text(f)]

    def messages(self) -> list[Any]:
        """Every text frame, JSON-decoded."""
        return [json.loads(t) for t in self.texts()]

    def take(self) -> list[str]:
        """The text frames written since the last ``take``; any other frame there fails the test."""
        new = self.frames[self._taken:]
        self._taken = len(self.frames)
        return [text_of(f) for f in new]

    def has_untaken(self) -> bool:
        return self._taken < len(self.frames)
