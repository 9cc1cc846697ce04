"""Batching and pipelining over real ZeroMQ sockets with a real ONNX model: the inference
thread changes when verdicts are computed, never which verdicts or in what order."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from structlog.testing import capture_logs

from models.bundle import load_bundle
from monitor.service import run, serve
from tests.monitor.conftest import SwitchedScorer, TinyBundle
from tests.monitor.rig import (
    FRAME,
    RATE,
    SPEC,
    Rig,
    monitor_table,
    plant_signal,
    start_in_thread,
)
from tripwire import config, messages
from tripwire.messages import Level, Verdict, VerdictFlag

TIMING = VerdictFlag.LATE  # on a loaded test machine a verdict may be late; not the point here
N_FRAMES = 40
FAULT_AT = 24


def _frames(seed: int, fault: bool) -> list[np.ndarray]:
    x = plant_signal(N_FRAMES * FRAME, seed)
    if fault:  # a strong 1 kHz tone on vib_y from frame FAULT_AT on
        t = np.arange(FAULT_AT * FRAME, N_FRAMES * FRAME) / RATE
        x[1, FAULT_AT * FRAME:] += (4.0 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    return [x[:, i * FRAME:(i + 1) * FRAME] for i in range(N_FRAMES)]


def _window_verdicts(rig: Rig, sid: int) -> list[Verdict]:
    return [v for v in rig.verdicts if v.source_id == sid
            and not v.flags & (VerdictFlag.STALE | VerdictFlag.INVALID_INPUT)]


def _status(endpoint: str) -> dict[str, Any]:
    ctx: zmq.Context[Any] = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.linger = 0
    try:
        req.connect(endpoint)
        req.send(messages.encode_command(messages.Command("status")))
        assert req.poll(10_000), "no status reply"
        return messages.decode_reply(req.recv())
    finally:
        req.close(0)
        ctx.term()


def _play(cfg: config.Config, frames: dict[int, list[np.ndarray]],
          status: bool = False) -> tuple[dict[int, list[Verdict]], dict[str, Any], list[Any]]:
    """Send every frame at once, collect each source's window verdicts."""
    reply: dict[str, Any] = {}
    with capture_logs() as logs:
        running = start_in_thread(lambda stop: serve(cfg, stop))
        rig = Rig(cfg)
        try:
            rig.connect()
            for seq in range(N_FRAMES):
                for sid in sorted(frames):
                    rig.send_frame(sid, seq, frames[sid][seq])
            last = N_FRAMES - 1
            rig.wait(lambda: all(rig.verdict(sid, last) for sid in frames), "every verdict")
            if status:
                reply = _status(cfg.bus.monitor_ctl)
        finally:
            code = running.finish()
            rig.close()
    assert code == 0
    return {sid: _window_verdicts(rig, sid) for sid in frames}, reply, logs


def _key(v: Verdict) -> tuple[int, Level, int, int, tuple[str, ...]]:
    return v.seq, v.level, int(v.flags & ~TIMING), v.tier, v.channels


def test_pipeline_on_and_off_publish_the_same_verdicts_in_the_same_order(
        tiny_bundle: TinyBundle, ipc_dir: Path) -> None:
    frames = {1: _frames(41, fault=False), 2: _frames(42, fault=True)}
    got = {}
    for pipeline in (True, False):
        table = monitor_table(ipc_dir, tiny_bundle.path, pipeline=pipeline)
        got[pipeline], _, logs = _play(config.from_dict(table), frames)
        (stopped,) = [e for e in logs if e["event"] == "monitor_stopped"]
        assert stopped["pipeline"] is pipeline and stopped["batches"] > 0
        # a full batch while the model is busy leaves frames queued (batch_overflow), never lost
        assert stopped["inference_errors"] == 0 and stopped["frames_missed"] == 0
    for sid in (1, 2):
        on, off = got[True][sid], got[False][sid]
        assert [v.seq for v in on] == list(range(SPEC.blocks - 1, N_FRAMES))
        assert [_key(v) for v in on] == [_key(v) for v in off]
        assert [v.score for v in on] == pytest.approx([v.score for v in off], rel=1e-5)
    levels = [v.level for v in got[True][2]]
    assert Level.TRIP in levels and all(v.level == Level.OK for v in got[True][1])
    # the fault's first TRIP comes k windows after its onset, pipeline or not
    assert got[True][2][levels.index(Level.TRIP)].seq == FAULT_AT + 2


def test_status_reply_carries_latency_in_us_and_the_batch_figures(tiny_bundle: TinyBundle,
                                                                  ipc_dir: Path) -> None:
    table = monitor_table(ipc_dir, tiny_bundle.path, pipeline=True)
    table["bus"]["monitor_ctl"] = f"ipc://{ipc_dir}/ctl"
    frames = {1: _frames(43, fault=False)}
    _, reply, logs = _play(config.from_dict(table), frames, status=True)
    assert reply["ok"] and reply["pipeline"] is True and reply["tier"] == 0
    for stage in ("receive", "features", "batch_wait", "inference", "decision", "total",
                  "service"):
        row = reply["latency_us"][stage]
        assert row["count"] > 0 and 0 <= row["p50"] <= row["p99"] <= row["p999"] <= row["max"]
    # a window's service (frame received -> verdict sent) is a part of its total (acquired ->)
    assert reply["latency_us"]["service"]["max"] <= reply["latency_us"]["total"]["max"]
    rows = reply["batch_rows"]
    assert reply["batches"] == rows["count"] > 0 and 1 <= rows["p50"] <= rows["max"] <= 32
    assert sum(reply["batch_closed_by"].values()) == reply["batches"]
    assert reply["model_rows"] == N_FRAMES - SPEC.blocks + 1 and reply["idle_skipped"] == 0
    assert reply["batch_cost_us"] and reply["tier_changes"] == 0
    (stopped,) = [e for e in logs if e["event"] == "monitor_stopped"]
    assert stopped["latency_ms"]["batch_wait"]["count"] == reply["model_rows"]


