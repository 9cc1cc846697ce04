"""Detection study on the simulator (issue 3b): false trips in normal hours, delay per fault.

The plant runs as fast as the CPU allows: no sockets, no real time, plant time only. Its
samples go through the monitor's own code, in the monitor's order: frames of
``frame_samples`` are checked by ``monitor.validate.FrameValidator``, pushed through
``monitor.features.WindowFeatures``, scored by the bundle's ONNX scorer (one batch per second
of plant time, which cannot change a score) and decided by ``monitor.decide.Decider`` (the
real k-of-n rule with the config's decision section). The heartbeat tick that raises the
bad-input TRIP runs once per frame (20 ms in the demo) instead of every 2 ms.

Reported:
* ``normal``: ``hours`` of fault-free operation with load changes on every source
  (realizations the model never trained on), the windows decided, and the false trips: TRIP
  onsets (a source's level rising to TRIP), since the interlock would latch on each;
* ``faults``: per fault kind, ``trials_per_fault`` plays of the first source (or
  ``fault_source``), each a fresh realization with the onset drawn in
  [WARMUP_S, WARMUP_S + 4 s) so it falls at a different point of the load profile; the fault
  is detected when a TRIP decision comes at or after onset within ``observe_s``. Delay = end
  time of the first TRIP window (or tick, for a bad-input trip) minus the onset, plant time.

Spike and freeze are sensor faults, not machine faults: "detected" for them means the
machine was tripped, which is the wanted outcome for a frozen sensor (it is blind) and an
unwanted one for a single-sample spike; the report says which rule tripped.
This module is offline tooling: it prints nothing; the CLI formats what ``run`` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from models.bundle import DEV_KEY, load_bundle, read_key_file
from models.protocol import Scorer
from models.train import spec_for
from monitor.decide import Decider
from monitor.features import FeatureSpec, WindowFeatures
from monitor.validate import FrameValidator
from sim.plant import Plant
from tripwire import config
from tripwire.config import Config, FaultConfig, FaultKind
from tripwire.messages import Frame, Level


@dataclass(frozen=True, slots=True)
class FaultPlan:
    ramp_s: float  # onset to full severity
    observe_s: float  # how long after onset a trip still counts as detection


PLANS: dict[FaultKind, FaultPlan] = {
    "bearing": FaultPlan(0.5, 10.0),
    "imbalance": FaultPlan(0.5, 10.0),
    "bearing_wear": FaultPlan(60.0, 90.0),
    "imbalance_growth": FaultPlan(30.0, 60.0),
    "cavitation": FaultPlan(10.0, 40.0),
    "spike": FaultPlan(0.0, 5.0),
    "freeze": FaultPlan(0.0, 5.0),
}
NOTES: dict[FaultKind, str] = {
    "spike": "sensor glitch: a trip here is a false trip caused by one bad sample",
    "freeze": "stuck sensor: the monitor is blind, so a trip is the wanted outcome",
}
WARMUP_S = 8.0
ONSET_SPREAD_S = 4.0
CHUNK_S = 1.0  # plant time scored per batch
RUN_BASE = 1_000_000  # realization numbers: live plant 0, training runs are small numbers
Progress = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class Trip:
    t_ns: int
    by_input: bool  # the bad-input rule, not the score


class _Pipeline:
    """The monitor's per-frame path for some sources, fed plant samples in plant time."""

    def __init__(self, cfg: Config, spec: FeatureSpec, scorer: Scorer, threshold: float) -> None:
        self.cfg, self.spec, self.scorer = cfg, spec, scorer
        self.validator = FrameValidator(cfg.sources, max_frame_age_ms=cfg.monitor.max_frame_age_ms)
        ids = [s.id for s in cfg.sources]
        self.decider = Decider.from_config(cfg.decision, threshold=threshold,
                                           channels=spec.channels, per_channel=spec.per_channel,
                                           source_ids=ids, start_ns=0)
        self.features = {sid: WindowFeatures(spec, capacity=64) for sid in ids}
        self.seq = dict.fromkeys(ids, 0)
        self.samples = dict.fromkeys(ids, 0)
        self.windows = 0
        self.trips: dict[int, list[Trip]] = {sid: [] for sid in ids}  # TRIP onsets
        self.watch_ns = 0  # a fault's onset: the first TRIP from here on is its detection
        self.detected: Trip | None = None
        self.early = False  # some TRIP came before watch_ns
        self.warn_onsets = 0
        self.idle_windows = 0

    def feed(self, sid: int, block: np.ndarray) -> None:
        src = self.cfg.source(sid)
        fs, per = src.sample_rate_hz, src.frame_samples
        wf = self.features[sid]
        frames: list[tuple[int, bool, int]] = []  # (t_acq_ns, usable, windows made)
        rows: list[np.ndarray] = []
        for i in range(0, block.shape[1] - per + 1, per):
            self.samples[sid] += per
            t_ns = round((self.samples[sid] - 1) / fs * 1e9)  # the frame's last sample
            self.seq[sid] += 1
            frame = Frame(sid, self.seq[sid], t_ns, t_ns, fs, np.ascontiguousarray(block[:, i:i + per]))
            out = self.validator.check(frame, t_ns)
            made = 0
            if out.accepted:
                if out.missed or out.restart:
                    rows.append(wf.pop())
                    wf.reset()
                made = wf.push(frame.samples)
            frames.append((t_ns, out.accepted and not out.frozen, made))
        rows.append(wf.pop())
        batch = np.concatenate(rows) if rows else np.zeros((0, self.spec.n_features), np.float32)
        scores, contrib = self.scorer.score(batch) if len(batch) else (batch[:, 0], batch)
        r = 0
        for t_ns, usable, made in frames:  # the loop's order: good-input, windows, tick
            if made and usable:
                self.decider.input_good(sid, t_ns)
            for _ in range(made):
                d = self.decider.decide(sid, float(scores[r]), contrib[r], t_ns, batch[r])
                r += 1
                self.windows += 1
                self.idle_windows += d.idle
                self._note(sid, t_ns, d.level, d.onset, d.input_trip)
            tick = self.decider.input_trip(sid, t_ns)
            if tick is not None:
                self._note(sid, t_ns, tick.level, tick.onset, True)

    def _note(self, sid: int, t_ns: int, level: Level, onset: bool, by_input: bool) -> None:
        if level == Level.TRIP:
            if t_ns < self.watch_ns:
                self.early = True
            elif self.detected is None:
                self.detected = Trip(t_ns, by_input)
            if onset:
                self.trips[sid].append(Trip(t_ns, by_input))
        elif level == Level.WARN and onset:
            self.warn_onsets += 1


