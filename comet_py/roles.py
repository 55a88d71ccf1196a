"""A tab's two roles, master and follower, each with the state only it has (design.md §4.1).

The Coordinator holds one role at a time and swaps it on promotion and demotion. Both have the
same interface (``Role``); the Coordinator reads ``role.relay.on_message`` directly, since both
relays take the channel's text the same way, and carries out every relay action in its one
handler (``Coordinator._run``), which hands the actions only a MasterRelay gives back to the
``MasterRole``.

``TabSink`` (for type checkers only) is what a role and the Coordinator tell this tab's page (``CometApi``).
"""

import logging
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from .connection import Connection
from .errors import BAD_CALL, CallError
from .relay import GAP, HEARTBEAT_MS, Action, Deliver, FollowerRelay, MasterRelay, PendingCall, Token
from .session import Answer, AuthChanged, Dispatch, Event, Gap, Session, State, StateChanged

if TYPE_CHECKING:  # only for annotations: not imported in the browser
    from .platform import Platform

log = logging.getLogger("comet_py")

if TYPE_CHECKING:  # for type checkers only: a Protocol class is dear to create at import
    Run = Callable[[list[Action]], None]   # the Coordinator's action handler

    class TabSink(Protocol):
        """This tab's page: its callbacks, its state and its remembered history positions."""

        def deliver(self, message: dict[str, Any]) -> None: ...
        def set_state(self, state: str, detail: dict[str, Any]) -> None: ...   # a State, or GAP
        def set_auth(self, authorized: bool) -> None: ...
        def set_master(self, is_master: bool) -> None: ...
        def last_history_ids(self) -> dict[str, str]: ...

    class Role(Protocol):
        @property
        def relay(self) -> MasterRelay | FollowerRelay: ...  # takes the channel's text
        @property
        def highest_term(self) -> int: ...
        def pending_calls(self) -> list[PendingCall]: ...
        def announce(self, now_ms: float) -> None: ...
        def call(self, op: str, args: dict[str, Any], now_ms: float) -> tuple[int, list[Action]]: ...
        def set_channels(self, channels: frozenset[str], now_ms: float) -> None: ...
        def tick(self, now_ms: float) -> None: ...
        def page_became_visible(self, now_ms: float) -> None: ...
        def network_back(self) -> None: ...
        def network_lost(self) -> None: ...
        def leave(self, now_ms: float) -> None: ...


