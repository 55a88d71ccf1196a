"""Client-frame checks that aiohttp's WebSocket reader does not make.

RFC 6455 §5.1: a server must close the connection when a client frame is not masked. aiohttp
3.14.5's reader (``aiohttp._websocket.reader_c.WebSocketReader``, a compiled extension, so its
``.py`` twin is not what runs) reads the MASK bit and simply skips unmasking when it is 0. So
``GuardedWebSocketResponse`` puts ``MaskCheck`` between the connection and aiohttp's reader: it
follows the frame boundaries (the headers only, never the payload) and, at the first unmasked
frame, fails the reader with the protocol error aiohttp raises for its own protocol violations,
so the close (1002) takes aiohttp's usual path.

Pinned to aiohttp 3.14.5 internals, all in ``_post_start``: ``RequestHandler._payload_parser``
(what ``data_received`` feeds), ``RequestHandler._message_tail`` (bytes that came with the
handshake), ``WebSocketResponse._parser`` / ``._reader``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp.http_websocket import WebSocketError

__all__ = ["GuardedWebSocketResponse", "MaskCheck"]


class MaskCheck:
    """A payload parser for ``RequestHandler``: checks each frame header, then feeds ``inner``."""

    __slots__ = ("inner", "queue", "_head", "_skip", "_failed")

    def __init__(self, inner: Any, queue: Any) -> None:
        self.inner = inner          # aiohttp's WebSocketReader
        self.queue = queue          # its WebSocketDataQueue (what ``receive`` reads)
        self._head = bytearray()    # bytes of a frame header seen so far
        self._skip = 0              # payload bytes of the current frame still to pass
        self._failed = False

    def feed_eof(self) -> None:
        self.inner.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._failed:
            return True, b""
        bad_at = self._scan(data)
        if bad_at < 0:
            return self.inner.feed_data(data)
        if bad_at:
            self.inner.feed_data(data[:bad_at])  # the frames before the bad one are fine
        self._failed = True
        self.queue.set_exception(WebSocketError(WSCloseCode.PROTOCOL_ERROR, "Received an unmasked frame"))
        return True, b""

    def _scan(self, data: bytes) -> int:
        """Index in ``data`` where an unmasked frame's header starts, or -1."""
        pos, n = 0, len(data)
        while pos < n:
            if self._skip:
                take = min(self._skip, n - pos)
                self._skip -= take
                pos += take
                continue
            if not self._head and n - pos >= 14:
                # Fast path: the whole header (at most 14 bytes) is in this chunk.
                b1 = data[pos + 1]
                if not b1 & 0x80:
                    return pos
                ln = b1 & 0x7F
                if ln < 126:
                    pos += 6 + ln
                elif ln == 126:
                    pos += 8 + int.from_bytes(data[pos + 2:pos + 4], "big")
                else:
                    pos += 14 + int.from_bytes(data[pos + 2:pos + 10], "big")
                if pos > n:
                    self._skip = pos - n
                continue
            pos, bad = self._scan_split_header(data, pos)
            if bad is not None:
                return bad
        return -1

    def _scan_split_header(self, data: bytes, pos: int) -> tuple[int, int | None]:
        """A header cut by a chunk boundary: collect it byte range by byte range."""
        head = self._head
        start = pos - len(head)  # < 0 when the header began in an earlier chunk
        need = _header_len(head[1]) if len(head) >= 2 else 2
        take = min(need - len(head), len(data) - pos)
        head += data[pos:pos + take]
        pos += take
        if len(head) < 2:
            return pos, None
        if not head[1] & 0x80:
            return pos, max(start, 0)
        need = _header_len(head[1])
        if len(head) < need:
            return pos, None
        ln = head[1] & 0x7F
        if ln == 126:
            ln = int.from_bytes(head[2:4], "big")
        elif ln == 127:
            ln = int.from_bytes(head[2:10], "big")
        self._skip = ln
        head.clear()
        return pos, None


def _header_len(b1: int) -> int:
    ln = b1 & 0x7F
    return 2 + (2 if ln == 126 else 8 if ln == 127 else 0) + (4 if b1 & 0x80 else 0)


class GuardedWebSocketResponse(web.WebSocketResponse):
    """``web.WebSocketResponse`` whose incoming frames pass ``MaskCheck`` first."""

    def _post_start(self, request: web.BaseRequest, protocol: Any, writer: Any) -> None:
        proto = request.protocol
        # set_parser feeds what came with the handshake straight to aiohttp's reader: hold it.
        tail = getattr(proto, "_message_tail", b"")
        if tail:
            proto._message_tail = b""
        super()._post_start(request, protocol, writer)
        inner = getattr(self, "_parser", None)
        queue = getattr(self, "_reader", None)
        current = getattr(proto, "_payload_parser", None)
        if inner is None or queue is None or current is not inner:
            if tail and current is not None:  # layout changed: no guard, but never lose input
                current.feed_data(tail)
            return
        guard = MaskCheck(inner, queue)
        proto._payload_parser = guard
        if tail:
            eof, _ = guard.feed_data(tail)
            if eof:
                proto.close()
