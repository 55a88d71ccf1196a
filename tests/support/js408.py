"""CometServerApi.js 4.08's delivery rules, replayed in Python for tests (issue 9 items 1, 2).

No package registry ships CometServerApi.js 4.08, so this models the three rules of it that decide
whether a server frame reaches a callback (learnt from reading the client, not copied):

* frame parsing: each line of the frame goes through ``JSON.parse(line.replace(/\\\\'/g, "'"))``;
  a line that fails is skipped silently;
* duplicate check: a message whose ``uuid`` was seen before is dropped;
* ``subscription_callBack``: a channel callback drops a message whose ``marker`` is set and
  differs from the tab's own ``custom_id``.
"""

from __future__ import annotations

import json


def js408_parse_frame(text: str) -> list[dict]:
    """4.08's onmessage: strip (its regex has no /g: only the first match), split on newlines,
    undo \\' with a plain replace, JSON.parse each line; a line that fails is dropped."""
    stripped = text.lstrip() if text[:1].isspace() else text.rstrip()
    out = []
    for line in stripped.split("\n"):
        try:
            out.append(json.loads(line.replace("\\'", "'")))
        except ValueError:
            continue
    return out


class Js408:
    """One 4.08 tab: its custom_id, its seen uuids and its channel callbacks."""

    def __init__(self, custom_id: str = "4a0b8c3d2e") -> None:
        self.custom_id = custom_id
        self.seen_uuids: set[str] = set()
        self.callbacks: dict[str, list[dict]] = {}

    def subscription(self, pipe: str) -> list[dict]:
        """``subscription(pipe, cb)`` / ``get_pipe_log(pipe, cb)``: what cb will receive."""
        return self.callbacks.setdefault(pipe, [])

    def on_frame(self, text: str) -> None:
        for msg in js408_parse_frame(text):
            uuid = msg.get("uuid")
            if uuid:
                if uuid in self.seen_uuids:
                    continue  # "Duplicate"
                self.seen_uuids.add(uuid)
            info = {"pipe": msg.get("pipe"), "event": msg.get("event"), "history": msg.get("history") is True,
                    "marker": msg.get("marker"), "uuid": uuid}
            for received in ([self.callbacks[msg["pipe"]]] if msg.get("pipe") in self.callbacks else []):
                if info["marker"] is not None and info["marker"] != self.custom_id:
                    continue  # "meant for another tab"
                received.append({"data": msg.get("data"), "server_info": info})
