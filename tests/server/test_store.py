"""In-process tests of comet_server.store.Store (design.md §2.1)."""

from __future__ import annotations

import os

from comet_server.store import HistoryItem, QueuedMessage, Store


def test_users_auth_roundtrip_and_dev_isolation(tmp_path):
    s = Store(str(tmp_path / "a.db"))
    assert s.get_user_hash(1, 5) is None
    s.set_user_hash(1, 5, "h5")
    s.set_user_hash(1, 6, "h6")
    s.set_user_hash(2, 5, "other-dev")
    assert s.get_user_hash(1, 5) == "h5"
    assert s.get_user_hash(2, 5) == "other-dev"
    assert s.user_hashes(1, [6, 5, 7]) == [(5, "h5"), (6, "h6")]
    assert s.delete_user_hash(1, 5) is True
    assert s.delete_user_hash(1, 5) is False
    assert s.get_user_hash(1, 5) is None
    s.close()


def test_user_data_roundtrip(tmp_path):
    s = Store(":memory:")
    assert s.get_user_data(0, 1) is None
    s.set_user_data(0, 1, '{"a":"it\'s"}')
    assert s.get_user_data(0, 1) == '{"a":"it\'s"}'
    assert s.delete_user_data(0, 1) and s.get_user_data(0, 1) is None


def test_history_ids_increase_trim_and_oldest_first(tmp_path):
    s = Store(str(tmp_path / "h.db"))
    assert s.get_pipe_length(0, "web_x") == 0
    s.set_pipe_length(0, "web_x", 3)
    assert s.get_pipe_length(0, "web_x") == 3
    ids = [s.add_history(0, "web_x", f"e{i}", f"d{i}", 7, 100 + i, 3) for i in range(5)]
    assert [int(m) for m in ids] == sorted(int(m) for m in ids)
    assert len(set(ids)) == 5
    items = s.get_history(0, "web_x")
    assert [i.event for i in items] == ["e2", "e3", "e4"]
    assert items[0] == HistoryItem(history_id=ids[2], time=102, pipe="web_x", index=0, event="e2", data="d2", user_id=7)
    assert [i.history_id for i in s.get_history(0, "web_x", limit=2)] == ids[3:]
    assert s.delete_history_item(0, ids[3]) is True
    assert [i.event for i in s.get_history(0, "web_x")] == ["e2", "e4"]
    s.clear_history(0, "web_x")
    assert s.get_history(0, "web_x") == []
    # ids keep increasing after deletes
    m = s.add_history(0, "web_x", "e", "d", 0, 1, 3)
    assert int(m) > int(ids[-1])
    s.delete_pipe_settings(0, "web_x")
    assert s.get_pipe_length(0, "web_x") == 0 and s.get_history(0, "web_x") == []


def test_pipe_length_is_capped_and_shrinking_trims(tmp_path):
    s = Store(":memory:")
    s.set_pipe_length(0, "p", 5000)
    assert s.get_pipe_length(0, "p") == 1000
    for i in range(5):
        s.add_history(0, "p", "e", str(i), 0, 0, 1000)
    s.set_pipe_length(0, "p", 2)
    assert [i.data for i in s.get_history(0, "p")] == ["3", "4"]


def test_queue_all_in_order_delete_and_purge(tmp_path):
    s = Store(":memory:")
    ids = [s.queue_user_message(1, 4, "q", f"m{i}", 1000 + i) for i in range(25)]
    q = s.queued_user_messages(1, 4)
    assert [m.data for m in q] == [f"m{i}" for i in range(25)]
    assert q[0] == QueuedMessage(id=ids[0], time=1000, event="q", data="m0")
    assert s.delete_user_messages(1, 4, ids[:20]) == 20
    assert [m.data for m in s.queued_user_messages(1, 4)] == [f"m{i}" for i in range(20, 25)]
    assert s.purge_user_messages(older_than=1023) == 3
    assert s.delete_user_messages(1, 4) == 2
    assert s.queued_user_messages(1, 4) == []


def test_users_time_and_revoked_tokens(tmp_path):
    s = Store(":memory:")
    assert s.get_user_time(0, 1) == -1
    s.set_user_time(0, 1, 0)
    assert s.get_user_time(0, 1) == 0
    s.set_user_time(0, 1, 12345)
    assert s.get_user_time(0, 1) == 12345
    assert not s.is_token_revoked(0, "t")
    s.revoke_token(0, "t")
    s.revoke_token(0, "t")
    assert s.is_token_revoked(0, "t") and not s.is_token_revoked(1, "t")
    assert s.revoked_tokens(0) == ["t"]
    assert s.unrevoke_token(0, "t") and not s.unrevoke_token(0, "t")


def test_second_store_on_same_file_sees_changes(tmp_path):
    path = str(tmp_path / "shared.db")
    a, b = Store(path), Store(path)
    a.set_user_hash(0, 1, "x")
    assert b.get_user_hash(0, 1) == "x"
    b.set_pipe_length(0, "web_a", 10)
    assert a.get_pipe_length(0, "web_a") == 10
    assert os.path.exists(path)