def test_a_bundle_without_tiers_keeps_tier_zero_and_refuses_a_pinned_tier(
        tiny_bundle: TinyBundle, ipc_dir: Path) -> None:
    table = monitor_table(ipc_dir, tiny_bundle.path, bundle_tier="student")
    with capture_logs() as logs:
        assert serve(config.from_dict(table), threading.Event()) == 2
    (refused,) = [e for e in logs if e["event"] == "bundle_refused"]
    assert refused["reason"] == "unknown_tier"


def test_inference_failure_fans_out_to_every_row_of_the_batch(tiny_bundle: TinyBundle,
                                                              ipc_dir: Path) -> None:
    table = monitor_table(ipc_dir, tiny_bundle.path, batch_gate_ms=300.0,
                          batch_wait_when_idle=True)
    # a verdict budget far beyond the gate: only the gate closes these batches
    table["interlock"] = {"deadline_ms": 5000.0, "liveness_ms": 4000.0,
                          "verdict_budget_ms": 4000.0}
    cfg = config.from_dict(table)
    bundle = load_bundle(tiny_bundle.path)
    scorer = SwitchedScorer(bundle.scorer(providers="cpu"))
    frames = {1: _frames(44, fault=False), 2: _frames(45, fault=False)}
    last = SPEC.blocks + 2
    with capture_logs() as logs:
        running = start_in_thread(lambda stop: run(cfg, scorer, SPEC, bundle.threshold, stop))
        rig = Rig(cfg)
        try:
            rig.connect()
            scorer.failing.set()
            for seq in range(last + 1):
                for sid in (1, 2):
                    rig.send_frame(sid, seq, frames[sid][seq])
            rig.wait(lambda: rig.verdict(1, last) and rig.verdict(2, last), "failed verdicts")
        finally:
            assert running.finish() == 0
            rig.close()
    rows = [v for sid in (1, 2) for v in _window_verdicts(rig, sid)]
    assert len(rows) == 8
    assert all(v.flags & VerdictFlag.INFERENCE_ERROR and np.isnan(v.score) for v in rows)
    (stopped,) = [e for e in logs if e["event"] == "monitor_stopped"]
    assert stopped["batch_rows"]["max"] > 1  # several rows shared one failed call
    assert stopped["inference_errors"] == stopped["batches"] < 8


class _Slow(SwitchedScorer):
    """Every model call takes ``delay_s`` longer, from warm-up on (a heavy model); while
    ``failing`` (here: stalled) is set, ``STALL_S`` longer still (a hung call)."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        super().__init__(inner)
        self.delay_s = delay_s

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # the model's own time, not a synchronisation
        threading.Event().wait(self.delay_s + (STALL_S if self.failing.is_set() else 0.0))
        result: tuple[np.ndarray, np.ndarray] = self.inner.score(x)
        return result


STALL_S = 0.4
HEAVY_S = 0.08


def _beats_while_scoring(tiny_bundle: TinyBundle, ipc_dir: Path, stall: bool) -> tuple[float, Any]:
    """The longest heartbeat gap while a model that takes HEAVY_S per call scores windows
    (with ``stall``: plus one hung call), and the stop line."""
    cfg = config.from_dict(monitor_table(ipc_dir, tiny_bundle.path, batch_max_rows=2,
                                         heartbeat_ms=2.0, pipeline=True))
    bundle = load_bundle(tiny_bundle.path)
    scorer = _Slow(bundle.scorer(providers="cpu"), HEAVY_S)
    frames = _frames(46, fault=False)
    last = SPEC.blocks + 5
    with capture_logs() as logs:
        running = start_in_thread(lambda stop: run(cfg, scorer, SPEC, bundle.threshold, stop))
        rig = Rig(cfg)
        try:
            rig.connect()
            for seq in range(last + 1):
                if stall and seq == SPEC.blocks + 2:
                    scorer.failing.set()
                rig.send_frame(1, seq, frames[seq])
                rig.pump(5)
            rig.wait(lambda: rig.verdict(1, last), "verdicts from the heavy model")
            t0 = min(v.t_acq_ns for v in rig.verdicts)
            beats = [h.t_ns for h in rig.heartbeats if h.t_ns >= t0]
        finally:
            assert running.finish() == 0
            rig.close()
    assert len(beats) > 20
    (stopped,) = [e for e in logs if e["event"] == "monitor_stopped"]
    return float(np.diff(np.asarray(beats)).max() / 1e6), (stopped, logs)


def test_heartbeats_keep_their_period_while_the_model_runs(tiny_bundle: TinyBundle,
                                                           ipc_dir: Path) -> None:
    gap_ms, (stopped, _) = _beats_while_scoring(tiny_bundle, ipc_dir, stall=False)
    assert gap_ms < 0.6 * HEAVY_S * 1e3, gap_ms  # the beat never waited for a model call
    assert stopped["heartbeats_withheld"] == 0


def test_a_stalled_model_call_silences_the_heartbeat(tiny_bundle: TinyBundle,
                                                     ipc_dir: Path) -> None:
    gap_ms, (stopped, logs) = _beats_while_scoring(tiny_bundle, ipc_dir, stall=True)
    # the interlock's liveness rule must see a hung model as a hung monitor
    assert gap_ms > 0.5 * STALL_S * 1e3, gap_ms
    assert stopped["heartbeats_withheld"] > 0
    assert [e for e in logs if e["event"] == "model_overdue"]
