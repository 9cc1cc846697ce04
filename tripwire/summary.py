"""The demo's summary: pure arithmetic over what the interlock, the monitor and the
simulated PLC reported. No I/O here, so every rule is unit-tested.

Definitions (DESIGN.md section 4):
- trip latency = t_ack - t_acq of the tripping window (trips not caused by a window, such as
  a silent monitor, report the stop latency t_ack - t_decision instead);
- detection delay = t_verdict of the tripping window - fault onset on that source;
- a false trip is a trip not explained by a fault that had already begun on that source
  (manual trips are not counted);
- a deadline miss is a late verdict counted by the interlock, or a trip whose stop was not
  acknowledged within the deadline.
"""

from __future__ import annotations

from typing import Any

from tripwire.latency import Histogram


def _onset_for(trip: dict[str, Any], onsets: list[dict[str, Any]]) -> dict[str, Any] | None:
    t_verdict = trip.get("t_verdict_ns") or 0
    before = [o for o in onsets if o["source"] == trip.get("source_id") and o["t_onset_ns"] <= t_verdict]
    return min(before, key=lambda o: o["t_onset_ns"]) if before else None


def trip_rows(interlock: dict[str, Any], sim: dict[str, Any], deadline_ms: float,
              source_names: dict[int, str]) -> list[dict[str, Any]]:
    rows = []
    onsets = sim.get("fault_onsets", [])
    writes = sim.get("writes", [])
    for trip in interlock.get("trips", []):
        onset = _onset_for(trip, onsets)
        manual = trip.get("reason") == "manual"
        acked = bool(trip.get("acked"))
        t_acq = trip.get("t_acq_ns")  # None for trips not caused by a window (liveness, manual)
        # The interlock's trip record carries both figures (None unless acked).
        latency_ms = trip.get("trip_latency_ms")
        stop_ms = trip.get("stop_latency_ms")
        # The PLC's own record of when the permit write arrived (independent of the interlock).
        since = t_acq or trip.get("t_decision_ns") or 0
        arrived = [w["t_ns"] for w in writes
                   if w["name"] == "permit" and not w["value"] and w["t_ns"] >= since]
        budget_ms = latency_ms if t_acq else stop_ms
        rows.append({
            "target": trip.get("target"),
            "acked": acked,
            "reason": trip.get("reason"),
            "source": source_names.get(trip.get("source_id") or -1, None),
            "trip_latency_ms": None if latency_ms is None else round(latency_ms, 3),
            "stop_latency_ms": None if stop_ms is None else round(stop_ms, 3),
            "plc_received_ms": round((min(arrived) - since) / 1e6, 3) if arrived and since else None,
            "detection_delay_ms": (round((trip["t_verdict_ns"] - onset["t_onset_ns"]) / 1e6, 1)
                                   if onset and trip.get("t_verdict_ns") else None),
            "fault": onset["kind"] if onset else None,
            "channels": list(trip.get("channels") or []),
            "score": trip.get("score"),
            "threshold": trip.get("threshold"),
            "false_trip": (not manual) and onset is None,
            "within_deadline": budget_ms is not None and budget_ms <= deadline_ms,
        })
    return rows


def summarize(*, deadline_ms: float, target: str, interlock: dict[str, Any], sim: dict[str, Any],
              monitor: dict[str, Any], source_names: dict[int, str], fault: str | None) -> dict[str, Any]:
    trips = trip_rows(interlock, sim, deadline_ms, source_names)
    hist = Histogram.from_sparse(interlock["latency"]) if interlock.get("latency") else Histogram.new()
    counters = interlock.get("counters", {})
    late_trips = sum(1 for t in trips if not t["within_deadline"] and t["reason"] != "manual")
    return {
        "target": target,
        "deadline_ms": deadline_ms,
        "fault": fault,
        "frames": int(monitor.get("frames_received", 0)),
        "frames_processed": int(monitor.get("frames_processed", 0)),
        "frames_rejected": int(monitor.get("frames_rejected", 0)),
        "verdicts": int(counters.get("verdicts", 0)),
        "false_trips": sum(1 for t in trips if t["false_trip"]),
        "deadline_misses": int(counters.get("deadline_misses", 0)) + late_trips,
        "latency_ms": hist.summary_ms(),
        "trips": trips,
        "fault_onsets": sim.get("fault_onsets", []),
        "interlock_state": interlock.get("state"),
        "alarms": interlock.get("alarms", []),
    }


def expectations(summary: dict[str, Any]) -> list[str]:
    """What a demo with an injected fault must show; an empty list means all held."""
    problems = []
    trips = summary["trips"]
    if summary.get("fault") in ("bearing", "imbalance"):
        if len(trips) != 1:
            problems.append(f"expected exactly one trip, got {len(trips)}")
        for t in trips:
            if not t["acked"]:
                problems.append("a trip was not acknowledged by the PLC")
            elif not t["within_deadline"]:
                problems.append(f"trip latency {t['trip_latency_ms']} ms is over the deadline")
    if summary["false_trips"]:
        problems.append(f"{summary['false_trips']} false trip(s)")
    if summary["deadline_misses"]:
        problems.append(f"{summary['deadline_misses']} deadline miss(es)")
    return problems
