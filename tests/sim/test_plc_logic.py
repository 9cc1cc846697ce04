"""The PLC program on a fake clock: permit, watchdog, relatch and the write record."""

from __future__ import annotations

import pytest

from sim.plc_logic import (
    PermitChanged,
    PlcProgram,
    PlcState,
    Relatched,
    RunningChanged,
    WatchdogTripped,
    WriteLog,
    WriteRecord,
)

MS = 1_000_000
WD_MS = 300


def _armed(t0: int = 0) -> PlcProgram:
    plc = PlcProgram(WD_MS)
    plc.on_write("modbus", "heartbeat", 1, t0)
    plc.on_write("modbus", "permit", 1, t0)
    return plc


def test_starts_stopped_and_unarmed() -> None:
    s = PlcProgram(WD_MS).snapshot()
    assert (s.permit, s.state, s.running, s.armed, s.watchdog_tripped) == (
        False, PlcState.STOPPED, False, False, False)
    assert s.watchdog_ms == WD_MS and s.t_watchdog_trip_ns is None and s.writes_total == 0


def test_permit_runs_the_machine_and_is_reported_as_events() -> None:
    plc = PlcProgram(WD_MS)
    events = plc.on_write("opcua", "permit", 1, 5)
    assert events == [PermitChanged(True, "opcua", 5), RunningChanged(True, 5)]
    assert plc.snapshot().state is PlcState.RUNNING
    assert plc.on_write("opcua", "permit", 1, 6) == []  # same value: nothing changes
    assert plc.on_write("modbus", "permit", 0, 7) == [PermitChanged(False, "modbus", 7),
                                                     RunningChanged(False, 7)]


def test_watchdog_needs_a_heartbeat_to_arm() -> None:
    plc = PlcProgram(WD_MS)
    plc.on_write("modbus", "permit", 1, 0)
    assert not plc.snapshot().armed
    assert plc.scan(10_000 * MS) == []  # never armed: no trip however long
    plc.on_write("modbus", "heartbeat", 1, 10_000 * MS)
    assert plc.snapshot().armed


def test_watchdog_trips_when_the_heartbeat_stops_changing() -> None:
    plc = _armed()
    for i in range(2, 6):  # heartbeat advances every 100 ms
        plc.on_write("modbus", "heartbeat", i, (i - 1) * 100 * MS)
        assert plc.scan((i - 1) * 100 * MS + 50 * MS) == []
    last = 400 * MS
    plc.on_write("modbus", "heartbeat", 5, last + 100 * MS)  # same value: not a change
    assert plc.scan(last + (WD_MS - 1) * MS) == []
    events = plc.scan(last + WD_MS * MS)
    assert events == [WatchdogTripped(last + WD_MS * MS, WD_MS * MS),
                      RunningChanged(False, last + WD_MS * MS)]
    s = plc.snapshot()
    assert s.state is PlcState.WATCHDOG_TRIPPED and s.watchdog_tripped and not s.running
    assert s.t_watchdog_trip_ns == last + WD_MS * MS
    assert s.permit  # the permit is still written 1: the trip is the PLC's own
    assert plc.scan(last + 10 * WD_MS * MS) == []  # latched, reported once


def test_relatch_needs_a_fresh_edge_then_a_changing_heartbeat() -> None:
    plc = _armed()
    plc.scan(WD_MS * MS)
    t = 1000 * MS
    plc.on_write("modbus", "heartbeat", 2, t)  # heartbeat alone does not relatch
    plc.on_write("modbus", "permit", 1, t + 1)  # no edge: permit was already 1
    plc.on_write("modbus", "heartbeat", 3, t + 2)
    assert plc.snapshot().watchdog_tripped
    plc.on_write("modbus", "permit", 0, t + 3)
    plc.on_write("modbus", "permit", 1, t + 4)
    assert plc.snapshot().watchdog_tripped and not plc.snapshot().running
    plc.on_write("modbus", "heartbeat", 3, t + 5)  # unchanged value
    assert plc.snapshot().watchdog_tripped
    events = plc.on_write("modbus", "heartbeat", 4, t + 6)
    assert events == [Relatched(t + 6), RunningChanged(True, t + 6)]
    s = plc.snapshot()
    assert s.state is PlcState.RUNNING and s.armed and not s.watchdog_tripped
    assert plc.scan(t + 6 + (WD_MS - 1) * MS) == []  # re-armed from the relatch
    assert plc.scan(t + 6 + WD_MS * MS)[0] == WatchdogTripped(t + 6 + WD_MS * MS, WD_MS * MS)


