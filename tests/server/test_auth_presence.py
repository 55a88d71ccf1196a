"""Auth (users_auth hash, HS256 JWT), private_ channels, presence and the personal-message queue."""

from __future__ import annotations

import time

import warnings

import jwt

from .helpers import connect, recv_json, recv_until, sync

PASSWORD = "CometQLPassword"


def token(dev: int, claims: dict, secret: str | None = None) -> str:
    with warnings.catch_warnings():  # CppComet's secret scheme is shorter than RFC 7518 recommends
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret if secret is not None else PASSWORD + str(dev), algorithm="HS256")


def future() -> int:
    return int(time.time()) + 3600


def test_hash_auth_ok_gives_authorized_serverinfo_with_the_hash(server, dev, store):
    store.set_user_hash(dev, 3, "valid00000userHash")
    conn, info = connect(server, dev_id=dev, user_id=3, session="valid00000userHash")
    with conn:
        assert info["authorized"] is True and info["data"] == "valid00000userHash"


def test_bad_hash_or_user_0_is_anonymous(server, dev, store):
    store.set_user_hash(dev, 3, "valid00000userHash")
    for kw in ({"user_id": 3, "session": "not00000valid"}, {"user_id": 3, "session": "valid00000userhash"},
               {"user_id": 0, "session": "valid00000userHash"}, {"user_id": 4, "session": "valid00000userHash"}):
        conn, info = connect(server, dev_id=dev, **kw)
        with conn:
            assert info["authorized"] is False and info["data"] == "", kw


def test_hash_of_another_dev_id_does_not_authorize(server, dev, store):
    store.set_user_hash(dev + 1, 3, "h3")
    conn, info = connect(server, dev_id=dev, user_id=3, session="h3")
    with conn:
        assert info["authorized"] is False


def test_jwt_ok_authorizes_and_hands_out_no_lasting_key(server, dev, store):
    # issue 8 item 7: nothing a JWT login yields may outlive the token (tests/hostile/test_credentials.py)
    t = token(dev, {"user_id": 5, "exp": future()})
    conn, info = connect(server, dev_id=dev, user_id=5, session=t)
    with conn:
        assert info["authorized"] is True and info["data"] == ""
    assert store.get_user_hash(dev, 5) is None
    conn, info2 = connect(server, dev_id=dev, user_id=5, session=t)
    with conn:
        assert info2["authorized"] is True


def test_jwt_refused_cases_give_anonymous(server, dev, store):
    cases = {
        "expired": token(dev, {"user_id": 6, "exp": int(time.time()) - 10}),
        "no exp": token(dev, {"user_id": 6}),
        "wrong user_id": token(dev, {"user_id": 2, "exp": future()}),
        "string user_id": token(dev, {"user_id": "6", "exp": future()}),
        "bad signature": token(dev, {"user_id": 6, "exp": future()})[:-4] + "AAAA",
        "other dev secret": token(dev, {"user_id": 6, "exp": future()}, secret=PASSWORD + str(dev + 1)),
    }
    for name, t in cases.items():
        conn, info = connect(server, dev_id=dev, user_id=6, session=t)
        with conn:
            assert info["authorized"] is False, name
    assert store.get_user_hash(dev, 6) is None


def test_revoked_jwt_is_refused(server, dev, store):
    t = token(dev, {"user_id": 8, "exp": future()})
    store.revoke_token(dev, t)
    conn, info = connect(server, dev_id=dev, user_id=8, session=t)
    with conn:
        assert info["authorized"] is False
    store.unrevoke_token(dev, t)
    conn, info = connect(server, dev_id=dev, user_id=8, session=t)
    with conn:
        assert info["authorized"] is True


def test_private_channel_refused_for_anonymous_with_error_rest_applies(server, dev, store):
    a, _ = connect(server, dev_id=dev)
    b, _ = connect(server, dev_id=dev)
    with a, b:
        a.send("subscription\nprivate_room\nweb_after")
        err = recv_json(a)
        assert err["event"] == "error" and err["pipe"] == "sys" and "private_" in err["data"]["error"]
        b.send("pipe_count\nweb_after\nM\n")
        assert recv_json(b)["data"] == {"user_in_pipe": 1}
    store.set_user_hash(dev, 9, "h9")
    u, _ = connect(server, dev_id=dev, user_id=9, session="h9")
    with u:
        u.send("subscription\nprivate_room")
        assert sync(u) == []


