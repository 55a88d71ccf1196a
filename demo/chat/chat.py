"""The comet_py demo chat, in Python (PyScript). Served by comet_server as /demo/chat/chat.py.

The same module runs on Pyodide (``/demo/chat/index.html``) and on MicroPython
(``/demo/chat/index.html?python=micropython``, demo/boot.js picks the interpreter): the few
differences between the two are in "the two interpreters" below, nowhere else.

URL options: ``?room=lobby&dev=15&node=host:port`` (defaults: room ``lobby``, dev_id 15, the
page's own host); ``node=a:8087,b:8088`` gives comet_py the nodes of a cluster.

Channels of room R:
  web_R                 the chat (history on, seeded by demo/seed.py); event "chat" = a message
                        {id, name, text, from}; any other event (e.g. "system" from the backend)
                        is shown as a system message
  #web_R                delivery reports of what this tab sent
  web_R_who             roster announcements: "who" (tell me who is here), "here" {uuid, name},
                        "bye" {uuid}; no history
  track_R               presence: subscribed only while joined; join/leave events carry the uuid
  user_status_<id>      online / offline of the demo's signed-in users
  msg                   private messages (signed-in users only; sent by the backend)

Everything a user typed reaches the page through ``textContent``, never as HTML.
"""

import asyncio
import json
import sys

import js

from comet_py import aio, cometApi
# comet_py's FFI layer already knows the interpreter; now_ms is Date.now, or time.time() on
# MicroPython (it cuts a JS integer to 32 bits); random_id uses crypto.getRandomValues
# (MicroPython's random is a weak PRNG)
from comet_py.browser import MICROPYTHON, create_proxy, now_ms, random_id

NAVIGATED_MS = float(js.performance.now())  # when this module started, in ms since navigation

# -- the two interpreters ----------------------------------------------------------------------

if MICROPYTHON:
    INTERPRETER = "MicroPython"
    VERSION = "MicroPython " + ".".join(str(n) for n in sys.implementation.version[:3])
    jsnull = None  # MicroPython gives JavaScript null as None

    def to_json(data):
        return json.dumps(data)  # MicroPython writes non-ASCII as it is (and has no ensure_ascii)

    def is_coroutine(value):
        return type(value).__name__ == "generator"  # an async def's call, on MicroPython
else:
    from pyodide import __version__ as pyodide_version
    from pyodide.ffi import jsnull

    INTERPRETER = "Pyodide"
    VERSION = f"Pyodide {pyodide_version} (Python {sys.version.split()[0]})"

    def to_json(data):
        return json.dumps(data, ensure_ascii=False)

    is_coroutine = asyncio.iscoroutine

#: (first, last) code points of the control, format, private-use and surrogate characters
#: (general categories Cc, Cf, Co, Cs of Unicode 16.0): MicroPython has no unicodedata.
#: tests/unit/test_demo_chat.py checks this against CPython's unicodedata.
HIDDEN_RANGES = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xD800, 0xF8FF),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD),
)


def is_hidden(char):
    """A control or invisible character (or one no font shows): not in a display name."""
    cp = ord(char)
    return any(first <= cp <= last for first, last in HIDDEN_RANGES)


def call_soon(fn):
    aio.call_later(0, fn)


async def fetch_json(url):
    response = await js.fetch(url)  # the browser's fetch: the same on both
    if not response.ok:
        raise OSError(f"HTTP {response.status}")
    return json.loads(str(await response.text()))


# -- the page ----------------------------------------------------------------------------------

doc = js.document
_proxies = []  # every JS callback made here stays referenced for the page's lifetime


def proxy(fn):
    p = create_proxy(fn)
    _proxies.append(p)
    return p


def nn(value):
    """JavaScript null (``jsnull`` in Pyodide, None in MicroPython) as None."""
    return None if value is None or value is jsnull else value


def by_id(name):
    return nn(doc.getElementById(name))


def el(tag, cls=None, text=None, *, typed=False, **data):
    """A new element; ``text`` goes in as text (never parsed as HTML). ``typed``: text someone
    typed, laid out in its own direction (``dir="auto"``: Arabic or Hebrew reads right to left)."""
    node = doc.createElement(tag)
    if cls:
        node.className = cls
    if text is not None:
        node.textContent = str(text)
    if typed:
        node.setAttribute("dir", "auto")
    for key, value in data.items():
        node.setAttribute(f"data-{key}", str(value))
    return node


