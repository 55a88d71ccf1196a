"""A call fails with the same exception in every tab (docs/api.md §8), and every tab can ask for
the users of a track_ channel. Real CometApi tabs on the virtual-time fake browser."""

from __future__ import annotations

import asyncio

import pytest

from comet_py import relay
from comet_py.errors import CODES, CometError, ConnectionLost, RequestTimeout
from comet_py.session import Session
from tests.support.fake_browser import Origin, run
from tests.unit.test_coordinator import DEV, start_tabs


async def _outcome(fut: asyncio.Future, timeout: float = 30.0) -> BaseException:
    try:
        await asyncio.wait_for(fut, timeout)
    except CometError as exc:
        return exc
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize("call", ["count_users_in_pipe", "get_pipe_log"])
def test_a_call_the_server_never_answers_fails_with_request_timeout_in_master_and_follower(call):
    async def scenario(o: Origin) -> None:
        master, follower = await start_tabs(o, ["web_chat"], ["web_chat"])
        o.server.unanswered.update({"pipe_count", "pipe_log"})
        futs = [t.do(getattr(t.api, call), "web_chat") for t in (master, follower)]
        errors = [await _outcome(f) for f in futs]
        assert [type(e) for e in errors] == [RequestTimeout, RequestTimeout], errors
        assert all(isinstance(e, TimeoutError) for e in errors)

    run(scenario)


def test_the_followers_own_deadline_is_longer_than_the_sessions():
    # Otherwise the follower gives up first and raises its own error, not the master's answer.
    assert relay.CALL_TIMEOUT_MS > Session.REQUEST_TIMEOUT * 1000
    assert isinstance(relay.TIMEOUT_ERROR.exception(), RequestTimeout)


@pytest.mark.parametrize("how", ["stop", "pagehide"])
def test_a_call_pending_when_its_tab_leaves_fails_with_connection_lost_in_master_and_follower(how):
    async def scenario(o: Origin) -> None:
        master, follower = await start_tabs(o, ["web_chat"], ["web_chat"])
        o.server.unanswered.add("pipe_count")
        errors = []
        for t in (follower, master):
            fut = t.do(t.api.count_users_in_pipe, "web_chat")
            await o.settle(0.5)     # the follower's call has reached the master
            if how == "stop":
                t.do(t.api.stop)
            else:   # the page is left (its code runs no more after this, except the futures')
                t.page.fire("window", "pagehide")
            errors.append(await _outcome(fut, 1.0))
        assert [type(e) for e in errors] == [ConnectionLost, ConnectionLost], errors

    run(scenario)


def test_an_unknown_error_code_from_another_tab_raises_a_plain_comet_error():
    from comet_py.errors import CallError
    assert type(CallError("from_a_newer_tab", "x").exception()) is CometError
    assert all(issubclass(cls, CometError) for cls in CODES.values())


@pytest.mark.parametrize("asker", [0, 1], ids=["master", "follower"])
def test_get_track_pipe_users_gives_the_users_of_a_track_channel_in_any_tab(asker):
    async def scenario(o: Origin) -> None:
        tabs = await start_tabs(o, ["track_room"], ["web_chat"])
        outsider = o.server.external(DEV, ("track_room",), user_id=42)
        t = tabs[asker]
        got = []
        users = await asyncio.wait_for(t.do(t.api.getTrackPipeUsers, "track_room", got.append), 5)
        mine = [c for c in o.server.open_conns(DEV, browser=True)][0]
        assert sorted(users, key=lambda u: u["user_id"]) == [
            {"user_id": 0, "uuid": mine.uuid}, {"user_id": 42, "uuid": outsider.uuid}]
        await o.settle()
        assert [res.data for res in got] == [users]
        assert t.api.get_track_pipe_users == t.api.getTrackPipeUsers
        with pytest.raises(ValueError):
            t.do(t.api.get_track_pipe_users, "web_chat")
        # Only the asking tab got an answer; the other tab's callbacks saw no answer frame.
        for other in tabs:
            assert all(not e.server_info.pipe.startswith("_answer") for e in other.everything)

    run(scenario)