def _normal(cfg: Config, spec: FeatureSpec, scorer: Scorer, threshold: float, hours: float,
            seed: int, report: Progress) -> dict[str, Any]:
    plant = Plant(cfg.sources, cfg.sim, run=RUN_BASE + seed)
    pipe = _Pipeline(cfg, spec, scorer, threshold)
    chunks = max(1, round(hours * 3600.0 / CHUNK_S))
    for c in range(chunks):
        for s in cfg.sources:
            n = round(CHUNK_S * s.sample_rate_hz / s.frame_samples) * s.frame_samples
            pipe.feed(s.id, plant.next_block(s.id, n))
        if c % 60 == 0:
            report("normal", c / chunks)
    report("normal", 1.0)
    trips = [{"source": sid, "t_s": round(t.t_ns / 1e9, 3), "input": t.by_input}
             for sid, ts in pipe.trips.items() for t in ts]
    return {"hours": chunks * CHUNK_S / 3600.0, "sources": len(cfg.sources),
            "windows": pipe.windows, "false_trips": len(trips), "warn_onsets": pipe.warn_onsets,
            "idle_windows": pipe.idle_windows, "trips": trips[:20]}


def _trial(cfg: Config, spec: FeatureSpec, scorer: Scorer, threshold: float, kind: FaultKind,
           sid: int, onset_s: float, run: int) -> tuple[Trip | None, bool]:
    """One play: (first TRIP at or after onset within the plan, was there a TRIP before)."""
    plan = PLANS[kind]
    src = cfg.source(sid)
    fault = FaultConfig(kind, sid, at_s=onset_s, ramp_s=plan.ramp_s)
    sub = replace(cfg, sources=[src], sim=replace(cfg.sim, faults=[fault]))
    plant = Plant([src], sub.sim, run=run)
    plant.start_schedule()  # fault time 0 is the first sample
    pipe = _Pipeline(sub, spec, scorer, threshold)
    pipe.watch_ns = onset_ns(onset_s, src.sample_rate_hz)
    end_ns = pipe.watch_ns + round(plan.observe_s * 1e9)
    n = round(CHUNK_S * src.sample_rate_hz / src.frame_samples) * src.frame_samples
    while pipe.detected is None and (pipe.samples[sid] - 1) / src.sample_rate_hz * 1e9 < end_ns:
        pipe.feed(sid, plant.next_block(sid, n))
    hit = pipe.detected if pipe.detected is not None and pipe.detected.t_ns <= end_ns else None
    return hit, pipe.early


