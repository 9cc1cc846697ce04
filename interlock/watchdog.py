"""The watchdog's rules (DESIGN 4) as pure objects over monotonic nanoseconds.

1. Liveness: no verdict or heartbeat from the monitor for longer than ``liveness_ms``,
   armed once the first monitor heartbeat has been seen.
2. Timeliness: a verdict whose age ``now - t_acq`` exceeds ``verdict_budget_ms`` is a
   deadline miss; ``late_trip_after`` consecutive misses trip when the action is "trip".
3. Delivery: the first stop write gets what is left of D (``stop_budget_ms``); a write
   not confirmed within it moves on to the next target; when no target confirms, the stop
   is undelivered: alarm, stop advancing the PLC heartbeat, retry every ``retry_ms``.

Plus the black-channel checks on the monitor's stream: sequence repeat, reorder and gap of
verdict_seq and of the heartbeat counter, and decode errors, all counted.

Pure core: time arrives as ``now_ns``; no clock, no I/O, no logging.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

from tripwire.config import InterlockConfig
from tripwire.messages import Heartbeat, HeartbeatFlag, Level, Verdict, VerdictFlag

MS = 1_000_000
HEARTBEAT_MODULUS = 1 << 16
REORDER_WINDOW = 64  # a backwards jump larger than this is a restarted peer, not a reorder


def next_heartbeat(counter: int) -> int:
    """The PLC heartbeat counter after ``counter`` (a 16-bit register: wraps to 0)."""
    return (counter + 1) % HEARTBEAT_MODULUS


@dataclass(frozen=True, slots=True)
class Limits:
    liveness_ns: int
    verdict_budget_ns: int
    stop_budget_ns: int
    late_trip_after: int
    trip_on_late: bool
    retry_ns: int = 50 * MS

    @classmethod
    def from_config(cls, cfg: InterlockConfig) -> "Limits":
        return cls(
            liveness_ns=int(cfg.liveness_ms * MS),
            verdict_budget_ns=int(cfg.verdict_budget_ms * MS),
            stop_budget_ns=int(cfg.stop_budget_ms * MS),
            late_trip_after=max(1, cfg.late_trip_after),
            trip_on_late=cfg.timeliness_action == "trip",
        )


# --- black channel ---------------------------------------------------------------------


class Seq(Enum):
    FIRST = "first"
    NEXT = "next"
    GAP = "gap"
    REPEAT = "repeat"
    REORDER = "reorder"
    RESTART = "restart"

    @property
    def accepted(self) -> bool:
        """Whether the message is new (it may refresh liveness)."""
        return self not in (Seq.REPEAT, Seq.REORDER)


class SeqTracker:
    """Classifies each sequence number against the last accepted one."""

    __slots__ = ("last", "missing")

    def __init__(self) -> None:
        self.last: int | None = None
        self.missing = 0  # numbers skipped by the last GAP

    def observe(self, seq: int) -> Seq:
        last = self.last
        self.missing = 0
        if last is None:
            self.last = seq
            return Seq.FIRST
        if seq == last + 1:
            self.last = seq
            return Seq.NEXT
        if seq == last:
            return Seq.REPEAT
        if seq > last:
            self.missing = seq - last - 1
            self.last = seq
            return Seq.GAP
        if last - seq <= REORDER_WINDOW:
            return Seq.REORDER
        self.last = seq
        return Seq.RESTART


# --- counters --------------------------------------------------------------------------


@dataclass(slots=True)
class Counters:
    verdicts: int = 0
    heartbeats: int = 0
    trip_verdicts: int = 0
    ignored_trip_verdicts: int = 0
    deadline_misses: int = 0
    late_verdicts: int = 0
    invalid_verdicts: int = 0
    decode_errors: int = 0
    seq_gaps: int = 0
    seq_repeats: int = 0
    seq_reorders: int = 0
    seq_restarts: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


# --- rules 1 and 2 ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerdictCheck:
    """What the watchdog concluded from one verdict."""

    age_ns: int
    seq: Seq
    late: bool  # a deadline miss (rule 2)
    trip_level: bool  # the monitor says TRIP
    late_streak_trip: bool  # rule 2's action fired


class MonitorWatch:
    """Liveness, timeliness and black-channel accounting of the monitor's stream."""

    __slots__ = ("limits", "counters", "_verdict_seq", "_hb_seq", "_last_seen_ns",
                 "_first_hb_ns", "_last_hb", "_late_streak")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.counters = Counters()
        self._verdict_seq = SeqTracker()
        self._hb_seq = SeqTracker()
        self._last_seen_ns: int | None = None
        self._first_hb_ns: int | None = None
        self._last_hb: Heartbeat | None = None
        self._late_streak = 0

    # -- inputs --
    def on_decode_error(self) -> None:
        self.counters.decode_errors += 1

    def on_heartbeat(self, hb: Heartbeat, now_ns: int) -> Seq:
        c = self.counters
        c.heartbeats += 1
        seq = self._hb_seq.observe(hb.counter)
        self._count_seq(seq, self._hb_seq.missing)
        if seq.accepted:
            self._last_seen_ns = now_ns
            self._last_hb = hb
            if self._first_hb_ns is None:
                self._first_hb_ns = now_ns
        return seq

    def on_verdict(self, v: Verdict, now_ns: int) -> VerdictCheck:
        c, lim = self.counters, self.limits
        c.verdicts += 1
        seq = self._verdict_seq.observe(v.verdict_seq)
        self._count_seq(seq, self._verdict_seq.missing)
        invalid = bool(v.flags & VerdictFlag.INFERENCE_ERROR)
        if invalid:
            c.invalid_verdicts += 1  # DESIGN 6: treated as a missing verdict
        if v.flags & VerdictFlag.LATE:
            c.late_verdicts += 1
        if seq.accepted and not invalid:
            self._last_seen_ns = now_ns
        age_ns = now_ns - v.t_acq_ns
        late = age_ns > lim.verdict_budget_ns
        streak_trip = False
        if late:
            c.deadline_misses += 1
            self._late_streak += 1
            streak_trip = lim.trip_on_late and self._late_streak >= lim.late_trip_after
        else:
            self._late_streak = 0
        trip_level = v.level == Level.TRIP
        if trip_level:
            c.trip_verdicts += 1
        return VerdictCheck(age_ns, seq, late, trip_level, streak_trip)

    def _count_seq(self, seq: Seq, missing: int) -> None:
        c = self.counters
        if seq is Seq.GAP:
            c.seq_gaps += missing
        elif seq is Seq.REPEAT:
            c.seq_repeats += 1
        elif seq is Seq.REORDER:
            c.seq_reorders += 1
        elif seq is Seq.RESTART:
            c.seq_restarts += 1

    # -- rule 1 --
    @property
    def heartbeat_seen(self) -> bool:
        return self._first_hb_ns is not None

    @property
    def last_heartbeat(self) -> Heartbeat | None:
        return self._last_hb

    def liveness_expiry_ns(self) -> int | None:
        """When the liveness rule fires if nothing else arrives; None before any heartbeat."""
        if self._first_hb_ns is None or self._last_seen_ns is None:
            return None
        return self._last_seen_ns + self.limits.liveness_ns

    def silent(self, now_ns: int) -> bool:
        expiry = self.liveness_expiry_ns()
        return expiry is not None and now_ns > expiry

    def fresh(self, now_ns: int) -> bool:
        """The monitor is heard from and alive now (a precondition to arm and to reset)."""
        return self.heartbeat_seen and not self.silent(now_ns)

    def model_error(self) -> bool:
        hb = self._last_hb
        return hb is not None and bool(hb.flags & HeartbeatFlag.MODEL_ERROR)

    def reset_streak(self) -> None:
        self._late_streak = 0


