"""Delivery (watchdog rule 3) under the two stop policies, over a fake clock: when a stop
is done, which targets a retry still writes, and how long each attempt may wait."""

from __future__ import annotations

import pytest

from interlock.watchdog import MS, Delivery, Limits

LIMITS = Limits(liveness_ns=5 * MS, verdict_budget_ns=6 * MS, stop_budget_ns=4 * MS,
                late_trip_after=3, trip_on_late=True)
BOTH = ("modbus", "opcua")


def test_any_is_done_by_the_first_confirmation() -> None:
    d = Delivery(LIMITS, 0, targets=BOTH)
    assert d.needs("modbus") and d.needs("opcua")
    d.confirmed("opcua")
    assert d.acked and d.confirmed_targets == ["opcua"]
    assert not d.needs("modbus") and not d.needs("opcua")


def test_all_needs_every_target() -> None:
    d = Delivery(LIMITS, 0, targets=BOTH, require_all=True)
    d.confirmed("opcua")
    assert not d.acked
    assert d.needs("modbus") and not d.needs("opcua")  # a retry writes only what is missing
    d.all_failed(10 * MS)
    assert d.pending and not d.heartbeat_allowed
    d.confirmed("modbus")
    assert d.acked and not d.pending and d.next_retry_ns is None
    assert d.confirmed_targets == ["opcua", "modbus"]
    assert not d.heartbeat_allowed  # it was undelivered once: stays stopped until a reset


def test_all_confirmed_at_once_keeps_the_heartbeat() -> None:
    d = Delivery(LIMITS, 0, targets=BOTH, require_all=True)
    d.confirmed("modbus")
    d.confirmed("opcua")
    d.confirmed("opcua")  # a repeat changes nothing
    assert d.acked and d.heartbeat_allowed and d.confirmed_targets == ["modbus", "opcua"]


def test_all_without_targets_is_refused() -> None:
    with pytest.raises(ValueError):
        Delivery(LIMITS, 0, require_all=True)


def test_a_target_with_another_behind_it_gets_what_is_left_of_d() -> None:
    d = Delivery(LIMITS, 0, targets=BOTH)
    assert d.attempt_timeout_ms(10.0, 1 * MS) == pytest.approx(3.0)
    assert d.attempt_timeout_ms(2.0, 1 * MS) == pytest.approx(2.0)  # its own timeout is shorter
    assert d.attempt_timeout_ms(10.0, int(3.99 * MS)) == pytest.approx(0.1)  # never zero


def test_the_last_target_and_every_attempt_after_d_get_their_own_timeout() -> None:
    d = Delivery(LIMITS, 0, targets=BOTH)
    # No other target would deliver instead: cutting it short only turns a late
    # confirmation into an undelivered stop retried 50 ms later.
    assert d.attempt_timeout_ms(10.0, 1 * MS, last=True) == 10.0
    assert d.attempt_timeout_ms(10.0, 5 * MS) == 10.0  # D used up: a late confirmation beats none


def test_a_retry_within_d_only_while_d_lasts() -> None:
    d = Delivery(LIMITS, 0, targets=BOTH)
    assert d.retry_timeout_ms(10.0, 1 * MS) == pytest.approx(3.0)
    assert d.retry_timeout_ms(1.0, 1 * MS) == pytest.approx(1.0)
    assert d.retry_timeout_ms(10.0, 4 * MS) is None
    assert d.left_ms(5 * MS) == pytest.approx(-1.0)
