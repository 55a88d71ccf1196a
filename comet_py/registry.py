"""One tab's subscription callbacks: matching and duplicate suppression (sans-I/O)."""

import itertools
import sys
from collections import OrderedDict
from typing import Any, Callable, Iterable, Mapping

from .channels import Target, parse_target
from .records import record

__all__ = ["Registry", "Subscription"]

Callback = Callable[..., Any]
_MAX_CACHED_PIPES = 256
_MICROPYTHON = sys.implementation.name == "micropython"


@record
class Subscription:
    _fields = ("sub_id", "target", "callback")
    sub_id: str
    target: Target
    callback: Callback


class Registry:
    """Callbacks of one tab, in registration order.

    ``server_channels()`` is what this tab needs subscribed on the server;
    ``accept()`` drops a live message already seen on its pipe (by history_id).
    """

    def __init__(self) -> None:
        # registration order (an OrderedDict: MicroPython's dicts keep no order)
        self._subs: OrderedDict[str, Subscription] = OrderedDict()
        self._channels: dict[str, int] = {}  # server channel -> how many callbacks want it
        self._ids = itertools.count(1)
        self._last: dict[str, int] = {}
        # pipe -> (event wanted or None, callback) of the callbacks that pipe can reach, in
        # registration order: built on the pipe's first message, dropped on any change.
        self._by_pipe: dict[str, list[tuple[str | None, Callback]]] = {}
        # pipe -> its callbacks, for a pipe whose callbacks all take every event (the usual
        # case): callbacks_for gives this very list, never changed once made.
        self._unfiltered: dict[str, list[Callback]] = {}

    def __len__(self) -> int:
        return len(self._subs)

    def __contains__(self, sub_id: object) -> bool:
        return sub_id in self._subs

    def add(self, name: str | None, callback: Callback) -> str:
        """Register ``callback`` for a subscription name; return its id.

        Raises ``ValueError`` for a bad name and ``TypeError`` for a
        non-callable, with nothing changed.
        """
        target = parse_target(name)  # validates before anything is touched
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        # "<signal>&&<n>" like the JS sigId; "comet_server_msg" is the JS "all" signal.
        sub_id = f"{target.name or 'comet_server_msg'}&&{next(self._ids)}"
        self._subs[sub_id] = Subscription(sub_id, target, callback)
        self._by_pipe.clear()
        self._unfiltered.clear()
        ch = target.server_channel
        if ch is not None:
            self._channels[ch] = self._channels.get(ch, 0) + 1
        return sub_id

    def remove(self, sub_id: str) -> bool:
        """Remove one callback; False if the id is unknown (or already removed)."""
        sub = self._subs.pop(sub_id, None) if isinstance(sub_id, str) else None
        if sub is None:
            return False
        self._by_pipe.clear()
        self._unfiltered.clear()
        ch = sub.target.server_channel
        if ch is not None:
            left = self._channels.get(ch, 0) - 1
            if left > 0:
                self._channels[ch] = left
            else:
                self._channels.pop(ch, None)
        return True

    def clear(self) -> int:
        """Remove every callback (``unsubscriptionAll``); return how many."""
        n = len(self._subs)
        self._subs.clear()
        self._channels.clear()
        self._by_pipe.clear()
        self._unfiltered.clear()
        return n

    def subscriptions(self) -> list[Subscription]:
        return list(self._subs.values())

    def server_channels(self) -> frozenset[str]:
        """Channels still wanted on the server by at least one callback."""
        return frozenset(self._channels)

    def match(self, message: Mapping[str, Any]) -> list[Callback]:
        """Callbacks for a message dict, in registration order."""
        info = message.get("server_info") or {}
        return self._match(info.get("pipe") or "", info.get("event") or "")

    def _match(self, pipe: Any, event: Any) -> list[Callback]:
        if type(pipe) is not str:  # not from our Session: the plain rule, no cache
            return [s.callback for s in self._subs.values() if s.target.matches(pipe, event)]
        entries = self._by_pipe.get(pipe)
        if entries is None:
            if len(self._by_pipe) >= _MAX_CACHED_PIPES:
                self._by_pipe.clear()
                self._unfiltered.clear()
            # Target.matches(pipe, event), with the pipe's part decided once for the pipe.
            entries = self._by_pipe[pipe] = [
                (s.target.event, s.callback) for s in self._subs.values()
                if (not pipe.startswith("_answer") if s.target.pipe is None else pipe == s.target.pipe)]
            if all(wanted is None for wanted, _ in entries):
                self._unfiltered[pipe] = [callback for _, callback in entries]
        return [callback for wanted, callback in entries if wanted is None or wanted == event]

    def callbacks_for(self, message: Mapping[str, Any]) -> list[Callback]:
        """``accept(message)``, then ``match(message)``: the callbacks of a message to deliver,
        none for a duplicate. The one call per message of every tab (server_info read once).
        The list may be the registry's own: iterate it, never change it."""
        info = message.get("server_info") or {}
        history_id = info.get("history_id")
        if history_id is not None and not self._accept(info, history_id):
            return []
        pipe = info.get("pipe") or ""
        if type(pipe) is str:
            unfiltered = self._unfiltered.get(pipe)
            if unfiltered is not None:
                return unfiltered  # no callback of this pipe asks for an event: each one matches
        return self._match(pipe, info.get("event") or "")

    # ------------------------------------------------------------------ dedup

    def accept(self, message: Mapping[str, Any]) -> bool:
        """False if this live message's ``history_id`` is <= the last accepted on its pipe.

        Messages without one (CppComet sends none: they cannot be ordered), and history
        items (explicitly asked for with get_pipe_log), are always accepted.
        """
        info = message.get("server_info") or {}
        history_id = info.get("history_id")
        return history_id is None or self._accept(info, history_id)

    def _accept(self, info: Mapping[str, Any], history_id: Any) -> bool:
        # history_id_int, inline (MicroPython: no str.isascii, and an ASCII-only isdigit)
        m = (int(history_id) if type(history_id) is str and history_id.isdigit()
             and (_MICROPYTHON or history_id.isascii()) else None)
        if m is None or info.get("history") is True:
            return True
        pipe = info.get("pipe") or ""
        last = self._last.get(pipe)
        if last is not None and m <= last:
            return False
        self._last[pipe] = m
        return True

    def last_history_ids(self) -> dict[str, str]:
        """Last accepted history_id per pipe (what a new master should recover from)."""
        return {pipe: str(m) for pipe, m in self._last.items()}

    def forget_history_ids(self, pipes: Iterable[str] | None = None) -> None:
        """Drop the remembered history_ids (all, or of ``pipes``).

        Call on a ``gap`` state: the server's sequence may have restarted
        (e.g. a fresh store), and old history_ids would then hide new messages.
        """
        if pipes is None:
            self._last.clear()
        else:
            for p in pipes:
                self._last.pop(p, None)
