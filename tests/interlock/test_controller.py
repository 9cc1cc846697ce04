"""The controller without sockets of its own: a real Modbus PLC and journal, messages and
clock handed in by the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.controller import Interlock
from interlock.journal import Journal
from interlock.latch import State, TripReason
from interlock.modbus_writer import ModbusStopWriter
from interlock.stop import HeartbeatPump
from tests.interlock.conftest import ModbusPlc
from tripwire.config import InterlockConfig, ModbusTargetConfig
from tripwire.messages import (
    Heartbeat,
    HeartbeatFlag,
    Level,
    Verdict,
    VerdictFlag,
    encode_heartbeat,
    encode_verdict,
)

MS = 1_000_000


@pytest.fixture
def parts(tmp_path: Path, modbus_plc: ModbusPlc) -> Iterator[tuple[Interlock, ModbusPlc, Journal]]:
    cfg = InterlockConfig(deadline_ms=1000, liveness_ms=400, verdict_budget_ms=600,
                          plc_heartbeat_ms=50, reset_token="tok",
                          modbus=ModbusTargetConfig(port=modbus_plc.port, timeout_ms=200))
    with Journal(tmp_path / "j.sqlite") as journal, ModbusStopWriter(cfg.modbus) as sink:
        il = Interlock(cfg, [sink], journal, time.monotonic_ns)
        il.start(time.monotonic_ns())
        yield il, modbus_plc, journal


def heartbeat(counter: int) -> bytes:
    return encode_heartbeat(Heartbeat(1, counter, 0, 0, 0, 0, 0, HeartbeatFlag.NONE))


def arm(il: Interlock) -> None:
    now = time.monotonic_ns()
    il.on_message(heartbeat(1), now)
    il.tick(now)
    assert il.latch.state is State.ARMED, il.selftest_note


def test_unexpected_exception_fails_safe(parts: tuple[Interlock, ModbusPlc, Journal]) -> None:
    il, plc, journal = parts
    arm(il)
    assert plc.coil(0) is True
    il.fail_safe(RuntimeError("boom"), time.monotonic_ns())
    assert il.latch.state is State.TRIPPED
    assert plc.coil(0) is False
    st = il.status()
    assert st["trips"][0]["reason"] == "internal_error" and st["trips"][0]["acked"] is True
    assert "boom" in st["trips"][0]["detail"]
    assert any(a["name"] == "internal_error" for a in st["alarms"])
    assert st["counters"]["internal_errors"] == 1
    kinds = [e.kind for e in journal.entries()]
    assert "trip" in kinds and "alarm" in kinds
    # a second failure while tripped: no new trip, the permit stays 0
    il.fail_safe(RuntimeError("again"), time.monotonic_ns())
    assert len(il.status()["trips"]) == 1 and plc.coil(0) is False


def test_liveness_trip_from_tick(parts: tuple[Interlock, ModbusPlc, Journal]) -> None:
    il, plc, _journal = parts
    arm(il)
    later = time.monotonic_ns() + 500 * MS  # a fake "now" past the 400 ms liveness
    il.tick(later)
    assert il.latch.state is State.TRIPPED and il.latch.reason.label == "monitor_silent"
    assert plc.coil(0) is False


def test_next_wakeup_tracks_liveness_and_heartbeat(parts: tuple[Interlock, ModbusPlc, Journal]) -> None:
    il, _plc, _journal = parts
    arm(il)
    now = time.monotonic_ns()
    wake = il.next_wakeup_ns(now)
    expiry = il.watch.liveness_expiry_ns()
    assert expiry is not None
    assert wake <= min(expiry + 1, il.pump.next_due_ns or wake)


def test_heartbeat_pump_wraps_on_the_plc(modbus_plc: ModbusPlc) -> None:
    with ModbusStopWriter(ModbusTargetConfig(port=modbus_plc.port, timeout_ms=200)) as sink:
        pump = HeartbeatPump([sink], period_ns=10 * MS)
        pump.counter = 65534
        pump.start(0)
        seen = []
        for i in range(3):
            assert pump.due(i * 10 * MS)
            pump.pump(i * 10 * MS)
            assert pump.collect() == {"modbus": None}
            seen.append(modbus_plc.register(0))
        assert seen == [65535, 0, 1]
        assert not pump.due(25 * MS) and pump.due(30 * MS)
        pump.stop()
        assert not pump.due(10**15)


def test_status_lists_recent_trips_and_counts_them_all(
    parts: tuple[Interlock, ModbusPlc, Journal],
) -> None:
    from interlock.controller import STATUS_TRIPS
    from tripwire.control import trip_count, trips_since

    il, _plc, _journal = parts
    n = STATUS_TRIPS + 5
    for i in range(n):
        arm(il)
        il.trip(TripReason.MANUAL, time.monotonic_ns(), detail=f"trip {i}")
        assert il.reset("tok", time.monotonic_ns())["ok"]
    st = il.status()
    assert st["trips_total"] == n == trip_count(st)
    assert len(st["trips"]) == STATUS_TRIPS
    assert [t["detail"] for t in trips_since(st, n - 2)] == [f"trip {n - 2}", f"trip {n - 1}"]


def test_arming_marks_the_loop_busy(parts: tuple[Interlock, ModbusPlc, Journal]) -> None:
    il, _plc, _journal = parts
    t0 = time.monotonic_ns()
    arm(il)
    t1 = time.monotonic_ns()
    start, end = il.watch.busy_spell
    assert t0 <= start <= end <= t1 and end > start  # the PLC writes and the commit took time


def test_a_degraded_model_raises_an_alarm_and_clears_when_it_recovers(
        parts: tuple[Interlock, ModbusPlc, Journal]) -> None:
    il, _plc, journal = parts
    arm(il)

    def verdict(seq: int, flags: VerdictFlag) -> bytes:
        now = time.monotonic_ns()
        return encode_verdict(Verdict(1, seq, seq, now, now, 1.0, 2.0, Level.OK, flags, 0,
                                      b"model-01", ()))

    il.on_message(verdict(1, VerdictFlag.DEGRADED_MODEL), time.monotonic_ns())
    il.on_message(verdict(2, VerdictFlag.DEGRADED_MODEL), time.monotonic_ns())
    active = [a for a in il.status()["alarms"] if a["name"] == "model_degraded" and a["active"]]
    assert len(active) == 1 and "fell back" in active[0]["detail"]
    assert [e.data["alarm"] for e in journal.entries() if e.kind == "alarm"] == ["model_degraded"]
    assert il.latch.state is State.ARMED  # an alarm, not a trip: the model still scores
    il.on_message(verdict(3, VerdictFlag.NONE), time.monotonic_ns())
    assert not any(a["name"] == "model_degraded" and a["active"] for a in il.status()["alarms"])


def test_a_journal_commit_in_the_verdict_path_counts_as_a_busy_spell(
        parts: tuple[Interlock, ModbusPlc, Journal]) -> None:
    il, _plc, journal = parts
    arm(il)
    now = time.monotonic_ns()
    late = Verdict(1, 1, 1, now - 700 * MS, now - 500 * MS, 1.0, 2.0, Level.OK,
                   VerdictFlag.NONE, 0, b"model-01", ())
    il.on_message(encode_verdict(late), now)  # over the 600 ms budget: a journaled miss
    (miss,) = [e for e in journal.entries() if e.kind == "deadline_miss"]
    # where the age went: 200 ms before the monitor stamped it, 500 ms after
    assert (miss.data["age_ms"], miss.data["monitor_ms"], miss.data["after_monitor_ms"]) == (
        700.0, 200.0, 500.0)
    start, end = il.watch.busy_spell
    assert now <= start <= end  # verdicts queued behind that commit are not the monitor's fault
