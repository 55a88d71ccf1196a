"""Master election without Web Locks, over the BroadcastChannel only (sans-I/O).

Used where ``navigator.locks`` is missing. Rules, with a claim ordered by ``relay.beats``
(higher term wins, equal terms go to the smaller tab id):

- a master posts ``leader`` every LEADER_EVERY_MS, and answers any ``apply`` or weaker ``leader``
  at once (message handlers run even when a background tab's timers are throttled);
- a tab that starts, or heard no leader for LEADER_TIMEOUT_MS, or heard its leader's ``bye``,
  posts ``apply`` with a fresh term and waits APPLY_WAIT_MS; it backs off when it hears any
  ``leader`` or a stronger ``apply`` (and repeats its own ``apply`` when it hears a weaker one);
  otherwise it becomes master;
- a master that hears a stronger ``leader`` steps down (the I/O layer closes its socket).

With message delays under ~150 ms this never makes two masters; with lost messages two may exist
briefly, and the weaker one steps down as soon as it hears the other.
"""

import logging
import math
from typing import Any, Iterable, Mapping, Optional, Union

from .records import record
from .relay import Post, beats, make_apply, make_bye, make_leader, parse

log = logging.getLogger("comet_py.election")

LEADER_EVERY_MS = 500
LEADER_TIMEOUT_MS = 1_500
APPLY_WAIT_MS = 300
REPLY_GAP_MS = 50         # immediate leader replies at most this often: no storm, whatever comes in

__all__ = ["FallbackElection", "ElectionRole", "BecomeMaster", "StepDown", "Post", "next_term"]


@record
class BecomeMaster:
    """This tab is master now, with this term: connect, and announce the term in states."""

    _fields = ("term",)
    term: int


@record
class StepDown:
    """This tab is no longer master: close the socket and become a follower."""

    _fields = ()


Action = Union[Post, BecomeMaster, StepDown]


class ElectionRole:
    """Where this tab is in the election: STOPPED -> start() -> APPLYING -> MASTER | FOLLOWER.
    Plain strings (MicroPython has no enum)."""

    STOPPED = "stopped"
    APPLYING = "applying"
    MASTER = "master"
    FOLLOWER = "follower"


def next_term(seen_terms: Iterable[int], now_ms: Optional[float] = None) -> int:
    """A term higher than any seen. With ``now_ms`` (wall clock) it is also at least now, so a
    tab that never heard the previous master (it was frozen, say) still outranks it."""
    term = max((t for t in seen_terms), default=0) + 1
    if now_ms is not None:
        term = max(term, int(now_ms))
    return term


