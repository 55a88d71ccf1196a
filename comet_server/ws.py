"""The WebSocket endpoint and its commands (design.md §3, docs/protocol.md §1-§3).

``handle_ws`` answers the upgrade and hands the connection to ws_connection.WsConnection, which
frames and checks what comes in (websockets' sans-I/O Protocol: 1002, 1007, 1009) and runs each
command through ``handle_command``; no task, no aiohttp object stays behind per connection.
websockets answers pings; a pong confirms the personal messages written before our ping
(hub.py: ``Client.on_pong``); the Hub's keepalive sweep pings silent connections. Every command
handler is wrapped so that no input can take the server (or the connection) down: an unexpected
exception is answered with an error frame and logged at most once per interval (``ratelog``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Mapping

from sys import intern

from aiohttp import web

from . import wire
from .names import (MAX_ID_DIGITS, MAX_NAME_LEN, MIN_READ_NAME_LEN, NAME_SEPARATORS_RE, has_name_chars, is_name,
                    parse_id)
from .appkeys import HUB_KEY
from .hub import Client
from .seams import HubAPI as Hub
from .ratelog import RateLimitedLog
from .ws_connection import WS_MAX_SIZE, Detached, WsConnection, detach, handshake

__all__ = ["handle_ws", "refusal", "open_client", "close_client", "handle_command", "is_ws_path",
           "normalize_origin", "ALLOWED_ORIGINS_KEY", "MAX_MSG_SIZE", "MAX_SUBSCRIPTIONS", "WS_PREFIXES"]

log = logging.getLogger("comet_server.ws")
#: per-input problems (a failing command, a broken connection): once per interval, with a count.
input_log = RateLimitedLog(log)
#: RFC 6455 close code 1013 (IANA registry): the server cannot take the connection for now
TRY_AGAIN_LATER = 1013

WS_PREFIXES = ("/ws/", "//ws/", "/comet-server/ws/", "//comet-server/ws/")
#: the first message size refused: a message of 65536 bytes or more (all its fragments together)
#: closes the connection with 1009, i.e. "over 65535 bytes" as in design.md §3 and CppComet
#: (which closes on a 64-bit length).
MAX_MSG_SIZE = WS_MAX_SIZE + 1
MAX_SUBSCRIPTIONS = 256

ERR_CHARS = "The channel name can only contain characters A-Za-z0-9_-"
ERR_EVENT_CHARS = "The event name can only contain characters A-Za-z0-9_-"


#: --allowed-origins, normalized; empty = any Origin (CppComet checks none)
ALLOWED_ORIGINS_KEY: web.AppKey[frozenset[str]] = web.AppKey("comet_allowed_origins", frozenset)


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def is_ws_path(raw_path: str) -> bool:
    return raw_path.startswith(WS_PREFIXES)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    """Answer the upgrade, hand the connection to a WsConnection and return at once (see
    ws_connection.py): from here on the connection is no longer aiohttp's."""
    hub: Hub = request.app[HUB_KEY]
    allowed = request.app.get(ALLOWED_ORIGINS_KEY)
    origin = request.headers.get("Origin")
    # Only browsers send Origin; a client without one is not a page of another site.
    if allowed and origin is not None and normalize_origin(origin) not in allowed:
        log.info("ws upgrade refused from %s: Origin %r is not in --allowed-origins",
                 request.remote, origin[:100])
        return web.Response(status=403, text="Origin not allowed\n")
    accept = handshake(request)
    if accept is None:
        return web.Response(status=400, text="WebSocket upgrade expected\n")
    ip = request.remote or ""
    conn = WsConnection(hub, request.transport)  # type: ignore[arg-type]
    tr, tail = detach(request, conn)
    tr.write(accept)

    parsed = wire.parse_ws_url(request.raw_path)
    if isinstance(parsed, wire.UrlError):
        log.info("ws connect refused from %s: %s %s", ip, parsed.code, parsed.text)  # no URL: it holds credentials
        text, code, reason = refusal(hub, parsed)
        tr.write(wire.text_frame(text.encode("utf-8")))
        conn.send_close(code, reason)
        return Detached()
    try:
        conn.client, conn.expiry = open_client(hub, parsed, request.headers, ip, conn, tr)
    except hub.store_away as e:  # Redis is away: the login cannot be checked now, later it can
        input_log.report("ws login while the store is away", "ws connection refused for now: %s", e)
        conn.send_close(TRY_AGAIN_LATER, "Try again later")
        return Detached()
    except Exception:  # noqa: BLE001
        input_log.report("ws connection failed", "ws connection failed", exc_info=True, level=logging.ERROR)
        conn.send_close(1011, "Internal server error")
        return Detached()
    if tail:  # frames that came with the handshake
        conn.data_received(tail)
    return Detached()


