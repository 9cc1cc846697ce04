"""Latch transitions: arm, trip, latch, authenticated reset, restart."""

from __future__ import annotations

from interlock.latch import Latch, State, TripReason

TOKEN = "s3cret"


def armed() -> Latch:
    latch = Latch(TOKEN)
    assert latch.arm(1) is None
    return latch


def test_starts_safe_and_arms() -> None:
    latch = Latch(TOKEN)
    assert latch.state is State.SAFE and not latch.latched
    assert latch.arm(10) is None
    assert latch.state is State.ARMED and latch.since_ns == 10


def test_arm_twice_is_refused() -> None:
    latch = armed()
    refusal = latch.arm(2)
    assert refusal is not None and refusal.reason == "not_safe"


def test_trip_latches_and_repeats_are_not_new() -> None:
    latch = armed()
    assert latch.trip(TripReason.VERDICT, 5) is True
    assert latch.state is State.TRIPPED and latch.latched
    assert latch.reason is TripReason.VERDICT
    assert latch.trip(TripReason.MONITOR_SILENT, 6) is False
    assert latch.reason is TripReason.VERDICT  # the first cause is kept


def test_no_auto_clear_and_no_arming_while_tripped() -> None:
    latch = armed()
    latch.trip(TripReason.VERDICT, 5)
    refusal = latch.arm(6)
    assert refusal is not None and latch.state is State.TRIPPED
    latch.disarm(7)  # disarm never unlatches
    assert latch.state is State.TRIPPED


def test_reset_with_wrong_token_is_refused() -> None:
    latch = armed()
    latch.trip(TripReason.MANUAL, 5)
    refusal = latch.reset("guess", None, 6)
    assert refusal is not None and refusal.reason == "bad_token"
    assert latch.state is State.TRIPPED


def test_reset_refused_while_cause_present() -> None:
    latch = armed()
    latch.trip(TripReason.MONITOR_SILENT, 5)
    refusal = latch.reset(TOKEN, "monitor heartbeats are not fresh", 6)
    assert refusal is not None and refusal.reason == "cause_present"
    assert "monitor" in refusal.detail
    assert latch.state is State.TRIPPED


def test_reset_refused_when_not_tripped() -> None:
    latch = armed()
    refusal = latch.reset(TOKEN, None, 6)
    assert refusal is not None and refusal.reason == "not_tripped"
    assert latch.state is State.ARMED


def test_reset_refused_when_no_token_configured() -> None:
    latch = Latch("")
    latch.arm(1)
    latch.trip(TripReason.VERDICT, 2)
    refusal = latch.reset("", None, 3)
    assert refusal is not None and refusal.reason == "reset_disabled"
    assert latch.state is State.TRIPPED


def test_good_reset_lands_safe_and_can_arm_again() -> None:
    latch = armed()
    latch.trip(TripReason.VERDICT, 5)
    assert latch.reset(TOKEN, None, 6) is None
    assert latch.state is State.SAFE and not latch.latched
    assert latch.reason is TripReason.NONE
    assert latch.arm(7) is None
    assert latch.state is State.ARMED


def test_restart_after_trip_starts_latched() -> None:
    latch = Latch.restored(TOKEN, "TRIPPED")
    assert latch.state is State.SAFE and latch.latched
    refusal = latch.arm(1)
    assert refusal is not None and refusal.reason == "latched"
    assert latch.reset("nope", None, 2) is not None
    assert latch.reset(TOKEN, None, 3) is None
    assert latch.arm(4) is None


def test_restart_after_clean_run_is_not_latched() -> None:
    for last in (None, "ARMED", "SAFE"):
        latch = Latch.restored(TOKEN, last)
        assert not latch.latched
        assert latch.arm(1) is None


def test_manual_trip_from_safe_latches() -> None:
    latch = Latch(TOKEN)
    assert latch.trip(TripReason.MANUAL, 1) is True
    assert latch.state is State.TRIPPED


def test_trip_reason_labels() -> None:
    assert TripReason.MANUAL.label == "manual"
    assert TripReason.MONITOR_SILENT.label == "monitor_silent"


def test_token_check_is_shared_with_acknowledge() -> None:
    from interlock.latch import Latch

    assert Latch("").check_token("x").reason == "reset_disabled"
    assert Latch("secret").check_token("wrong").reason == "bad_token"
    assert Latch("secret").check_token("secret") is None