def show_error(text):
    box = by_id("error")
    box.textContent = str(text)
    box.hidden = False


def clear_error():
    by_id("error").hidden = True


def show_warn(text):
    box = by_id("warn")
    if text:
        box.textContent = str(text)
        box.hidden = False
    else:
        box.hidden = True


def report_exception(exc):
    if isinstance(exc, ValueError):  # the user's mistake: on the page only
        show_error(str(exc))
        return False
    show_error(f"Something went wrong: {type(exc).__name__}: {exc}")  # a bug: page and console
    return True


async def _finish(coro):
    try:
        await coro
    except Exception as exc:
        if report_exception(exc):
            raise


def guard(fn):
    """A UI handler run at once (it reads the form before the user types on); a coroutine it
    returns runs on. Any error ends up on the page."""

    def handler(*args):
        try:
            result = fn(*args)
        except Exception as exc:
            if report_exception(exc):
                raise
            return
        if is_coroutine(result):
            aio.ensure_future(_finish(result))

    return handler


def on(element_id, event, fn, prevent=False):
    guarded = guard(fn)

    def listener(ev):
        if prevent:
            ev.preventDefault()
        guarded()

    by_id(element_id).addEventListener(event, proxy(listener))


def clock(ms):
    d = js.Date.new(ms)
    return f"{int(d.getHours()):02d}:{int(d.getMinutes()):02d}"


# -- configuration ---------------------------------------------------------------------------

params = js.URLSearchParams.new(js.location.search)


def param(name, default):
    value = nn(params.get(name))
    return default if value is None or str(value) == "" else str(value)


ROOM = param("room", "lobby")
NODES = [n for n in param("node", "").split(",") if n] or [str(js.location.host)]
try:
    DEV_ID = int(param("dev", "15"))
except ValueError:
    DEV_ID = None
PIPE = f"web_{ROOM}"
WHO_PIPE = f"web_{ROOM}_who"
TRACK_PIPE = f"track_{ROOM}"
IDENTITY_KEY = f"comet_demo:{DEV_ID}:identity"
UUID_KEY = "comet_demo:uuid"
MAX_TEXT = 2000
NAME_MAX = 32
LEAVE_GRACE = 2.5  # s: a leave immediately followed by a join (master tab switch) is no leave
WHO_WAIT = 1.5     # s: after the grace, how long a browser has to answer "who" before it is gone
REPORT_LATE = 10   # s: a send without a delivery report this long says why it is still waiting


def browser_uuid():
    """One id per browser profile (all its tabs): given to start() as the connection uuid, so the
    track_ events of this browser can be matched with its roster announcement."""
    value = nn(js.localStorage.getItem(UUID_KEY))
    if value is None or len(str(value)) != 32:
        value = random_id(32)
        js.localStorage.setItem(UUID_KEY, value)
    return str(value)


UUID = browser_uuid()


def load_identity():
    raw = nn(js.localStorage.getItem(IDENTITY_KEY))
    if raw is None:
        return None
    try:
        ident = json.loads(str(raw))
        return ident if isinstance(ident, dict) and ident.get("name") else None
    except ValueError:
        return None


def save_identity(ident):
    """Stored for every tab of this browser; the others reload on the change ('storage' event)."""
    if ident is None:
        js.localStorage.removeItem(IDENTITY_KEY)
    else:
        js.localStorage.setItem(IDENTITY_KEY, json.dumps(ident))


class State:
    accounts = []         # [{"id", "name", "key"}] from /demo/accounts.json
    identity = None       # {"name", "user_id", "key"} or None (reading only)
    joined = False
    track_sub = None
    msg_sub = None
    history_loaded = False
    seen_ids = set()      # chat message ids shown (exactly once per tab)
    seen_markers = set()  # server markers shown (system messages from history + live)
    mine = {}             # id -> report element of a message this tab sent
    roster = {}           # uuid -> {"name", "user_id"}
    names = {}            # uuid -> last known entry (to re-add after a master-tab switch)
    leaving = {}          # uuid -> aio.call_later handle of a pending leave
    track_left = {}       # uuid -> track_ unsubscriptions seen (a leave or a master-tab switch)
    status_shown = {}     # user_id -> "online" | "offline": the last user_status notice shown
    status_held = {}      # user_id -> aio.call_later handle of an "offline" notice held back
    counts_pending = False
    last_state = None
    connected_ms = None   # performance.now() of the first "connected": the page's load time
    fresh_sign_in = False
    forms_ready = False   # demo/boot.js told that the forms are handled now