def refusal(hub: Hub, err: wire.UrlError) -> tuple[str, int, str]:
    """What a connection whose URL does not parse gets: this text, then a close (code, reason)."""
    return wire.dumps(wire.connect_error_obj(err, hub.now())), 1008, f"Error code {err.code}"


def open_client(hub: Hub, url: wire.WsUrl, headers: Mapping[str, str], ip: str, ws: Any,
                transport: Any) -> tuple[Client, asyncio.TimerHandle | None]:
    """Start a connection whose URL parsed: authorize it, write its serverInfo, register it with
    the hub (which writes its offline queue). A JWT login also gets the timer that closes it when
    the token expires. Pass both to ``close_client`` when the connection ends. The tests'
    in-memory server (tests/support/fake_browser.py) opens its connections here too."""
    login = hub.login(url.dev_id, url.user_id, url.session)
    authorized = login.authorized
    client = Client(
        hub, ws, transport, dev_id=url.dev_id,
        user_id=url.user_id if authorized else 0, authorized=authorized, uuid=url.uuid,
        # interned: thousands of connections from the same browsers share one copy of each
        user_agent=intern(headers.get("User-Agent", "")[:250]), ip=intern(ip),
        origin=intern(headers.get("Origin", "")[:250]), language=intern(headers.get("Accept-Language", "")[:64]),
        legacy=url.major < 4)
    try:
        client.send_obj({"authorized": authorized, "data": login.key, "event": "serverInfo",
                         "message_send_time": hub.now(), "pipe": "sys", "server": hub.server_name})
        hub.register(client)
        expiry = None
        if login.expires is not None:  # a JWT login ends with its token: the client reconnects
            expiry = asyncio.get_running_loop().call_later(
                max(0.0, login.expires - hub.clock()), client.kick, 1008, "Token expired")
    except BaseException:
        close_client(hub, client, None)
        raise
    return client, expiry


def close_client(hub: Hub, client: Client, expiry: asyncio.TimerHandle | None) -> None:
    """The connection ended, from either side: no more output to it, out of the hub."""
    if expiry is not None:
        expiry.cancel()
    hub.unregister(client)
    client.closed = True


# ------------------------------------------------------------------------------------------------
# Commands

def handle_command(hub: Hub, client: Client, text: str) -> None:
    """Run one client frame ``<command>\\n<args>``; never raises."""
    nl = text.find("\n")
    if nl < 0:
        cmd, args = text, ""
    else:
        cmd, args = text[:nl], text[nl + 1:]
    cmd = cmd.strip()
    handler = COMMANDS.get(cmd)
    try:
        if handler is None:
            _error(client, "Unknown command")
            return
        handler(hub, client, args)
    except Exception:  # noqa: BLE001
        input_log.report(f"command {cmd[:40]!r} failed", "command %r failed", cmd[:40], exc_info=True,
                         level=logging.ERROR)
        try:
            _error(client, "Internal server error")
        except Exception:  # noqa: BLE001
            pass


def _error(client: Client, text: str, **extra: Any) -> None:
    data: dict[str, Any] = {"error": text, "number_messages": -1}
    data.update(extra)
    client.send_obj({"data": data, "event": "error", "message_send_time": client.hub.now(), "pipe": "sys"})


