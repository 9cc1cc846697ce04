"""The ``tripwire bench`` report: raw figures of a run in, the JSON the command writes out.

Pure core: it reads no clock, opens no socket and starts nothing; it turns counters, status
replies, trip records and histograms it is handed into plain dicts (units in key names) and
judges each must-show item of issue 4 against its bar (``pipeline_over_plain`` also shows the
ceiling the bus floor puts on that ratio). Top-level fields:

``offered_samples_per_s``, ``samples_per_s``, ``dropped_frames`` (and ``dropped_detail``),
``deadline_misses``, ``trip_latency_ms``, ``detection_delay_ms``, ``false_trips``, ``trips``,
``stages``, ``floors``, ``baselines``, ``load``, ``cpu``, ``cpu_threads`` (the monitor's and the
interlock's threads: bench.cpu), ``placement`` (the CPUs each was pinned to: bench.cell),
``monitor``, ``checks``, ``ok`` (every
check that ran was met) and ``skipped_checks`` (those that did not run: the baselines').

Counters are differences between the two ends of the measured span; the monitor's stage
latencies are its whole run's (its ``monitor_stopped`` line: start-up is over before its
first frame), the interlock's verdict age is the span's (the difference of its histograms).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from bench.schedule import FaultWindow, match_trips
from bench.signals import BenchLoad
from tripwire.latency import Histogram

MONITOR_STAGES = ("receive", "validate", "features", "batch_wait", "inference", "decision",
                  "total", "service")
MONITOR_COUNTERS = ("frames_received", "frames_accepted", "frames_rejected", "gaps",
                    "frames_missed", "verdicts", "inference_errors", "input_trips",
                    "heartbeats_late", "batches", "batch_overflow", "model_rows", "idle_skipped",
                    "tier_changes")
MONITOR_STATE = ("tier", "tier_name", "tiers_loaded", "governor", "governor_p99_ms",
                 "batch_rows", "batch_closed_by", "pipeline")
BARS = {
    "samples_per_s_vs_offered": 0.99,
    "dropped_frames": 0,
    "deadline_misses": 0,
    "trip_latency_p99_ms": 2.0,
    "false_trips": 0,
    "features_numba_over_numpy": 10.0,
    "pipeline_over_plain": 5.0,
}


def percentiles_ms(values: list[float]) -> dict[str, Any]:
    """p50, p99, p999, max, count of a few values (nearest rank: never under-stated)."""
    if not values:
        return {"p50": None, "p99": None, "p999": None, "max": None, "count": 0}
    v = sorted(values)

    def rank(q: float) -> float:
        return round(v[max(0, math.ceil(q * len(v)) - 1)], 4)

    return {"p50": rank(0.5), "p99": rank(0.99), "p999": rank(0.999), "max": round(v[-1], 4),
            "count": len(v)}


def _us(summary_ms: Mapping[str, Any]) -> dict[str, Any]:
    def conv(k: str) -> float | None:
        v = summary_ms.get(k)
        return None if v is None else round(float(v) * 1e3, 1)

    return {"count": summary_ms.get("count", 0), "p50_us": conv("p50"), "p99_us": conv("p99"),
            "p999_us": conv("p999"), "max_us": conv("max")}


def span_histogram(before: Mapping[str, Any], after: Mapping[str, Any]) -> Histogram:
    """What a histogram recorded between two of its sparse snapshots (max: the top bucket)."""
    a, b = Histogram.from_sparse(dict(before)), Histogram.from_sparse(dict(after))
    h = Histogram.new()
    h.counts = b.counts - a.counts
    h.total = b.total - a.total
    h.max_ns = b.max_ns
    if h.total > 0:
        h.max_ns = h.percentile(1.0)
    return h


def _delta(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> int:
    return int(b.get(key, 0) or 0) - int(a.get(key, 0) or 0)


def stages(monitor_stopped: Mapping[str, Any] | None, il0: Mapping[str, Any],
           il1: Mapping[str, Any], caught: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lat = (monitor_stopped or {}).get("latency_ms", {})
    for name in MONITOR_STAGES:
        if name in lat:
            out[name] = {**_us(lat[name]), "from": "monitor"}
    if "latency" in il0 and "latency" in il1:
        age = span_histogram(il0["latency"], il1["latency"])
        out["interlock_verdict_age"] = {**_us(age.summary_ms()), "from": "interlock"}
    stop = percentiles_ms([float(r["stop_latency_ms"]) for r in caught
                           if r.get("stop_latency_ms") is not None])
    out["interlock_stop_write"] = {**_us(stop), "from": "interlock trip records"}
    return out


def _check(value: Any, bar: str, ok: bool | None) -> dict[str, Any]:
    return {"value": value, "bar": bar, "ok": ok}


def checks(rep: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    offered = rep["offered_samples_per_s"]
    share = round(rep["samples_per_s"] / offered, 4) if offered else 0.0
    p99 = rep["trip_latency_ms"]["p99"]
    trips = rep["trips"]
    out = {
        "samples_per_s_vs_offered": _check(share, f">= {BARS['samples_per_s_vs_offered']}",
                                           share >= BARS["samples_per_s_vs_offered"]),
        "dropped_frames": _check(rep["dropped_frames"], "== 0", rep["dropped_frames"] == 0),
        "deadline_misses": _check(rep["deadline_misses"]["total"], "== 0",
                                  rep["deadline_misses"]["total"] == 0),
        "trip_latency_p99_ms": _check(p99, f"<= {BARS['trip_latency_p99_ms']}",
                                      None if p99 is None else p99 <= BARS["trip_latency_p99_ms"]),
        "trips_caught": _check(f"{trips['caught']}/{trips['injected']}", "all",
                               trips["caught"] == trips["injected"]),
        "false_trips": _check(rep["false_trips"], "== 0", rep["false_trips"] == 0),
    }
    base = rep.get("baselines") or {}
    feats = base.get("features")
    out["features_numba_over_numpy"] = _check(
        None if feats is None else feats["numba_over_numpy"], ">= 10",
        None if feats is None else feats["numba_over_numpy"] >= BARS["features_numba_over_numpy"])
    plain = base.get("pipeline_vs_plain")
    out["pipeline_over_plain"] = _check(
        None if plain is None else {"samples_per_cpu_s_ratio": plain["samples_per_cpu_s_ratio"],
                                    "samples_per_s_ratio": plain["samples_per_s_ratio"],
                                    "p99_us": plain["p99_us"],
                                    "ceiling_samples_per_cpu_s_ratio":
                                        plain.get("ceiling_samples_per_cpu_s_ratio")},
        ">= 5x samples per CPU-second at equal or better p99",
        None if plain is None else bool(plain["at_least_5x_per_cpu_s_at_equal_or_better_p99"]))
    return out


def build(raw: Mapping[str, Any], load: BenchLoad, seconds: float, deadline_ms: float,
          seed: int, compare: Any = None) -> dict[str, Any]:
    """The report of one run. ``compare(samples_per_s, p99_us, plain)`` is
    bench.baselines.compare_to_plain (injected: this module imports no measurement)."""
    span = raw["span"]
    m0, m1 = span.start.monitor, span.end.monitor
    i0, i1 = span.start.interlock, span.end.interlock
    wall_s = (span.end.t_ns - span.start.t_ns) / 1e9
    accepted = _delta(m0, m1, "frames_accepted")
    per_frame = load.channels * load.frame_samples
    samples_per_s = round(accepted * per_frame / wall_s, 1) if wall_s > 0 else 0.0
    offered_seq = sum(int(m1["last_seq"][k]) - int(m0["last_seq"].get(k, -1))
                      for k in m1.get("last_seq", {}))
    gaps, rejected = _delta(m0, m1, "frames_missed"), _delta(m0, m1, "frames_rejected")
    dropped = max(0, offered_seq - accepted)
    c0, c1 = i0.get("counters", {}), i1.get("counters", {})
    judged, busy = _delta(c0, c1, "deadline_misses"), _delta(c0, c1, "late_while_busy")
    unarmed = _delta(c0, c1, "late_before_armed")
    flagged = _delta(c0, c1, "late_verdicts")
    schedule: tuple[FaultWindow, ...] = raw["schedule"]
    match = match_trips(span.records, schedule, load, raw.get("votes_n", 5))
    caught = [match.caught[i] for i in sorted(match.caught)]
    latencies = [float(r["trip_latency_ms"]) for r in caught if r.get("trip_latency_ms") is not None]
    period_ms = load.frame_samples / load.rate_hz * 1e3
    delays = [(r["seq"] - schedule[i].frames(load)[0] + 1) * period_ms
              for i, r in sorted(match.caught.items())]
    rep: dict[str, Any] = {
        "offered_samples_per_s": load.samples_per_s,
        "samples_per_s": samples_per_s,
        "dropped_frames": dropped,
        "dropped_detail": {"frames_in_span": offered_seq, "accepted": accepted,
                           "sequence_gaps": gaps, "rejected": rejected,
                           "whole_stream": {"feeder_sent": raw.get("feeder_sent"),
                                            "monitor_received": raw.get("drained", {}).get(
                                                "frames_received"),
                                            "note": "frames sent before the monitor's "
                                                    "subscription reached the feeder are lost "
                                                    "by ZeroMQ by design"}},
        "deadline_misses": {"total": judged + flagged, "interlock_judged_late": judged,
                            "of_which_while_interlock_busy": busy,
                            "of_which_acquired_before_arming": unarmed,
                            "of_which_around_resets": span.misses_around_resets,
                            "monitor_flagged_late": flagged,
                            "note": "a verdict the monitor flagged LATE is usually judged late "
                                    "by the interlock too: the total may count it twice"},
        "trip_latency_ms": percentiles_ms(latencies),
        "detection_delay_ms": percentiles_ms(delays),
        "false_trips": len(match.false),
        "trips": {"injected": len(schedule), "caught": len(caught),
                  "missed": [i for i in range(len(schedule)) if i not in match.caught],
                  "repeat_trips_on_a_caught_fault": len(match.repeats),
                  "resets": span.resets, "reset_refusals": span.reset_refusals,
                  "false": [_brief(r) for r in match.false],
                  "caught_records": [_brief(r) for r in caught],
                  "schedule": [w.to_dict() for w in schedule]},
        "stages": stages(raw.get("monitor_stopped"), i0, i1, caught),
        "floors": raw.get("floors", {}),
        "baselines": _baselines(raw.get("baselines"), samples_per_s, raw.get("monitor_stopped"),
                                raw.get("cpu", {}), compare, load.channels * load.frame_samples),
        "load": {**asdict(load), "seconds": seconds, "deadline_ms": deadline_ms, "seed": seed,
                 "measured_s": round(wall_s, 3)},
        "cpu": {**raw.get("cpu", {}), "unit": "% of one core over the measured span"},
        "cpu_threads": raw.get("cpu_threads", {}),
        "placement": raw.get("placement", {}),
        "monitor": _monitor(m0, m1),
    }
    rep["checks"] = checks(rep)
    rep["ok"] = all(c["ok"] for c in rep["checks"].values() if c["ok"] is not None)
    rep["skipped_checks"] = [k for k, c in rep["checks"].items() if c["ok"] is None]
    return rep


def _brief(rec: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("reason", "detail", "source_id", "seq", "score", "threshold", "trip_latency_ms",
            "decision_latency_ms", "stop_latency_ms", "acked")
    return {k: rec.get(k) for k in keys}


def _monitor(m0: Mapping[str, Any], m1: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _delta(m0, m1, k) for k in MONITOR_COUNTERS if k in m1}
    if "levels" in m1:
        out["levels"] = {k: _delta(m0.get("levels", {}), m1["levels"], k) for k in m1["levels"]}
    for k in MONITOR_STATE:
        if k in m1:
            out[k] = m1[k]
    return out


def _baselines(base: Mapping[str, Any] | None, samples_per_s: float,
               monitor_stopped: Mapping[str, Any] | None, cpu: Mapping[str, Any],
               compare: Any, samples_per_frame: int) -> dict[str, Any]:
    """The baselines as measured, and the whole pipeline beside the plain one: samples/s as
    run (ours paced at the offered load, the plain one as fast as it goes, so this ratio
    cannot pass offered / plain), and samples per CPU-second (ours: the monitor's and the
    interlock's CPU; the plain one's: its process'), which compares capacity on a shared
    machine. The same in CPU µs per frame, beside the bus floor's (bench.relay): the plain
    pipeline's over the floor's is the ceiling of the per-CPU-second ratio for any pipeline
    that moves a frame message and a verdict message per frame through two processes."""
    if not base:
        return {"skipped": True}
    out = dict(base)
    stages = (monitor_stopped or {}).get("latency_ms", {})
    service, total = stages.get("service"), stages.get("total")
    plain = base.get("plain_pipeline")
    if compare is None or service is None or total is None or not plain:
        return out
    cmp = dict(compare(samples_per_s, round(float(service["p99"]) * 1e3, 2), plain))
    ours_cpu = sum(float(cpu.get(k) or 0.0) for k in ("monitor", "interlock"))
    plain_cpu = float(plain.get("cpu_percent") or 0.0)
    ours_per_core = samples_per_s * 100.0 / ours_cpu if ours_cpu > 0 else 0.0
    plain_per_core = float(plain["samples_per_s"]) * 100.0 / plain_cpu if plain_cpu > 0 else 0.0
    per_core = round(ours_per_core / plain_per_core, 2) if plain_per_core > 0 else 0.0
    p99_ok = cmp["p99_us"]["pipeline"] <= cmp["p99_us"]["plain"]
    out["pipeline_vs_plain"] = {
        **cmp,
        "samples_per_cpu_s": {"pipeline": round(ours_per_core, 1), "plain": round(plain_per_core, 1)},
        "samples_per_cpu_s_ratio": per_core,
        "at_least_5x_per_cpu_s_at_equal_or_better_p99": per_core >= BARS["pipeline_over_plain"] and p99_ok,
        "cpu_us_per_frame": {"pipeline": _us_per_frame(ours_per_core, samples_per_frame),
                             "plain": _us_per_frame(plain_per_core, samples_per_frame)},
        "pipeline_total_p99_us": round(float(total["p99"]) * 1e3, 1),
        "pipeline_p99_is": "monitor service: its frame received to the verdict published, "
                           "batch wait included, like the plain one's (receive returned to "
                           "decision); pipeline_total_p99_us adds the bus hop from acquisition",
    }
    floor = base.get("bus_floor")
    if floor and floor.get("total_us_per_frame"):
        vs = out["pipeline_vs_plain"]
        vs["cpu_us_per_frame"]["bus_floor"] = floor["total_us_per_frame"]
        plain_us = vs["cpu_us_per_frame"]["plain"]
        vs["ceiling_samples_per_cpu_s_ratio"] = round(plain_us / floor["total_us_per_frame"], 2)
    return out


def _us_per_frame(samples_per_cpu_s: float, samples_per_frame: int) -> float:
    return round(1e6 * samples_per_frame / samples_per_cpu_s, 1) if samples_per_cpu_s > 0 else 0.0
