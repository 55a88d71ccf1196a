"""This tab's part in "one connection per browser": follower or master, and the switch between.

Election: the Web Lock ``comet_py:<key>`` (held for the master's lifetime; followers wait in
its queue with no timeout), or, without Web Locks, the BroadcastChannel election of
``election.py``. Each tab also holds ``comet_py:<key>:tab:<id>`` while it lives, so the master
learns that a tab died (closed, crashed, navigated) when its request for that lock is granted.

The role is an object (``roles.py``): ``MasterRole`` runs the Session (``connection.py``) and
serves every tab through ``MasterRelay``; ``FollowerRole`` reaches it through ``FollowerRelay``.
The relays are sans-I/O: this module carries out their actions with the browser (``platform`` =
``comet_py.browser`` or a fake in tests), in one handler, ``_run``.
"""

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Optional

from . import aio, relay
from .election import BecomeMaster, FallbackElection, StepDown, next_term
from .errors import CallError, ConnectionLost
from .options import Options
from .roles import FollowerRole, MasterRole
from .session import Session, State

if TYPE_CHECKING:  # only for annotations: not imported in the browser
    from .platform import Platform
    from .roles import Role, TabSink

log = logging.getLogger("comet_py")

TICK_SECONDS = 0.25
UUID_STORAGE_KEY = "comet_server_uuid"


