"""The watchdog's rules (DESIGN 4) as pure objects over monotonic nanoseconds.

1. Liveness: the monitor's heartbeat counter has not changed for longer than
   ``liveness_ms``, armed once the first monitor heartbeat has been seen. The heartbeat is
   judged by change (a frozen counter that keeps arriving is as dead as a silent one), not by
   arrival, and verdicts do not stand in for it: they come from the same loop, so a monitor
   whose heartbeat stopped changing is broken even if verdicts still flow.
   Silence is evidence only while the interlock itself was running: when its own wake-up
   came at least ``STALL_MIN_NS`` late (its CPU was taken: a host that stole a virtual CPU, a
   kernel section that did not yield), a monitor pinned to the same CPU was stopped too, so
   after such a stall the monitor gets ``liveness / 2`` to show a new counter. That extension
   never takes the rule past ``3 x liveness`` of silence: a dead monitor still trips while the
   interlock keeps losing its CPU.
2. Timeliness: a verdict whose age ``now - t_acq`` exceeds ``verdict_budget_ms`` is a
   deadline miss; ``late_trip_after`` consecutive misses of one source trip when the action
   is "trip" (per source: one late source among timely ones must not hide in between).
3. Delivery: the first stop write gets what is left of D (``stop_budget_ms``); a write
   not confirmed within it moves on to the next target; when the stop policy is not met
   (no target confirmed under "any", some target missing under "all"), the stop is
   undelivered: alarm, stop advancing the PLC heartbeat, retry every ``retry_ms``.

Plus the black-channel checks on the monitor's stream: sequence repeat, reorder and gap of
verdict_seq and of the heartbeat counter (u64 on the wire, judged modulo 2^64 so a wrap is
just the next number), and decode errors, counted by reason (corruption, wrong address,
masquerade: see tripwire.messages).

Pure core: time arrives as ``now_ns``; no clock, no I/O, no logging.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

from tripwire.config import InterlockConfig
from tripwire.messages import COUNTER_MODULUS, Heartbeat, HeartbeatFlag, Level, Verdict, VerdictFlag

MS = 1_000_000
HEARTBEAT_MODULUS = 1 << 16
STALL_MIN_NS = 1 * MS  # a wake-up this late is a stall of the interlock's own CPU
REORDER_WINDOW = 64  # a backwards jump larger than this is a restarted peer, not a reorder
# DecodeError reasons of the black-channel classes -> their Counters field
DECODE_REASON_COUNTERS = {"bad_crc": "crc_errors", "wrong_address": "wrong_address",
                          "masquerade": "masquerade"}

_INFERENCE_ERROR, _LATE = int(VerdictFlag.INFERENCE_ERROR), int(VerdictFlag.LATE)


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
    """Classifies each sequence number against the last accepted one, modulo ``modulus``:
    ahead by less than half the range is new (NEXT or GAP), so the wrap from the top value
    to 0 is just the next number; a short way behind is REORDER; further behind, RESTART."""

    __slots__ = ("last", "missing", "modulus")

    def __init__(self, modulus: int = COUNTER_MODULUS) -> None:
        self.last: int | None = None
        self.missing = 0  # numbers skipped by the last GAP
        self.modulus = modulus

    def observe(self, seq: int) -> Seq:
        last = self.last
        self.missing = 0
        seq %= self.modulus
        if last is None:
            self.last = seq
            return Seq.FIRST
        ahead = (seq - last) % self.modulus
        if ahead == 1:
            self.last = seq
            return Seq.NEXT
        if ahead == 0:
            return Seq.REPEAT
        if (last - seq) % self.modulus <= REORDER_WINDOW:
            return Seq.REORDER
        self.last = seq
        if ahead < self.modulus // 2:
            self.missing = ahead - 1
            return Seq.GAP
        return Seq.RESTART


# --- counters --------------------------------------------------------------------------


@dataclass(slots=True)
class Counters:
    verdicts: int = 0
    heartbeats: int = 0
    trip_verdicts: int = 0
    ignored_trip_verdicts: int = 0
    deadline_misses: int = 0
    late_while_busy: int = 0  # of those, queued while the interlock itself was busy
    late_before_armed: int = 0  # of those, acquired before the latch last armed
    self_stalls: int = 0  # wake-ups of the interlock at least STALL_MIN_NS late
    self_stall_max_us: int = 0
    late_verdicts: int = 0
    invalid_verdicts: int = 0
    decode_errors: int = 0  # all of them, these three included:
    crc_errors: int = 0  # corrupted on the way
    wrong_address: int = 0  # meant for another cell
    masquerade: int = 0  # not from the monitor it claims to be
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

    __slots__ = ("limits", "counters", "_verdict_seq", "_hb_seq", "_hb_changed_ns",
                 "_first_hb_ns", "_last_hb", "_late_streak", "_busy_from_ns",
                 "_busy_until_ns", "_stall_end_ns", "_armed_from_ns")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.counters = Counters()
        self._verdict_seq = SeqTracker()
        self._hb_seq = SeqTracker()
        self._hb_changed_ns: int | None = None
        self._first_hb_ns: int | None = None
        self._last_hb: Heartbeat | None = None
        self._late_streak: dict[int, int] = {}  # source id -> consecutive late verdicts
        self._busy_from_ns = 0
        self._busy_until_ns = 0
        self._stall_end_ns = 0
        self._armed_from_ns = 0  # when the latch last armed: streaks count from there

    # -- inputs --
    def on_decode_error(self, reason: str = "") -> None:
        """A monitor message that did not decode; ``reason``: its ``DecodeError.reason``."""
        c = self.counters
        c.decode_errors += 1
        name = DECODE_REASON_COUNTERS.get(reason)
        if name is not None:
            setattr(c, name, getattr(c, name) + 1)

    def on_heartbeat(self, hb: Heartbeat, now_ns: int) -> Seq:
        c = self.counters
        c.heartbeats += 1
        seq = self._hb_seq.observe(hb.counter)
        self._count_seq(seq, self._hb_seq.missing)
        if seq.accepted:  # a changed counter: the only thing that keeps liveness
            self._hb_changed_ns = now_ns
            self._last_hb = hb
            if self._first_hb_ns is None:
                self._first_hb_ns = now_ns
        return seq

    def on_verdict(self, v: Verdict, now_ns: int) -> VerdictCheck:
        c, lim = self.counters, self.limits
        c.verdicts += 1
        seq = self._verdict_seq.observe(v.verdict_seq)
        self._count_seq(seq, self._verdict_seq.missing)
        flags = int(v.flags)  # bits tested on an int: IntFlag's & is Python, per verdict
        if flags & _INFERENCE_ERROR:
            c.invalid_verdicts += 1  # DESIGN 6: treated as a missing verdict
        if flags & _LATE:
            c.late_verdicts += 1
        age_ns = now_ns - v.t_acq_ns
        late = age_ns > lim.verdict_budget_ns
        streak_trip = False
        if late and v.t_acq_ns < self._armed_from_ns:
            # Acquired before the latch armed (queued through start-up, a trip or a reset,
            # drained after arming): a deadline miss all the same, but from a time the machine
            # had no permit; the armed period's timeliness is judged from its own verdicts.
            c.deadline_misses += 1
            c.late_before_armed += 1
        elif late and (self._busy_from_ns - lim.verdict_budget_ns <= v.t_acq_ns
                       < self._busy_until_ns - lim.verdict_budget_ns):
            # Late because the interlock itself was busy (a command, arming) while it queued:
            # still in budget when the busy spell began, out of it when the spell ended. A
            # deadline miss all the same, but no evidence against the monitor's timeliness.
            c.deadline_misses += 1
            c.late_while_busy += 1
        elif late:
            c.deadline_misses += 1
            streak = self._late_streak[v.source_id] = self._late_streak.get(v.source_id, 0) + 1
            streak_trip = lim.trip_on_late and streak >= lim.late_trip_after
        else:
            self._late_streak.pop(v.source_id, None)
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
        changed = self._hb_changed_ns
        if self._first_hb_ns is None or changed is None:
            return None
        liveness = self.limits.liveness_ns
        expiry = changed + liveness
        if self._stall_end_ns > changed:  # the interlock lost its CPU since the last change
            expiry = min(max(expiry, self._stall_end_ns + liveness // 2), changed + 3 * liveness)
        return expiry

    def silent(self, now_ns: int) -> bool:
        expiry = self.liveness_expiry_ns()
        return expiry is not None and now_ns > expiry

    def fresh(self, now_ns: int) -> bool:
        """The monitor is heard from and alive now (a precondition to arm and to reset)."""
        return self.heartbeat_seen and not self.silent(now_ns)

    def model_error(self) -> bool:
        hb = self._last_hb
        return hb is not None and bool(hb.flags & HeartbeatFlag.MODEL_ERROR)

    def armed(self, now_ns: int) -> None:
        """The latch armed at ``now_ns``: late streaks start over, built only by verdicts
        acquired from then on."""
        self._late_streak.clear()
        self._armed_from_ns = now_ns

    @property
    def busy_spell(self) -> tuple[int, int]:
        """The last busy spell, (start, end) in ns."""
        return self._busy_from_ns, self._busy_until_ns

    def woke(self, due_ns: int, now_ns: int) -> bool:
        """The interlock's loop meant to be running again by ``due_ns`` and got its CPU back
        at ``now_ns``. True (a stall: rule 1 makes allowance for it) when that is at least
        ``STALL_MIN_NS`` late."""
        late_ns = now_ns - due_ns
        if late_ns < STALL_MIN_NS:
            return False
        c = self.counters
        c.self_stalls += 1
        c.self_stall_max_us = max(c.self_stall_max_us, late_ns // 1000)
        self._stall_end_ns = max(self._stall_end_ns, now_ns)
        return True

    def busy(self, start_ns: int, end_ns: int) -> None:
        """The interlock did not read messages from ``start_ns`` to ``end_ns`` (a command or
        arming held the loop). A verdict whose budget ran out during that spell does not count
        towards the late streak."""
        if start_ns > self._busy_until_ns:
            self._busy_from_ns = start_ns
        self._busy_until_ns = max(self._busy_until_ns, end_ns)


# --- rule 3 ----------------------------------------------------------------------------


class Delivery:
    """Budgets, progress and retry timing of one stop (one trip's permit-0 writes).

    The policy says when the stop is done: "any" (``require_all`` false) at the first target
    that confirms, "all" once every target in ``targets`` has confirmed.

    Timeouts (``attempt_timeout_ms``): while D is not used up (``stop_budget_ms`` after the
    decision), an attempt with another target waiting behind it in the same pass gets at most
    what is left of D, so that the next target is still tried within D. The last target of
    a pass, and every attempt once D is gone, gets the target's own timeout: a late
    confirmation still beats none. A pass that failed fast leaves time for one more pass
    within D (``retry_timeout_ms``); after that, retries come every ``retry_ns``.
    """

    __slots__ = ("limits", "_start_ns", "targets", "require_all", "confirmed_targets", "acked",
                 "undelivered", "next_retry_ns")

    def __init__(self, limits: Limits, start_ns: int, *, targets: tuple[str, ...] = (),
                 require_all: bool = False) -> None:
        if require_all and not targets:
            raise ValueError("a stop that needs every target must name them")
        self.limits = limits
        self._start_ns = start_ns
        self.targets = targets
        self.require_all = require_all
        self.confirmed_targets: list[str] = []  # in the order they confirmed
        self.acked = False
        self.undelivered = False
        self.next_retry_ns: int | None = None

    def left_ms(self, now_ns: int) -> float:
        """What is left of D for the stop (negative once it is used up)."""
        return (self._start_ns + self.limits.stop_budget_ns - now_ns) / MS

    def attempt_timeout_ms(self, target_timeout_ms: float, now_ns: int, *, last: bool = False) -> float:
        left_ms = self.left_ms(now_ns)
        if last or left_ms <= 0:
            return target_timeout_ms
        return max(0.1, min(target_timeout_ms, left_ms))

    def retry_timeout_ms(self, target_timeout_ms: float, now_ns: int) -> float | None:
        """A retry within D: what is left of it (bounded by the target's timeout), or None
        when D is used up."""
        left_ms = self.left_ms(now_ns)
        if left_ms <= 0:
            return None
        return max(0.1, min(target_timeout_ms, left_ms))

    def needs(self, target: str) -> bool:
        """Whether ``target`` is still to be written for this stop."""
        if self.acked:
            return False
        return not self.require_all or target not in self.confirmed_targets

    def confirmed(self, target: str = "") -> None:
        """``target`` confirmed permit 0; the stop is acked once the policy is met."""
        if target and target not in self.confirmed_targets:
            self.confirmed_targets.append(target)
        if not self.require_all or not self.targets or all(
                t in self.confirmed_targets for t in self.targets):
            self.acked = True
            self.next_retry_ns = None

    def all_failed(self, now_ns: int) -> None:
        """The policy is not met after a round of attempts: undelivered until it is; retry
        later."""
        self.undelivered = True
        self.next_retry_ns = now_ns + self.limits.retry_ns

    @property
    def pending(self) -> bool:
        return self.undelivered and not self.acked

    @property
    def heartbeat_allowed(self) -> bool:
        """Keep the PLC heartbeat going only if the stop has never been undelivered."""
        return not self.undelivered
