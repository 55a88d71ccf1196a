"""The real comet_server over a socket, read as CometServerApi.js 4.08 reads it (issue 9 items 1, 2).

The 4.08 client's delivery rules are replayed by tests/support/js408.py (no registry ships it).
"""

from __future__ import annotations

import json

from tests.support.js408 import Js408, js408_parse_frame

from .helpers import connect, sync

TEXTS = ["it's", "it\\'s", "C:\\path\\'x", "\\'", 'say "hi" \'bye\'', "back\\slash", "a\nb\tc",
         "unicode-é 中文", "emoji 😀👍🏽"]


def recv_text(conn, timeout: float = 5.0) -> str:
    text = conn.recv(timeout=timeout)
    assert isinstance(text, str)
    return text


def test_backslash_apostrophe_never_on_the_wire_and_408_reads_every_text(server, dev, store):
    store.set_pipe_length(dev, "web_q", 50)
    v4, _ = connect(server, dev_id=dev)
    v3, _ = connect(server, dev_id=dev, v="3.25")
    sender, _ = connect(server, dev_id=dev)
    with v4, v3, sender:
        for c in (v4, v3):
            c.send("subscription\nweb_q")
            sync(c)
        for text in TEXTS:
            sender.send("web_pipe2\nweb_q\nev\n*\n" + text)
            for conn in (v4, v3, sender):  # both receivers and the sender's report
                frame = recv_text(conn)
                assert "\\'" not in frame, frame
                (msg,) = js408_parse_frame(frame)
                data = msg["data"]
                assert (data["message"] if msg["pipe"] == "_answer_to_web_q" else data) == text
                assert json.loads(frame) == msg  # a plain JSON parser (comet_py) reads the same


def test_get_pipe_log_callback_of_408_gets_history_after_seeing_it_live(server, dev, store):
    store.set_pipe_length(dev, "web_hist408", 10)
    tab, _ = connect(server, dev_id=dev)
    sender, _ = connect(server, dev_id=dev)
    js = Js408(custom_id="7a1c0e55f2")
    got = js.subscription("web_hist408")
    with tab, sender:
        tab.send("subscription\nweb_hist408")
        sync(tab)
        sent = ["first", "it\\'s", "third"]
        for text in sent:
            sender.send("web_pipe2\nweb_hist408\nev\n*\n" + text)
            js.on_frame(recv_text(tab))
        # 4.08's get_pipe_log: subscription(pipe, cb), then pipe_log with a fresh marker
        tab.send("pipe_log\nweb_hist408\nMrk4080001\n")
        frames = [recv_text(tab)]
        while json.loads(frames[-1])["pipe"] != "_answer_pipe_log":
            frames.append(recv_text(tab))
        for frame in frames:
            js.on_frame(frame)
    end = json.loads(frames[-1])
    items = [json.loads(f) for f in frames[:-1]]
    assert [m["data"] for m in got if m["server_info"]["history"]] == sent
    assert [m["data"] for m in got if not m["server_info"]["history"]] == sent
    assert end["marker"] == "Mrk4080001" and end["data"] == {"number_messages": 3}
    assert all("marker" not in i and "uuid" not in i and i["history_id"] for i in items)