def _is_planned(kind: str) -> TypeGuard[FaultKind]:
    return kind in PLANS


def onset_ns(at_s: float, sample_rate_hz: float) -> int:
    """Plant time of a fault's first sample (the plant rounds ``at_s`` to a sample)."""
    return round(round(at_s * sample_rate_hz) / sample_rate_hz * 1e9)


def _faults(cfg: Config, spec: FeatureSpec, scorer: Scorer, threshold: float, kinds: list[FaultKind],
            trials: int, sid: int, seed: int, report: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rng = np.random.default_rng([seed, 0x53494D])
    for ki, kind in enumerate(kinds):
        delays: list[float] = []
        by_input = early = 0
        for i in range(trials):
            onset_s = WARMUP_S + float(rng.uniform(0.0, ONSET_SPREAD_S))
            run = RUN_BASE + 1000 * (seed + 1) + 100 * ki + i
            trip, was_early = _trial(cfg, spec, scorer, threshold, kind, sid, onset_s, run)
            early += was_early
            if trip is not None:
                delays.append((trip.t_ns - onset_ns(onset_s, cfg.source(sid).sample_rate_hz)) / 1e6)
                by_input += trip.by_input
            report(kind, (i + 1) / trials)
        d = np.asarray(delays)
        out[kind] = {
            "trials": trials, "detected": len(delays),
            "median_delay_ms": round(float(np.median(d)), 1) if len(d) else None,
            "p90_delay_ms": round(float(np.percentile(d, 90)), 1) if len(d) else None,
            "max_delay_ms": round(float(d.max()), 1) if len(d) else None,
            "tripped_by_input_rule": by_input, "trips_before_onset": early,
            "ramp_s": PLANS[kind].ramp_s, "observe_s": PLANS[kind].observe_s,
        }
        if kind in NOTES:
            out[kind]["note"] = NOTES[kind]
    return out


def run(
    cfg: Config | dict[str, Any], bundle_path: str | Path, *, hours: float = 1.0,
    trials_per_fault: int = 10, seed: int = 0, kinds: list[str] | None = None,
    fault_source: int | None = None, progress: Progress | None = None,
) -> dict[str, Any]:
    """The study; ``cfg`` is a Config or a table for ``config.from_dict`` (e.g. demo_table)."""
    if isinstance(cfg, dict):
        cfg = config.from_dict(cfg)
    if not hours > 0 or trials_per_fault < 0:
        raise ValueError(f"hours must be > 0 and trials_per_fault >= 0, got {hours}, {trials_per_fault}")
    names = list(PLANS) if kinds is None else list(kinds)
    unknown = [k for k in names if not _is_planned(k)]
    if unknown:
        raise ValueError(f"unknown fault kind(s) {unknown}; choose from {list(PLANS)}")
    planned = [k for k in names if _is_planned(k)]
    sid = cfg.sources[0].id if fault_source is None else fault_source
    cfg.source(sid)  # KeyError for a source that is not configured
    cfg = replace(cfg, sim=replace(cfg.sim, faults=[]))
    key = read_key_file(cfg.monitor.bundle_key_file) if cfg.monitor.bundle_key_file else DEV_KEY
    bundle = load_bundle(bundle_path, key)
    spec = spec_for(cfg)
    bundle.check_spec(spec)
    report = progress or (lambda stage, fraction: None)
    t0 = time.monotonic()
    with bundle.scorer(providers="cpu", intra_op_threads=1, max_batch=256) as scorer:
        normal = _normal(cfg, spec, scorer, bundle.threshold, hours, seed, report)
        t1 = time.monotonic()
        faults = _faults(cfg, spec, scorer, bundle.threshold, planned, trials_per_fault, sid, seed,
                         report)
    t2 = time.monotonic()
    d = cfg.decision
    return {
        "normal": normal,
        "faults": faults,
        "setup": {"bundle": str(bundle_path), "model_id": bundle.model_id_hex,
                  "threshold": bundle.threshold, "k": d.k, "n": d.n,
                  "clear_ratio": d.clear_ratio, "bad_input_trip_ms": d.bad_input_trip_ms,
                  "window": spec.window, "hop": spec.hop, "fault_source": sid, "seed": seed,
                  "tick_ms": cfg.sources[0].frame_samples / cfg.sources[0].sample_rate_hz * 1e3},
        "elapsed_s": {"normal": round(t1 - t0, 2), "faults": round(t2 - t1, 2)},
    }