def read_refusal(client: Client, name: str) -> str | None:
    """Why ``client`` may not read channel ``name`` (a valid name: [A-Za-z0-9_-]+), or None.

    One rule for every way of reading a channel: ``subscription`` (live messages) and
    ``pipe_log`` (its history) refuse the same names with the same error text."""
    if len(name) < MIN_READ_NAME_LEN:
        return "Invalid pipe name length"
    if len(name) > MAX_NAME_LEN:
        return "Channel name is too long"
    if name.startswith("private_") and not client.authorized:
        return "[subscription] Invalid user auth. The channel private_ is only for authorized users"
    return None


def cmd_subscription(hub: Hub, client: Client, args: str) -> None:
    """Replace the subscription set. Bad names get an error frame, the rest still applies."""
    names: list[str] = []
    seen: set[str] = set()
    errors: dict[str, None] = {}
    too_many = False
    for name in NAME_SEPARATORS_RE.split(args):
        if not name or name in seen:
            continue
        refusal = read_refusal(client, name)
        if refusal is not None:
            errors[refusal] = None
            continue
        if len(names) >= MAX_SUBSCRIPTIONS:
            too_many = True
            continue
        seen.add(name)
        names.append(name)
    if too_many:
        errors["Too many letters"] = None
    for e in errors:
        _error(client, e)
    hub.set_subscription(client, names)


def cmd_web_pipe2(hub: Hub, client: Client, args: str) -> None:
    parts = args.split("\n", 3)
    if len(parts) < 4:
        _error(client, "[pipe_msg2] Invalid arguments. Expected web_pipe2\\n<pipe>\\n<event>\\n<auth_type>\\n<message>")
        return
    pipe, event, auth_type, message = parts
    anonymous = pipe.startswith("@")
    name = pipe[1:] if anonymous else pipe
    if not has_name_chars(name):
        _error(client, ERR_CHARS)
        return
    if not name or len(name) > MAX_NAME_LEN:
        _error(client, "Invalid pipe name length")
        return
    if not has_name_chars(event):
        _error(client, ERR_EVENT_CHARS)
        return
    if len(event) > MAX_NAME_LEN:
        _error(client, "Invalid event name length")
        return
    if len(auth_type) != 1:
        _error(client, "Invalid value auth_type")
        return
    if name.startswith("web_"):
        pass
    elif name.startswith("webauth_"):
        if not client.authorized:
            _error(client, "[webauth_pipe_msg2] Invalid user auth. The channel webauth_ is only for authorized users")
            return
        if anonymous:  # protocol: '@' (send as user 0) is for web_ channels only
            _error(client, "[webauth_pipe_msg2] Invalid channel name. Anonymous send (@) works only with web_ channels")
            return
    else:
        _error(client, "[pipe_msg2] Invalid channel name. The channel should begin with web_")
        return
    user_id = 0 if anonymous else client.user_id
    n, history_id = hub.publish_logged(client.dev_id, name, event, message, user_id=user_id, exclude=client.conn_id)
    # Beyond CppComet: the event, the stamped user_id and the history_id let a client that
    # shares this connection between tabs show the message to its other tabs exactly as sent.
    report: dict = {"event": event, "message": message, "number_messages": n, "user_id": user_id}
    if history_id is not None:
        report["history_id"] = history_id
    client.send_obj({"data": report, "event": "answer",
                     "message_send_time": hub.now(), "pipe": "_answer_to_" + name})


def _pipe_and_marker(args: str) -> tuple[str, str]:
    parts = args.split("\n")
    pipe = parts[0].strip("\r") if parts else ""
    marker = parts[1].strip("\r") if len(parts) > 1 else ""
    return pipe, marker


def cmd_pipe_log(hub: Hub, client: Client, args: str) -> None:
    pipe, marker = _pipe_and_marker(args)
    since_arg = args.split("\n")[2].strip("\r") if args.count("\n") >= 2 else ""
    if not pipe or not has_name_chars(pipe):
        _error(client, "Invalid channel name.")
        return
    refusal = read_refusal(client, pipe)
    if refusal is not None:
        _error(client, refusal)
        return
    if not is_name(marker):
        _error(client, "Invalid marker value.")
        return
    # Beyond CppComet: a history_id on the third line gives only what came after it.
    since = parse_id(since_arg) if since_arg else -1
    if since is None:
        _error(client, f"Invalid history position: expected up to {MAX_ID_DIGITS} digits 0-9.")
        return
    hub.once_receiving(client, pipe, lambda: _send_log(hub, client, pipe, marker, since))


