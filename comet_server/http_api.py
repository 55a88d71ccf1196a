"""HTTP publish endpoint: ``POST /api/publish``, for backends without a MySQL client.

It is the same operation as a CometQL INSERT, with the same validation and error codes:

* ``{"pipe": "web_chat", "event": "new", "message": ...}`` = ``INSERT INTO pipes_messages (name, event, message)``
* ``{"user_id": 12, "event": "new", "message": ...}``     = ``INSERT INTO users_messages (id, event, message)``
  (delivered on ``msg`` to every connection of that user, or queued until they next connect)

Authentication is HTTP Basic with user = dev_id (digits; ``root`` or ``0`` = dev_id 0) and the
server's ``--password``, exactly as for CometQL. ``message`` may be a string (sent as is) or any
other JSON value (sent as its compact JSON text). Example::

    curl -sS -u 1:CometQLPassword -H 'Content-Type: application/json' \\
         -d '{"pipe": "web_chat", "event": "new_msg", "message": {"text": "hello"}}' \\
         http://127.0.0.1:8087/api/publish
    {"ok": true, "delivered": 2}

    curl -sS -u 1:CometQLPassword -H 'Content-Type: application/json' \\
         -d '{"user_id": 12, "event": "notice", "message": "you have mail"}' \\
         http://127.0.0.1:8087/api/publish
    {"ok": true, "delivered": 0, "queued": true}

Answers: ``200 {"ok": true, "delivered": N}`` (N = connections it was written to; for a user,
``"queued": true`` when N is 0). Errors: ``{"ok": false, "error": "<text>", "code": <CometQL code>}``
with HTTP 401 (code 16, wrong or missing credentials; with a ``WWW-Authenticate: Basic`` challenge
except for fetch/XHR calls from a page, see ``_from_page_script``), 400 (bad JSON: 3; bad fields: 14; bad
values: 11, 12, 17), 413 (body over the app's size limit: 11) or 500 (500).

Send it from your backend only: the password is the CometQL password, so it must never reach a
browser (the endpoint sends no CORS headers).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import BasicAuth, web

from .cometql.errors import AUTH, BAD_COLUMNS, INTERNAL, SYNTAX, TOO_LONG, CometQLError
from .cometql.server import MAX_QUERY_LEN, dev_id_of
from .cometql.tables import publish_to_pipe, send_to_user

log = logging.getLogger("comet_server.http_api")

PUBLISH_PATH = "/api/publish"
_KEYS = {"pipe", "user_id", "event", "message"}


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": msg, "code": code}, status=status, headers=headers)


def _check_auth(request: web.Request, password: str) -> int | None:
    header = request.headers.get("Authorization", "")
    try:
        creds = BasicAuth.decode(header, encoding="utf-8")
    except ValueError:
        return None
    dev_id = dev_id_of(creds.login)
    if dev_id is None:
        return None
    if not hmac.compare_digest(creds.password.encode("utf-8"), password.encode("utf-8")):
        return None
    return dev_id


def _from_page_script(request: web.Request) -> bool:
    """A fetch()/XHR call from a page. Such callers get a 401 without the Basic challenge: on a
    challenge the browser opens its own login prompt and the script's request does not settle
    until the user answers it. Browsers mark these calls with ``Sec-Fetch-Mode`` (anything but
    ``navigate``; sent to trustworthy origins only); ``X-Requested-With`` covers the rest."""
    mode = request.headers.get("Sec-Fetch-Mode")
    return "X-Requested-With" in request.headers or (mode is not None and mode != "navigate")


def _message_text(message: Any) -> str:
    if isinstance(message, str):
        return message
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def setup_routes(app: web.Application, hub: Any) -> None:
    """Add ``POST /api/publish`` to ``app``; ``hub`` is the comet_server Hub."""

    async def publish(request: web.Request) -> web.Response:
        dev_id = _check_auth(request, hub.password)
        if dev_id is None:
            challenge = None if _from_page_script(request) else {"WWW-Authenticate": 'Basic realm="comet_server"'}
            return _error(401, AUTH, "Authentication failed: use HTTP Basic with user = dev_id, "
                                     "password = the CometQL password", headers=challenge)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, TOO_LONG, "Request body is too large")
        try:
            req = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, SYNTAX, "The body is not valid JSON")
        if not isinstance(req, dict):
            return _error(400, BAD_COLUMNS, "The body must be a JSON object")
        unknown = sorted(set(req) - _KEYS)
        if unknown:
            return _error(400, BAD_COLUMNS, f"Unknown field(s): {', '.join(unknown)}")
        if ("pipe" in req) == ("user_id" in req):
            return _error(400, BAD_COLUMNS, 'Give exactly one of "pipe" or "user_id"')
        for key in ("event", "message"):
            if key not in req:
                return _error(400, 12, f'Missing field "{key}"')
        event = req["event"]
        if not isinstance(event, str):
            return _error(400, 12, '"event" must be a string')
        text = _message_text(req["message"])
        if len(text) > MAX_QUERY_LEN:
            return _error(400, TOO_LONG, f"message is longer than {MAX_QUERY_LEN} characters")
        try:
            if "pipe" in req:
                pipe = req["pipe"]
                if not isinstance(pipe, str):
                    return _error(400, 12, '"pipe" must be a string')
                n = publish_to_pipe(hub, dev_id, pipe, event, text)
                return web.json_response({"ok": True, "delivered": n})
            user_id = req["user_id"]
            if isinstance(user_id, bool) or not isinstance(user_id, (int, str)):
                return _error(400, 12, '"user_id" must be an integer')
            n = send_to_user(hub, dev_id, user_id, event, text)
            return web.json_response({"ok": True, "delivered": n, "queued": n == 0})
        except CometQLError as e:
            return _error(400, e.code, e.msg)
        except Exception:  # noqa: BLE001
            log.exception("HTTP publish failed")
            return _error(500, INTERNAL, "Internal error")

    app.router.add_post(PUBLISH_PATH, publish)
