"""The demo, driven like a person would: the chat in several tabs of two browsers, the landing page
and the server console, against the real comet_server, offline.

One scene serves most tests of this module (Pyodide starts once per tab): alice in one browser
context with three tabs, dana in another with one. The tests run in file order and each leaves the
scene usable for the next. Waits are event-driven (wait_for_function on the DOM) with generous
liveness bounds; nothing asserts timing.
"""

from __future__ import annotations

import base64
import json
import pathlib
import re
import secrets
import urllib.request

import pytest

from demo.seed import USERS, seed_db
from tests.support.browser import OfflineContext
from tests.support.rawclient import RawClient, wait_subscribers
from tests.support.server import ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "demo-chat.png"
DEV_ID = 15                       # the demo's own (and far from the conftest's counter: 1000, 1001, ...)
ROOM = "lobby"                    # the demo's default room: the README's screenshot shows #lobby
READY = "window.demoReady === true"
LIVE_MS = 30_000                  # liveness bound of every wait (never a timing assertion)
XSS = "<img src=x onerror=alert(1)>"
ALICE = next(u for u in USERS if u["name"] == "alice")


def chat_path(room: str = ROOM, dev: int = DEV_ID, **extra: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"dev": dev, "room": room, **extra}.items())
    return f"/demo/chat/index.html?{query}"


# -- page helpers ------------------------------------------------------------------------------

def new_tab(ctx: OfflineContext, dialogs: list | None = None):
    page = ctx.context.new_page()
    page.on("console", lambda m: ctx.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: ctx.console_errors.append(str(e)))
    if dialogs is not None:
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page


def open_tabs(ctx: OfflineContext, path: str, n: int = 1, dialogs: list | None = None) -> list:
    """Open ``n`` tabs at once (their Pyodide starts in parallel) and wait until all are ready."""
    pages = []
    for _ in range(n):
        page = new_tab(ctx, dialogs)
        page.goto(ctx.base_url + path)
        pages.append(page)
    for page in pages:
        page.wait_for_function(READY, timeout=120_000)
    return pages


def bodies(page) -> list[str]:
    return page.eval_on_selector_all("#messages li.msg .body", "els => els.map(e => e.textContent)")


def describe(page) -> str:
    """What a tab shows, for failure messages."""
    try:
        return json.dumps({
            "url": page.url,
            "debug": json.loads(page.evaluate("window.demoDebug ? demoDebug() : 'null'")),
            "conn": page.text_content("#conn"), "error": page.evaluate("document.getElementById('error').hidden ? '' : document.getElementById('error').textContent"),
            "messages": page.eval_on_selector_all("#messages li", "els => els.map(e => e.textContent)"),
        }, indent=1, ensure_ascii=False)
    except Exception as exc:  # noqa: BLE001 - a crashed tab
        return f"<{exc}>"


def wait_for(page, js: str, arg=None, what: str = "") -> None:
    try:
        page.wait_for_function(js, arg=arg, timeout=LIVE_MS)
    except Exception as exc:
        raise AssertionError(f"{what or js} did not happen within {LIVE_MS} ms ({exc.__class__.__name__}) "
                             f"in this tab:\n{describe(page)}") from None


def wait_text(page, text: str) -> None:
    wait_for(page, "t => [...document.querySelectorAll('#messages li.msg .body')].some(e => e.textContent === t)",
             text, f"message {text!r}")


def wait_selector_text(page, selector: str, text: str, present: bool = True) -> None:
    wait_for(page, "([sel, t, present]) => [...document.querySelectorAll(sel)].some(e => e.textContent.includes(t)) === present",
             [selector, text, present], f"{selector} {'showing' if present else 'without'} {text!r}")