S = State()


def account_name(user_id):
    for acc in S.accounts:
        if acc["id"] == user_id:
            return acc["name"]
    return f"user {user_id}"


# -- the message list ------------------------------------------------------------------------

def messages_box():
    return by_id("messages")


def near_bottom():
    box = messages_box()
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80


def place(node, marker=None):
    """Append ``node``; a history item (with its server marker) goes before anything newer."""
    box = messages_box()
    empty = by_id("empty")
    if empty is not None:
        empty.remove()
    stick = near_bottom()
    if marker is not None:
        # History (oldest first) goes before every live item and every newer history item.
        node.setAttribute("data-marker", str(marker))
        for child in box.children:
            other = nn(child.getAttribute("data-marker"))
            if other is None or int(other) > marker:
                box.insertBefore(node, child)
                break
        else:
            box.appendChild(node)
    else:
        box.appendChild(node)
    if stick:
        box.scrollTop = box.scrollHeight


def notice(text, kind="info"):
    place(el("li", "notice", text, kind=kind))


def marker_of(e):
    value = e.server_info.uuid or e.server_info.marker
    return int(value) if isinstance(value, str) and value.isdigit() else None


def render_chat(payload, *, user_id, time_ms, marker=None, history=False, mine=False, note=None):
    msg_id = str(payload.get("id") or "")
    if msg_id:
        if msg_id in S.seen_ids:
            return None
        S.seen_ids.add(msg_id)
    mine = mine or payload.get("from") == UUID
    li = el("li", "msg" + (" mine" if mine else "") + (" history" if history else ""), id=msg_id, kind="chat")
    meta = el("div", "meta")
    if user_id:
        meta.appendChild(el("span", "author", account_name(user_id)))
        meta.appendChild(el("span", "badge verified", f"✓ signed in · #{user_id}"))
    else:
        meta.appendChild(el("span", "author", payload.get("name") or "anonymous", typed=True))
        meta.appendChild(el("span", "badge", "guest"))
    if time_ms:
        meta.appendChild(el("span", "time", clock(time_ms)))
    li.appendChild(meta)
    li.appendChild(el("div", "body", payload.get("text", ""), typed=True))
    report = None
    if mine and not history:
        report = el("div", "report", note or "sending…", kind="pending")
        li.appendChild(report)
    place(li, marker)
    return report


def render_system(data, *, time_ms, marker=None, event="system", history=False):
    if marker is not None:
        if marker in S.seen_markers:
            return
        S.seen_markers.add(marker)
    if isinstance(data, dict):
        text = data.get("text", to_json(data))
    else:
        text = str(data)
    li = el("li", "msg system", kind="system")
    meta = el("div", "meta")
    meta.appendChild(el("span", "author", "server"))
    if event != "system":
        meta.appendChild(el("span", "badge", event))
    if time_ms:
        meta.appendChild(el("span", "time", clock(time_ms)))
    li.appendChild(meta)
    li.appendChild(el("div", "body", text, typed=True))
    place(li, marker if history else None)


def on_chat_message(e):
    info = e.server_info
    marker = marker_of(e)
    time_ms = (info.time or 0) * 1000 or now_ms()
    data = e.data
    if info.event == "chat" and isinstance(data, dict) and "text" in data:
        if marker is not None:
            S.seen_markers.add(marker)
        # comet_py shows this browser's own sends to its other tabs, as the server does for
        # other connections: here they arrive like any message, marked as sent from here.
        note = "sent from another tab of yours" if data.get("from") == UUID and not info.history else None
        render_chat(data, user_id=info.user_id, time_ms=time_ms, marker=marker if info.history else None,
                    history=info.history, note=note)
    else:
        render_system(data, time_ms=time_ms, marker=marker, event=info.event, history=info.history)