class FallbackElection:
    """One tab's side of the election (its ``role``: see ElectionRole)."""

    def __init__(self, tab_id: str) -> None:
        self.tab_id = tab_id
        self.role = ElectionRole.STOPPED
        self.term = 0                       # own term while applying / master
        self.highest_term = 0               # highest term heard from anyone
        self.leader: Optional[str] = None   # the master this tab believes in (itself included)
        self.leader_term = 0
        self._last_leader_ms = 0.0          # last sign of a live (or about to be) master
        self._apply_started = 0.0
        self._last_leader_post = -math.inf

    @property
    def is_master(self) -> bool:
        return self.role == ElectionRole.MASTER

    # transitions ------------------------------------------------------------------------------
    def _apply(self, now_ms: float) -> list[Action]:
        self.term = next_term([self.highest_term, self.term], now_ms)
        self.highest_term = max(self.highest_term, self.term)
        self.role = ElectionRole.APPLYING
        self._apply_started = now_ms
        log.debug("election: %s applies with term %d", self.tab_id, self.term)
        return [Post(make_apply(self.tab_id, self.term))]

    def _follow(self, leader: Optional[str], term: int, now_ms: float) -> None:
        self.role = ElectionRole.FOLLOWER
        if leader is not None:
            self.leader, self.leader_term = leader, term
        self._last_leader_ms = now_ms

    def _lead_post(self, now_ms: float, to: str = "*") -> Post:
        self._last_leader_post = now_ms
        return Post(make_leader(self.tab_id, self.term, to=to))

    def _reply(self, now_ms: float) -> list[Action]:
        if now_ms - self._last_leader_post < REPLY_GAP_MS:
            return []   # one just went out: it answers this message too
        return [self._lead_post(now_ms)]

    # inputs -----------------------------------------------------------------------------------
    def start(self, now_ms: float) -> list[Action]:
        """Apply at once: a live master answers within ms, so a new tab never waits for a timeout,
        and with no master the first tab connects after APPLY_WAIT_MS."""
        if self.role != ElectionRole.STOPPED:
            return []
        self.leader = None
        return self._apply(now_ms)

    def on_message(self, msg: Union[str, Mapping[str, Any]], now_ms: float) -> list[Action]:
        m = parse(msg)
        if m is None or m["from"] == self.tab_id or self.role == ElectionRole.STOPPED:
            return []
        kind, sender, term = m["k"], m["from"], m["term"]
        if kind == "leader":
            self.highest_term = max(self.highest_term, term)
            if self.role == ElectionRole.MASTER:
                if beats(term, sender, self.term, self.tab_id):
                    log.debug("election: %s steps down for %s (term %d)", self.tab_id, sender, term)
                    self._follow(sender, term, now_ms)
                    return [StepDown()]
                return self._reply(now_ms)  # let the weaker one hear us and step down
            if self.role == ElectionRole.APPLYING:
                log.debug("election: %s backs off, %s leads", self.tab_id, sender)
                self._follow(sender, term, now_ms)
                return []
            # follower: keep the strongest live claim
            if (self.leader is None or sender == self.leader
                    or beats(term, sender, self.leader_term, self.leader)
                    or now_ms - self._last_leader_ms >= LEADER_TIMEOUT_MS):
                self.leader, self.leader_term = sender, term
            self._last_leader_ms = now_ms
            return []
        if kind == "apply":
            self.highest_term = max(self.highest_term, term)
            if self.role == ElectionRole.MASTER:
                return self._reply(now_ms)
            if self.role == ElectionRole.APPLYING:
                if beats(term, sender, self.term, self.tab_id):
                    log.debug("election: %s backs off for applicant %s", self.tab_id, sender)
                    self._follow(None, term, now_ms)
                    return []
                # The weaker applicant may have started after our apply went out: repeat it so
                # that it backs off before its own wait ends.
                return [Post(make_apply(self.tab_id, self.term))]
            # follower: someone is electing; give it time before applying ourselves
            self._last_leader_ms = max(self._last_leader_ms, now_ms)
            return []
        if kind == "bye" and sender == self.leader and self.role == ElectionRole.FOLLOWER:
            log.debug("election: leader %s left, %s applies", sender, self.tab_id)
            self.leader = None
            return self._apply(now_ms)
        return []

    def tick(self, now_ms: float) -> list[Action]:
        """Call every 100-250 ms."""
        if self.role == ElectionRole.MASTER:
            if now_ms - self._last_leader_post >= LEADER_EVERY_MS:
                return [self._lead_post(now_ms)]
            return []
        if self.role == ElectionRole.APPLYING:
            if now_ms - self._apply_started >= APPLY_WAIT_MS:
                self.role = ElectionRole.MASTER
                self.leader, self.leader_term = self.tab_id, self.term
                log.debug("election: %s is master (term %d)", self.tab_id, self.term)
                return [BecomeMaster(self.term), self._lead_post(now_ms)]
            return []
        if self.role == ElectionRole.FOLLOWER and now_ms - self._last_leader_ms >= LEADER_TIMEOUT_MS:
            return self._apply(now_ms)
        return []

    def resign(self, now_ms: float) -> list[Action]:
        """Leave the election (pagehide, stop). A master posts ``bye`` so the others apply at
        once, and gets StepDown. start() joins again."""
        was_master = self.role == ElectionRole.MASTER
        self.role = ElectionRole.STOPPED
        self.leader = None
        if was_master:
            return [Post(make_bye(self.tab_id, self.term)), StepDown()]
        return []
