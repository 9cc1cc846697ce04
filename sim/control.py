"""The sim's control socket protocol: JSON requests in, ``tripwire.messages`` replies out.

Requests (an optional ``"v"`` must equal ``messages.VERSION``):

    {"cmd": "status", "since": 0}   ports, PLC state, PLC write records (index >= since),
                                    fault onsets, frames published, schedule start time
    {"cmd": "schedule"}             start the fault schedule now (once)
    {"cmd": "inject", "kind": "bearing", "source": 1, "severity": 1.0, "ramp_s": 0.5}
                                    a fault on demand from the source's next sample
                                    (severity and ramp_s optional, FaultConfig's defaults);
                                    replies with its onset ``sample_index``
    {"cmd": "clear", "source": 1}   every fault of the source that has begun ends now;
                                    replies with how many ``cleared``
    {"cmd": "stop"}                 end the sim process cleanly

Anything else gets ``{"ok": false, "error": ...}``; a malformed request never raises. This
module decodes, dispatches and encodes; what the commands do is given by ``SimHandlers``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Protocol, get_args

from sim.errors import BadControlRequest
from tripwire.config import FaultConfig, FaultKind
from tripwire.messages import VERSION, encode_reply

MAX_REQUEST_BYTES = 4096


class SimHandlers(Protocol):
    def status(self, since: int) -> dict[str, Any]: ...

    def schedule(self) -> dict[str, Any]: ...

    def inject(self, fault: FaultConfig) -> dict[str, Any]: ...

    def clear(self, source: int) -> dict[str, Any]: ...

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
    # RecursionError: nesting deeper than the interpreter's recursion limit
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
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


FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
INJECT_FIELDS = frozenset({"cmd", "v", "kind", "source", "severity", "ramp_s"})
MAX_SEVERITY = 100.0
MAX_RAMP_S = 3600.0


def _source(obj: dict[str, Any]) -> int:
    source = obj.get("source")
    if isinstance(source, bool) or not isinstance(source, int):
        raise BadControlRequest(f"bad_request: 'source' must be an integer, got {source!r}")
    return source


def _number(value: Any, key: str, lo: float, hi: float, *, open_low: bool = False) -> float:
    """A finite number in [lo, hi] ((lo, hi] with ``open_low``)."""
    # The range test comes first: it also refuses NaN and infinities, and math.isfinite would
    # raise OverflowError on an integer beyond float range.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
            or not math.isfinite(value) or (open_low and value == lo):
        span = f"({lo:g}, {hi:g}]" if open_low else f"[{lo:g}, {hi:g}]"
        raise BadControlRequest(f"bad_request: '{key}' must be a number in {span}, got {value!r}")
    return float(value)


def _fault(obj: dict[str, Any]) -> FaultConfig:
    extra = sorted(set(obj) - INJECT_FIELDS)
    if extra:
        raise BadControlRequest(f"bad_request: unknown field(s) {', '.join(extra)}")
    kind = obj.get("kind")
    if kind not in FAULT_KINDS:
        raise BadControlRequest(f"bad_request: 'kind' must be one of {list(FAULT_KINDS)}, got {kind!r}")
    optional: dict[str, float] = {}
    if "severity" in obj:
        optional["severity"] = _number(obj["severity"], "severity", 0.0, MAX_SEVERITY, open_low=True)
    if "ramp_s" in obj:
        optional["ramp_s"] = _number(obj["ramp_s"], "ramp_s", 0.0, MAX_RAMP_S)
    return FaultConfig(kind=kind, source=_source(obj), at_s=0.0, **optional)


def handle(parts: list[bytes], handlers: SimHandlers) -> ControlReply:
    """One request, one reply; errors in the request become error replies."""
    try:
        obj = _parse(parts)
        cmd = obj["cmd"]
        if cmd == "status":
            return ControlReply(encode_reply(True, **handlers.status(_since(obj))))
        if cmd == "schedule":
            return ControlReply(encode_reply(True, **handlers.schedule()))
        if cmd == "inject":
            return ControlReply(encode_reply(True, **handlers.inject(_fault(obj))))
        if cmd == "clear":
            return ControlReply(encode_reply(True, **handlers.clear(_source(obj))))
        if cmd == "stop":
            handlers.stop()
            return ControlReply(encode_reply(True), stop=True)
        raise BadControlRequest(f"unknown_command: {cmd!r}")
    except BadControlRequest as e:
        return ControlReply(encode_reply(False, error=str(e)))
