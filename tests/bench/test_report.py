"""The bench report: percentiles, histogram differences, counters over the span, checks."""

from __future__ import annotations

from typing import Any

from bench.baselines import compare_to_plain
from bench.report import build, percentiles_ms, span_histogram
from bench.run import Snapshot, SpanResult
from bench.schedule import FaultWindow
from bench.signals import BenchLoad, Fault
from tripwire.latency import Histogram

LOAD = BenchLoad(machines=2, channels=4, rate_hz=6400.0)


def test_percentiles_of_a_few_values_never_understate() -> None:
    got = percentiles_ms([3.0, 1.0, 2.0])
    assert got == {"p50": 2.0, "p99": 3.0, "p999": 3.0, "max": 3.0, "count": 3}
    assert percentiles_ms([])["count"] == 0 and percentiles_ms([])["p99"] is None


def test_span_histogram_is_what_was_recorded_in_between() -> None:
    h = Histogram.new()
    for v in (1000, 2000):
        h.record(v)
    before = h.to_sparse()
    for v in (5000, 7000, 9000):
        h.record(v)
    span = span_histogram(before, h.to_sparse())
    assert span.total == 3
    assert 5000 <= span.percentile(0.5) <= 7100 and span.max_ns >= 9000


def _monitor(accepted: int, seq: int, missed: int = 0) -> dict[str, Any]:
    return {"frames_received": accepted, "frames_accepted": accepted, "frames_rejected": 0,
            "frames_missed": missed, "last_seq": {"1": seq, "2": seq}, "verdicts": accepted,
            "levels": {"ok": accepted, "warn": 0, "trip": 0}, "batches": accepted // 2}


def _interlock(misses: int, late: int) -> dict[str, Any]:
    return {"counters": {"deadline_misses": misses, "late_while_busy": 0, "late_verdicts": late},
            "latency": Histogram.new().to_sparse(), "trips": [], "trips_total": 0}


def test_build_reports_the_span_and_judges_the_checks() -> None:
    per_s = LOAD.rate_hz / LOAD.frame_samples  # frames per second per machine
    window = FaultWindow(0, Fault(channel=1), on_s=1.0, off_s=1.3)
    trip = {"reason": "verdict", "source_id": 1, "seq": 52, "trip_latency_ms": 1.5,
            "stop_latency_ms": 0.4}
    false = {"reason": "monitor_silent", "source_id": None, "seq": None, "trip_latency_ms": 9.0}
    start = Snapshot(0, _monitor(100, 49), _interlock(2, 1), {"monitor": 0})
    end = Snapshot(2_000_000_000, _monitor(100 + int(2 * 2 * per_s), 149), _interlock(2, 1),
                   {"monitor": 10})
    raw = {"span": SpanResult(start, end, [trip, false], resets=2), "schedule": (window,),
           "votes_n": 5, "cpu": {"monitor": 5.0},
           "monitor_stopped": {"latency_ms": {"total": {"count": 9, "p50": 1.0, "p99": 2.0,
                                                        "p999": 2.5, "max": 3.0}}}}
    rep = build(raw, LOAD, seconds=2.0, deadline_ms=10.0, seed=0)
    assert rep["offered_samples_per_s"] == LOAD.samples_per_s
    assert rep["samples_per_s"] == LOAD.samples_per_s
    assert rep["dropped_frames"] == 0
    assert rep["deadline_misses"]["total"] == 0
    assert rep["trip_latency_ms"]["max"] == 1.5 and rep["trip_latency_ms"]["count"] == 1
    assert rep["false_trips"] == 1 and rep["trips"]["caught"] == 1
    assert rep["stages"]["total"]["p99_us"] == 2000.0
    assert rep["checks"]["false_trips"]["ok"] is False
    assert rep["checks"]["features_numba_over_numpy"]["ok"] is None  # baselines skipped
    assert rep["ok"] is False and "pipeline_over_plain" in rep["skipped_checks"]
    assert rep["monitor"]["batches"] == (end.monitor["batches"] - start.monitor["batches"])


def test_the_pipeline_is_compared_with_the_plain_one_from_receive_to_decision() -> None:
    window = FaultWindow(0, Fault(channel=1), on_s=1.0, off_s=1.3)
    per_s = LOAD.rate_hz / LOAD.frame_samples
    start = Snapshot(0, _monitor(100, 49), _interlock(0, 0), {"monitor": 0})
    end = Snapshot(2_000_000_000, _monitor(100 + int(2 * 2 * per_s), 149), _interlock(0, 0),
                   {"monitor": 10})
    stage = {"count": 9, "p50": 0.1, "p99": 0.3, "p999": 0.4, "max": 0.5}
    plain = {"samples_per_s": LOAD.samples_per_s / 2, "cpu_percent": 100.0,
             "decision_us": {"p99_us": 400.0}}
    raw = {"span": SpanResult(start, end, [], resets=0), "schedule": (window,), "votes_n": 5,
           "cpu": {"monitor": 5.0, "interlock": 5.0, "feeder": 50.0},
           "baselines": {"plain_pipeline": plain},
           "monitor_stopped": {"latency_ms": {"service": stage,
                                              "total": {**stage, "p99": 0.9}}}}
    rep = build(raw, LOAD, seconds=2.0, deadline_ms=10.0, seed=0, compare=compare_to_plain)
    vs = rep["baselines"]["pipeline_vs_plain"]
    # the monitor's service p99 (300 µs) against the plain one's (400 µs), not its total
    assert vs["p99_us"] == {"pipeline": 300.0, "plain": 400.0}
    assert vs["pipeline_total_p99_us"] == 900.0
    # ours: the offered load on 10 % of a core (the feeder is not ours); plain: half of it on
    # a whole core
    assert vs["samples_per_cpu_s_ratio"] == 20.0
    # per frame: ours 10 % of a core at 100 frames/s, plain 100 % at 50 frames/s
    assert vs["cpu_us_per_frame"] == {"pipeline": 1000.0, "plain": 20000.0}
    assert "ceiling_samples_per_cpu_s_ratio" not in vs  # no bus floor measured
    floored = build({**raw, "baselines": {"plain_pipeline": plain,
                                          "bus_floor": {"total_us_per_frame": 400.0}}},
                    LOAD, seconds=2.0, deadline_ms=10.0, seed=0, compare=compare_to_plain)
    fvs = floored["baselines"]["pipeline_vs_plain"]
    assert fvs["cpu_us_per_frame"]["bus_floor"] == 400.0
    assert fvs["ceiling_samples_per_cpu_s_ratio"] == 50.0  # 20000 / 400
    assert floored["checks"]["pipeline_over_plain"]["value"]["ceiling_samples_per_cpu_s_ratio"] == 50.0
    assert vs["at_least_5x_per_cpu_s_at_equal_or_better_p99"] is True
    assert rep["stages"]["service"]["p99_us"] == 300.0
