"""The demo's "server console": what a backend sends to comet_server, from a page (PyScript).

It posts with ``POST /api/publish`` (HTTP Basic: dev_id + CometQL password) and shows, for every
action, the equivalent ``curl`` and ``mysql`` (CometQL) commands. It also mints HS256 JWTs the
way a backend would. The password sits in this page only because this page plays the backend.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import shlex
import time

import js
from pyodide.ffi import create_proxy, jsnull
from pyodide.http import pyfetch

DEFAULT_PASSWORD = "CometQLPassword"
COMETQL_PORT = 3307
_proxies = []


def nn(value):
    return None if value is None or value is jsnull else value


def by_id(name):
    return js.document.getElementById(name)


def value(name):
    return str(by_id(name).value).strip()


def show(element_id, text, kind):
    box = by_id(element_id)
    box.textContent = text
    box.dataset.kind = kind
    box.hidden = False


params = js.URLSearchParams.new(js.location.search)
HOST = str(js.location.host)
ORIGIN = str(js.location.origin)
accounts = []


def dev_id():
    raw = value("dev")
    if not raw.isdigit():
        raise ValueError(f"dev_id must be a number, got {raw!r}")
    return int(raw)


def sql_string(text):
    """A MySQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dq(text):
    """A double-quoted shell word (readable for SQL full of single quotes)."""
    for ch in ("\\", '"', "$", "`"):
        text = text.replace(ch, "\\" + ch)
    return '"' + text + '"'


def commands(body):
    """curl and mysql commands doing what ``body`` (an /api/publish body) does."""
    dev, password = value("dev") or "15", value("password") or DEFAULT_PASSWORD
    curl = (f"curl -sS -u {shlex.quote(dev + ':' + password)} -H 'Content-Type: application/json' \\\n"
            f"     -d {shlex.quote(json.dumps(body, ensure_ascii=False))} \\\n"
            f"     {ORIGIN}/api/publish")
    message = json.dumps(body["message"], ensure_ascii=False, separators=(",", ":"))
    if "pipe" in body:
        sql = (f"INSERT INTO pipes_messages (name, event, message) VALUES "
               f"({sql_string(body['pipe'])}, {sql_string(body['event'])}, {sql_string(message)})")
    else:
        sql = (f"INSERT INTO users_messages (id, event, message) VALUES "
               f"({int(body['user_id'])}, {sql_string(body['event'])}, {sql_string(message)})")
    host = HOST.rsplit(":", 1)[0]
    mysql = (f"mysql -h{host} -P{COMETQL_PORT} -u{dev} -p{shlex.quote(password)} -DCometQL_v1 \\\n"
             f"      -e {dq(sql)}")
    return curl, mysql


def system_body():
    return {"pipe": f"web_{value('room') or 'lobby'}", "event": "system", "message": {"text": value("sys-text")}}


def private_body():
    return {"user_id": int(value("pm-user") or 1), "event": "private",
            "message": {"from": value("pm-from") or "the backend", "text": value("pm-text")}}


def refresh_commands(*_):
    try:
        for prefix, body in (("sys", system_body()), ("pm", private_body())):
            curl, mysql = commands(body)
            by_id(f"{prefix}-curl").textContent = curl
            by_id(f"{prefix}-sql").textContent = mysql
    except Exception as exc:  # a half-typed field: keep the old commands
        js.console.debug(f"console: {exc}")


REFUSED = ("Refused (HTTP 401): the server did not accept this dev_id and password. "
           "Check the CometQL password (comet_server's --password).")


async def publish(body, result_id, button_id):
    button = by_id(button_id)
    try:
        dev = dev_id()
        if not str(body["message"].get("text", "")).strip():
            raise ValueError("Type a text first.")
        token = base64.b64encode(f"{dev}:{value('password')}".encode()).decode()
        show(result_id, "sending…", "pending")
        button.disabled = True
        # X-Requested-With: answer a wrong password with JSON, not with a Basic challenge (the
        # browser's own login prompt would hold this request open).
        resp = await pyfetch("/api/publish", method="POST", body=json.dumps(body),
                             headers={"Authorization": f"Basic {token}", "Content-Type": "application/json",
                                      "X-Requested-With": "fetch"})
        text = await resp.string()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if resp.status == 404:
            show(result_id, "This server has no POST /api/publish: use the mysql command below.", "error")
        elif resp.status == 401:
            show(result_id, REFUSED, "error")
        elif answer is None:
            show(result_id, f"HTTP {resp.status}: {text[:300]}", "error")
        else:
            show(result_id, f"HTTP {resp.status} {json.dumps(answer)}", "ok" if answer.get("ok") else "error")
    except ValueError as exc:
        show(result_id, str(exc), "error")
    except Exception as exc:
        show(result_id, f"{type(exc).__name__}: {exc}", "error")
    finally:
        button.disabled = False


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint_jwt(user_id, minutes, secret):
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"user_id": user_id, "exp": int(time.time()) + 60 * minutes}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


