"""test_single_tab.py's scenarios again, on one MicroPython tab (tests/pages/harness_mpy.html):
``pipe.event`` filters, auth by hash and JWT, presence and track_* events, bad names, a raising
callback, reconnection after a server restart. The same test functions run here with this
module's ``tab``. The two that await at top level there (the MicroPython harness cannot) are
written here with the callback forms of the same calls."""

import pytest

from tests.e2e import test_single_tab as single
from tests.e2e.test_mpy_api import MPY_HARNESS
from tests.e2e.test_single_tab import raw, start  # noqa: F401  (raw: the fixture)
from tests.support.rawclient import wait_subscribers


@pytest.fixture(scope="module")
def tab(shared_context):
    """One MicroPython harness tab reused by the module."""
    return shared_context.open(MPY_HARNESS)


def test_the_reused_scenarios_run_on_micropython(tab):
    # they take this module's ``tab``: a silent fallback to Pyodide would test nothing new
    assert tab.eval("__import__('sys').implementation.name") == "micropython"


test_event_filter_and_catch_all_callbacks_on_micropython = single.test_event_filter_and_catch_all_callbacks
test_auth_by_hash_and_jwt_on_micropython = single.test_auth_callbacks_and_is_authorized_for_hash_and_jwt
test_presence_and_track_events_on_micropython = single.test_presence_track_and_personal_messages
test_bad_channel_names_raise_on_micropython = single.test_bad_channel_names_raise_and_change_nothing
test_bad_calls_raise_clear_errors_on_micropython = single.test_bad_calls_raise_clear_errors
test_a_raising_callback_does_not_stop_the_next_message_on_micropython = single.test_a_raising_callback_does_not_stop_the_next_message
test_reconnects_after_a_server_restart_on_micropython = single.test_reconnects_after_a_server_restart_and_restores_subscriptions


def test_history_arrives_flagged_with_markers_on_micropython(tab, comet_server, dev_id, raw):
    single.publish_history(comet_server, dev_id, raw)
    start(tab, "h", dev_id, comet_server)
    tab.run("h.get_pipe_log('web_hist', rec('hist'))")
    single.check_history(tab)


def test_count_users_in_pipe_on_micropython(tab, comet_server, dev_id, raw):
    others = [raw(), raw()]
    for other in others:
        other.subscribe("web_count", "track_count")
    start(tab, "c", dev_id, comet_server)
    wait_subscribers(others[0], "web_count", 2)
    tab.run("c.count_users_in_pipe('track_count', lambda res: log.append({'tag': 'n', 'n': res.data.user_in_pipe, 'd': res['data']['user_in_pipe']}))")
    assert tab.wait("tagged('n')")[0] == {"tag": "n", "n": 2, "d": 2}