# -- delivery reports -------------------------------------------------------

def on_report(e):
    data = e.data if isinstance(e.data, dict) else {}
    try:
        sent = json.loads(data.get("message") or "{}")
    except ValueError:
        return
    report = S.mine.pop(str(sent.get("id")), None) if isinstance(sent, dict) else None
    if report is None:
        return
    n = data.get("number_messages")
    if not isinstance(n, int) or n < 0:
        report.textContent = "not delivered (the server refused it)"
        report.dataset.kind = "late"
    elif n == 0:
        report.textContent = "✓ sent · no other connection is in the room (kept in history)"
        report.dataset.kind = "delivered"
    else:
        report.textContent = f"✓ delivered to {n} other connection{'s' if n != 1 else ''}"
        report.dataset.kind = "delivered"


def queued_note():
    return "queued: it goes out when the connection to the server is back"


async def watch_report(msg_id, report):
    """Say why a send has no report yet; the entry stays, so the real outcome still shows when
    the report comes (after a reconnect the queued message goes out and is reported)."""
    await asyncio.sleep(REPORT_LATE)
    if S.mine.get(msg_id) is report:
        report.textContent = ("no delivery report yet: waiting for the server" if cometApi.state == "connected"
                              else queued_note())
        report.dataset.kind = "late"


def send_message():
    if not S.joined:
        raise ValueError("Join the chat first: pick a name or sign in.")
    box = by_id("text")
    text = str(box.value).strip()
    if not text:
        return
    if len(text) > MAX_TEXT:
        raise ValueError(f"A message is at most {MAX_TEXT:,} characters; this one has {len(text):,}. "
                         "Shorten it to send it (nothing was cut or sent).")
    payload = {"id": random_id(12), "name": S.identity["name"], "text": text, "from": UUID}
    cometApi.web_pipe_send(PIPE, "chat", payload)
    box.value = ""
    update_text_count()
    clear_error()
    note = None if cometApi.state == "connected" else queued_note()
    report = render_chat(payload, user_id=S.identity.get("user_id") or 0, time_ms=now_ms(), mine=True,
                         note=note)
    if report is not None:
        S.mine[payload["id"]] = report
        aio.ensure_future(watch_report(payload["id"], report))
    box.focus()


def update_text_count(*_):
    """The composer's length: shown near the limit, and in red (with what to do) above it."""
    n = len(str(by_id("text").value))
    box = by_id("text-count")
    if n > MAX_TEXT:
        box.textContent = f"{n:,} characters: a message is at most {MAX_TEXT:,}. Shorten it to send."
        box.dataset.kind = "over"
    elif n > MAX_TEXT * 0.8:
        box.textContent = f"{n:,} / {MAX_TEXT:,} characters"
        box.dataset.kind = "near"
    else:
        box.hidden = True
        return
    box.hidden = False


# -- roster ----------------------------------------------------------------------------------

def render_roster():
    ul = by_id("roster")
    ul.replaceChildren()
    entries = sorted(S.roster.items(), key=lambda kv: (kv[0] != UUID, kv[1]["name"].lower()))
    for uuid, entry in entries:
        li = el("li", None, None, uuid=uuid)
        li.appendChild(el("span", "name", entry["name"]))
        if entry.get("user_id"):
            li.appendChild(el("span", "badge verified", "✓ signed in"))
        else:
            li.appendChild(el("span", "badge", "guest"))
        if uuid == UUID:
            li.appendChild(el("span", "badge you", "you"))
        ul.appendChild(li)
    if not entries:
        ul.appendChild(el("li", "empty muted small", "nobody has joined yet"))


def roster_add(uuid, name, user_id, *, fresh=False):
    pending = S.leaving.pop(uuid, None)
    if pending is not None:
        pending.cancel()
    entry = {"name": account_name(user_id) if user_id else name, "user_id": user_id}
    known = S.roster.get(uuid)
    S.roster[uuid] = entry
    S.names[uuid] = entry
    if fresh and known is None and uuid != UUID:
        notice(f"{entry['name']} joined")
    render_roster()


