"""History (pipe_log) and the history_id of live messages as clients see them."""

from __future__ import annotations

from .helpers import connect, recv_json, recv_until, sync


def test_logged_channel_live_messages_carry_increasing_history_ids(server, dev, store):
    store.set_pipe_length(dev, "web_log", 10)
    a, _ = connect(server, dev_id=dev)
    b, _ = connect(server, dev_id=dev)
    with a, b:
        a.send("subscription\nweb_log")
        sync(a)
        for i in range(3):
            b.send(f"web_pipe2\nweb_log\ne{i}\n*\nm{i}")
        live = [recv_json(a) for _ in range(3)]
        ids = [int(m["history_id"]) for m in live]
        assert ids == sorted(ids) and len(set(ids)) == 3
        assert not any("uuid" in m or "marker" in m for m in live)  # as CppComet: neither key
        reports = [m for m in sync(b) if m["pipe"] == "_answer_to_web_log"]
        # the sender learns each history_id
        assert [r["data"]["history_id"] for r in reports] == [m["history_id"] for m in live]


def test_unlogged_channel_messages_have_no_history_id(server, dev):
    a, _ = connect(server, dev_id=dev)
    b, _ = connect(server, dev_id=dev)
    with a, b:
        a.send("subscription\nweb_nolog")
        sync(a)
        b.send("web_pipe2\nweb_nolog\ne\n*\nm")
        m = recv_json(a)
        assert "history_id" not in m and "uuid" not in m


def test_pipe_log_returns_items_oldest_first_then_end_frame_trimmed_to_length(server, dev, store):
    store.set_pipe_length(dev, "web_hist", 3)
    s, _ = connect(server, dev_id=dev, user_id=0)
    with s:
        for i in range(5):
            s.send(f"web_pipe2\nweb_hist\ne{i}\n*\n{{\"i\":{i}}}")
            recv_json(s)  # report
        s.send("pipe_log\nweb_hist\nMrkLog\n")
        end, items = recv_until(s, lambda m: m["pipe"] == "_answer_pipe_log")
    assert [m["event"] for m in items] == ["e2", "e3", "e4"]
    for m in items:
        assert m["history"] is True and m["fromQueue"] is True and m["pipe"] == "web_hist"
        # "marker" only ever names a request marker; "uuid" is left out as CppComet does
        assert "marker" not in m and "uuid" not in m and m["user_id"] == 0
    assert [int(m["history_id"]) for m in items] == sorted(int(m["history_id"]) for m in items)
    assert items[0]["data"] == '{"i":2}'  # stored as sent
    assert end == {"data": {"number_messages": 3}, "event": "pipe_log", "marker": "MrkLog",
                   "message_send_time": end["message_send_time"], "pipe": "_answer_pipe_log"}


def test_pipe_log_since_a_history_id_returns_only_what_came_after_it(server, dev, store):
    store.set_pipe_length(dev, "web_since", 10)
    s, _ = connect(server, dev_id=dev, user_id=0)
    with s:
        ids = []
        for i in range(4):
            s.send(f"web_pipe2\nweb_since\ne{i}\n*\nm{i}")
            ids.append(recv_json(s)["data"]["history_id"])
        s.send(f"pipe_log\nweb_since\nMrkSince\n{ids[1]}\n")
        end, items = recv_until(s, lambda m: m["pipe"] == "_answer_pipe_log")
    assert [m["event"] for m in items] == ["e2", "e3"]
    assert end["data"] == {"number_messages": 2}


def test_pipe_log_since_must_be_a_history_id(server, dev, store):
    """1 to 18 ASCII digits, the rule of every id (names.parse_id); anything else is refused."""
    store.set_pipe_length(dev, "web_since_rule", 10)
    s, _ = connect(server, dev_id=dev)
    with s:
        for bad in ["-1", "1e3", "\u0661", "9" * 19]:
            s.send(f"pipe_log\nweb_since_rule\nM\n{bad}\n")
            assert recv_json(s)["data"]["error"] == "Invalid history position: expected up to 18 digits 0-9."
        s.send(f"pipe_log\nweb_since_rule\nM\n{'9' * 18}\n")
        assert recv_json(s)["data"] == {"number_messages": 0}


def test_pipe_log_for_channel_without_history_is_just_the_end_frame(server, dev):
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send("pipe_log\nweb_empty\nM0\n")
        assert recv_json(a)["data"] == {"number_messages": 0}


def test_pipe_log_bad_channel_or_marker_gets_error_frame(server, dev):
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send("pipe_log\nbad.name\nM\n")
        assert recv_json(a)["data"] == {"error": "Invalid channel name.", "number_messages": -1}
        a.send("pipe_log\nweb_ok\nbad marker\n")
        assert recv_json(a)["data"]["error"] == "Invalid marker value."


def test_history_settings_changed_by_another_process_apply_immediately(server, dev, store):
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send("web_pipe2\nweb_late\ne\n*\nbefore")
        recv_json(a)
        store.set_pipe_length(dev, "web_late", 5)
        a.send("web_pipe2\nweb_late\ne\n*\nafter")
        recv_json(a)
        a.send("pipe_log\nweb_late\nM\n")
        end, items = recv_until(a, lambda m: m["pipe"] == "_answer_pipe_log")
        assert [m["data"] for m in items] == ["after"]
