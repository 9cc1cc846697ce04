"""Watchdog rules over a fake clock: liveness, timeliness, delivery, black channel."""

from __future__ import annotations

import pytest

from interlock.watchdog import (
    HEARTBEAT_MODULUS,
    MS,
    Delivery,
    Limits,
    MonitorWatch,
    Seq,
    STALL_MIN_NS,
    SeqTracker,
    next_heartbeat,
)
from tripwire.config import InterlockConfig
from tripwire.messages import Heartbeat, HeartbeatFlag, Level, Verdict, VerdictFlag

LIMITS = Limits(liveness_ns=5 * MS, verdict_budget_ns=6 * MS, stop_budget_ns=4 * MS,
                late_trip_after=3, trip_on_late=True)


def hb(counter: int, flags: HeartbeatFlag = HeartbeatFlag.NONE) -> Heartbeat:
    return Heartbeat(1, counter, 0, 0, 0, 0, 0, flags)


def verdict(vseq: int, t_acq_ns: int, level: Level = Level.OK,
            flags: VerdictFlag = VerdictFlag.NONE) -> Verdict:
    return Verdict(1, vseq, vseq, t_acq_ns, t_acq_ns, 0.5, 1.0, level, flags, 0, b"m")


def test_limits_from_config() -> None:
    lim = Limits.from_config(InterlockConfig(deadline_ms=10, liveness_ms=5, verdict_budget_ms=6))
    assert lim.liveness_ns == 5 * MS
    assert lim.stop_budget_ns == 4 * MS
    assert lim.trip_on_late
    assert not Limits.from_config(InterlockConfig(timeliness_action="count")).trip_on_late


def test_heartbeat_counter_wraps() -> None:
    assert next_heartbeat(0) == 1
    assert next_heartbeat(HEARTBEAT_MODULUS - 1) == 0
    c = HEARTBEAT_MODULUS - 3
    seen = []
    for _ in range(5):
        c = next_heartbeat(c)
        seen.append(c)
    assert seen == [65534, 65535, 0, 1, 2]


# --- liveness ---


def test_liveness_not_armed_before_first_heartbeat() -> None:
    w = MonitorWatch(LIMITS)
    w.on_verdict(verdict(1, 0), 0)
    assert w.liveness_expiry_ns() is None
    assert not w.silent(10**12)
    assert not w.fresh(0)


def test_liveness_fires_after_silence() -> None:
    w = MonitorWatch(LIMITS)
    w.on_heartbeat(hb(1), 100 * MS)
    assert w.fresh(100 * MS)
    assert w.liveness_expiry_ns() == 105 * MS
    assert not w.silent(105 * MS)
    assert w.silent(105 * MS + 1)
    assert not w.fresh(106 * MS)


def test_a_stall_of_the_interlock_gives_the_monitor_half_a_liveness_after_it() -> None:
    w = MonitorWatch(LIMITS)  # liveness 5 ms
    w.on_heartbeat(hb(1), 100 * MS)
    assert not w.woke(101 * MS, 101 * MS + STALL_MIN_NS - 1)  # ordinary jitter: no stall
    assert w.counters.self_stalls == 0
    assert w.woke(102 * MS, 109 * MS)  # the interlock's CPU was gone for 7 ms
    assert w.counters.self_stalls == 1
    assert w.counters.self_stall_max_us == 7000
    assert w.liveness_expiry_ns() == 109 * MS + 2_500_000
    assert not w.silent(111 * MS)  # the monitor (same CPU) had no chance to beat yet
    assert w.silent(112 * MS)  # it had 2.5 ms of CPU back and showed nothing: dead
    w.on_heartbeat(hb(2), 111 * MS)  # a beat after the stall: back to the plain rule
    assert w.liveness_expiry_ns() == 116 * MS