def send(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def is_master(page) -> bool:
    return page.evaluate("document.body.dataset.master === '1'")


def wait_one_master(pages) -> object:
    """Wait until exactly one of ``pages`` says it holds the connection; return it."""
    first = pages[0]
    deadline_ms = LIVE_MS
    for page in pages:  # every tab has been told who the master is
        page.wait_for_function("document.body.dataset.master !== undefined", timeout=deadline_ms)
    waited = 0
    while True:
        masters = [p for p in pages if is_master(p)]
        if len(masters) == 1:
            return masters[0]
        assert waited < deadline_ms, f"{len(masters)} master tabs"
        first.wait_for_timeout(100)
        waited += 100


def converse(senders_and_texts, readers) -> None:
    """Send each (page, text) in turn, then a closing sentinel; check every reader shows each
    text exactly once (the sentinel arrives after the others on the channel, so a late duplicate
    would already be there)."""
    texts = []
    for page, text in senders_and_texts:
        send(page, text)
        texts.append(text)
    sentinel = f"got it · {secrets.token_hex(3)}"
    send(senders_and_texts[-1][0], sentinel)
    for page in readers:
        for text in texts + [sentinel]:
            wait_text(page, text)
    for page in readers:
        shown = bodies(page)
        for text in texts + [sentinel]:
            assert shown.count(text) == 1, (text, shown)


def debug(page) -> dict:
    return json.loads(page.evaluate("demoDebug()"))


def track_left(page, uuid: str) -> int:
    """How many times ``page`` saw a connection of browser ``uuid`` leave the track_ channel."""
    return debug(page)["track_left"].get(uuid, 0)


def wait_presence_settled(page, uuid: str, seen_before: int, what: str) -> None:
    """``page`` saw a connection of browser ``uuid`` leave the track_ channel (once more than
    ``seen_before``) and has decided about it: no leave or online/offline notice is pending."""
    wait_for(page, """([u, n]) => { const d = JSON.parse(demoDebug());
                        return (d.track_left[u] || 0) > n && !d.leaving.includes(u) && d.status_held.length === 0; }""",
             [uuid, seen_before], what)


def notices(page) -> list[str]:
    return page.eval_on_selector_all("#messages .notice", "els => els.map(e => e.textContent)")


def hold_requests(page, pattern: str) -> list:
    """Requests of ``page`` matching ``pattern`` wait (unanswered) until the test continues them."""
    held: list = []
    page.route(pattern, lambda route: held.append(route))
    return held


def wait_held(page, held: list) -> None:
    waited = 0
    while not held:
        assert waited < LIVE_MS, "the request to hold was never made"
        page.wait_for_timeout(50)
        waited += 50


def stats(server) -> int:
    """WebSocket connections of the demo's dev_id on the server."""
    with urllib.request.urlopen(f"{server.url}/stats?dev_id={DEV_ID}", timeout=10) as resp:
        return json.loads(resp.read())["connections"]


def publish(server, body: dict) -> dict:
    token = base64.b64encode(f"{DEV_ID}:{server.password}".encode()).decode()
    req = urllib.request.Request(server.url + "/api/publish", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


# -- the scene ---------------------------------------------------------------------------------

class Scene:
    def __init__(self, browser, server) -> None:
        self.server = server
        self.dialogs: list[str] = []
        self.alice_ctx = OfflineContext(browser, server.url)
        self.dana_ctx = OfflineContext(browser, server.url)
        self.alice: list = []
        self.dana: list = []

    def close(self) -> None:
        for ctx in (self.alice_ctx, self.dana_ctx):
            if ctx is not None:
                ctx.close()  # asserts that no request left 127.0.0.1


@pytest.fixture(scope="module")
def scene(browser, comet_server):
    seed_db(comet_server.db, DEV_ID, [ROOM])
    s = Scene(browser, comet_server)
    yield s
    s.close()


# -- tests -------------------------------------------------------------------------------------

def test_tabs_of_two_users_chat_and_every_message_shows_once_in_every_tab(scene):
    # dana's browser reads the room first (not joined yet), so it sees alice come online.
    (d1,) = scene.dana = open_tabs(scene.dana_ctx, chat_path(), 1, scene.dialogs)
    (a1,) = open_tabs(scene.alice_ctx, chat_path(), 1, scene.dialogs)
    wait_selector_text(a1, "#messages .body", "Welcome to the comet_py demo chat.")  # seeded history on open

    a1.select_option("#signin-user", str(ALICE["id"]))
    a1.click("#fill-key")
    a1.click("#signin")
    a1.wait_for_selector("#me-card:not([hidden])", timeout=LIVE_MS)
    assert a1.text_content("#me-name") == "alice"
    wait_selector_text(d1, "#messages .notice", "alice (signed-in user) is online")
    wait_selector_text(d1, "#roster .name", "alice")

    # Two more tabs of alice's browser: they follow the sign-in and share the one connection.
    a2, a3 = open_tabs(scene.alice_ctx, chat_path(), 2, scene.dialogs)
    scene.alice = [a1, a2, a3]
    for page in (a2, a3):
        page.wait_for_selector("#me-card:not([hidden])", timeout=LIVE_MS)
        assert page.text_content("#me-name") == "alice"
    wait_one_master(scene.alice)

    # dana joins as a guest: every tab of alice lists her, she lists alice.
    d1.fill("#name", "Dana")
    d1.click("#join")
    for page in scene.alice:
        wait_selector_text(page, "#roster .name", "Dana")
        wait_selector_text(page, "#messages .notice", "Dana joined")
    # Two browsers in the room = two connections, however many tabs alice has open.
    wait_selector_text(a1, "#counts", "2 joined · 2 connections")
    assert stats(scene.server) == 2

    converse([(a2, "hello from alice, tab 2"), (d1, "hi alice, it's dana"), (a3, "tab 3 here"),
              (a1, "and tab 1")], scene.alice + [d1])
    # The tab that sent a message gets the server's delivery report under it.
    report = a2.locator("#messages li.msg.mine", has_text="hello from alice, tab 2").locator(".report")
    report.wait_for(timeout=LIVE_MS)
    a2.wait_for_function(
        "() => [...document.querySelectorAll('#messages li.mine .report')].some(r => r.textContent.includes('delivered to 1 other connection'))",
        timeout=LIVE_MS)
    # dana's own message is hers (right-aligned) in her tab, someone else's in alice's.
    assert d1.locator("#messages li.msg.mine", has_text="hi alice, it's dana").count() == 1
    assert a1.locator("#messages li.msg:not(.mine)", has_text="hi alice, it's dana").count() == 1
    # alice's messages carry the server-verified badge in dana's tab.
    assert "signed in" in d1.locator("#messages li.msg", has_text="tab 3 here").locator(".badge").text_content()

    # A last exchange for the README's picture, taken from the real pages.
    master = wait_one_master(scene.alice)
    for page, text in [(master, "Try closing the tab that holds the connection."),
                       (d1, "Another tab takes over and nothing gets lost?"),
                       (master, "Yes. And every page here is Python."), (d1, XSS)]:
        send(page, text)
        wait_text(master, text)
        wait_text(d1, text)
    save_screenshot(master, d1)


def save_screenshot(left, right) -> None:
    """docs/demo-chat.png: a tab of alice's and dana's tab, side by side, from the real pages."""
    shots = []
    for page in (left, right):
        page.set_viewport_size({"width": 980, "height": 700})
        page.wait_for_timeout(150)  # one layout pass after the resize (cosmetic only)
        shots.append(base64.b64encode(page.screenshot()).decode())
    board = left.context.new_page()
    board.set_viewport_size({"width": 1990, "height": 760})
    board.set_content(
        "<body style='margin:0;background:#d9deea;font:600 15px system-ui,sans-serif;color:#333'>"
        "<div style='display:flex;gap:10px;padding:10px'>"
        + "".join(f"<figure style='margin:0'><figcaption style='padding:0 0 6px 4px'>{cap}</figcaption>"
                  f"<img style='display:block;border-radius:6px' src='data:image/png;base64,{b64}'></figure>"
                  for cap, b64 in zip(("alice, signed in: the one of her 3 tabs that holds the connection", "dana, a guest, in another browser"), shots))
        + "</div></body>")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    board.screenshot(path=str(SCREENSHOT), full_page=True)
    board.close()
    for page in (left, right):
        page.set_viewport_size({"width": 1280, "height": 720})


def test_every_tab_shows_its_connection_state_and_role(scene):
    for page in scene.alice + scene.dana:
        # Followers learn the state from the master's relayed heartbeat.
        wait_for(page, "document.getElementById('conn').dataset.state === 'connected'",
                 what="the connection pill saying 'connected'")
        assert page.text_content("#fact-auth") == ("yes" if page in scene.alice else "no (guest)")
    master = wait_one_master(scene.alice)
    assert master.text_content("#master") == "this tab holds the connection"
    for page in scene.alice:
        if page is not master:
            assert page.text_content("#master") == "relayed by another tab"
            # The role wraps between words, never inside "BroadcastChannel" (one line box).
            assert page.evaluate("""() => {
                const dd = document.getElementById('fact-role'), text = dd.firstChild;
                const at = text.data.indexOf('BroadcastChannel'), range = document.createRange();
                range.setStart(text, at); range.setEnd(text, at + 'BroadcastChannel'.length);
                return at >= 0 && new Set([...range.getClientRects()].map(r => r.top)).size === 1; }""")
    # The "sign in to receive private messages" hint is for guests only.
    for page in scene.alice:
        assert page.is_hidden("#private-note") and page.is_visible("#private-none")
    for page in scene.dana:
        assert page.is_visible("#private-note") and page.is_hidden("#private-none")


def test_xss_payload_renders_as_text_and_opens_no_dialog(scene):
    a1, a2, a3 = scene.alice
    (d1,) = scene.dana
    converse([(a3, f"quoting: {XSS}"), (d1, "<script>alert(2)</script> & <b>bold?</b>")], scene.alice + [d1])
    for page in scene.alice + [d1]:
        assert page.locator("#messages img, #messages script, #messages b").count() == 0
        shown = bodies(page)
        assert shown.count(XSS) == 1 and shown.count("<script>alert(2)</script> & <b>bold?</b>") == 1
    assert scene.dialogs == []


def test_history_shows_on_reload(scene):
    a1, a2, a3 = scene.alice
    a3.reload()
    a3.wait_for_function(READY, timeout=120_000)
    a3.wait_for_selector("#me-card:not([hidden])", timeout=LIVE_MS)
    for text in ["Welcome to the comet_py demo chat.", "hello from alice, tab 2", "hi alice, it's dana",
                 "tab 3 here", "and tab 1", XSS]:
        wait_selector_text(a3, "#messages .body", text)
    shown = bodies(a3)
    for text in ["hello from alice, tab 2", "hi alice, it's dana", "tab 3 here", "and tab 1", XSS]:
        assert shown.count(text) == 1, (text, shown)
    # History keeps the order of the conversation.
    order = [shown.index(t) for t in ["hello from alice, tab 2", "hi alice, it's dana", "tab 3 here", "and tab 1"]]
    assert order == sorted(order)
    wait_one_master(scene.alice)


def test_closing_the_master_tab_keeps_the_others_chatting(scene):
    (d1,) = scene.dana
    master = wait_one_master(scene.alice)
    others = [p for p in scene.alice if p is not master]
    converse([(others[0], "before the master closes"), (d1, "dana, also before")], scene.alice + [d1])
    alice_uuid = debug(others[0])["uuid"]
    seen_before = track_left(d1, alice_uuid)
    master.close()
    scene.alice = others
    # Mid-conversation: dana writes while alice's browser is switching masters.
    send(d1, "dana, during the switch")
    converse([(others[1], "after the switch, from a follower"), (others[0], "and from the other one"),
              (d1, "dana, after")], others + [d1])
    for page in others + [d1]:
        wait_text(page, "dana, during the switch")
        shown = bodies(page)
        for text in ["before the master closes", "dana, also before", "dana, during the switch"]:
            assert shown.count(text) == 1, (text, shown)
    wait_one_master(others)
    # For dana nothing happened to alice: she never left, never went offline.
    wait_presence_settled(d1, alice_uuid, seen_before, "dana seeing alice's old connection go, and deciding")
    said = notices(d1)
    assert not [n for n in said if "alice left" in n or "went offline" in n], said
    assert said.count("alice (signed-in user) is online") == 1, said
    assert "alice" in d1.eval_on_selector_all("#roster .name", "els => els.map(e => e.textContent)")


def test_private_message_from_the_backend_reaches_every_tab_of_the_user(scene):
    answer = publish(scene.server, {"user_id": ALICE["id"], "event": "private",
                                    "message": {"from": "the support desk", "text": f"psst {XSS}"}})
    assert answer["ok"] and answer["delivered"] == 1  # one connection for all of alice's tabs
    for page in scene.alice:
        wait_selector_text(page, "#private .text", f"psst {XSS}")
        assert page.locator("#private img").count() == 0
    (d1,) = scene.dana
    assert d1.locator("#private li").count() == 0


def test_system_message_from_the_backend_shows_in_the_room(scene):
    answer = publish(scene.server, {"pipe": f"web_{ROOM}", "event": "system",
                                    "message": {"text": "Maintenance at 18:00"}})
    assert answer["ok"] and answer["delivered"] == 2
    for page in scene.alice + scene.dana:
        wait_selector_text(page, "#messages li.system .body", "Maintenance at 18:00")


def test_online_list_updates_when_a_user_leaves(scene):
    (d1,) = scene.dana
    d1.close()
    scene.dana = []
    for page in scene.alice:
        wait_selector_text(page, "#roster .name", "Dana", present=False)
        wait_selector_text(page, "#messages .notice", "Dana left")
    wait_selector_text(scene.alice[0], "#counts", "1 joined · 1 connection ")


def test_a_normal_run_logs_no_console_error(scene):
    assert scene.alice_ctx.console_errors == []
    assert scene.dana_ctx.console_errors == []
    assert scene.dialogs == []


# -- errors on the page, the landing page, the console -----------------------------------------

@pytest.fixture(scope="module")
def solo(browser, comet_server):
    """A third browser for the single-tab pages (one tab, navigated from page to page)."""
    ctx = OfflineContext(browser, comet_server.url)
    (page,) = open_tabs(ctx, "/index.html?dev=%d" % DEV_ID)
    yield ctx, page
    ctx.close()


def test_landing_page_shows_live_status_and_links(solo):
    ctx, page = solo
    page.wait_for_selector("#st-state[data-state='connected']", timeout=LIVE_MS)
    assert page.text_content("#st-role") == "master"  # the only tab of its browser
    assert page.text_content("#st-auth") == "no (guest)"
    for href in ("/demo/chat/index.html", "/demo/chat/index.html?python=micropython", "/demo/console/index.html"):
        assert page.locator(f"a[href='{href}']").count() >= 1
    assert ctx.console_errors == []


def test_errors_show_on_the_page(solo, comet_server):
    ctx, page = solo
    # A bad room name: the ValueError of comet_py, on the page.
    page.goto(comet_server.url + chat_path(room="no way!"))
    page.wait_for_function(READY, timeout=120_000)
    assert "Cannot open room 'no way!'" in page.text_content("#error")
    assert "ValueError" not in page.text_content("#error") and "' '" in page.text_content("#error")
    # The message list says so too, instead of "Starting Python…" for ever.
    assert page.text_content("#messages").strip().startswith("The chat did not start: Cannot open room 'no way!'")
    assert page.is_hidden(".boot-progress")

    page.goto(comet_server.url + chat_path(room=ROOM + "x"))
    page.wait_for_function(READY, timeout=120_000)
    # Nobody in the room yet: no green "online" dot in front of "nobody has joined yet".
    wait_selector_text(page, "#roster li", "nobody has joined yet")
    assert page.evaluate("getComputedStyle(document.querySelector('#roster li'), '::before').display") == "none"
    # A bad display name.
    page.fill("#name", "   ")
    page.click("#join")
    wait_selector_text(page, "#error", "Please type a name")
    page.fill("#name", "alice")
    page.click("#join")
    wait_selector_text(page, "#error", "is a demo account")
    # A refused sign-in (onAuthFalill): the page says so and stays a guest reader.
    page.select_option("#signin-user", str(ALICE["id"]))
    page.fill("#signin-key", "not_the_key")
    page.click("#signin")
    wait_selector_text(page, "#error", "Sign-in refused")
    page.wait_for_selector("#join-card:not([hidden])", timeout=LIVE_MS)
    page.wait_for_selector("#conn[data-state='connected']", timeout=LIVE_MS)


def test_an_unreachable_server_shows_on_the_page(browser, comet_server):
    ctx = OfflineContext(browser, comet_server.url)
    try:
        (page,) = open_tabs(ctx, chat_path(node="127.0.0.1:9"))  # nothing listens on port 9
        page.wait_for_selector("#conn[data-state='disconnected']", timeout=LIVE_MS)
        wait_selector_text(page, "#warn", "Cannot reach the comet server at 127.0.0.1:9")
        # The browser itself logs every failed WebSocket attempt: console errors are expected here.
    finally:
        ctx.close()


def test_server_console_posts_a_system_message_into_the_chat(browser, comet_server):
    room = ROOM + "c"
    seed_db(comet_server.db, DEV_ID, [room], welcome=False)
    backend_ctx = OfflineContext(browser, comet_server.url)
    reader_ctx = OfflineContext(browser, comet_server.url)
    try:
        (reader,) = open_tabs(reader_ctx, chat_path(room=room))
        wait_selector_text(reader, "#messages", "No messages yet")
        (page,) = open_tabs(backend_ctx, f"/demo/console/index.html?dev={DEV_ID}&room={room}")
        # A wrong password: the refusal shows on the page (no browser login prompt holding the
        # request), and the console keeps working.
        page.fill("#password", "not the password")
        page.fill("#sys-text", "Hello from the backend")
        held = hold_requests(page, "**/api/publish")
        page.click("#sys-send")
        wait_held(page, held)
        wait_selector_text(page, "#sys-result", "sending…")   # while the request is out
        held[0].continue_()
        page.unroute("**/api/publish")
        wait_selector_text(page, "#sys-result", "Refused (HTTP 401)")
        assert page.is_enabled("#sys-send")
        page.fill("#password", comet_server.password)
        page.click("#sys-send")
        wait_selector_text(page, "#sys-result", '"ok": true')
        wait_selector_text(reader, "#messages li.system .body", "Hello from the backend")
        assert "curl" in page.text_content("#sys-curl")
        assert "INSERT INTO pipes_messages" in page.text_content("#sys-sql")
        # The browser itself logs the refused request; nothing else went wrong.
        assert backend_ctx.console_errors == ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
        assert reader_ctx.console_errors == []
    finally:
        backend_ctx.close()
        reader_ctx.close()


def test_a_long_paste_is_not_cut_the_page_says_how_long_it_is_and_what_the_limit_is(solo):
    ctx, page = solo
    page.fill("#name", "Zoë")
    page.click("#join")
    page.wait_for_selector("#composer:not([hidden])", timeout=LIVE_MS)
    pasted = "x" * 100_000
    page.fill("#text", pasted)
    assert page.input_value("#text") == pasted                    # nothing cut
    wait_selector_text(page, "#text-count", "100,000 characters: a message is at most 2,000")
    page.press("#text", "Enter")
    wait_selector_text(page, "#error", "this one has 100,000")
    assert page.input_value("#text") == pasted and page.locator("#messages li.mine").count() == 0
    # Typed text keeps its own direction: an Arabic line reads right to left.
    page.fill("#text", "مرحبا بالجميع")
    page.press("#text", "Enter")
    wait_text(page, "مرحبا بالجميع")
    assert page.is_hidden("#text-count")
    body = page.locator("#messages li.mine .body", has_text="مرحبا بالجميع")
    assert body.get_attribute("dir") == "auto"
    assert body.evaluate("e => getComputedStyle(e).direction") == "rtl"


def test_join_clicked_before_python_is_ready_is_kept_and_done_without_a_reload(browser, comet_server):
    room = ROOM + "e"
    seed_db(comet_server.db, DEV_ID, [room], welcome=False)
    ctx = OfflineContext(browser, comet_server.url)
    try:
        page = new_tab(ctx)
        held = hold_requests(page, "**/vendor/pyodide/pyodide.asm.wasm")   # Python is slow today
        loads: list[str] = []
        page.on("load", lambda p: loads.append(p.url))
        page.goto(ctx.base_url + chat_path(room=room))
        wait_held(page, held)
        page.evaluate("window.sameDocument = true")            # gone if the page reloads
        assert page.is_disabled("#signin") and page.is_disabled("#signin-key")   # visibly not live yet
        page.fill("#name", "Early Bird")
        page.click("#join")
        wait_selector_text(page, ".boot-progress", "Your “Join” will go ahead as soon as it is ready")
        assert page.input_value("#name") == "Early Bird"
        for route in held:
            route.continue_()
        page.unroute("**/vendor/pyodide/pyodide.asm.wasm")
        page.wait_for_function(READY, timeout=120_000)
        page.wait_for_selector("#me-card:not([hidden])", timeout=LIVE_MS)
        assert page.text_content("#me-name") == "Early Bird"
        assert page.evaluate("window.sameDocument === true") and len(loads) == 1, loads
        assert page.is_enabled("#signin") and page.is_hidden(".boot-progress")
        assert ctx.console_errors == []
    finally:
        ctx.close()


def test_presence_holds_for_another_user_when_a_guest_s_master_tab_closes(browser, comet_server):
    room = ROOM + "p"
    seed_db(comet_server.db, DEV_ID, [room], welcome=False)
    bea_ctx, eve_ctx = OfflineContext(browser, comet_server.url), OfflineContext(browser, comet_server.url)
    try:
        (bea,) = open_tabs(bea_ctx, chat_path(room=room))
        bea.fill("#name", "Bea")
        bea.click("#join")
        (e1,) = open_tabs(eve_ctx, chat_path(room=room))
        e1.fill("#name", "Eve")
        e1.click("#join")
        (e2,) = open_tabs(eve_ctx, chat_path(room=room))          # Eve's second tab: joined too
        e2.wait_for_selector("#me-card:not([hidden])", timeout=LIVE_MS)
        wait_selector_text(bea, "#roster .name", "Eve")
        wait_selector_text(bea, "#messages .notice", "Eve joined")
        master = wait_one_master([e1, e2])
        other = e2 if master is e1 else e1
        eve_uuid = debug(other)["uuid"]
        seen_before = track_left(bea, eve_uuid)

        master.close()
        wait_one_master([other])
        wait_presence_settled(bea, eve_uuid, seen_before, "Bea seeing Eve's old connection go, and deciding")
        send(other, "still here, from my other tab")
        wait_text(bea, "still here, from my other tab")
        assert "Eve left" not in notices(bea), notices(bea)
        assert "Eve" in bea.eval_on_selector_all("#roster .name", "els => els.map(e => e.textContent)")
        assert bea_ctx.console_errors == [] and eve_ctx.console_errors == []
    finally:
        bea_ctx.close()
        eve_ctx.close()


def wait_load_time(page, interpreter: str) -> None:
    """The page says which interpreter runs it and how long it took from opening to connected."""
    page.wait_for_selector("#load-time:not([hidden])", timeout=LIVE_MS)
    text = page.text_content("#load-time")
    assert re.fullmatch(rf"connected in \d+\.\d\d s \({interpreter}\)", text), text
    assert page.text_content("#fact-python").startswith(interpreter)
    assert re.fullmatch(r"Python ran the page at \d+\.\d\d s, connected at \d+\.\d\d s", page.text_content("#fact-load"))
    # The switch marks this page's interpreter.
    assert page.get_attribute(f"a[data-python='{interpreter.lower()}']", "aria-current") == "page"


def test_the_chat_on_micropython_talks_with_the_chat_on_pyodide_and_both_show_their_load_time(browser, comet_server):
    room = ROOM + "m"
    seed_db(comet_server.db, DEV_ID, [room], welcome=False)
    mia_ctx, pia_ctx = OfflineContext(browser, comet_server.url), OfflineContext(browser, comet_server.url)
    try:
        (mia,) = open_tabs(mia_ctx, chat_path(room=room, python="micropython"))
        (pia,) = open_tabs(pia_ctx, chat_path(room=room))
        assert mia.locator("script[type='mpy'][src='/demo/chat/chat.py']").count() == 1
        assert pia.locator("script[type='py'][src='/demo/chat/chat.py']").count() == 1
        # Any other ?python= value is not an interpreter: the page stays on Pyodide.
        for odd in ("MicroPython", "mpy", "%3Cscript%3E", ""):
            probe = pia_ctx.context.new_page()
            probe.goto(comet_server.url + chat_path(room=room, python=odd), wait_until="domcontentloaded")
            assert probe.locator("script[type='py'][src='/demo/chat/chat.py']").count() == 1, odd
            assert probe.locator("script[type='mpy']").count() == 0, odd
            probe.close()
        wait_load_time(mia, "MicroPython")
        wait_load_time(pia, "Pyodide")
        # The switch goes to the same room on the other interpreter.
        other = pia.evaluate("document.querySelector(\"a[data-python='micropython']\").href")
        assert other == comet_server.url + chat_path(room=room, python="micropython"), other
        assert mia.evaluate("document.querySelector(\"a[data-python='pyodide']\").href") == comet_server.url + chat_path(room=room)

        # MicroPython has no unicodedata: the page's own table refuses an invisible character too.
        for page in (mia, pia):
            page.fill("#name", "Ann\u200b")
            page.click("#join")
            wait_selector_text(page, "#error", "cannot contain control or invisible characters")
        mia.fill("#name", "Mia")
        mia.click("#join")
        pia.fill("#name", "Pia")
        pia.click("#join")
        wait_selector_text(mia, "#roster .name", "Pia")
        wait_selector_text(pia, "#roster .name", "Mia")
        converse([(mia, "hello from MicroPython · é ✓"), (pia, "and from Pyodide · ß")], [mia, pia])
        mia.wait_for_selector("#messages li.mine .report[data-kind='delivered']", timeout=LIVE_MS)
        assert "delivered to 1 other connection" in mia.text_content("#messages li.mine .report")

        # A Pyodide tab in Mia's browser shares the MicroPython tab's connection (or takes it).
        (mia2,) = open_tabs(mia_ctx, chat_path(room=room))
        mia2.wait_for_selector("#me-card:not([hidden])", timeout=LIVE_MS)
        assert mia2.text_content("#me-name") == "Mia"
        wait_one_master([mia, mia2])
        converse([(mia2, "Mia again, from Pyodide"), (mia, "and from MicroPython")], [mia, mia2, pia])
        wait_selector_text(pia, "#counts", "2 joined · 2 connections")  # one per browser
        assert mia_ctx.console_errors == [] and pia_ctx.console_errors == []
    finally:
        mia_ctx.close()
        pia_ctx.close()


@pytest.fixture(scope="module")
def harness_tabs(browser, comet_server):
    ctx = OfflineContext(browser, comet_server.url)
    yield [ctx.open() for _ in range(3)]
    ctx.close()


@pytest.mark.parametrize("n_tabs", [1, 3])
def test_the_sending_tab_never_receives_its_own_web_pipe_send_with_1_or_3_tabs(harness_tabs, comet_server, n_tabs):
    dev = 9100 + n_tabs
    tabs = harness_tabs[:n_tabs]
    outside = RawClient(comet_server.ws_url(dev_id=dev))
    try:
        outside.subscribe("web_echo")
        opts = {"dev_id": dev, "node": f"127.0.0.1:{comet_server.port}"}
        for tab in tabs:
            tab.run(f"log.clear()\nc = CometApi()\nc.start({opts!r})\n"
                    "c.subscription('web_echo', rec('got')); c.subscription('#web_echo', rec('report'))")
        wait_subscribers(outside, "web_echo", 2)               # the outside client + one per browser
        for tab in tabs:
            tab.wait("c.state == 'connected'")
        sender, others = tabs[-1], tabs[:-1]                   # one of 3 tabs, or the lone tab
        sender.run("c.web_pipe_send('web_echo', 'mine', {'n': 1})")
        assert sender.wait("tagged('report')")[0]["data"]["number_messages"] == 1
        outside.wait_for(lambda m: m.get("pipe") == "web_echo" and m.get("event") == "mine")
        outside.publish("web_echo", "after", "sentinel")       # arrives after any echo would have
        for tab in tabs:
            tab.wait("any(x['server_info']['event'] == 'after' for x in tagged('got'))")
        assert [x["server_info"]["event"] for x in sender.eval("tagged('got')")] == ["after"]
        for tab in others:
            assert [x["server_info"]["event"] for x in tab.eval("tagged('got')")] == ["mine", "after"]
    finally:
        for tab in tabs:
            tab.run("c.stop()")
        outside.close()


def test_a_message_sent_while_the_server_is_down_shows_its_real_outcome_once_it_went_out(browser):
    server = ServerProcess(demo=True).start()          # its own server: this test stops it
    ctx = OfflineContext(browser, server.url)
    room = ROOM + "d"
    try:
        seed_db(server.db, DEV_ID, [room], welcome=False)
        (page,) = open_tabs(ctx, chat_path(room=room))
        page.fill("#name", "Dora")
        page.click("#join")
        page.wait_for_selector("#composer:not([hidden])", timeout=LIVE_MS)
        page.wait_for_selector("#conn[data-state='connected']", timeout=LIVE_MS)
        server.stop()
        page.wait_for_selector("#conn[data-state='disconnected']", timeout=LIVE_MS)
        send(page, "written while the server is down")
        report = page.locator("#messages li.mine", has_text="written while the server is down").locator(".report")
        report.wait_for(timeout=LIVE_MS)
        assert "queued" in report.text_content()
        # Longer down than the page waits for a report (10 s): it still says why it waits.
        page.wait_for_selector("#messages li.mine .report[data-kind='late']", timeout=LIVE_MS)
        assert "queued" in report.text_content()
        server.start()
        page.wait_for_selector("#messages li.mine .report[data-kind='delivered']", timeout=60_000)
        assert report.text_content().startswith("✓ sent")
    finally:
        ctx.close()
        server.close()
