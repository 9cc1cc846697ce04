"""What the gateway shows: monitor messages and interlock status folded into readings.

Pure core. ``PlantView`` takes decoded verdicts and heartbeats, the interlock's status
replies (or the fact that none came) and the time they were received, and answers
``snapshot(now_ns)``: one ``Reading`` per address-space path. It declares each path's
value kind as a plain word; the shell maps kinds to OPC-UA types. It must not read a
clock, touch a socket or import asyncua, zmq, asyncio or structlog.

Quality tells SCADA how far to trust a value: ``good``; ``stale`` (the last value seen
before its source went quiet, e.g. interlock figures while the interlock is unreachable);
``no_data`` (nothing received yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tripwire.latency import Histogram
from tripwire.messages import Heartbeat, Verdict, VerdictFlag

Kind = Literal["string", "bool", "uint32", "uint64", "double", "string_array"]
Quality = Literal["good", "stale", "no_data"]

UNREACHABLE = "UNREACHABLE"
MAX_ALARM_LINES = 32

INTERLOCK_NODES: tuple[tuple[str, Kind], ...] = (
    ("Interlock/State", "string"),
    ("Interlock/Reachable", "bool"),
    ("Interlock/TripReason", "string"),
    ("Interlock/Trips", "uint32"),
    ("Interlock/DeadlineMisses", "uint32"),
    ("Interlock/ActiveAlarms", "uint32"),
    ("Interlock/Alarms", "string_array"),
    ("Interlock/LastAlarm", "string"),
    ("Interlock/StatusAgeMs", "double"),
    ("Latency/Count", "uint64"),
    ("Latency/P50Ms", "double"),
    ("Latency/P99Ms", "double"),
    ("Latency/P999Ms", "double"),
    ("Latency/MaxMs", "double"),
)
MONITOR_NODES: tuple[tuple[str, Kind], ...] = (
    ("Monitor/FramesReceived", "uint64"),
    ("Monitor/FramesProcessed", "uint64"),
    ("Monitor/FramesRejected", "uint64"),
    ("Monitor/Tier", "uint32"),
    ("Monitor/HeartbeatAgeMs", "double"),
    ("Monitor/DecodeErrors", "uint64"),
)
SOURCE_NODES: tuple[tuple[str, Kind], ...] = (
    ("Score", "double"),
    ("Threshold", "double"),
    ("Level", "string"),
    ("Flags", "string"),
    ("TopChannels", "string"),
    ("LastVerdictAgeMs", "double"),
)


@dataclass(frozen=True, slots=True)
class Reading:
    value: Any
    quality: Quality = "good"


NO_DATA = Reading(None, "no_data")


@dataclass(frozen=True, slots=True)
class InterlockFigures:
    """The parts of one interlock status reply that the gateway shows."""

    state: str
    trip_reason: str
    trips: int
    deadline_misses: int
    alarms: tuple[str, ...]  # active ones, "name: detail"
    last_alarm: str
    latency: Histogram


def parse_status(reply: Mapping[str, Any]) -> InterlockFigures | None:
    """The figures of an ``ok`` status reply, or None when it is not shaped as expected."""
    try:
        alarms = [a for a in reply.get("alarms", []) if isinstance(a, Mapping)]
        active = tuple(f"{a['name']}: {a['detail']}" for a in alarms if a.get("active"))
        last = alarms[-1] if alarms else None
        return InterlockFigures(
            state=str(reply["state"]),
            trip_reason=str(reply.get("trip_reason") or ""),
            trips=int(reply.get("trips_total", len(reply.get("trips", [])))),
            deadline_misses=int(reply.get("counters", {}).get("deadline_misses", 0)),
            alarms=active[-MAX_ALARM_LINES:],
            last_alarm="" if last is None else f"{last['name']}: {last['detail']}",
            latency=Histogram.from_sparse(dict(reply["latency"])),
        )
    # OverflowError: a count beyond int64 or an infinite one, which numpy or int() refuse
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError):
        return None


def _ms(ns: int) -> float:
    return round(ns / 1e6, 4)


class _Source:
    __slots__ = ("name", "verdict", "rx_ns")

    def __init__(self, name: str) -> None:
        self.name = name
        self.verdict: Verdict | None = None
        self.rx_ns = 0


class PlantView:
    """Latest known facts, per source and per peer; ``snapshot`` renders them."""

    def __init__(self, sources: Sequence[tuple[int, str]]) -> None:
        self._sources = {sid: _Source(name) for sid, name in sources}
        self.heartbeat: Heartbeat | None = None
        self.heartbeat_rx_ns = 0
        self.decode_errors = 0
        self.unknown_sources = 0
        self.figures: InterlockFigures | None = None
        self.status_rx_ns = 0
        self.reachable = False
        self.unreachable_detail = "no status yet"

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._sources.values())

    def nodes(self) -> tuple[tuple[str, Kind], ...]:
        per_source = tuple((f"Sources/{s.name}/{leaf}", kind) for s in self._sources.values()
                           for leaf, kind in SOURCE_NODES)
        return INTERLOCK_NODES + MONITOR_NODES + per_source

    # -- inputs -------------------------------------------------------------------------
    def on_message(self, msg: Verdict | Heartbeat, now_ns: int) -> None:
        if isinstance(msg, Heartbeat):
            self.heartbeat, self.heartbeat_rx_ns = msg, now_ns
            return
        src = self._sources.get(msg.source_id)
        if src is None:
            self.unknown_sources += 1
            return
        src.verdict, src.rx_ns = msg, now_ns

    def on_decode_error(self) -> None:
        self.decode_errors += 1

    def on_status(self, reply: Mapping[str, Any], now_ns: int) -> bool:
        """Fold in a status reply; False (and unreachable) when it is malformed."""
        figures = parse_status(reply) if reply.get("ok") is True else None
        if figures is None:
            self.on_status_missing(f"bad status reply: {str(reply.get('error', 'malformed'))[:80]}")
            return False
        self.figures, self.status_rx_ns = figures, now_ns
        self.reachable, self.unreachable_detail = True, ""
        return True

    def on_status_missing(self, detail: str) -> None:
        self.reachable, self.unreachable_detail = False, detail

    # -- output -------------------------------------------------------------------------
    def snapshot(self, now_ns: int) -> dict[str, Reading]:
        out = self._interlock(now_ns)
        out.update(self._monitor(now_ns))
        for s in self._sources.values():
            out.update(self._source(s, now_ns))
        return out

    def _interlock(self, now_ns: int) -> dict[str, Reading]:
        f = self.figures
        out: dict[str, Reading] = {"Interlock/Reachable": Reading(self.reachable)}
        if f is None:
            out.update({path: NO_DATA for path, _ in INTERLOCK_NODES if path not in out})
            out["Interlock/State"] = Reading(UNREACHABLE)
            out["Interlock/LastAlarm"] = Reading(f"interlock unreachable: {self.unreachable_detail}")
            return out
        q: Quality = "good" if self.reachable else "stale"
        h = f.latency
        out.update({
            "Interlock/State": Reading(f.state if self.reachable else UNREACHABLE),
            "Interlock/TripReason": Reading(f.trip_reason, q),
            "Interlock/Trips": Reading(f.trips, q),
            "Interlock/DeadlineMisses": Reading(f.deadline_misses, q),
            "Interlock/ActiveAlarms": Reading(len(f.alarms), q),
            "Interlock/Alarms": Reading(list(f.alarms), q),
            "Interlock/LastAlarm": Reading(
                f.last_alarm if self.reachable else f"interlock unreachable: {self.unreachable_detail}"),
            "Interlock/StatusAgeMs": Reading(_ms(now_ns - self.status_rx_ns)),
            "Latency/Count": Reading(h.total, q),
            "Latency/P50Ms": Reading(_ms(h.percentile(0.50)), q),
            "Latency/P99Ms": Reading(_ms(h.percentile(0.99)), q),
            "Latency/P999Ms": Reading(_ms(h.percentile(0.999)), q),
            "Latency/MaxMs": Reading(_ms(h.max_ns), q),
        })
        return out

    def _monitor(self, now_ns: int) -> dict[str, Reading]:
        hb = self.heartbeat
        out = {"Monitor/DecodeErrors": Reading(self.decode_errors)}
        if hb is None:
            out.update({path: NO_DATA for path, _ in MONITOR_NODES if path not in out})
            return out
        out.update({
            "Monitor/FramesReceived": Reading(hb.frames_received),
            "Monitor/FramesProcessed": Reading(hb.frames_processed),
            "Monitor/FramesRejected": Reading(hb.frames_rejected),
            "Monitor/Tier": Reading(hb.tier),
            "Monitor/HeartbeatAgeMs": Reading(_ms(now_ns - self.heartbeat_rx_ns)),
        })
        return out

    @staticmethod
    def _source(s: _Source, now_ns: int) -> dict[str, Reading]:
        prefix = f"Sources/{s.name}/"
        v = s.verdict
        if v is None:
            return {prefix + leaf: NO_DATA for leaf, _ in SOURCE_NODES}
        flags = VerdictFlag(v.flags)
        names = [f.name.lower() for f in VerdictFlag if f and f in flags and f.name]
        return {
            prefix + "Score": Reading(float(v.score)),
            prefix + "Threshold": Reading(float(v.threshold)),
            prefix + "Level": Reading(v.level.name),
            prefix + "Flags": Reading(",".join(names)),
            prefix + "TopChannels": Reading(",".join(v.channels)),
            prefix + "LastVerdictAgeMs": Reading(_ms(now_ns - s.rx_ns)),
        }
