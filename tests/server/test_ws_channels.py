"""What WebSocket clients see: serverInfo, subscriptions, web_pipe2, track_*, counts (design.md §3)."""

from __future__ import annotations

import json

from .helpers import connect, recv_json, recv_until, sync

SERVER = "comet_server 0.1 (CppComet-compatible)"


def test_anonymous_v4_client_gets_serverinfo_first_with_exact_keys(server, dev):
    conn, info = connect(server, dev_id=dev)
    with conn:
        assert set(info) == {"authorized", "data", "event", "message_send_time", "pipe", "server"}
        assert info["authorized"] is False and info["data"] == "" and info["pipe"] == "sys"
        assert info["server"] == SERVER and isinstance(info["message_send_time"], int)


def test_v3_client_gets_legacy_serverinfo_with_event_name_and_api_data(server, dev):
    conn, info = connect(server, dev_id=dev, v="3.25")
    with conn:
        assert info["event_name"] == "serverInfo"
        assert info["api_data"] == "for major_version < 4"


def test_frames_are_compact_json_with_sorted_keys(server, dev):
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send("pipe_count\nweb_k\nm1\n")
        raw = a.recv(timeout=5)
        assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_web_pipe2_reaches_subscriber_exactly_and_sender_gets_report_not_echo(server, dev):
    a, _ = connect(server, dev_id=dev)
    b, _ = connect(server, dev_id=dev)
    with a, b:
        a.send("subscription\nweb_chat")
        b.send("subscription\nweb_chat")
        sync(a), sync(b)
        b.send('web_pipe2\nweb_chat\nnew_msg\n*\n{"text":"hi"}')
        msg = recv_json(a)
        assert msg == {"data": '{"text":"hi"}', "event": "new_msg", "message_send_time": msg["message_send_time"],
                       "pipe": "web_chat", "user_id": 0}
        report = recv_json(b)
        assert report["pipe"] == "_answer_to_web_chat" and report["event"] == "answer"
        # CppComet's report plus what a shared connection needs to echo the message to its tabs.
        assert report["data"] == {"event": "new_msg", "message": '{"text":"hi"}', "number_messages": 1, "user_id": 0}
        assert sync(b) == []  # the sender never gets its own message


def test_apostrophes_backslashes_newlines_and_unicode_arrive_byte_exact(server, dev):
    a, _ = connect(server, dev_id=dev)
    b, _ = connect(server, dev_id=dev)
    text = "it's \"quoted\" back\\slash \\' \\n\nline2 unicode-é ☃ {\"k\":\"v \\\"q\\\"\"}"
    with a, b:
        a.send("subscription\nweb_esc")
        sync(a)
        b.send(f"web_pipe2\nweb_esc\ne\n*\n{text}")
        assert recv_json(a)["data"] == text
        assert recv_json(b)["data"]["message"] == text


def test_delivery_report_counts_every_connection_written_except_sender(server, dev):
    subs = [connect(server, dev_id=dev)[0] for _ in range(3)]
    sender, _ = connect(server, dev_id=dev)
    try:
        for s in subs + [sender]:
            s.send("subscription\nweb_cnt")
            sync(s)
        sender.send("web_pipe2\nweb_cnt\ne\n*\nx")
        report, before = recv_until(sender, lambda m: m["pipe"] == "_answer_to_web_cnt")
        assert before == [] and report["data"]["number_messages"] == 3
        for s in subs:
            assert recv_json(s)["data"] == "x"
        # nobody subscribed: report 0
        sender.send("web_pipe2\nweb_nobody\ne\n*\nx")
        assert recv_json(sender)["data"]["number_messages"] == 0
    finally:
        for s in subs + [sender]:
            s.close()


def test_web_pipe2_to_non_web_channel_gets_error_frame(server, dev):
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send('web_pipe2\ntest_pipe\nmyevent\n*\n{"x":1}')
        err = recv_json(a)
        assert err["pipe"] == "sys" and err["event"] == "error"
        assert err["data"] == {"error": "[pipe_msg2] Invalid channel name. The channel should begin with web_",
                               "number_messages": -1}