class Coordinator:
    def __init__(self, options: Options, tab: "TabSink", platform: "Platform") -> None:
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
        self.role: Role = self._new_follower(highest_term)
        self.election = None if self.locks else FallbackElection(self.tab_id)
        self._futures: dict[int, asyncio.Future] = {}
        self._channel: Any = None
        self._tab_lock: Any = None
        self._tab_lock_held = False
        self._master_lock: Any = None
        self._ticker: Optional[asyncio.TimerHandle] = None
        self._closed = False

    def _new_follower(self, highest_term: int) -> FollowerRole:
        return FollowerRole(self.tab_id, self.p, self._run, history_ids=self.tab.last_history_ids,
                            channels=self.channels, highest_term=highest_term, locks=self.locks,
                            steal=self._steal)

    def _master(self) -> Optional[MasterRole]:
        """The one place that asks which role this is: to promote or demote, and for the
        actions only a MasterRelay gives."""
        return self.role if isinstance(self.role, MasterRole) else None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._join()  # first: the lock request is under way while the listeners are added
        events = self._events = self.p.PageEvents()
        events.on("window", "pagehide", self._on_pagehide)
        events.on("window", "pageshow", self._on_pageshow, field="persisted")
        events.on("document", "visibilitychange", self._on_visibility)
        events.on("window", "online", self._on_online)
        events.on("window", "offline", self._on_offline)

    def _join(self) -> None:
        p = self.p
        if self.election is None:
            # The master lock first: a lone tab is granted it at once and opens its socket in
            # that callback, without waiting for its tab lock (granted after it).
            self._request_master_lock()
        self._channel = p.Channel(f"comet_py:{self.key}", self._on_channel_text)
        if self.election is None:
            # Announce this tab only once it holds its liveness lock: the master's request for
            # that lock must queue behind ours (IPC order across tabs is not guaranteed).
            self._tab_lock = p.HeldLock(self._tab_lock_name(self.tab_id), self._on_tab_lock_held)
        else:
            self._run(self.election.start(p.now_ms()))
            self._announce()
        self._schedule_tick()

    def _on_tab_lock_held(self) -> None:
        self._tab_lock_held = True
        self._announce()

    def _tab_lock_name(self, tab_id: str) -> str:
        return f"comet_py:{self.key}:tab:{tab_id}"

    def _on_pagehide(self) -> None:
        """Leave at once (this also lets the browser keep the page in its back/forward cache:
        no open socket, channel or held lock); pageshow may bring it back."""
        if self._closed:
            return
        self._leave()
        self.tab.set_state(State.CLOSED, {})

    def _on_pageshow(self, persisted: Any = False) -> None:
        """Back from the back/forward cache: rejoin as a new tab (follower, or master if the
        lock is free); the callbacks stay, and the master fetches what this tab missed on
        history channels (its hello carries the last history_ids)."""
        if not persisted or not self._closed or self._stopped:
            return
        log.info("comet_py: page restored from the back/forward cache; rejoining")
        self._reset(self.role.highest_term)
        self.tab.set_state(State.CONNECTING, {})
        self._join()

    def close(self) -> None:
        """stop() or restart(): leave for good."""
        self._stopped = True
        self._leave()
        if self._events is not None:
            self._events.close()
            self._events = None

    def _announce(self) -> None:
        """Say hello as a follower (a master's heartbeats announce it); with Web Locks only
        once this tab holds its tab lock."""
        if not self._closed and (self.election is not None or self._tab_lock_held):
            self.role.announce(self.p.now_ms())

    def _leave(self) -> None:
        """Hand the connection on at once and let go of every browser resource."""
        if self._closed:
            return
        self._closed = True
        now = self.p.now_ms()
        self.role.leave(now)
        if self.election is not None:
            self._run([a for a in self.election.resign(now) if not isinstance(a, StepDown)])
        for lock in (self._master_lock, self._tab_lock):
            if lock is not None:
                lock.release()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._channel is not None:
            self._channel.close()
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(ConnectionLost("stopped"))
        self._futures.clear()
        self.tab.set_master(False)

    # -- what the tab asks -----------------------------------------------------------------------

    def set_channels(self, channels: frozenset[str]) -> None:
        self.channels = frozenset(channels)
        if not self._closed:
            self.role.set_channels(self.channels, self.p.now_ms())

    def web_pipe(self, pipe: str, event: str, text: str) -> None:
        """Success is silent (the report arrives on "#pipe"); a failure is only logged."""
        _, actions = self.role.call("web_pipe", {"pipe": pipe, "event": event, "text": text}, self.p.now_ms())
        self._run(actions)

    def request(self, kind: str, pipe: str) -> asyncio.Future:
        fut: asyncio.Future = aio.create_future()
        req, actions = self.role.call(kind, {"pipe": pipe}, self.p.now_ms())
        self._futures[req] = fut  # before the actions: a master's Session may answer at once
        self._run(actions)
        return fut

    # -- roles ---------------------------------------------------------------------------------

    def _request_master_lock(self, steal: bool = False) -> None:
        self._master_lock = self.p.HeldLock(
            f"comet_py:{self.key}", self._on_lock_granted, self._on_lock_lost, steal=steal)

    def _steal(self) -> None:
        if self._master_lock is not None:
            self._master_lock.release()
        self._request_master_lock(steal=True)

    def _on_lock_granted(self) -> None:
        self._promote(next_term([self.role.highest_term], self.p.now_ms()))

    def _on_lock_lost(self, reason: str) -> None:
        log.warning("comet_py: this tab lost the master lock (%s); following the new master", reason)
        self._demote()
        if not self._closed:
            self._request_master_lock()

    def _promote(self, term: int) -> None:
        follower = self.role
        if self._closed or self._master() is not None:
            return
        log.info("comet_py: tab %s is now the master (term %d)", self.tab_id, term)
        session = Session(self.options, uuid=self._uuid(), page_is_https=self.p.page_is_https())
        if follower.highest_term or self.tab.last_history_ids():
            # A master came before us: fetch what the tabs missed while no one held the
            # connection (comet_server history_ids), or report the gap.
            session.recover(self.tab.last_history_ids())
        master = self.role = MasterRole(
            self.tab_id, term, session, self.p, self.tab, self._run, channels=self.channels,
            highest_term=follower.highest_term,
            tab_lock=self._tab_lock_name if self.election is None else None)
        master.start(follower.pending_calls())  # this tab's calls made while following

    def _demote(self) -> None:
        master = self._master()
        if master is None:
            return
        self.role = self._new_follower(master.highest_term)
        master.stop()
        self.tab.set_master(False)
        # Our own reads in flight were answered ConnectionLost by the Session's stop (api.md §8):
        # the caller decides whether to ask again, now through the new master.
        self._announce()

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
        self._run(self.role.relay.on_message(text, now))

    def _on_visibility(self) -> None:
        if not self._closed:
            self.role.page_became_visible(self.p.now_ms())

    def _on_online(self) -> None:
        """The network is back: reconnect now rather than at the end of the backoff wait."""
        if not self._closed:
            self.role.network_back()

    def _on_offline(self) -> None:
        """The network may be gone while the socket still looks open: check it at once."""
        if not self._closed:
            self.role.network_lost()

    def _schedule_tick(self) -> None:
        self._ticker = aio.call_later(TICK_SECONDS, self._tick)

    def _tick(self) -> None:
        if self._closed:
            return
        now = self.p.now_ms()
        try:
            if self.election is not None:
                self._run(self.election.tick(now))
            self.role.tick(now)
        finally:
            self._schedule_tick()

    # -- actions -------------------------------------------------------------------------------

    def _run(self, actions: list) -> None:
        """Carry out relay and election actions, in order; one that fails is logged and skipped."""
        for action in actions:
            master = self._master()
            try:
                # if/isinstance, not match: MicroPython has no match statement
                if isinstance(action, relay.Post):
                    self._channel.post(relay.encode(action.message))
                elif isinstance(action, relay.Deliver):
                    self.tab.deliver(action.message)
                elif isinstance(action, relay.Resolve):
                    self._resolve(action.req, action.value, action.error)
                elif isinstance(action, relay.RemoteState):
                    self.tab.set_state(action.state, action.detail)
                elif isinstance(action, relay.RemoteAuth):
                    self.tab.set_auth(action.authorized)
                # Only a MasterRelay asks these, so only while this tab is the master:
                elif isinstance(action, relay.RunCall) and master is not None:
                    master.run_call(action.token, action.op, action.args)
                elif isinstance(action, relay.ChannelsChanged) and master is not None:
                    master.set_session_channels(action.channels)
                elif isinstance(action, relay.CatchUp) and master is not None:
                    master.catch_up(action.tab_id, action.history_ids)
                elif isinstance(action, relay.TabJoined) and master is not None:
                    master.watch(action.tab_id)
                elif isinstance(action, relay.TabLeft) and master is not None:
                    master.unwatch(action.tab_id)
                elif isinstance(action, BecomeMaster):
                    self._promote(action.term)
                elif isinstance(action, StepDown):
                    self._demote()
                else:  # MasterChanged, RivalMaster: nothing to do
                    log.debug("comet_py: %r", action)
            except Exception:
                log.exception("comet_py: failed to carry out %r", action)

    def _resolve(self, req: int, value: Any, error: Optional[CallError]) -> None:
        fut = self._futures.pop(req, None)
        if fut is None or fut.done():
            if error:  # a web_pipe_send the server or the master refused
                log.warning("comet_py: a send failed: %s (%s)", error.detail, error.code)
            return
        if error:
            fut.set_exception(error.exception())
        else:
            fut.set_result(value)
