"""comet_py on a MicroPython page (<script type="mpy" config="/pyscript-mpy.toml">), in Debian
Chromium, offline: the bundle loads from our own origin, and the FFI layer (comet_py/browser.py)
does on MicroPython what the sans-I/O core relies on.

One MicroPython harness tab serves the module (tests/pages/harness_mpy.html).
"""

import time

import pytest

from tests.support.browser import PyError
from tests.support.rawclient import RawClient, wait_subscribers

MPY_HARNESS = "/tests/pages/harness_mpy.html"


@pytest.fixture(scope="module")
def mpy(shared_context):
    return shared_context.open(MPY_HARNESS)


def test_the_page_runs_micropython_with_comet_py_from_the_bundle(mpy, shared_context):
    assert mpy.eval("__import__('sys').implementation.name") == "micropython"
    assert mpy.eval("comet_py.browser.MICROPYTHON if hasattr(comet_py, 'browser') else "
                    "__import__('comet_py.browser').browser.MICROPYTHON") is True
    assert mpy.eval("sorted(n for n in dir(comet_py) if n[0].isupper())")[:2] == ["AttrDict", "CometApi"]
    assert not shared_context.blocked
    assert not shared_context.console_errors, shared_context.console_errors


def test_clock_random_ids_and_storage(mpy):
    mpy.run("from comet_py import browser")
    # Date.now() is past 32 bits: MicroPython would truncate it, the clock must not.
    assert abs(mpy.eval("browser.now_ms()") - time.time() * 1000) < 60_000
    ids = mpy.eval("[browser.random_id(24) for _ in range(3)]")
    assert len(set(ids)) == 3 and all(len(i) == 24 and i.isalnum() for i in ids)
    assert mpy.eval("browser.storage_get('mpy-test-missing')") is None
    assert mpy.eval("browser.storage_set('mpy-test', 'v\\u00e9')") is True
    assert mpy.eval("browser.storage_get('mpy-test')") == "v\u00e9"
    assert mpy.eval("browser.page_visible(), browser.IN_WORKER, browser.locks_available()") == [True, False, True]


def test_socket_receives_batched_frames_and_reports_the_close(mpy, comet_server, dev_id):
    url = comet_server.ws_url(dev_id=dev_id)
    mpy.run(
        "from comet_py import browser\n"
        "sock_events = []\n"
        f"sock = browser.Socket({url!r}, lambda: sock_events.append('open'),"
        " lambda t: sock_events.append(t), lambda c, r: sock_events.append(('close', c)))"
    )
    mpy.wait("'open' in sock_events")
    assert mpy.eval("sock.is_open") is True
    assert mpy.eval("sock.send('subscription\\nweb_mpy_room')") is True
    publisher = RawClient(comet_server.ws_url(dev_id=dev_id))
    try:
        wait_subscribers(publisher, "web_mpy_room", 1)
        for n in range(5):
            publisher.publish("web_mpy_room", "n", n)
        texts = mpy.wait("[e for e in sock_events if isinstance(e, str) and 'web_mpy_room' in e]"
                         " if len([e for e in sock_events if isinstance(e, str) and 'web_mpy_room' in e]) >= 5 else []")
        assert len(texts) == 5
    finally:
        publisher.close()
    mpy.run("sock.close()")
    assert mpy.eval("sock.is_open, sock.send('x')") == [False, False]
    assert not mpy.eval("[e for e in sock_events if isinstance(e, tuple)]")  # owner's close: no on_close


def test_a_url_the_browser_refuses_is_a_python_error_not_a_crash(mpy):
    with pytest.raises(PyError, match="ValueError"):
        mpy.run("from comet_py import browser\nbrowser.Socket('ftp://127.0.0.1/', lambda: 0, lambda t: 0, lambda c, r: 0)")
    assert mpy.eval("1 + 1") == 2  # the interpreter lives on


def test_channel_and_lock_between_a_micropython_tab_and_a_pyodide_tab(mpy, shared_context):
    py = shared_context.open()  # harness.html: Pyodide, same origin
    mpy.run("from comet_py import browser\nmpy_got = []\nch = browser.Channel('mpy-test-bc', mpy_got.append)")
    py.run("from comet_py import browser\npy_got = []\nch = browser.Channel('mpy-test-bc', py_got.append)")
    mpy.run("ch.post('from mpy')")
    py.run("ch.post('from pyodide')")
    assert py.wait("py_got") == ["from mpy"]
    assert mpy.wait("mpy_got") == ["from pyodide"]
    mpy.run("granted = []\nlost = []\nlock = browser.HeldLock('mpy-test-lock', lambda: granted.append(1), lost.append)")
    mpy.wait("lock.held")
    py.run("granted = []\nlock = browser.HeldLock('mpy-test-lock', lambda: granted.append(1))")
    time.sleep(0.3)
    assert py.eval("lock.held") is False  # queued behind the MicroPython tab
    mpy.run("lock.release()")
    py.wait("lock.held")
    assert mpy.eval("lost") == []
    py.run("lock.release(); ch.close()")
    mpy.run("ch.close()")
