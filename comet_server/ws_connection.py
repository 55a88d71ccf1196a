"""An upgraded WebSocket connection, once aiohttp has let go of it (design.md §3, issue 13).

aiohttp parses the HTTP request and routes ``/ws/…`` to ws.py, which answers the upgrade with
websockets' sans-I/O ``ServerProtocol`` (``handshake``), takes the transport away from aiohttp
(``detach``) and gives it to a ``WsConnection``: an ``asyncio.Protocol`` around a
``websockets.protocol.Protocol`` in the OPEN state. The handler then returns, so aiohttp's
request, handler task, parser and RequestHandler are freed; an idle connection costs the
transport, websockets' Protocol, this object and the Client (bench/README.md §3).

websockets does all the framing of what comes in and of its own control frames: masking (1002
for an unmasked frame), opcodes and reserved bits (1002), sizes (1009 for a message over
``WS_MAX_SIZE``, counted over all its fragments), close reasons (1007 for invalid UTF-8), pings
(it queues the pong), the close handshake. WsConnection joins fragments, decodes commands (1007
for invalid UTF-8) and hands them to ws.handle_command. The Client writes its pre-built frames
(wire.Out) straight to the same transport; every write is synchronous, so frames go out in the
order of the calls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable, cast

from aiohttp import web
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

if TYPE_CHECKING:
    from .hub import Client, Hub

__all__ = ["WsConnection", "handshake", "detach", "Detached", "WS_MAX_SIZE", "CLOSE_ABORT_DELAY"]

#: websockets fails a message *longer* than max_size: 65,535 bytes pass, 65,536 get 1009 (as
#: CppComet, which closes above a 16-bit length; ws.MAX_MSG_SIZE is the first size refused).
WS_MAX_SIZE = 65535
#: a connection we close gets this long to flush (its close frame too) before it is aborted.
CLOSE_ABORT_DELAY = 5.0

#: websockets' Protocol logs "connection closed" at INFO for every connection: not news here.
_protocol_log = logging.getLogger("comet_server.ws.protocol")
_protocol_log.setLevel(logging.WARNING)

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_OPEN = State.OPEN
_Bytes = bytes | bytearray | memoryview


def handshake(request: web.Request) -> bytes | None:
    """The 101 response to an aiohttp request (websockets' ``ServerProtocol.accept``), or None
    when it is no valid WebSocket upgrade. Like CppComet's clients expect, the first offered
    subprotocol is echoed (browsers fail a reply naming one they did not offer)."""
    if request.method != "GET" or request.version < (1, 1):
        return None
    sp = ServerProtocol(max_size=WS_MAX_SIZE, logger=_protocol_log,
                        select_subprotocol=lambda _p, offered: offered[0] if offered else None)
    headers = Headers()
    for k, v in request.raw_headers:
        headers[k.decode("latin-1")] = v.decode("latin-1")
    resp = sp.accept(WsRequest(request.raw_path, headers))
    if resp.status_code != 101:
        return None
    sp.send_response(resp)
    return b"".join(sp.data_to_send())


def detach(request: web.Request, new: asyncio.Protocol) -> tuple[asyncio.Transport, bytes]:
    """Take the connection away from aiohttp and give it to ``new``; returns the transport and
    the bytes that came after the upgrade request.

    Pinned to aiohttp 3.14.5 internals, guarded by tests/hostile/test_ws_hostile.py
    (``test_the_connection_leaves_aiohttp_after_the_upgrade``): ``RequestHandler`` closes its transport when the handler returns (end of ``start()``), so its
    ``transport`` is set to None (``force_close``/``close`` then leave the socket alone) and
    ``connection_lost(None)`` is called on it, so that aiohttp's ``Server`` forgets it
    (``_connections``; ``shutdown`` no longer waits for it) and its keep-alive timer is cancelled.
    Bytes after the upgrade request wait in ``_message_tail`` (no payload parser is set, because
    no aiohttp WebSocketResponse was prepared); a long tail may have paused reading. The
    connection gate (limits._GatedProtocol), when there is one, stays the transport's protocol and
    passes events on to ``new``, so the connection stays counted until it is lost."""
    proto = request.protocol
    tr = request.transport
    if tr is None or not hasattr(proto, "_message_tail"):
        raise RuntimeError("aiohttp's RequestHandler layout changed: cannot take the connection over")
    tail = bytes(proto._message_tail)
    proto._message_tail = b""
    outer = tr.get_protocol()
    if getattr(outer, "_inner", None) is proto:
        outer._inner = new  # type: ignore[attr-defined]
    else:
        tr.set_protocol(new)
    proto.transport = None
    proto.connection_lost(None)
    if not tr.is_reading():
        tr.resume_reading()
    return tr, tail


class Detached(web.StreamResponse):
    """What the handler returns once the connection is no longer aiohttp's: nothing to send."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class WsConnection(asyncio.Protocol):
    """One upgraded connection. Also what Client calls its ``ws``: ``closed``, ``send_ping``,
    ``send_close``."""

    __slots__ = ("p", "transport", "hub", "client", "expiry", "_parts", "_abort")

    #: runs one command frame; ws.py sets it to ``ws.handle_command`` (it imports this module)
    on_command: "Callable[[Hub, Client, str], None]"

    def __init__(self, hub: "Hub", transport: asyncio.Transport) -> None:
        p = Protocol(Side.SERVER, state=_OPEN, max_size=WS_MAX_SIZE, logger=_protocol_log)
        p.id = None  # type: ignore[assignment]  # a uuid4 per connection, only for its log lines
        self.p = p
        self.transport = transport
        self.hub = hub
        self.client: Client | None = None
        #: the timer that closes a JWT login when its token expires
        self.expiry: asyncio.TimerHandle | None = None
        #: fragments of the message being received (None: no fragmented message under way)
        self._parts: list[_Bytes] | None = None
        #: aborts the transport if closing it takes longer than CLOSE_ABORT_DELAY
        self._abort: asyncio.TimerHandle | None = None

    # -- what Client uses ----------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.p.state is not _OPEN

    def send_ping(self, payload: bytes) -> None:
        if self.p.state is _OPEN:
            self.p.send_ping(payload)
            self._flush()

    def send_close(self, code: int, reason: str = "") -> None:
        """Close frame (if the handshake is not already closing), then close the TCP connection
        without waiting for the peer's close frame (aborted after CLOSE_ABORT_DELAY)."""
        p = self.p
        if p.state is _OPEN:
            try:
                p.send_close(code, reason)
            except Exception:  # noqa: BLE001 - an invalid code: close without a frame
                pass
        self._flush()
        self._close_transport()

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        p = self.p
        p.receive_data(data)
        # only frames once the Protocol is OPEN (requests and responses are the handshake's)
        events = cast("list[Frame]", p.events_received())
        if events:
            client = self.client
            if client is not None:  # a complete frame, not a trickle of bytes, shows it alive
                client.last_rx = self.hub.loop_time()
            for frame in events:
                op = frame.opcode
                if op is _TEXT or op is _BINARY:
                    if frame.fin:
                        if not self._message(frame.data):
                            break
                    else:
                        self._parts = [frame.data]
                elif op is _CONT:
                    parts = self._parts
                    if parts is None:  # websockets refuses a stray continuation: not reached
                        continue
                    parts.append(frame.data)
                    if frame.fin:
                        self._parts = None
                        if not self._message(b"".join(parts)):
                            break
                elif op is _PONG:
                    if client is not None:
                        client.on_pong(bytes(frame.data))
                # PING: websockets queued the pong. CLOSE: it queued the answer and the EOF.
                # Both are written after the answers to the commands of the same read, so that a
                # close that came with commands does not cut off their answers.
                if client is not None and client.closed:
                    break
        self._flush()
        client = self.client
        if (client is not None and not client.closed
                and self.transport.get_write_buffer_size() > self.hub.max_client_buffer):
            # e.g. pongs to a ping flood from a peer that reads nothing: as a slow reader
            client.kick(1013, "Try again later: client too slow")

    def _message(self, data: _Bytes) -> bool:
        """One whole message: a command (text; binary frames are read as text too, as before).
        False when the connection failed on it."""
        try:
            text = str(data, "utf-8")
        except UnicodeDecodeError:
            self._fail(1007, "Invalid UTF-8 text message")
            return False
        client = self.client
        if client is not None and not client.closed:
            self.on_command(self.hub, client, text)
        return True

    def _fail(self, code: int, reason: str) -> None:
        try:
            self.p.fail(code, reason)
        except Exception:  # noqa: BLE001 - already closing: just close
            self._close_transport()

    def _flush(self) -> None:
        """Write what websockets has queued (pongs, close frames); close on its EOF marker."""
        tr = self.transport
        for chunk in self.p.data_to_send():
            if chunk:
                if not tr.is_closing():
                    tr.write(chunk)
            else:  # websockets' "close the TCP connection now"
                self._close_transport()

    def _close_transport(self) -> None:
        tr = self.transport
        if not tr.is_closing():
            tr.close()
        if self._abort is None:
            try:
                self._abort = asyncio.get_running_loop().call_later(CLOSE_ABORT_DELAY, tr.abort)
            except RuntimeError:  # no loop (in-memory tests): nothing to wait for
                tr.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._abort is not None:
            self._abort.cancel()  # drops its reference to the transport at once
            self._abort = None
        client, self.client = self.client, None
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if client is not None:  # as ws.close_client: no more output to it, out of the hub
            self.hub.unregister(client)
            client.closed = True
        self._parts = None

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost follows

    def pause_writing(self) -> None:  # Client checks the write buffer size on every write
        pass

    def resume_writing(self) -> None:
        pass