def test_edge_cancelled_by_a_later_permit_zero() -> None:
    plc = _armed()
    plc.scan(WD_MS * MS)
    plc.on_write("modbus", "permit", 0, 400 * MS)
    plc.on_write("modbus", "permit", 1, 401 * MS)
    plc.on_write("modbus", "permit", 0, 402 * MS)
    plc.on_write("modbus", "heartbeat", 9, 403 * MS)
    assert plc.snapshot().watchdog_tripped


def test_watchdog_stays_armed_while_permit_is_zero() -> None:
    """An interlock that dies while tripped still leaves the PLC knowing its link is gone."""
    plc = _armed()
    plc.on_write("modbus", "permit", 0, 50 * MS)
    events = plc.scan(WD_MS * MS)
    assert events == [WatchdogTripped(WD_MS * MS, WD_MS * MS)]  # not running: no RunningChanged
    assert plc.snapshot().state is PlcState.WATCHDOG_TRIPPED


def test_stop_command_drops_the_permit() -> None:
    plc = _armed()
    events = plc.on_write("opcua", "stop", 1, 10)
    assert events == [PermitChanged(False, "opcua", 10), RunningChanged(False, 10)]
    assert not plc.snapshot().permit


def test_trip_reason_and_heartbeat_are_16_bit_values() -> None:
    plc = PlcProgram(WD_MS)
    plc.on_write("modbus", "trip_reason", 7, 1)
    plc.on_write("modbus", "heartbeat", 65537, 2)
    s = plc.snapshot()
    assert (s.trip_reason, s.heartbeat) == (7, 1)


def test_every_write_is_recorded_with_its_arrival_time() -> None:
    plc = PlcProgram(WD_MS)
    plc.on_write("modbus", "permit", 1, 11)
    plc.on_write("opcua", "heartbeat", 1, 12)
    plc.on_write("opcua", "heartbeat", 1, 13)
    assert plc.log.since(0) == [WriteRecord(11, "modbus", "permit", 1),
                                WriteRecord(12, "opcua", "heartbeat", 1),
                                WriteRecord(13, "opcua", "heartbeat", 1)]
    assert plc.log.since(2) == [WriteRecord(13, "opcua", "heartbeat", 1)]
    assert plc.snapshot().writes_total == 3


def test_unknown_variable_is_a_programmer_error() -> None:
    with pytest.raises(ValueError):
        PlcProgram(WD_MS).on_write("modbus", "state", 1, 0)


def test_write_log_is_bounded_and_indices_stay_absolute() -> None:
    log = WriteLog(capacity=3)
    for i in range(5):
        log.append(WriteRecord(i, "modbus", "heartbeat", i))
    assert log.total == 5
    assert [r.t_ns for r in log.since(0)] == [2, 3, 4]
    assert [r.t_ns for r in log.since(4)] == [4]
    assert log.since(5) == [] and log.since(99) == []


@pytest.mark.parametrize("frozen", [0, 1, 0x7FFF, 0xFFFE, 0xFFFF])
def test_a_heartbeat_frozen_at_any_value_trips_even_while_rewritten(frozen: int) -> None:
    plc = PlcProgram(WD_MS)
    value, t = (frozen - 3) & 0xFFFF, 0
    plc.on_write("modbus", "heartbeat", value, t)
    plc.on_write("modbus", "permit", 1, t)
    while value != frozen:  # advance (through the wrap when needed) to the frozen value
        value = (value + 1) & 0xFFFF
        t += MS
        plc.on_write("modbus", "heartbeat", value, t)
        assert plc.scan(t) == []
    changed = t
    for k in range(1, WD_MS // 100 + 1):  # rewritten every 100 ms, never changed
        plc.on_write("modbus", "heartbeat", frozen, changed + k * 100 * MS - 1)
        assert not any(isinstance(e, WatchdogTripped) for e in plc.scan(changed + k * 100 * MS - 1))
    events = plc.scan(changed + WD_MS * MS)
    assert WatchdogTripped(changed + WD_MS * MS, WD_MS * MS) in events


def test_the_wrap_from_65535_to_0_is_a_change() -> None:
    plc = _armed()
    t = 0
    for k, value in enumerate([0xFFFE, 0xFFFF, 0, 1, 2]):
        t = (k + 1) * (WD_MS - 1) * MS  # each write just inside the watchdog period
        plc.on_write("modbus", "heartbeat", value, t)
        assert plc.scan(t + (WD_MS - 1) * MS) == []
