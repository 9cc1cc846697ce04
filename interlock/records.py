"""What the interlock reports: trip records and the alarm book.

Plain data and its JSON form for the status reply and the journal. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tripwire.messages import Verdict

ALARM_HISTORY = 200


@dataclass(frozen=True, slots=True)
class Attempt:
    """One stop write to one target; ``t_ack_ns`` is when it was confirmed."""

    target: str
    acked: bool
    timeout_ms: float
    error: str = ""
    t_ack_ns: int | None = None


@dataclass(frozen=True, slots=True)
class TripRecord:
    reason: str
    t_decision_ns: int
    detail: str = ""
    source_id: int | None = None
    seq: int | None = None
    verdict_seq: int | None = None
    t_acq_ns: int | None = None
    t_verdict_ns: int | None = None
    score: float | None = None
    threshold: float | None = None
    channels: tuple[str, ...] = ()
    target: str | None = None
    acked: bool = False
    t_ack_ns: int | None = None
    attempts: tuple[Attempt, ...] = ()
    journaled: bool = False

    @classmethod
    def build(cls, reason: str, t_decision_ns: int, detail: str, verdict: Verdict | None, *,
              target: str | None, t_ack_ns: int | None, attempts: tuple[Attempt, ...]) -> "TripRecord":
        acked = target is not None
        if verdict is None:
            return cls(reason=reason, t_decision_ns=t_decision_ns, detail=detail, target=target,
                       acked=acked, t_ack_ns=t_ack_ns, attempts=attempts)
        v = verdict
        return cls(reason=reason, t_decision_ns=t_decision_ns, detail=detail, source_id=v.source_id,
                   seq=v.seq, verdict_seq=v.verdict_seq, t_acq_ns=v.t_acq_ns,
                   t_verdict_ns=v.t_verdict_ns, score=float(v.score), threshold=float(v.threshold),
                   channels=tuple(v.channels), target=target, acked=acked, t_ack_ns=t_ack_ns,
                   attempts=attempts)

    @property
    def trip_latency_ms(self) -> float | None:
        """DESIGN 4: t_ack - t_acq of the tripping window (None unless acked in this trip)."""
        if not self.acked or self.t_ack_ns is None or self.t_acq_ns is None:
            return None
        return round((self.t_ack_ns - self.t_acq_ns) / 1e6, 4)

    @property
    def decision_latency_ms(self) -> float | None:
        if self.t_acq_ns is None:
            return None
        return round((self.t_decision_ns - self.t_acq_ns) / 1e6, 4)

    @property
    def stop_latency_ms(self) -> float | None:
        """From the decision to the PLC's confirmation."""
        if not self.acked or self.t_ack_ns is None:
            return None
        return round((self.t_ack_ns - self.t_decision_ns) / 1e6, 4)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["attempts"] = [asdict(a) for a in self.attempts]
        d["trip_latency_ms"] = self.trip_latency_ms
        d["decision_latency_ms"] = self.decision_latency_ms
        d["stop_latency_ms"] = self.stop_latency_ms
        return d


@dataclass(slots=True)
class Alarm:
    name: str
    detail: str
    t_ns: int
    active: bool = True
    count: int = 1
    acknowledged: bool = False


class AlarmBook:
    """Raised alarms, de-duplicated while active (a repeat bumps ``count``)."""

    __slots__ = ("_alarms",)

    def __init__(self) -> None:
        self._alarms: list[Alarm] = []

    def _active(self, name: str) -> Alarm | None:
        for a in reversed(self._alarms):
            if a.name == name and a.active:
                return a
        return None

    def raise_(self, name: str, detail: str, now_ns: int) -> bool:
        """Record an alarm; True when it is new (not a repeat of an active one)."""
        current = self._active(name)
        if current is not None:
            current.count += 1
            current.detail = detail
            return False
        self._alarms.append(Alarm(name, detail, now_ns))
        if len(self._alarms) > ALARM_HISTORY:
            del self._alarms[0]
        return True

    def clear(self, name: str) -> bool:
        current = self._active(name)
        if current is None:
            return False
        current.active = False
        return True

    def acknowledge(self) -> int:
        """An operator has seen every alarm so far; returns how many were new to them.
        Acknowledging never clears an alarm: only its cause going away does."""
        fresh = [a for a in self._alarms if not a.acknowledged]
        for a in fresh:
            a.acknowledged = True
        return len(fresh)

    def is_active(self, name: str) -> bool:
        return self._active(name) is not None

    def to_list(self) -> list[dict[str, Any]]:
        return [asdict(a) for a in self._alarms]