class MasterRole:
    """This tab holds the connection: a Session run by a Connection, the MasterRelay serving
    every tab, and what only a master keeps: the watches on the other tabs' locks and the time
    of its last heartbeat."""

    def __init__(self, tab_id: str, term: int, session: Session, platform: "Platform", tab: "TabSink",
                 run: "Run", *, channels: frozenset[str], highest_term: int,
                 tab_lock: Callable[[str], str] | None) -> None:
        """``tab_lock``: Web Locks mode, a tab id's lock name (the master watches each tab's
        lock and says bye itself); None in fallback mode (silent tabs expire instead)."""
        self.relay = MasterRelay(tab_id, term)
        self.relay.set_own_channels(channels)
        self.session = session
        session.set_channels(self.relay.union())
        self.connection = Connection(session, platform, self.on_session_event, self.on_message)
        self._highest_term = highest_term
        self._p = platform
        self._tab = tab
        self._run = run
        self._tab_lock = tab_lock
        self._watches: dict[str, Any] = {}
        self._last_beat = 0.0
        self._stopped = False

    @property
    def highest_term(self) -> int:
        """The highest term this tab saw while following (a later promotion outbids it)."""
        return self._highest_term

    def start(self, calls_made_while_following: list[PendingCall]) -> None:
        self._tab.set_master(True)
        self._run(self.relay.heartbeat(self._p.now_ms()))  # followers say hello to the new master
        self.connection.start()
        for call in calls_made_while_following:
            _, actions = self.relay.call_local(call.op, call.args, call.req)
            self._run(actions)

    # -- what the Coordinator asks -------------------------------------------------------------

    def announce(self, now_ms: float) -> None:
        pass  # its heartbeats announce it

    def pending_calls(self) -> list[PendingCall]:
        return []  # a master runs each call at once

    def call(self, op: str, args: dict[str, Any], now_ms: float) -> tuple[int, list[Action]]:
        return self.relay.call_local(op, args)

    def set_channels(self, channels: frozenset[str], now_ms: float) -> None:
        self._run(self.relay.set_own_channels(channels))

    def tick(self, now_ms: float) -> None:
        if now_ms - self._last_beat >= HEARTBEAT_MS:
            self._last_beat = now_ms
            self._run(self.relay.heartbeat(now_ms))
        if self._tab_lock is None:
            self._run(self.relay.expire(now_ms))

    def page_became_visible(self, now_ms: float) -> None:
        pass  # nobody to probe: this tab is the one the others probe

    def network_back(self) -> None:
        self.connection.network_back()

    def network_lost(self) -> None:
        self.connection.network_lost()

    def leave(self, now_ms: float) -> None:
        if self._tab_lock is not None:
            self._run(self.relay.stop())  # bye; in fallback mode the election's resign says it
        self.stop()

    def stop(self) -> None:
        """Close the connection (its Session's last answers still reach the tabs) and stop
        watching the other tabs."""
        self._stopped = True
        self.connection.stop()
        for watch in self._watches.values():
            watch.release()
        self._watches.clear()

    # -- the actions only a MasterRelay gives ----------------------------------------------------

    def run_call(self, token: Token, op: str, args: dict[str, Any]) -> None:
        if self._stopped:
            return
        try:
            if op == "web_pipe":
                events = self.session.web_pipe(args["pipe"], args["event"], args["text"], token)
            else:
                events = self.session.request(op, args["pipe"], token)
        except (ValueError, KeyError) as exc:  # a bad call from another tab
            self._run(self.relay.route_answer(token, None, CallError(BAD_CALL, str(exc))))
            return
        self.connection.handle(events)

    def set_session_channels(self, channels: frozenset[str]) -> None:
        if not self._stopped:
            self.connection.handle(self.session.set_channels(channels))

    def catch_up(self, tab_id: str, history_ids: dict[str, str]) -> None:
        if not self._stopped:
            self.connection.handle(self.session.catch_up(history_ids, (tab_id, 0)))

    def watch(self, tab_id: str) -> None:
        """Learn when a follower dies: its tab lock is granted to us only then."""
        if self._tab_lock is None or tab_id in self._watches:
            return

        def died() -> None:
            self.unwatch(tab_id)
            if not self._stopped:
                log.info("comet_py: tab %s is gone", tab_id)
                self._run(self.relay.forget(tab_id))

        self._watches[tab_id] = self._p.HeldLock(self._tab_lock(tab_id), died)

    def unwatch(self, tab_id: str) -> None:
        watch = self._watches.pop(tab_id, None)
        if watch is not None:
            watch.release()

    # -- the Session's output --------------------------------------------------------------------

    def on_message(self, message: dict[str, Any]) -> None:
        """``on_session_event(Dispatch(message))``, the hot path: an ordinary live message for
        every tab. A lone tab hands it straight to its page (what ``route_deliver`` and
        the Coordinator's ``Deliver`` would do)."""
        if self.relay.tabs:
            self._run(self.relay.route_deliver(message))
            return
        try:
            self._tab.deliver(message)
        except Exception:
            log.exception("comet_py: failed to carry out %r", Deliver(message))  # as Coordinator._run

    def on_session_event(self, event: Event) -> None:
        """What the Connection passes on (all but Send and Reconnect), routed to the tabs."""
        # if/isinstance, not match: MicroPython has no match statement
        if isinstance(event, Dispatch):  # the hot path: no clock read
            self._run(self.relay.route_deliver(event.message, event.to, event.exclude))
        elif isinstance(event, Answer):
            self._run(self.relay.route_answer(event.token, event.value, event.error))
        elif isinstance(event, StateChanged):
            # Only our own stop (this tab leaves or steps down) closes the session: the
            # connection goes on in the next master, so no tab is told "closed".
            if event.state != State.CLOSED:
                state, detail = event.state, event.detail
                self._run(self.relay.state_message(state, self.session.authorized, self._p.now_ms(), detail))
                self._tab.set_state(state, detail)
        elif isinstance(event, Gap):
            to = event.to
            if to is None:
                self._run(self.relay.gap(event.pipes, self._p.now_ms()))
                self._tab.set_state(GAP, {"pipes": event.pipes})
            elif (isinstance(to, (tuple, list)) and len(to) == 2 and isinstance(to[0], str)
                    and to[0] != self.relay.tab_id):
                self._run(self.relay.gap(event.pipes, self._p.now_ms(), to=to[0]))  # one returning tab's
        elif isinstance(event, AuthChanged):
            self._run(self.relay.auth_message(event.authorized, self._p.now_ms()))
            self._tab.set_auth(event.authorized)


