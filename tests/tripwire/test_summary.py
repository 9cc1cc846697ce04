"""The demo summary's definitions, on hand-made records."""

from __future__ import annotations

from tripwire.latency import Histogram
from tripwire.summary import expectations, summarize

MS = 1_000_000


def _status(trips: list[dict], misses: int = 0) -> dict:
    h = Histogram.new()
    for v in (1 * MS, 2 * MS, 3 * MS):
        h.record(v)
    return {"state": "TRIPPED", "trips": trips, "counters": {"deadline_misses": misses, "verdicts": 3},
            "latency": h.to_sparse(), "alarms": []}


def _trip(**kw: object) -> dict:
    """A trip as the interlock's status reports it (interlock.records.TripRecord.to_dict)."""
    from interlock.records import TripRecord

    fields: dict = dict(reason="verdict", t_decision_ns=101 * MS + MS // 4, source_id=1,
                        t_acq_ns=100 * MS, t_verdict_ns=101 * MS, score=3.0, threshold=1.0,
                        channels=("vib_x",), target="modbus", acked=True, t_ack_ns=102 * MS + MS // 2)
    fields.update(kw)
    return TripRecord(**fields).to_dict()


SIM = {"fault_onsets": [{"source": 1, "kind": "bearing", "t_onset_ns": 50 * MS}],
       "writes": [{"t_ns": 102 * MS, "target": "modbus", "name": "permit", "value": 0}]}


def test_trip_latency_and_detection_delay() -> None:
    s = summarize(deadline_ms=10, target="modbus", interlock=_status([_trip()]), sim=SIM,
                  monitor={"frames_received": 10}, source_names={1: "pump-1"}, fault="bearing")
    (t,) = s["trips"]
    assert t["trip_latency_ms"] == 2.5
    assert t["detection_delay_ms"] == 51.0
    assert t["plc_received_ms"] == 2.0
    assert t["source"] == "pump-1" and not t["false_trip"]
    assert s["latency_ms"]["count"] == 3
    assert expectations(s) == []


def test_trip_before_onset_is_false_and_unacked_is_a_miss() -> None:
    early = _trip(t_verdict_ns=10 * MS, t_acq_ns=9 * MS, t_ack_ns=None, acked=False)
    s = summarize(deadline_ms=10, target="modbus", interlock=_status([early]), sim=SIM,
                  monitor={}, source_names={1: "pump-1"}, fault="bearing")
    assert s["false_trips"] == 1
    assert s["deadline_misses"] == 1
    problems = expectations(s)
    assert any("not acknowledged" in p for p in problems) and any("false trip" in p for p in problems)


def test_late_stop_counts_as_deadline_miss() -> None:
    late = _trip(t_ack_ns=100 * MS + 12 * MS)
    s = summarize(deadline_ms=10, target="modbus", interlock=_status([late], misses=2), sim=SIM,
                  monitor={}, source_names={}, fault="bearing")
    assert s["deadline_misses"] == 3
    assert any("over the deadline" in p for p in expectations(s))


def test_no_trip_when_one_was_expected() -> None:
    s = summarize(deadline_ms=10, target="opcua", interlock=_status([]), sim=SIM, monitor={},
                  source_names={}, fault="bearing")
    assert expectations(s) == ["expected exactly one trip, got 0"]
