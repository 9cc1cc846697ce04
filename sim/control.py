"""The sim's control socket protocol: JSON requests in, ``tripwire.messages`` replies out.

Requests (an optional ``"v"`` must equal ``messages.VERSION``):

    {"cmd": "status", "since": 0}   ports, PLC state, PLC write records (index >= since),
                                    fault onsets, frames published, schedule start time
    {"cmd": "schedule"}             start the fault schedule now (once)
    {"cmd": "stop"}                 end the sim process cleanly

Anything else gets ``{"ok": false, "error": ...}``; a malformed request never raises. This
module decodes, dispatches and encodes; what the commands do is given by ``SimHandlers``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from sim.errors import BadControlRequest
from tripwire.messages import VERSION, encode_reply

MAX_REQUEST_BYTES = 4096


class SimHandlers(Protocol):
    def status(self, since: int) -> dict[str, Any]: ...

    def schedule(self) -> dict[str, Any]: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ControlReply:
    payload: bytes
    stop: bool = False  # the process should end once this reply is sent


def _parse(parts: list[bytes]) -> dict[str, Any]:
    if len(parts) != 1:
        raise BadControlRequest(f"expected one message part, got {len(parts)}")
    data = parts[0]
    if len(data) > MAX_REQUEST_BYTES:
        raise BadControlRequest(f"request too large ({len(data)} bytes)")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadControlRequest(f"bad_json: {e}") from None
    if not isinstance(obj, dict):
        raise BadControlRequest("bad_request: not a JSON object")
    if "v" in obj and obj["v"] != VERSION:
        raise BadControlRequest(f"bad_version: {obj['v']!r}")
    if not isinstance(obj.get("cmd"), str):
        raise BadControlRequest("bad_request: 'cmd' must be a string")
    return obj


def _since(obj: dict[str, Any]) -> int:
    since = obj.get("since", 0)
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise BadControlRequest(f"bad_request: 'since' must be an integer >= 0, got {since!r}")
    return since


def handle(parts: list[bytes], handlers: SimHandlers) -> ControlReply:
    """One request, one reply; errors in the request become error replies."""
    try:
        obj = _parse(parts)
        cmd = obj["cmd"]
        if cmd == "status":
            return ControlReply(encode_reply(True, **handlers.status(_since(obj))))
        if cmd == "schedule":
            return ControlReply(encode_reply(True, **handlers.schedule()))
        if cmd == "stop":
            handlers.stop()
            return ControlReply(encode_reply(True), stop=True)
        raise BadControlRequest(f"unknown_command: {cmd!r}")
    except BadControlRequest as e:
        return ControlReply(encode_reply(False, error=str(e)))