def test_stalls_never_stretch_silence_past_three_liveness() -> None:
    w = MonitorWatch(LIMITS)
    w.on_heartbeat(hb(1), 0)
    for t in range(2, 40, 2):  # the interlock keeps losing its CPU; the monitor never beats
        w.woke(t * MS - STALL_MIN_NS, t * MS)
    assert w.liveness_expiry_ns() == 15 * MS
    assert w.silent(15 * MS + 1)


def test_a_stall_before_the_last_beat_changes_nothing() -> None:
    w = MonitorWatch(LIMITS)
    w.woke(0, 10 * MS)
    w.on_heartbeat(hb(1), 11 * MS)
    assert w.liveness_expiry_ns() == 16 * MS


def test_only_a_changing_heartbeat_refreshes_liveness() -> None:
    w = MonitorWatch(LIMITS)
    w.on_heartbeat(hb(1), 0)
    w.on_verdict(verdict(1, 3 * MS), 4 * MS)  # verdicts come from the same loop: no stand-in
    assert w.silent(6 * MS)
    w.on_heartbeat(hb(2), 8 * MS)
    assert not w.silent(12 * MS)
    assert w.silent(14 * MS)


@pytest.mark.parametrize("frozen_at", [0, 1, 7, 2**63, 2**64 - 1])
def test_a_frozen_counter_expires_even_while_it_keeps_arriving(frozen_at: int) -> None:
    w = MonitorWatch(LIMITS)
    w.on_heartbeat(hb((frozen_at - 1) % 2**64), 0)
    w.on_heartbeat(hb(frozen_at), 2 * MS)
    for t in range(4, 20, 2):
        w.on_verdict(verdict(t, t * MS), t * MS)
        assert w.on_heartbeat(hb(frozen_at), t * MS) is Seq.REPEAT
    assert not w.silent(7 * MS)
    assert w.silent(7 * MS + 1)


def test_the_counter_wraps_without_a_gap() -> None:
    w = MonitorWatch(LIMITS)
    seen = [w.on_heartbeat(hb(c % 2**64), i * MS) for i, c in enumerate(range(2**64 - 3, 2**64 + 3))]
    assert seen == [Seq.FIRST] + [Seq.NEXT] * 5
    assert not w.silent(6 * MS) and w.counters.seq_gaps == 0


def test_repeated_heartbeat_does_not_refresh_liveness() -> None:
    w = MonitorWatch(LIMITS)
    w.on_heartbeat(hb(7), 0)
    assert w.on_heartbeat(hb(7), 4 * MS) is Seq.REPEAT
    assert w.silent(6 * MS)
    assert w.counters.seq_repeats == 1


def test_inference_error_verdict_counts_as_missing() -> None:
    w = MonitorWatch(LIMITS)
    w.on_heartbeat(hb(1), 0)
    w.on_verdict(verdict(1, 4 * MS, flags=VerdictFlag.INFERENCE_ERROR), 4 * MS)
    assert w.silent(6 * MS)
    assert w.counters.invalid_verdicts == 1


def test_model_error_flag_is_visible() -> None:
    w = MonitorWatch(LIMITS)
    w.on_heartbeat(hb(1, HeartbeatFlag.MODEL_ERROR), 0)
    assert w.model_error()
    w.on_heartbeat(hb(2), 1)
    assert not w.model_error()


# --- timeliness ---


def test_verdict_within_budget_is_not_late() -> None:
    w = MonitorWatch(LIMITS)
    check = w.on_verdict(verdict(1, 0), 6 * MS)
    assert not check.late and check.age_ns == 6 * MS
    assert w.counters.deadline_misses == 0


def test_the_late_streak_is_per_source() -> None:
    w = MonitorWatch(LIMITS)
    results = []
    for i in range(1, 4):  # source 1 always late, source 2 always on time, interleaved
        results.append(w.on_verdict(Verdict(1, i, 2 * i, 0, 0, 0.5, 1.0, Level.OK,
                                            VerdictFlag.NONE, 0, b"m"), 7 * MS))
        w.on_verdict(Verdict(2, i, 2 * i + 1, 7 * MS, 0, 0.5, 1.0, Level.OK, VerdictFlag.NONE,
                             0, b"m"), 7 * MS)
    assert [r.late_streak_trip for r in results] == [False, False, True]


