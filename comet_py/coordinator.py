"""This tab's part in "one connection per browser": follower or master, and the switch between.

Election: the Web Lock ``comet_py:<key>`` (held for the master's lifetime; followers wait in
its queue with no timeout), or, without Web Locks, the BroadcastChannel election of
``election.py``. Each tab also holds ``comet_py:<key>:tab:<id>`` while it lives, so the master
learns that a tab died (closed, crashed, navigated) when its request for that lock is granted.

The master runs the Session (``connection.py``) and serves every tab through ``MasterRelay``;
followers reach it through ``FollowerRelay``. Both are sans-I/O: this module only carries out
their actions with the browser (``platform`` = ``comet_py.browser`` or a fake in tests).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from . import relay
from .connection import Connection
from .election import BecomeMaster, FallbackElection, StepDown, next_term
from .errors import BAD_CALL, CallError, ConnectionLost
from .options import Options
from .session import Answer, AuthChanged, Dispatch, Gap, Session, State, StateChanged

log = logging.getLogger("comet_py")

TICK_SECONDS = 0.25
UUID_STORAGE_KEY = "comet_server_uuid"


class Coordinator:
    def __init__(self, options: Options, tab: Any, platform: Any) -> None:
        self.options = options
        self.tab = tab
        self.p = platform
        self.key = options.key
        self.locks = platform.locks_available()
        self.channels: frozenset[str] = frozenset()
        self._events: Any = None
        self._stopped = False      # stop(): for good; pagehide only suspends (bfcache)
        self._reset(0)

    def _reset(self, highest_term: int) -> None:
        """A fresh tab identity and role: at the start, and when a page comes back from the
        back/forward cache (the master it left may have forgotten it, or be another one)."""
        self.tab_id = self.p.random_id(16)
        self.role = "follower"
        self.follower = self._new_follower(highest_term)
        self.master: Optional[relay.MasterRelay] = None
        self.connection: Optional[Connection] = None
        self.election = None if self.locks else FallbackElection(self.tab_id)
        self._futures: dict[int, asyncio.Future] = {}
        self._own_calls: dict[int, tuple[str, dict]] = {}
        self._tab_watches: dict[str, Any] = {}
        self._channel: Any = None
        self._tab_lock: Any = None
        self._master_lock: Any = None
        self._ticker: Optional[asyncio.TimerHandle] = None
        self._last_beat = 0.0
        self._stealing = False
        self._closed = False

    def _new_follower(self, highest_term: int) -> relay.FollowerRelay:
        follower = relay.FollowerRelay(self.tab_id, history_ids=self.tab._last_history_ids, keepalive=not self.locks)
        follower.highest_term = highest_term
        follower.set_channels(self.channels, self.p.now_ms())  # not started: only remembered
        return follower

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        events = self._events = self.p.PageEvents()
        events.on("window", "pagehide", self._on_pagehide)
        events.on("window", "pageshow", self._on_pageshow, field="persisted")
        events.on("document", "visibilitychange", self._on_visibility)
        events.on("window", "online", self._on_online)
        events.on("window", "offline", self._on_offline)
        self._join()

    def _join(self) -> None:
        p = self.p
        self._channel = p.Channel(f"comet_py:{self.key}", self._on_channel_text)
        if self.locks:
            # Announce this tab only once it holds its liveness lock: the master's request for
            # that lock must queue behind ours (IPC order across tabs is not guaranteed).
            self._tab_lock = p.HeldLock(f"comet_py:{self.key}:tab:{self.tab_id}", self._announce)
            self._request_master_lock()
        else:
            self._run(self.election.start(p.now_ms()))
            self._announce()
        self._schedule_tick()

    def _on_pagehide(self) -> None:
        """Leave at once (this also lets the browser keep the page in its back/forward cache:
        no open socket, channel or held lock); pageshow may bring it back."""
        if self._closed:
            return
        self._leave()
        self.tab._set_state("closed", {})

    def _on_pageshow(self, persisted: Any = False) -> None:
        """Back from the back/forward cache: rejoin as a new tab (follower, or master if the
        lock is free); the callbacks stay, and the master fetches what this tab missed on
        history channels (its hello carries the last history_ids)."""
        if not persisted or not self._closed or self._stopped:
            return
        log.info("comet_py: page restored from the back/forward cache; rejoining")
        self._reset(self.follower.highest_term)
        self.tab._set_state("connecting", {})
        self._join()

    def close(self) -> None:
        """stop() or restart(): leave for good."""
        self._stopped = True
        self._leave()
        if self._events is not None:
            self._events.close()
            self._events = None

    def _announce(self) -> None:
        if not self._closed and self.role == "follower":
            self._run(self.follower.start(self.p.now_ms()))

    def _leave(self) -> None:
        """Hand the connection on at once and let go of every browser resource."""
        if self._closed:
            return
        self._closed = True
        now = self.p.now_ms()
        if self.role == "master":
            if self.election is None:
                self._run(self.master.stop())  # bye; in fallback mode resign() says it
            self.connection.stop()
            self.connection = None
        else:
            self._run(self.follower.stop(now))
        if self.election is not None:
            self._run([a for a in self.election.resign(now) if not isinstance(a, StepDown)])
        for lock in [self._master_lock, self._tab_lock, *self._tab_watches.values()]:
            if lock is not None:
                lock.release()
        self._tab_watches.clear()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._channel is not None:
            self._channel.close()
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(ConnectionLost("stopped"))
        self._futures.clear()
        self.tab._set_master(False)

    # -- what the tab asks -----------------------------------------------------------------------

    def set_channels(self, channels: frozenset[str]) -> None:
        self.channels = frozenset(channels)
        if self._closed:
            return
        if self.role == "master":
            self._run(self.master.set_own_channels(self.channels))
        self._run(self.follower.set_channels(self.channels, self.p.now_ms()))

    def web_pipe(self, pipe: str, event: str, text: str) -> None:
        self._call("web_pipe", {"pipe": pipe, "event": event, "text": text})

    def request(self, kind: str, pipe: str) -> asyncio.Future:
        return self._call(kind, {"pipe": pipe})

    def _call(self, op: str, args: dict) -> asyncio.Future:
        fut: asyncio.Future = asyncio.get_event_loop().create_future()
        if self.role == "master":
            req, actions = self.master.call_local(op, args)
        else:
            req, actions = self.follower.call(op, args, self.p.now_ms())
        if op == "web_pipe":
            # Success is silent (the report arrives on "#pipe"); a failure is only logged.
            fut.set_result(None)
        else:
            self._futures[req] = fut
            self._own_calls[req] = (op, args)
        self._run(actions)
        return fut

    # -- roles ---------------------------------------------------------------------------------

    def _request_master_lock(self, steal: bool = False) -> None:
        self._master_lock = self.p.HeldLock(
            f"comet_py:{self.key}", self._on_lock_granted, self._on_lock_lost, steal=steal)

    def _on_lock_granted(self) -> None:
        self._stealing = False
        self._promote(next_term([self.follower.highest_term], self.p.now_ms()))

    def _on_lock_lost(self, reason: str) -> None:
        log.warning("comet_py: this tab lost the master lock (%s); following the new master", reason)
        self._demote()
        if not self._closed:
            self._request_master_lock()

    def _promote(self, term: int) -> None:
        if self._closed or self.role == "master":
            return
        log.info("comet_py: tab %s is now the master (term %d)", self.tab_id, term)
        self.role = "master"
        self.master = relay.MasterRelay(self.tab_id, term)
        self.master.set_own_channels(self.channels)
        session = Session(self.options, uuid=self._uuid(), page_is_https=self.p.page_is_https())
        if self.follower.highest_term or self.tab._last_history_ids():
            # A master came before us: fetch what the tabs missed while no one held the
            # connection (comet_server history_ids), or report the gap.
            session.recover(self.tab._last_history_ids())
        session.set_channels(self.master.union())
        self.connection = Connection(session, self.p, self._on_session_event)
        self.tab._set_master(True)
        now = self.p.now_ms()
        self._run(self.master.heartbeat(now))  # followers say hello to the new master
        self.connection.start()
        for call in self.follower.pending_calls():  # this tab's calls made while following
            _, actions = self.master.call_local(call.op, call.args, call.req)
            self._run(actions)
        # A fresh follower side for a later demotion: nothing stale to resend from it.
        self.follower = self._new_follower(self.follower.highest_term)

    def _demote(self) -> None:
        if self.role != "master":
            return
        self.role = "follower"
        if self.connection is not None:
            self.connection.stop()
            self.connection = None
        for watch in self._tab_watches.values():
            watch.release()
        self._tab_watches.clear()
        self.master = None
        self.tab._set_master(False)
        # Our own reads in flight go through the new master; sends are not repeated.
        in_flight = [(op, args, self._futures.get(req)) for req, (op, args) in self._own_calls.items()]
        self._own_calls.clear()
        self._futures.clear()
        for op, args, fut in in_flight:
            if fut is None or fut.done():
                continue
            if op == "web_pipe":
                fut.set_exception(ConnectionLost("the master changed while sending"))
                continue
            new_req, actions = self.follower.call(op, args, self.p.now_ms())
            self._futures[new_req] = fut
            self._own_calls[new_req] = (op, args)
            self._run(actions)
        self._run(self.follower.start(self.p.now_ms()))

    def _uuid(self) -> str:
        if self.options.uuid:
            return self.options.uuid
        stored = self.p.storage_get(UUID_STORAGE_KEY)
        if stored and len(stored) == 32:
            return stored
        uuid = self.p.random_id(32)
        self.p.storage_set(UUID_STORAGE_KEY, uuid)
        return uuid

    # -- inputs --------------------------------------------------------------------------------

    def _on_channel_text(self, text: str) -> None:
        if self._closed:
            return
        now = self.p.now_ms()
        if self.election is not None:
            self._run(self.election.on_message(text, now))
        if self.role == "master":
            self._run(self.master.on_message(text, now))
        else:
            self._run(self.follower.on_message(text, now))

    def _on_session_event(self, event: Any) -> None:
        master = self.master
        if master is None:
            return
        if isinstance(event, Dispatch):  # the hot path: no clock read
            self._run(master.route_deliver(event.message, event.to, event.exclude))
        elif isinstance(event, Answer):
            self._run(master.route_answer(event.token, event.value, event.error))
        elif isinstance(event, StateChanged):
            if event.state == State.CLOSED:
                # Only our own stop (this tab leaves or steps down) closes the session: the
                # connection goes on in the next master, so no tab is told "closed".
                return
            authorized = self.connection.session.authorized if self.connection else None
            self._run(master.state_message(event.state, authorized, self.p.now_ms(), event.detail))
            self.tab._set_state(event.state, event.detail)
        elif isinstance(event, Gap):
            if event.to is None:
                self._run(master.gap(event.pipes, self.p.now_ms()))
                self.tab._set_state(relay.GAP, {"pipes": event.pipes})
                return
            tab = event.to[0] if isinstance(event.to, tuple) else None  # one returning tab's gap
            if isinstance(tab, str) and tab != self.tab_id:
                self._run(master.gap(event.pipes, self.p.now_ms(), to=tab))
        elif isinstance(event, AuthChanged):
            self._run(master.auth_message(event.authorized, self.p.now_ms()))
            self.tab._set_auth(event.authorized)

    def _on_visibility(self) -> None:
        if self._closed or self.role == "master" or not self.p.page_visible():
            return
        now = self.p.now_ms()
        if self.locks:
            # A steal is decided by asking the master, never by its heartbeats' age: the probe
            # is answered at once by a live master, even one whose timers are throttled.
            self._run(self.follower.probe(now))
        self._check_steal(now)

    def _on_online(self) -> None:
        """The network is back: reconnect now rather than at the end of the backoff wait."""
        if not self._closed and self.connection is not None:
            self.connection.network_back()

    def _on_offline(self) -> None:
        """The network may be gone while the socket still looks open: check it at once."""
        if not self._closed and self.connection is not None:
            self.connection.network_lost()

    def _schedule_tick(self) -> None:
        self._ticker = asyncio.get_event_loop().call_later(TICK_SECONDS, self._tick)

    def _tick(self) -> None:
        if self._closed:
            return
        now = self.p.now_ms()
        try:
            if self.election is not None:
                self._run(self.election.tick(now))
            if self.role == "master":
                if now - self._last_beat >= relay.HEARTBEAT_MS:
                    self._last_beat = now
                    self._run(self.master.heartbeat(now))
                if not self.locks:
                    self._run(self.master.expire(now))
            else:
                self._run(self.follower.tick(now))
                self._check_steal(now)
        finally:
            self._schedule_tick()

    def _check_steal(self, now: float) -> None:
        """A master that holds the lock but is silent (frozen): a visible tab takes over."""
        if not self.locks or self.role == "master" or self._closed or self._stealing:
            return
        # Visibility asked last: in a worker it is a call to the main thread.
        if self.follower.should_steal(now, True) and self.p.page_visible():
            self._stealing = True  # one steal at a time: it is granted at once
            log.warning("comet_py: the master tab is silent for %.0f ms; taking over",
                        self.follower.master_silent_for(now))
            if self._master_lock is not None:
                self._master_lock.release()
            self._request_master_lock(steal=True)

    # -- actions -------------------------------------------------------------------------------

    def _run(self, actions: list) -> None:
        for action in actions:
            try:
                self._act(action)
            except Exception:
                log.exception("comet_py: failed to carry out %r", action)

    def _act(self, a: Any) -> None:
        if isinstance(a, relay.Post):
            self._channel.post(relay.encode(a.message))
        elif isinstance(a, relay.Deliver):
            self.tab._deliver(a.message)
        elif isinstance(a, relay.Resolve):
            self._resolve(a.req, a.value, a.error)
        elif isinstance(a, relay.RemoteState):
            self.tab._set_state(a.state, a.detail)
        elif isinstance(a, relay.RemoteAuth):
            self.tab._set_auth(a.authorized)
        elif isinstance(a, relay.RunCall):
            self._run_call(a)
        elif isinstance(a, relay.ChannelsChanged):
            if self.connection is not None:
                self.connection.call(self.connection.session.set_channels(a.channels))
        elif isinstance(a, relay.CatchUp):
            if self.connection is not None:
                session = self.connection.session
                self.connection.call(session.catch_up(a.history_ids, (a.tab_id, 0)))
        elif isinstance(a, relay.TabJoined):
            self._watch_tab(a.tab_id)
        elif isinstance(a, relay.TabLeft):
            watch = self._tab_watches.pop(a.tab_id, None)
            if watch is not None:
                watch.release()
        elif isinstance(a, BecomeMaster):
            self._promote(a.term)
        elif isinstance(a, StepDown):
            self._demote()
        elif isinstance(a, (relay.MasterChanged, relay.RivalMaster)):
            log.debug("comet_py: %r", a)

    def _run_call(self, a: relay.RunCall) -> None:
        if self.connection is None:
            return
        session = self.connection.session
        try:
            if a.op == "web_pipe":
                events = session.web_pipe(a.args["pipe"], a.args["event"], a.args["text"], a.token)
            else:
                events = session.request(a.op, a.args["pipe"], a.token)
        except (ValueError, KeyError) as exc:  # a bad call from another tab
            self._run(self.master.route_answer(a.token, None, CallError(BAD_CALL, str(exc))))
            return
        self.connection.call(events)

    def _watch_tab(self, tab_id: str) -> None:
        """Learn when a follower dies: its tab lock is granted to us only then."""
        if not self.locks or tab_id in self._tab_watches:
            return

        def died() -> None:
            watch = self._tab_watches.pop(tab_id, None)
            if watch is not None:
                watch.release()
            if self.master is not None:
                log.info("comet_py: tab %s is gone", tab_id)
                self._run(self.master.forget(tab_id))

        self._tab_watches[tab_id] = self.p.HeldLock(f"comet_py:{self.key}:tab:{tab_id}", died)

    def _resolve(self, req: int, value: Any, error: Optional[CallError]) -> None:
        self._own_calls.pop(req, None)
        fut = self._futures.pop(req, None)
        if fut is None or fut.done():
            if error:  # a web_pipe_send the server or the master refused
                log.warning("comet_py: a send failed: %s (%s)", error.detail, error.code)
            return
        if error:
            fut.set_exception(error.exception())
        else:
            fut.set_result(value)