def roster_remove(uuid, *, announce=True):
    S.leaving.pop(uuid, None)
    entry = S.roster.pop(uuid, None)
    if entry is not None:
        if announce:
            notice(f"{entry['name']} left")
        render_roster()
    refresh_counts()


def on_who(e):
    data = e.data if isinstance(e.data, dict) else {}
    uuid = data.get("uuid")
    if not isinstance(uuid, str) or uuid == UUID:
        return
    event = e.server_info.event
    if event == "who":
        # One answer per browser: only the tab holding the connection replies.
        if S.joined and cometApi.isMaster():
            announce("here")
    elif event == "here" and isinstance(data.get("name"), str):
        roster_add(uuid, data["name"][:NAME_MAX], e.server_info.user_id, fresh=bool(data.get("fresh")))
        refresh_counts()
    elif event == "bye":
        roster_remove(uuid)


def announce(event, fresh=False):
    if event == "here":
        body = {"uuid": UUID, "name": S.identity["name"], "fresh": fresh}
    else:
        body = {"uuid": UUID}
    cometApi.web_pipe_send(WHO_PIPE, event, body)


def on_track(e):
    """A browser's connection left or joined the room. When its master tab closes, another tab
    of it connects again within a moment: a leave counts only if no new connection (or answer
    to "who") comes within the grace."""
    data = e.data if isinstance(e.data, dict) else {}
    uuid = data.get("uuid")
    if isinstance(uuid, str) and uuid != UUID:
        event = e.server_info.event
        if event == "unsubscription":
            S.track_left[uuid] = S.track_left.get(uuid, 0) + 1
            if uuid in S.roster and uuid not in S.leaving:
                S.leaving[uuid] = aio.call_later(LEAVE_GRACE, lambda: ask_if_gone(uuid))
        elif event == "subscription":
            pending = S.leaving.pop(uuid, None)
            if pending is not None:
                pending.cancel()  # back within the grace: a master-tab switch, not a leave
            elif uuid in S.names and uuid not in S.roster:
                entry = S.names[uuid]
                roster_add(uuid, entry["name"], entry["user_id"])
    refresh_counts()


def ask_if_gone(uuid):
    """The grace is over: ask the room who is here (the join may have come before the leave);
    a browser that does not answer has left."""
    S.leaving[uuid] = aio.call_later(WHO_WAIT, lambda: roster_remove(uuid))
    announce("who")