def test_late_verdicts_counted_and_streak_trips() -> None:
    w = MonitorWatch(LIMITS)
    results = [w.on_verdict(verdict(i, 0), 7 * MS) for i in (1, 2, 3)]
    assert [r.late for r in results] == [True, True, True]
    assert [r.late_streak_trip for r in results] == [False, False, True]
    assert w.counters.deadline_misses == 3


def test_an_on_time_verdict_breaks_the_streak() -> None:
    w = MonitorWatch(LIMITS)
    w.on_verdict(verdict(1, 0), 7 * MS)
    w.on_verdict(verdict(2, 0), 7 * MS)
    w.on_verdict(verdict(3, 10 * MS), 11 * MS)
    assert not w.on_verdict(verdict(4, 0), 20 * MS).late_streak_trip


def test_count_action_never_trips() -> None:
    lim = Limits(5 * MS, 6 * MS, 4 * MS, 1, trip_on_late=False)
    w = MonitorWatch(lim)
    assert not any(w.on_verdict(verdict(i, 0), 50 * MS).late_streak_trip for i in range(1, 10))
    assert w.counters.deadline_misses == 9


def test_trip_level_and_monitor_late_flag_are_counted() -> None:
    w = MonitorWatch(LIMITS)
    assert w.on_verdict(verdict(1, 0, Level.TRIP), 1).trip_level
    w.on_verdict(verdict(2, 0, flags=VerdictFlag.LATE), 1)
    assert w.counters.trip_verdicts == 1
    assert w.counters.late_verdicts == 1
    assert w.counters.verdicts == 2


# --- black channel ---


TOP = 2**64 - 1


@pytest.mark.parametrize(("seqs", "expected"), [
    ([1, 2, 3], [Seq.FIRST, Seq.NEXT, Seq.NEXT]),
    ([1, 4], [Seq.FIRST, Seq.GAP]),
    ([5, 5], [Seq.FIRST, Seq.REPEAT]),
    ([5, 6, 4], [Seq.FIRST, Seq.NEXT, Seq.REORDER]),
    ([1000, 2], [Seq.FIRST, Seq.RESTART]),
    ([TOP - 1, TOP, 0, 1], [Seq.FIRST, Seq.NEXT, Seq.NEXT, Seq.NEXT]),  # the wrap is no event
    ([TOP, 2], [Seq.FIRST, Seq.GAP]),  # a gap across the wrap
    ([1, TOP], [Seq.FIRST, Seq.REORDER]),  # behind, across the wrap
    ([0, 2**63 + 5], [Seq.FIRST, Seq.RESTART]),  # more than half the range ahead is behind
])
def test_seq_tracker(seqs: list[int], expected: list[Seq]) -> None:
    t = SeqTracker()
    assert [t.observe(s) for s in seqs] == expected


def test_seq_tracker_with_a_16_bit_counter() -> None:
    t = SeqTracker(HEARTBEAT_MODULUS)
    c = HEARTBEAT_MODULUS - 100
    assert t.observe(c) is Seq.FIRST
    for _ in range(3 * HEARTBEAT_MODULUS):
        c = next_heartbeat(c)
        assert t.observe(c) is Seq.NEXT


def test_sequence_counters() -> None:
    w = MonitorWatch(LIMITS)
    for s in (1, 2, 5, 5, 4, 6, 500, 3):
        w.on_verdict(verdict(s, 0), 1)
    c = w.counters
    assert c.seq_gaps == 2 + 493  # 3,4 missing; then 7..499 missing
    assert c.seq_repeats == 1
    assert c.seq_reorders == 1
    assert c.seq_restarts == 1


