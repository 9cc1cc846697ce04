"""The fault schedule: seeded, spread one per slot, and trips sorted into caught and false."""

from __future__ import annotations

import pytest

from bench.errors import BenchConfigError
from bench.schedule import (
    FaultWindow,
    catch_frames,
    match_trips,
    plan_trips,
    schedule_from_json,
    schedule_to_json,
)
from bench.signals import BenchLoad, Fault

LOAD = BenchLoad(machines=4, channels=8, rate_hz=6400.0)


def test_plan_is_seeded_one_fault_per_slot_inside_the_span() -> None:
    a = plan_trips(LOAD, 5, 2.0, 10.0, seed=7, make_fault=lambda ch: Fault(channel=ch))
    b = plan_trips(LOAD, 5, 2.0, 10.0, seed=7, make_fault=lambda ch: Fault(channel=ch))
    c = plan_trips(LOAD, 5, 2.0, 10.0, seed=8, make_fault=lambda ch: Fault(channel=ch))
    assert a == b and a != c and len(a) == 5
    for i, w in enumerate(a):
        slot = 2.0 + 2.0 * i
        assert slot < w.on_s < w.off_s < slot + 2.0
        assert 0 <= w.machine < LOAD.machines and 0 <= w.fault.channel < LOAD.channels
    assert plan_trips(LOAD, 0, 2.0, 10.0, seed=1, make_fault=Fault) == ()


def test_too_many_trips_for_the_span_is_a_config_error() -> None:
    with pytest.raises(BenchConfigError):
        plan_trips(LOAD, 50, 0.0, 3.0, seed=0, make_fault=lambda ch: Fault(channel=ch))


def test_schedule_survives_json() -> None:
    plan = plan_trips(LOAD, 3, 1.0, 6.0, seed=2, make_fault=lambda ch: Fault(channel=ch, size=30.0))
    assert schedule_from_json(schedule_to_json(plan)) == plan
    with pytest.raises(BenchConfigError):
        schedule_from_json('[{"machine": 0}]')
    with pytest.raises(BenchConfigError):
        schedule_from_json("{")


def test_trips_are_caught_repeated_or_false() -> None:
    w = FaultWindow(1, Fault(channel=2), on_s=1.0, off_s=1.5)  # frames 50 .. 75 at 6.4 kHz
    assert w.frames(LOAD) == (50, 75)
    lo, hi = catch_frames(w, LOAD, votes_n=5)
    assert (lo, hi) == (50, 75 + 8 + 5)
    records = [
        {"reason": "verdict", "source_id": 2, "seq": 53},  # caught
        {"reason": "verdict", "source_id": 2, "seq": 60},  # the same fault again
        {"reason": "verdict", "source_id": 1, "seq": 55},  # another machine: false
        {"reason": "verdict", "source_id": 2, "seq": hi},  # after the fault: false
        {"reason": "late_verdicts", "source_id": 2, "seq": 54},  # not the model's: false
    ]
    m = match_trips(records, (w,), LOAD, votes_n=5)
    assert m.caught == {0: records[0]}
    assert m.repeats == [records[1]]
    assert m.false == records[2:]


def test_faults_go_to_running_machines_only() -> None:
    load = BenchLoad(machines=4, channels=8, rate_hz=6400.0, idle=3)
    plan = plan_trips(load, 20, 0.0, 40.0, seed=3, make_fault=lambda ch: Fault(channel=ch))
    assert {w.machine for w in plan} == {0}