# --- rule 3 ----------------------------------------------------------------------------


class Delivery:
    """Budgets and retry timing of one stop (one trip's permit-0 write).

    ``attempt_timeout_ms`` gives the first attempt what is left of D, bounded by the
    target's own timeout; later attempts (another target, retries) use the target's own
    timeout: a late confirmation still beats none.
    """

    __slots__ = ("limits", "_start_ns", "_attempts", "acked", "undelivered", "next_retry_ns")

    def __init__(self, limits: Limits, start_ns: int) -> None:
        self.limits = limits
        self._start_ns = start_ns
        self._attempts = 0
        self.acked = False
        self.undelivered = False
        self.next_retry_ns: int | None = None

    def attempt_timeout_ms(self, target_timeout_ms: float, now_ns: int) -> float:
        self._attempts += 1
        if self._attempts > 1:
            return target_timeout_ms
        left_ms = (self._start_ns + self.limits.stop_budget_ns - now_ns) / MS
        return max(0.1, min(target_timeout_ms, left_ms))

    def confirmed(self) -> None:
        self.acked = True
        self.next_retry_ns = None

    def all_failed(self, now_ns: int) -> None:
        """No target confirmed: undelivered until one does; retry later."""
        self.undelivered = True
        self.next_retry_ns = now_ns + self.limits.retry_ns

    @property
    def pending(self) -> bool:
        return self.undelivered and not self.acked

    @property
    def heartbeat_allowed(self) -> bool:
        """Keep the PLC heartbeat going only if the stop has never been undelivered."""
        return not self.undelivered
