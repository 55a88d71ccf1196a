"""CometApi: the comet-server JavaScript API, in Python, for one page.

The JS names are kept (``subscription``, ``onAuthFalill``, ...) for people porting code, with
Python spellings beside them. The connection itself lives in the master tab (``coordinator``);
this class only validates calls, keeps this tab's callbacks and dispatches what arrives.
"""

import asyncio
import inspect
import logging
import sys
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Optional, Union

from . import aio, jsonsafe
from .channels import check_event, check_name, check_send_pipe
from .errors import NotStartedError
from .message import Message
from .options import Options, parse_options
from .protocol import web_pipe_frame
from .registry import Registry
from .relay import GAP
from .session import State

log = logging.getLogger("comet_py")

if TYPE_CHECKING:  # annotations only: no typing objects built at import
    Callback = Callable[[Message], Union[None, Awaitable[None]]]
_MISSING: Any = object()
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


def _is_awaitable(value: Any) -> bool:
    # MicroPython's inspect has no isawaitable; its coroutines are generators (send and throw)
    if _isawaitable is not None:
        return bool(_isawaitable(value))
    return hasattr(value, "send") and hasattr(value, "throw")


_isawaitable = getattr(inspect, "isawaitable", None)


class AttrDict(dict):
    """A dict whose keys read as attributes too: ``res.data.user_in_pipe`` as in the seed."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class CometApi:
    """One comet client for this page. ``cometApi`` is a ready instance, like the JS global."""

    def __init__(self, *, platform: Any = None) -> None:
        self._platform = platform  # the browser module, or a fake in tests
        self._registry = Registry()
        self._options: Optional[Options] = None
        self._coordinator: Any = None
        self._authorized: Optional[bool] = None
        self._state: str = State.IDLE
        self._is_master = False
        self._auth_callbacks: dict[bool, list[Callable[[], Any]]] = {True: [], False: []}
        self._state_callbacks: list[Callable[[str, dict], Any]] = []
        self._master_callbacks: list[Callable[[bool], Any]] = []
        self._tasks: set[asyncio.Future] = set()

    # -- connection --------------------------------------------------------------------------

    def start(self, opt: Optional[dict] = None, **kwargs: Any) -> bool:
        """Open the connection (or join the master tab's). ``dev_id`` is required."""
        options = parse_options(opt, **kwargs)  # raises before anything changes
        if self._coordinator is not None:
            return self.restart(opt, **kwargs)
        from .coordinator import Coordinator

        self._options = options
        self._coordinator = Coordinator(options, self, self._platform_module())
        self._coordinator.set_channels(self._registry.server_channels())
        self._coordinator.start()
        return True

    def restart(self, opt: Optional[dict] = None, **kwargs: Any) -> bool:
        """Reconnect; given keys replace the old ones, the rest are kept. Subscriptions stay."""
        current = self._require_started()
        new = current.merged(opt, **kwargs)
        from .coordinator import Coordinator

        self._coordinator.close()
        self._options = new
        self._authorized = None
        self._coordinator = Coordinator(new, self, self._platform_module())
        self._coordinator.set_channels(self._registry.server_channels())
        self._coordinator.start()
        return True

    def stop(self) -> None:
        """Close this tab's part: its callbacks stay, its channels are released."""
        if self._coordinator is not None:
            self._coordinator.close()
            self._coordinator = None
        self.set_state(State.CLOSED, {})

    # -- subscriptions -----------------------------------------------------------------------

    def subscription(self, name: "Union[str, Callback, None]", callback: "Optional[Callback]" = None) -> str:
        """Register ``callback`` for a channel form (api.md §3); returns the subscription id.

        ``subscription(callback)`` alone (or ``name=""``) receives every message of this tab.
        """
        if callback is None and callable(name):
            callback = name
            name = ""
        if not callable(callback):
            raise TypeError("subscription() needs a callable callback")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"channel name must be a str, not {type(name).__name__}")
        sub_id = self._registry.add(name or None, callback)
        self._channels_changed()
        return sub_id

    subscribe = subscription

    def unsubscription(self, sub_id: str) -> bool:
        removed = self._registry.remove(sub_id)
        if removed:
            self._channels_changed()
        return removed

    unsubscribe = unsubscription

    def unsubscriptionAll(self) -> None:
        if self._registry.clear():
            self._channels_changed()

    unsubscribe_all = unsubscriptionAll

    def subscription_once(self, name: str, callback: "Callback") -> str:
        """Like subscription, removed after its first message."""
        holder: dict[str, str] = {}

        def once(e: Message) -> Any:
            self.unsubscription(holder["id"])
            return callback(e)

        holder["id"] = self.subscription(name, once)
        return holder["id"]

    async def messages(self, name: str, *, max_queue: int = 10_000) -> AsyncIterator[Message]:
        """``async for e in cometApi.messages("web_chat"):`` — the subscription as an iterator."""
        queue: asyncio.Queue[Message] = asyncio.Queue(max_queue)

        def put(e: Message) -> None:
            if queue.full():
                log.warning("comet_py: messages(%r) iterator is %d behind; dropping the oldest", name, max_queue)
                queue.get_nowait()
            queue.put_nowait(e)

        sub_id = self.subscription(name, put)
        try:
            while True:
                yield await queue.get()
        finally:
            self.unsubscription(sub_id)

    if not TYPE_CHECKING and sys.implementation.name == "micropython":
        def messages(self, name, *, max_queue=10_000):  # noqa: F811 - MicroPython's stand-in
            """MicroPython 1.27 has no async generators (and no asyncio.Queue): say so at the call,
            not as an AttributeError inside ``async for``."""
            raise NotImplementedError("cometApi.messages() needs async generators, which MicroPython "
                                      "lacks; use cometApi.subscription(name, callback)")

    # -- calls through the connection ----------------------------------------------------------

    def web_pipe_send(self, pipe: str, event: Any = _MISSING, message: Any = _MISSING) -> None:
        """Publish into a ``web_*``/``webauth_*`` channel; a leading ``@`` sends anonymously.

        Forms: ``(pipe, event, message)``, ``("pipe.event", message)`` and ``(pipe, message)``
        (event "undefined", as the JS client does). A message whose frame would be over the
        server's 65535 bytes raises ``ValueError`` (comet_server would close the connection).
        """
        if message is _MISSING:
            if event is _MISSING:
                raise TypeError("web_pipe_send(pipe, event, message) needs a message")
            message = event
            pipe, _, event = pipe.partition(".") if isinstance(pipe, str) else (pipe, "", "")
            event = event or "undefined"
        if not isinstance(pipe, str):
            raise TypeError(f"pipe must be a str, not {type(pipe).__name__}")
        check_send_pipe(pipe)
        check_event(event)
        try:
            text = jsonsafe.dumps(message)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"web_pipe_send: the message is not JSON-serialisable: {exc}") from None
        # Over the server's frame limit (65535 bytes): refused here, in the caller's tab, rather
        # than failing later in the master tab with only a log line.
        web_pipe_frame(pipe, event, text)
        self._require_started()
        self._coordinator.web_pipe(pipe, event, text)

    def get_pipe_log(self, pipe: str, callback: "Optional[Callback]" = None) -> "asyncio.Future[int]":
        """Ask for the channel's history: the stored messages arrive in this tab's callbacks
        with ``server_info.history == True``. Awaitable: gives how many arrived (comet_server)."""
        check_name(pipe)
        self._require_started()
        if callback is not None:
            self.subscription(pipe, callback)
        return self._coordinator.request("pipe_log", pipe)

    def count_users_in_pipe(self, pipe: str, callback: Optional[Callable[[Any], Any]] = None) -> "asyncio.Future[int]":
        """Subscriber count of a ``web_*``/``track_*`` channel: ``cb(res)`` with
        ``res.data.user_in_pipe``, and awaitable: ``n = await cometApi.count_users_in_pipe(p)``."""
        check_name(pipe)
        if not pipe.startswith(("web_", "track_")):
            raise ValueError(f"count_users_in_pipe: {pipe!r} must start with web_ or track_")
        self._require_started()
        return self._answered(
            self._coordinator.request("pipe_count", pipe), int, callback,
            lambda count: AttrDict(data=AttrDict(user_in_pipe=count),
                                   server_info=AttrDict(pipe=pipe, event="user_in_pipe")))

    def get_track_pipe_users(self, pipe: str, callback: Optional[Callable[[Any], Any]] = None) -> "asyncio.Future[list]":
        """Who is subscribed to a ``track_*`` channel: awaitable, gives the server's list of
        users (``{"user_id": ..., "uuid": ...}`` each); ``cb(res)`` gets it as ``res.data``."""
        check_name(pipe)
        if not pipe.startswith("track_"):
            raise ValueError(f"get_track_pipe_users: {pipe!r} must start with track_")
        self._require_started()
        return self._answered(
            self._coordinator.request("track_pipe_users", pipe),
            lambda users: list(users) if isinstance(users, list) else [], callback,
            lambda users: AttrDict(data=users, server_info=AttrDict(pipe=pipe, event="answer")))

    def _answered(self, request: "asyncio.Future[Any]", convert: Callable[[Any], Any],
                  callback: Optional[Callable[[Any], Any]],
                  response: Callable[[Any], AttrDict]) -> "asyncio.Future[Any]":
        """The awaitable of a server call: ``convert`` of its answer (or its exception), and
        ``callback(response(value))`` in the JS style when one was given."""
        result: asyncio.Future[Any] = aio.create_future()

        def done(fut: asyncio.Future) -> None:
            if fut.cancelled():
                result.cancel()
                return
            exc = fut.exception()
            if exc is not None:
                result.set_exception(exc)
                return
            value = convert(fut.result())
            result.set_result(value)
            if callback is not None:
                self._call_user(callback, response(value))

        request.add_done_callback(done)
        return result

    getTrackPipeUsers = get_track_pipe_users

    # -- status ------------------------------------------------------------------------------

    def onAuthSuccess(self, callback: Callable[[], Any]) -> None:
        """Called on every change to authorized, the first answer after connecting included."""
        self._auth_callbacks[True].append(callback)

    def onAuthFalill(self, callback: Callable[[], Any]) -> None:
        """Called on every change to not authorized (the seed's spelling is kept)."""
        self._auth_callbacks[False].append(callback)

    on_auth_success = onAuthSuccess
    on_auth_fail = onAuthFail = onAuthFalill

    def isAuthorized(self) -> Optional[bool]:
        """None before the server's first answer, then True or False."""
        return self._authorized

    is_authorized = isAuthorized

    def isMaster(self) -> bool:
        """True in exactly one tab per (origin, node, dev_id, user_id): the one holding the socket."""
        return self._is_master

    is_master = isMaster

    def on_state(self, callback: Callable[[str, dict], Any]) -> None:
        """``callback(state, detail)`` on connecting, connected, disconnected and closed, and on
        ``gap`` (detail ``{"pipes": [...]}``): messages on those channels may have been missed
        while disconnected and could not be fetched again (no history, or a server without
        history_ids). ``state`` keeps the connection state; a gap does not change it."""
        self._state_callbacks.append(callback)

    def on_master(self, callback: Callable[[bool], Any]) -> None:
        """``callback(is_master)`` whenever this tab becomes, or stops being, the one holding
        the connection (e.g. to play a sound in one tab only)."""
        self._master_callbacks.append(callback)

    @property
    def state(self) -> str:
        return self._state

    def isConnected(self) -> bool:
        return self._state == State.CONNECTED

    is_connected = isConnected

    def setLogLevel(self, level: int) -> None:
        """Seed parity: 0 warnings, 1 info, 2+ debug (the ``comet_py`` logger)."""
        logging.getLogger("comet_py").setLevel(_LEVELS.get(int(level), logging.DEBUG))

    set_log_level = setLogLevel

    def getLogLevel(self) -> int:
        level = logging.getLogger("comet_py").getEffectiveLevel()
        return 0 if level >= logging.WARNING else 1 if level >= logging.INFO else 2

    get_log_level = getLogLevel

    def getDevId(self) -> Optional[int]:
        return self._options.dev_id if self._options else None

    def getUserId(self) -> Optional[int]:
        return self._options.user_id if self._options else None

    def getUserKey(self) -> Optional[str]:
        return self._options.user_key if self._options else None

    get_dev_id, get_user_id, get_user_key = getDevId, getUserId, getUserKey

    # -- roles.TabSink: what the coordinator tells this page --------------------------------------

    def deliver(self, message: dict) -> None:
        callbacks = self._registry.callbacks_for(message)  # none for a duplicate: never twice
        if not callbacks:
            return
        event = Message.from_dict(message)
        for callback in callbacks:
            # _call_user(callback, event), inline: this runs for every message.
            try:
                result = callback(event)
                if result is not None:
                    self._returned(result)
            except Exception:
                log.exception("comet_py: a callback raised")

    def set_auth(self, authorized: bool) -> None:
        if authorized == self._authorized:
            return
        self._authorized = authorized
        for callback in list(self._auth_callbacks[authorized]):
            self._call_user(callback)

    def set_state(self, state: str, detail: dict) -> None:
        state = str(state)  # a plain str in every tab: a follower's comes from JSON
        if state == GAP:
            # An event, not a state: messages on these pipes may be lost for good, so their
            # history_ids start afresh (a restarted server may count from 1 again).
            self._registry.forget_history_ids(detail.get("pipes"))
        elif state == self._state:
            return
        else:
            self._state = state
        for callback in list(self._state_callbacks):
            self._call_user(callback, state, detail)

    def set_master(self, is_master: bool) -> None:
        if is_master == self._is_master:
            return
        self._is_master = is_master
        for callback in list(self._master_callbacks):
            self._call_user(callback, is_master)

    def last_history_ids(self) -> dict[str, str]:
        return self._registry.last_history_ids()

    # -- helpers -----------------------------------------------------------------------------

    def _call_user(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run page code; a raise is logged and never stops the next delivery."""
        try:
            result = callback(*args)
            if result is not None:  # most callbacks return None
                self._returned(result)
        except Exception:
            log.exception("comet_py: a callback raised")

    def _returned(self, result: Any) -> None:
        """What a callback returned: run it when it is awaitable (an async callback)."""
        if _is_awaitable(result):
            task = aio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("comet_py: an async callback raised", exc_info=task.exception())

    def _channels_changed(self) -> None:
        if self._coordinator is not None:
            self._coordinator.set_channels(self._registry.server_channels())

    def _require_started(self) -> Options:
        if self._coordinator is None or self._options is None:
            raise NotStartedError("call cometApi.start({'dev_id': ...}) first")
        return self._options

    def _platform_module(self) -> Any:
        if self._platform is None:
            from . import browser

            self._platform = browser
        return self._platform