state = {"token": None, "user_id": None}


def on_mint():
    try:
        dev = dev_id()
        minutes = int(value("jwt-minutes") or "60")
        if not 1 <= minutes <= 60 * 24 * 30:
            raise ValueError("between 1 minute and 30 days")
    except ValueError as exc:
        by_id("jwt-result").hidden = False
        by_id("jwt-token").textContent = f"Cannot mint: {exc}"
        return
    user_id = int(value("jwt-user"))
    token = mint_jwt(user_id, minutes, value("password") + str(dev))
    state.update(token=token, user_id=user_id)
    by_id("jwt-token").textContent = token
    by_id("jwt-code").textContent = (
        "# backend (PyJWT):\n"
        f"token = jwt.encode({{\"user_id\": {user_id}, \"exp\": int(time.time()) + {60 * minutes}}},\n"
        f"                   PASSWORD + str({dev}), algorithm=\"HS256\")\n"
        "# page:\n"
        f"cometApi.start({{\"dev_id\": {dev}, \"user_id\": {user_id}, \"user_key\": token, \"node\": \"{HOST}\"}})")
    by_id("jwt-result").hidden = False


def on_use_token():
    if not state["token"]:
        return
    dev = value("dev") or "15"
    name = next((a["name"] for a in accounts if a["id"] == state["user_id"]), f"user {state['user_id']}")
    js.localStorage.setItem(f"comet_demo:{dev}:identity",
                            json.dumps({"name": name, "user_id": state["user_id"], "key": state["token"]}))
    js.window.open(f"/demo/chat/index.html?dev={dev}&room={value('room') or 'lobby'}", "_blank")


def on_submit(element_id, fn):
    def listener(ev):
        ev.preventDefault()
        result = fn()
        if asyncio.iscoroutine(result):
            asyncio.ensure_future(result)

    proxy = create_proxy(listener)
    _proxies.append(proxy)
    by_id(element_id).addEventListener("submit", proxy)


async def main():
    global accounts
    by_id("dev").value = nn(params.get("dev")) or "15"
    by_id("room").value = nn(params.get("room")) or "lobby"
    by_id("password").value = DEFAULT_PASSWORD
    try:
        accounts = (await (await pyfetch("/demo/accounts.json")).json())["users"]
    except Exception:
        accounts = []
    for select_id in ("pm-user", "jwt-user"):
        select = by_id(select_id)
        for acc in accounts:
            option = js.document.createElement("option")
            option.value = str(acc["id"])
            option.textContent = f"{acc['name']} (user_id {acc['id']})"
            select.appendChild(option)
    on_submit("sys-form", lambda: publish(system_body(), "sys-result", "sys-send"))
    on_submit("pm-form", lambda: publish(private_body(), "pm-result", "pm-send"))
    on_submit("jwt-form", on_mint)
    use = create_proxy(lambda _e: on_use_token())
    _proxies.append(use)
    by_id("jwt-use").addEventListener("click", use)
    changed = create_proxy(refresh_commands)
    _proxies.append(changed)
    for field in ("dev", "password", "room", "sys-text", "pm-user", "pm-from", "pm-text"):
        by_id(field).addEventListener("input", changed)
    refresh_commands()
    pill = by_id("ready")
    pill.dataset.state = "connected"
    pill.textContent = "ready"


async def boot():
    ok = False
    try:
        await main()
        ok = True
    finally:
        js.window.demoFormsReady(ok)  # demo/boot.js: forms live, a submit made while loading runs now
        js.window.demoReady = True


asyncio.ensure_future(boot())
