"""comet_py.api on both interpreters: what differs under MicroPython is said at the call."""

from comet_py.api import CometApi
from tests.mpy.helpers import MICROPYTHON, raises


def test_messages_is_an_iterator_here_and_a_clear_error_under_micropython():
    api = CometApi()
    if MICROPYTHON:
        raises(NotImplementedError, api.messages, "web_chat")
    else:
        import inspect
        assert inspect.isasyncgen(api.messages("web_chat"))  # nothing runs before its first step