def _send_log(hub: Hub, client: Client, pipe: str, marker: str, since: int) -> None:
    if client.closed:
        return
    items = hub.history(client.dev_id, pipe, after=since)
    for it in items:
        # No "marker" (4.08 drops channel messages whose marker is not its tab's id) and no
        # "uuid" (4.08 drops a uuid it saw before, i.e. the live copy of the same message).
        client.send_obj({"data": it.data, "event": it.event, "fromQueue": True, "history": True,
                         "history_id": it.history_id, "message_send_time": it.time, "pipe": it.pipe,
                         "user_id": it.user_id})
    client.send_obj({"data": {"number_messages": len(items)}, "event": "pipe_log", "marker": marker,
                     "message_send_time": hub.now(), "pipe": "_answer_pipe_log"})


def cmd_pipe_count(hub: Hub, client: Client, args: str) -> None:
    pipe, marker = _pipe_and_marker(args)
    if not is_name(pipe, min_len=1):
        _error(client, "Invalid pipe name.")
        return
    if not is_name(marker):
        _error(client, "Invalid marker value.")
        return
    if not (pipe.startswith("web_") or pipe.startswith("track_")):
        _error(client, "[pipe_count] Invalid channel name. The channel should start with web_")
        return
    client.send_obj({"data": {"user_in_pipe": hub.subscriber_count(client.dev_id, pipe)},
                     "event": "user_in_pipe", "marker": marker, "message_send_time": hub.now(),
                     "pipe": "_answer_pipe_count"})


def cmd_track_pipe_users(hub: Hub, client: Client, args: str) -> None:
    pipe, marker = _pipe_and_marker(args)
    if not pipe.startswith("track_") or not is_name(pipe) or not is_name(marker):
        client.send_obj({"data": {"error": "[track_pipe_users] Invalid channel name. The channel should start with track_",
                                  "user_id": -1},
                         "event": "error", "message_send_time": hub.now(), "pipe": "sys"})
        return
    users = [{"user_id": i.user_id, "uuid": i.uuid} for i in hub.subscribers(client.dev_id, pipe)]
    client.send_obj({"_info": "answer for track_pipe_users", "data": users, "event": "answer",
                     "marker": marker, "message_send_time": hub.now(), "pipe": "_answer"})


def cmd_user_data(hub: Hub, client: Client, args: str) -> None:
    parts = args.split("\n")
    marker = parts[0].strip("\r")
    if not is_name(marker, min_len=1):
        _error(client, "Invalid marker name.")
        return
    uid = parse_id(parts[1].strip() if len(parts) > 1 else "")
    if uid is None:
        _error(client, "Invalid user id")
        return
    data = hub.user_data(client.dev_id, uid)
    client.send_obj({"data": {"user_data": data if data is not None else "", "user_id": uid},
                     "event": "answer", "marker": marker, "message_send_time": hub.now(),
                     "pipe": "_answer"})


def cmd_user_status(hub: Hub, client: Client, args: str) -> None:
    uid = parse_id(args.split("\n")[0].strip())
    if uid is None:
        _error(client, "Invalid user id")
        return
    online = hub.is_online(client.dev_id, uid)
    last = 0 if online else hub.last_seen(client.dev_id, uid)
    client.send_obj({"data": {"last_online_time": last, "online": online}, "event": f"user_status_{uid}",
                     "message_send_time": hub.now(), "pipe": "_answer_user_status"})


def cmd_ignored(hub: Hub, client: Client, args: str) -> None:
    return None


COMMANDS: dict[str, Callable[[Hub, Client, str], None]] = {
    "subscription": cmd_subscription,
    "web_pipe2": cmd_web_pipe2,
    "pipe_log": cmd_pipe_log,
    "pipe_count": cmd_pipe_count,
    "track_pipe_users": cmd_track_pipe_users,
    "user_data": cmd_user_data,
    "user_status": cmd_user_status,
    "statistics": cmd_ignored,
    "CometQL_call": cmd_ignored,
    "cgi_call": cmd_ignored,
}


WsConnection.on_command = staticmethod(handle_command)