def test_decode_errors_counted_by_class() -> None:
    w = MonitorWatch(LIMITS)
    for reason in ("", "bad_magic", "bad_crc", "wrong_address", "masquerade", "masquerade"):
        w.on_decode_error(reason)
    c = w.counters
    assert c.decode_errors == 6
    assert (c.crc_errors, c.wrong_address, c.masquerade) == (1, 1, 2)


# --- delivery ---


def test_first_attempt_gets_what_is_left_of_the_budget() -> None:
    d = Delivery(LIMITS, start_ns=0)
    assert d.attempt_timeout_ms(3.0, 0) == 3.0  # target timeout below the 4 ms budget
    d2 = Delivery(LIMITS, start_ns=0)
    assert d2.attempt_timeout_ms(10.0, 1 * MS) == pytest.approx(3.0)  # 4 ms budget, 1 ms gone
    assert d2.attempt_timeout_ms(10.0, 5 * MS) == 10.0  # the other target: its own timeout


def test_first_attempt_is_never_zero() -> None:
    d = Delivery(LIMITS, start_ns=0)
    assert d.attempt_timeout_ms(3.0, 50 * MS) > 0


def test_undelivered_stops_heartbeat_and_schedules_retries() -> None:
    d = Delivery(LIMITS, start_ns=0)
    assert d.heartbeat_allowed and not d.pending
    d.all_failed(10 * MS)
    assert d.pending and not d.heartbeat_allowed
    assert d.next_retry_ns == 10 * MS + LIMITS.retry_ns
    d.confirmed()
    assert d.acked and not d.pending
    assert not d.heartbeat_allowed  # once undelivered, the heartbeat stays stopped until reset


def test_confirmed_at_once_keeps_heartbeat() -> None:
    d = Delivery(LIMITS, start_ns=0)
    d.confirmed()
    assert d.acked and d.heartbeat_allowed and d.next_retry_ns is None


def test_verdicts_queued_while_the_interlock_was_busy_do_not_build_a_late_streak() -> None:
    w = MonitorWatch(LIMITS)  # budget 6 ms
    w.busy(4 * MS, 12 * MS)  # e.g. arming held the loop from t = 4 ms to 12 ms
    # Acquired 1-5 ms: each one's 6 ms budget ran out while the loop was held.
    queued = [w.on_verdict(verdict(i, i * MS), 13 * MS) for i in range(1, 6)]
    assert all(r.late for r in queued) and not any(r.late_streak_trip for r in queued)
    assert w.counters.deadline_misses == 5 and w.counters.late_while_busy == 5
    # Verdicts acquired after the busy spell are judged as usual.
    after = [w.on_verdict(verdict(i, 11 * MS), 30 * MS) for i in range(6, 9)]
    assert [r.late_streak_trip for r in after] == [False, False, True]


def test_a_verdict_already_late_when_the_busy_spell_began_is_not_excused() -> None:
    w = MonitorWatch(LIMITS)
    w.busy(100 * MS, 110 * MS)
    stale = [w.on_verdict(verdict(i, 50 * MS), 120 * MS) for i in range(1, 4)]  # 50 ms old at start
    assert [r.late_streak_trip for r in stale] == [False, False, True]
    assert w.counters.late_while_busy == 0


def test_verdicts_acquired_before_arming_do_not_build_a_late_streak() -> None:
    w = MonitorWatch(LIMITS)  # budget 6 ms
    w.armed(100 * MS)
    # Queued through start-up and drained only after arming: 30 ms old, three from one source.
    backlog = [w.on_verdict(verdict(i, (70 + i) * MS), 101 * MS) for i in range(1, 4)]
    assert all(r.late for r in backlog) and not any(r.late_streak_trip for r in backlog)
    assert w.counters.deadline_misses == 3 and w.counters.late_before_armed == 3
    # The armed period's own late verdicts build one as usual.
    armed = [w.on_verdict(verdict(i, (100 + i) * MS), (110 + i) * MS) for i in range(4, 7)]
    assert [r.late_streak_trip for r in armed] == [False, False, True]
    assert w.counters.late_before_armed == 3 and w.counters.deadline_misses == 6