def test_web_pipe2_bad_event_name_and_auth_type_get_error_frames(server, dev):
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send("web_pipe2\nweb_x\nbad event\n*\nm")
        assert recv_json(a)["data"]["error"] == "The event name can only contain characters A-Za-z0-9_-"
        a.send("web_pipe2\nweb_x\ne\n**\nm")
        assert recv_json(a)["data"]["error"] == "Invalid value auth_type"
        a.send("web_pipe2\nweb_x.y\ne\n*\nm")
        assert recv_json(a)["data"]["error"] == "The channel name can only contain characters A-Za-z0-9_-"


def test_anonymous_cannot_send_to_webauth_channel(server, dev):
    a, _ = connect(server, dev_id=dev)
    with a:
        for pipe in ("webauth_x", "@webauth_x"):
            a.send(f"web_pipe2\n{pipe}\ne\n*\nm")
            err = recv_json(a)
            assert err["event"] == "error" and err["data"]["error"].startswith("[webauth_pipe_msg2]")


def test_authorized_sender_is_stamped_and_at_prefix_on_web_sends_as_user_0(server, dev, store):
    store.set_user_hash(dev, 42, "hash42")
    u, info = connect(server, dev_id=dev, user_id=42, session="hash42")
    r, _ = connect(server, dev_id=dev)
    with u, r:
        assert info["authorized"] is True
        r.send("subscription\nweb_s\nwebauth_s")
        sync(r)
        u.send("web_pipe2\nweb_s\ne\n*\nnamed")
        assert recv_json(r)["user_id"] == 42
        u.send("web_pipe2\n@web_s\ne\n*\nanon")
        m = recv_json(r)
        assert m["data"] == "anon" and m["user_id"] == 0 and m["pipe"] == "web_s"
        u.send("web_pipe2\nwebauth_s\ne\n*\nauth")
        assert recv_json(r)["user_id"] == 42
        reports = [recv_json(u) for _ in range(3)]
        assert [x["pipe"] for x in reports] == ["_answer_to_web_s"] * 2 + ["_answer_to_webauth_s"]
        # '@' works only with web_ channels (tests/hostile/test_credentials.py)


def test_subscription_replaces_the_set(server, dev):
    a, _ = connect(server, dev_id=dev)
    b, _ = connect(server, dev_id=dev)
    with a, b:
        a.send("subscription\nweb_one\nweb_two")
        sync(a)
        a.send("subscription\nweb_two")
        sync(a)
        b.send("web_pipe2\nweb_one\ne\n*\nlost")
        assert recv_json(b)["data"]["number_messages"] == 0
        b.send("web_pipe2\nweb_two\ne\n*\nkept")
        assert recv_json(b)["data"]["number_messages"] == 1
        assert recv_json(a)["data"] == "kept"
        a.send("subscription\n")  # empty list: unsubscribe from everything
        sync(a)
        b.send("pipe_count\nweb_two\nm2\n")
        assert recv_json(b)["data"] == {"user_in_pipe": 0}


def test_track_events_go_to_others_only_and_only_for_real_changes(server, dev):
    a, _ = connect(server, dev_id=dev, uuid="A" * 32)
    b, _ = connect(server, dev_id=dev, uuid="B" * 32)
    with a:
        a.send("subscription\ntrack_room")
        assert sync(a) == []  # no event to the subscriber itself
        b.send("subscription\ntrack_room\nweb_z")
        sync(b)
        ev = recv_json(a)
        assert ev["pipe"] == "track_room" and ev["event"] == "subscription"
        assert ev["data"] == {"user_id": 0, "uuid": "B" * 32}
        assert sync(b) == []
        b.send("subscription\ntrack_room\nweb_z\nweb_more")  # track_room unchanged
        sync(b)
        assert sync(a) == []
        b.send("subscription\nweb_z")  # leaves track_room
        sync(b)
        ev = recv_json(a)
        assert ev["event"] == "unsubscription" and ev["data"]["uuid"] == "B" * 32
        b.send("subscription\ntrack_room")
        sync(b)
        assert recv_json(a)["event"] == "subscription"
        b.close()  # closing the connection leaves too
        ev = recv_json(a)
        assert ev["event"] == "unsubscription" and ev["data"]["uuid"] == "B" * 32