class FollowerRole:
    """This tab follows the master over the channel: a FollowerRelay, and (Web Locks mode) the
    decision to steal the lock from a master that holds it but stays silent."""

    def __init__(self, tab_id: str, platform: "Platform", run: "Run", *,
                 history_ids: Callable[[], Mapping[str, str]], channels: frozenset[str],
                 highest_term: int, locks: bool, steal: Callable[[], None]) -> None:
        self.relay = FollowerRelay(tab_id, history_ids=history_ids, keepalive=not locks)
        self.relay.highest_term = highest_term
        self.relay.set_channels(channels, platform.now_ms())  # not started: only remembered
        self._p = platform
        self._run = run
        self._locks = locks
        self._steal = steal
        self._stealing = False  # one steal at a time: it is granted at once

    @property
    def highest_term(self) -> int:
        return self.relay.highest_term

    def announce(self, now_ms: float) -> None:
        """Say hello: the master learns our channels and history_ids, and answers at once."""
        self._run(self.relay.start(now_ms))

    def pending_calls(self) -> list[PendingCall]:
        """Calls not answered yet: a promoted tab runs them itself."""
        return self.relay.pending_calls()

    def call(self, op: str, args: dict[str, Any], now_ms: float) -> tuple[int, list[Action]]:
        return self.relay.call(op, args, now_ms)

    def set_channels(self, channels: frozenset[str], now_ms: float) -> None:
        self._run(self.relay.set_channels(channels, now_ms))

    def tick(self, now_ms: float) -> None:
        self._run(self.relay.tick(now_ms))
        self._check_steal(now_ms)

    def page_became_visible(self, now_ms: float) -> None:
        if not self._p.page_visible():
            return
        if self._locks:
            # A steal is decided by asking the master, never by its heartbeats' age: the probe
            # is answered at once by a live master, even one whose timers are throttled.
            self._run(self.relay.probe(now_ms))
        self._check_steal(now_ms)

    def network_back(self) -> None:
        pass  # the master's connection, not ours

    def network_lost(self) -> None:
        pass

    def leave(self, now_ms: float) -> None:
        self._run(self.relay.stop(now_ms))  # bye; this tab's pending calls fail

    def _check_steal(self, now_ms: float) -> None:
        """A master that holds the lock but is silent (frozen): a visible tab takes over."""
        if not self._locks or self._stealing:
            return
        # Visibility asked last: in a worker it is a call to the main thread.
        if self.relay.should_steal(now_ms, True) and self._p.page_visible():
            self._stealing = True
            log.warning("comet_py: the master tab is silent for %.0f ms; taking over",
                        self.relay.master_silent_for(now_ms))
            self._steal()