def test_bad_channel_names_get_error_frame_rest_still_applies(server, dev):
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send("subscription\nx\n" + "L" * 65 + "\nweb_good")
        errs = [recv_json(a), recv_json(a)]
        assert {e["data"]["error"] for e in errs} == {"Invalid pipe name length", "Channel name is too long"}
        a.send("pipe_count\nweb_good\nM\n")
        assert recv_json(a)["data"] == {"user_in_pipe": 1}


def test_more_than_256_channels_keeps_256_with_error(server, dev):
    a, _ = connect(server, dev_id=dev)
    with a:
        a.send("subscription\n" + "\n".join(f"web_n{i}" for i in range(300)))
        assert recv_json(a)["data"]["error"] == "Too many letters"
        a.send("pipe_count\nweb_n255\nM\n")
        assert recv_json(a)["data"] == {"user_in_pipe": 1}
        a.send("pipe_count\nweb_n256\nM\n")
        assert recv_json(a)["data"] == {"user_in_pipe": 0}


def test_user_status_online_on_first_connection_offline_after_last(server, dev, store):
    store.set_user_hash(dev, 3, "h3")
    w, _ = connect(server, dev_id=dev)
    with w:
        w.send("subscription\nuser_status_3")
        sync(w)
        u1, _ = connect(server, dev_id=dev, user_id=3, session="h3")
        ev = recv_json(w)
        assert ev["pipe"] == "user_status_3" and ev["event"] == "online" and ev["data"] == "online"
        u2, _ = connect(server, dev_id=dev, user_id=3, session="h3")
        sync(u2)
        assert sync(w) == []  # second connection: no new online
        w.send("user_status\n3")
        st = recv_json(w)
        assert st["pipe"] == "_answer_user_status" and st["event"] == "user_status_3"
        assert st["data"] == {"last_online_time": 0, "online": True}
        u1.close()
        sync(u2)
        assert sync(w) == []
        u2.close()
        ev = recv_json(w)
        assert ev["event"] == "offline" and ev["data"] == "offline"
        w.send("user_status\n3")
        st = recv_json(w)
        assert st["data"]["online"] is False and st["data"]["last_online_time"] > 0
        assert store.get_user_time(dev, 3) == st["data"]["last_online_time"]
        w.send("user_status\n77777")
        assert recv_json(w)["data"] == {"last_online_time": -1, "online": False}


def test_anonymous_connection_fires_no_presence(server, dev):
    w, _ = connect(server, dev_id=dev)
    with w:
        w.send("subscription\nuser_status_0")
        sync(w)
        a, _ = connect(server, dev_id=dev)
        a.close()
        assert sync(w) == []


def test_all_queued_personal_messages_delivered_in_order_once(server, dev, store):
    store.set_user_hash(dev, 4, "h4")
    t0 = int(time.time())
    for i in range(25):
        store.queue_user_message(dev, 4, "q", f"queued-{i:02d}", t0)
    conn, info = connect(server, dev_id=dev, user_id=4, session="h4")
    with conn:
        got = [recv_json(conn) for _ in range(25)]
        assert [m["data"] for m in got] == [f"queued-{i:02d}" for i in range(25)]
        for m in got:
            assert m["pipe"] == "msg" and m["event"] == "q" and m["fromQueue"] is True
            assert m["message_send_time"] == t0
        assert sync(conn) == []
    assert store.queued_user_messages(dev, 4) == []
    conn, _ = connect(server, dev_id=dev, user_id=4, session="h4")  # same second: no re-delivery
    with conn:
        assert sync(conn) == []


def test_queue_is_not_delivered_to_anonymous_connection(server, dev, store):
    store.queue_user_message(dev, 11, "q", "secret", int(time.time()))
    conn, info = connect(server, dev_id=dev, user_id=11, session="wrong")
    with conn:
        assert info["authorized"] is False
        assert sync(conn) == []
    assert len(store.queued_user_messages(dev, 11)) == 1


def test_legacy_client_gets_queued_personal_message_data_as_string(server, dev, store):
    store.set_user_hash(dev, 12, "h12")
    store.queue_user_message(dev, 12, "q", '{"a":1}', int(time.time()))
    conn, info = connect(server, dev_id=dev, user_id=12, session="h12", v="3.25")
    with conn:
        m, _ = recv_until(conn, lambda m: m["pipe"] == "msg")
        assert m["data"] == '{"a":1}' and m["event_name"] == "q" and m["fromQueue"] is True