def test_pipe_count_for_web_and_track_and_error_for_others(server, dev):
    a, _ = connect(server, dev_id=dev)
    b, _ = connect(server, dev_id=dev)
    with a, b:
        a.send("subscription\nweb_pc\ntrack_pc\nother_pc")
        b.send("subscription\nweb_pc")
        sync(a), sync(b)
        a.send("pipe_count\nweb_pc\nMrk1\n")
        ans = recv_json(a)
        assert ans == {"data": {"user_in_pipe": 2}, "event": "user_in_pipe", "marker": "Mrk1",
                       "message_send_time": ans["message_send_time"], "pipe": "_answer_pipe_count"}
        a.send("pipe_count\ntrack_pc\nMrk2\n")
        assert recv_json(a)["data"] == {"user_in_pipe": 1}
        a.send("pipe_count\nother_pc\nMrk3\n")
        err = recv_json(a)
        assert err["data"]["error"] == "[pipe_count] Invalid channel name. The channel should start with web_"


def test_pipe_count_legacy_client_gets_stringified_data(server, dev):
    a, _ = connect(server, dev_id=dev, v="3.25")
    with a:
        a.send("pipe_count\nweb_lg\nM\n")
        ans = recv_json(a)
        assert ans["data"] == '{"user_in_pipe":0}' and ans["event_name"] == "user_in_pipe"


def test_track_pipe_users_lists_subscribers(server, dev):
    a, _ = connect(server, dev_id=dev, uuid="a" * 32)
    b, _ = connect(server, dev_id=dev, uuid="b" * 32)
    with a, b:
        a.send("subscription\ntrack_list")
        b.send("subscription\ntrack_list")
        sync(b)
        b.send("track_pipe_users\ntrack_list\nMrkT")
        ans = recv_json(b)
        assert ans["pipe"] == "_answer" and ans["marker"] == "MrkT" and ans["_info"] == "answer for track_pipe_users"
        assert sorted(ans["data"], key=lambda x: x["uuid"]) == [{"user_id": 0, "uuid": "a" * 32},
                                                                 {"user_id": 0, "uuid": "b" * 32}]
        b.send("track_pipe_users\nweb_list\nMrkT")
        err = recv_json(b)
        assert err["data"] == {"error": "[track_pipe_users] Invalid channel name. The channel should start with track_",
                               "user_id": -1}


def test_user_data_answer_reads_the_store(server, dev, store):
    store.set_user_data(dev, 7, '{"name":"Seven"}')
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send("user_data\nMrk8\n7")
        ans = recv_json(a)
        assert ans["data"] == {"user_data": '{"name":"Seven"}', "user_id": 7} and ans["marker"] == "Mrk8"
        a.send("user_data\nMrk9\n12345")
        assert recv_json(a)["data"] == {"user_data": "", "user_id": 12345}
        a.send("user_data\nMrk9\nabc")
        assert recv_json(a)["data"]["error"] == "Invalid user id"


def test_statistics_and_stub_commands_get_no_answer(server, dev):
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send('statistics\n{"url":"x","dev_id":"0","version":"4.08"}')
        a.send("CometQL_call\nm\ntoken")
        a.send("cgi_call\nwhatever")
        assert sync(a) == []


def test_channels_are_isolated_per_dev_id(server, dev):
    a, _ = connect(server, dev_id=dev)
    b, _ = connect(server, dev_id=dev + 1)
    with a, b:
        a.send("subscription\nweb_iso")
        sync(a)
        b.send("web_pipe2\nweb_iso\ne\n*\nx")
        assert recv_json(b)["data"]["number_messages"] == 0
        assert sync(a) == []