def on_user_status(e):
    pipe = e.server_info.pipe
    try:
        user_id = int(pipe.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return
    event = e.server_info.event
    if event == "offline":
        # Held back: a master-tab switch of that user is an offline followed at once by online.
        if user_id not in S.status_held:
            S.status_held[user_id] = aio.call_later(
                LEAVE_GRACE, lambda: show_status(user_id, "offline"))
    elif event == "online":
        held = S.status_held.pop(user_id, None)
        if held is not None:
            held.cancel()  # back within the grace: nothing happened as far as people can tell
        elif S.status_shown.get(user_id) != "online":
            show_status(user_id, "online")


def show_status(user_id, event):
    S.status_held.pop(user_id, None)
    S.status_shown[user_id] = event
    what = "is online" if event == "online" else "went offline"
    notice(f"{account_name(user_id)} (signed-in user) {what}", kind=event)


def refresh_counts():
    if S.counts_pending:
        return
    S.counts_pending = True
    aio.ensure_future(_refresh_counts())


async def _refresh_counts():
    await asyncio.sleep(0.3)  # coalesce bursts of presence events
    S.counts_pending = False
    try:
        online = await cometApi.count_users_in_pipe(TRACK_PIPE)
        reading = await cometApi.count_users_in_pipe(PIPE)
    except Exception as exc:  # no connection right now: keep the old numbers
        by_id("counts").title = f"count_users_in_pipe failed: {exc}"
        return
    by_id("online-count").textContent = f"· {online}"
    by_id("counts").textContent = (f"{online} joined · {reading} connection{'s' if reading != 1 else ''}"
                                   " reading (one per browser)")


async def counts_loop():
    while True:
        await asyncio.sleep(10)
        if cometApi.state == "connected":
            refresh_counts()


# -- private messages ------------------------------------------------------------------------

def on_private(e):
    data = e.data
    if isinstance(data, dict):
        sender, text = data.get("from") or "the server", data.get("text", to_json(data))
    else:
        sender, text = "the server", str(data)
    li = el("li")
    li.appendChild(el("div", "from", f"from {sender}", typed=True))
    li.appendChild(el("div", "text", text, typed=True))
    by_id("private").appendChild(li)
    by_id("private-none").hidden = True
    notice(f"private message from {sender}", kind="online")


# -- joining, signing in, leaving -------------------------------------------------------------

def check_display_name(raw):
    name = " ".join(str(raw).split())
    if not name:
        raise ValueError("Please type a name to join (1 to 32 characters).")
    if len(name) > NAME_MAX:
        raise ValueError(f"A name is at most {NAME_MAX} characters; this one has {len(name)}.")
    if any(is_hidden(c) for c in name):
        raise ValueError("A name cannot contain control or invisible characters.")
    if name.lower() in {a["name"] for a in S.accounts}:
        raise ValueError(f"“{name}” is a demo account: sign in as {name.lower()} below, or pick another name.")
    return name


def enter_room(fresh):
    """This browser is in the room: presence on, composer on."""
    S.joined = True
    if S.track_sub is None:
        S.track_sub = cometApi.subscription(TRACK_PIPE, on_track)
    user_id = S.identity.get("user_id") or 0
    if user_id and S.msg_sub is None:
        S.msg_sub = cometApi.subscription("msg", on_private)
    S.roster[UUID] = {"name": account_name(user_id) if user_id else S.identity["name"], "user_id": user_id}
    render_roster()
    announce("here", fresh=fresh)
    update_identity_ui()
    refresh_counts()


def join_as_guest():
    name = check_display_name(by_id("name").value)
    clear_error()
    S.identity = {"name": name, "user_id": 0, "key": ""}
    save_identity(S.identity)
    enter_room(fresh=True)
    by_id("text").focus()


def sign_in():
    user_id = int(by_id("signin-user").value)
    key = str(by_id("signin-key").value).strip()
    if not key:
        raise ValueError("Type the user's key (or press “Use the demo key”).")
    clear_error()
    # Kept in this tab only until the server accepts it (then the other tabs follow).
    S.identity = {"name": account_name(user_id), "user_id": user_id, "key": key}
    S.fresh_sign_in = True
    by_id("signin").disabled = True
    by_id("signin").textContent = "Signing in…"
    # The connection is per (node, dev_id, user_id): restart() reconnects as this user.
    cometApi.restart({"user_id": user_id, "user_key": key})


def fill_key():
    user_id = int(by_id("signin-user").value)
    for acc in S.accounts:
        if acc["id"] == user_id:
            by_id("signin-key").value = acc["key"]


def on_auth_success():
    if S.identity and S.identity.get("user_id") and not S.joined:
        fresh, S.fresh_sign_in = S.fresh_sign_in, False
        if fresh:
            save_identity(S.identity)
        clear_error()
        enter_room(fresh=fresh)
    update_facts()


def on_auth_refused():
    update_facts()
    if S.identity and S.identity.get("user_id"):
        who = S.identity["name"]
        show_error(f"Sign-in refused: the server did not accept that key for {who} "
                   "(cometApi.onAuthFalill). You are reading as a guest again.")
        stored = load_identity()
        if stored is not None and stored.get("user_id") == S.identity.get("user_id"):
            save_identity(None)  # a stored key that no longer works
        S.identity = None
        S.joined = False
        S.fresh_sign_in = False
        reset_signin_button()
        update_identity_ui()
        # Not from inside the library's callback: reconnect as a guest on the next turn.
        call_soon(lambda: cometApi.restart({"user_id": 0, "user_key": ""}))


def reset_signin_button():
    by_id("signin").disabled = False
    by_id("signin").textContent = "Sign in"


async def leave():
    if not S.joined:
        return
    announce("bye")
    was_signed_in = bool(S.identity.get("user_id"))
    S.joined = False
    S.identity = None
    save_identity(None)
    if S.track_sub is not None:
        cometApi.unsubscription(S.track_sub)
        S.track_sub = None
    if S.msg_sub is not None:
        cometApi.unsubscription(S.msg_sub)
        S.msg_sub = None
    S.roster.pop(UUID, None)
    render_roster()
    update_identity_ui()
    if was_signed_in:
        await asyncio.sleep(0.5)  # let the "bye" leave before the connection is replaced
        cometApi.restart({"user_id": 0, "user_key": ""})


def on_storage(ev):
    # Another tab of this browser joined, signed in or left: follow it.
    if nn(ev.key) in (IDENTITY_KEY, None):
        js.location.reload()


def update_identity_ui():
    joined = S.joined
    by_id("join-card").hidden = joined
    by_id("me-card").hidden = not joined
    by_id("composer").hidden = not joined
    by_id("lurk-note").hidden = joined
    if joined:
        user_id = S.identity.get("user_id") or 0
        by_id("me-name").textContent = account_name(user_id) if user_id else S.identity["name"]
        kind = by_id("me-kind")
        kind.textContent = f"✓ signed in · user_id {user_id}" if user_id else "guest"
        kind.className = "badge verified" if user_id else "badge"
    else:
        reset_signin_button()
    signed = bool(joined and S.identity.get("user_id"))
    by_id("private-note").hidden = signed  # "sign in to receive ..." is for guests only
    by_id("private-none").hidden = not signed or by_id("private").children.length > 0


# -- connection status -----------------------------------------------------------------------

STATE_TEXT = {
    "idle": "starting…",
    "connecting": "connecting…",
    "connected": "connected",
    "disconnected": "disconnected · retrying",
    "closed": "closed",
}


def on_state(state, detail):
    if state == "gap":
        # Messages of these pipes may have been missed (and could not be recovered from the
        # markers): fetch the room's history again; what is already shown is not shown twice.
        if PIPE in (detail or {}).get("pipes", []) and S.history_loaded:
            aio.ensure_future(load_history())
        return
    S.last_state = state
    update_facts()
    if state == "connected":
        show_warn(None)
        refresh_counts()
    elif state == "disconnected":
        show_warn(f"Cannot reach the comet server at {', '.join(NODES)}. Retrying… Messages you send now are "
                  "queued and go out when the connection is back.")


def update_facts():
    state = cometApi.state
    if state == "connected":
        show_load_time()
    pill = by_id("conn")
    pill.dataset.state = state
    pill.textContent = STATE_TEXT.get(state, state)
    by_id("fact-state").textContent = state
    master = cometApi.isMaster()
    badge = by_id("master")
    badge.dataset.kind = "master" if master else "follower"
    badge.textContent = "this tab holds the connection" if master else "relayed by another tab"
    by_id("fact-role").textContent = "master (holds the WebSocket)" if master else "follower (relay over BroadcastChannel)"
    auth = cometApi.isAuthorized()
    by_id("fact-auth").textContent = {None: "not known yet", True: "yes", False: "no (guest)"}[auth]
    js.document.body.dataset.master = "1" if master else "0"
    js.document.body.dataset.state = state


def show_load_time():
    """How long this page took from its navigation to its first "connected" (once)."""
    if S.connected_ms is not None:
        return
    S.connected_ms = float(js.performance.now())
    pill = by_id("load-time")
    pill.textContent = f"connected in {S.connected_ms / 1000:.2f} s ({INTERPRETER})"
    pill.hidden = False
    by_id("fact-load").textContent = (f"Python ran the page at {NAVIGATED_MS / 1000:.2f} s, "
                                      f"connected at {S.connected_ms / 1000:.2f} s")


async def status_loop():
    # isMaster() has no change callback: the badge is refreshed a few times a second.
    while True:
        update_facts()
        await asyncio.sleep(0.4)


async def load_history():
    """The room's recent messages (they arrive in on_chat_message with history=True). Asked at
    once: the request waits for the connection (in this tab or the master tab)."""
    for attempt in range(1000):
        try:
            await cometApi.get_pipe_log(PIPE)
            break
        except Exception as exc:  # no answer in time (server unreachable): try again
            empty = by_id("empty")
            if empty is not None:
                empty.textContent = f"Waiting for the server to load the recent messages… ({exc})"
            await asyncio.sleep(min(2 + attempt, 15))
    S.history_loaded = True
    empty = by_id("empty")
    if empty is not None:
        empty.textContent = "No messages yet. Say hello!"


# -- start -----------------------------------------------------------------------------------

async def main():
    by_id("room-name").textContent = ROOM
    by_id("fact-dev").textContent = str(DEV_ID)
    by_id("fact-pipe").textContent = PIPE
    by_id("fact-python").textContent = VERSION
    if DEV_ID is None:
        raise ValueError(f"?dev= must be a number, got {param('dev', '')!r}")
    try:
        S.accounts = (await fetch_json("/demo/accounts.json"))["users"]
    except Exception as exc:
        show_warn(f"Could not load the demo accounts ({exc}); sign-in is unavailable.")
    select = by_id("signin-user")
    for acc in S.accounts:
        option = el("option", None, f"{acc['name']} (user_id {acc['id']})")
        option.value = str(acc["id"])
        select.appendChild(option)

    # Channels first: a bad room name raises ValueError here, before anything is sent.
    try:
        cometApi.subscription(PIPE, on_chat_message)
        cometApi.subscription("#" + PIPE, on_report)
        cometApi.subscription(WHO_PIPE, on_who)
    except ValueError as exc:
        cometApi.unsubscriptionAll()
        raise ValueError(f"Cannot open room {ROOM!r}: {exc}") from None
    for acc in S.accounts:
        cometApi.subscription(f"user_status_{acc['id']}", on_user_status)

    cometApi.on_state(on_state)
    cometApi.onAuthSuccess(on_auth_success)
    cometApi.onAuthFalill(on_auth_refused)

    S.identity = load_identity()
    options = {"dev_id": DEV_ID, "node": NODES if len(NODES) > 1 else NODES[0], "uuid": UUID}
    if S.identity and S.identity.get("user_id"):
        options.update(user_id=int(S.identity["user_id"]), user_key=str(S.identity.get("key") or ""))
    cometApi.start(options)

    on("join-form", "submit", join_as_guest, prevent=True)
    on("signin-form", "submit", sign_in, prevent=True)
    on("fill-key", "click", fill_key)
    on("composer", "submit", send_message, prevent=True)
    on("text", "input", update_text_count)
    on("leave", "click", leave)
    js.window.addEventListener("storage", proxy(on_storage))

    if S.identity and not S.identity.get("user_id"):
        enter_room(fresh=False)  # a guest: in the room at once (signed-in users after auth)
    else:
        render_roster()
        update_identity_ui()
    announce("who")
    aio.ensure_future(load_history())
    aio.ensure_future(status_loop())
    aio.ensure_future(counts_loop())
    empty = by_id("empty")
    if empty is not None:
        empty.textContent = "Loading recent messages…"
    S.forms_ready = True
    js.window.demoFormsReady(True)  # demo/boot.js: forms live; a Join clicked while loading runs now


def debug_info():
    """For the curious (and the tests): ``JSON.parse(demoDebug())`` in the devtools console."""
    return json.dumps({"state": cometApi.state, "master": cometApi.isMaster(), "authorized": cometApi.isAuthorized(),
                       "joined": S.joined, "uuid": UUID, "roster": S.roster, "identity_user": (S.identity or {}).get("user_id"),
                       "leaving": sorted(S.leaving), "track_left": S.track_left,
                       "status_held": sorted(S.status_held)})


js.window.demoDebug = proxy(debug_info)


async def boot():
    try:
        await main()
    except ValueError as exc:
        show_error(str(exc))
        pill = by_id("conn")
        pill.dataset.state = "closed"
        pill.textContent = "not started"
        say_not_started(f"The chat did not start: {exc}")
    except Exception as exc:
        show_error(f"The chat could not start: {type(exc).__name__}: {exc}")
        say_not_started("The chat could not start (the error is shown above).")
        raise
    finally:
        if not S.forms_ready:
            js.window.demoFormsReady(False)
        js.window.demoReady = True


def say_not_started(text):
    """Instead of "Starting Python…" in the message list, what went wrong."""
    empty = by_id("empty")
    if empty is not None:
        empty.textContent = text
        empty.dataset.kind = "failed"
    by_id("lurk-note").textContent = "Fix the address (see the message above) and reload the page."


aio.ensure_future(boot())
