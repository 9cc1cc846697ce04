"""Model tiers in the running monitor: the tier in every heartbeat and verdict, each score
judged against its own tier's threshold, and the governor's switches (real sockets, a real
three-tier ONNX bundle)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from structlog.testing import capture_logs

from models.bundle import load_bundle
from monitor.service import run, serve
from monitor.tiers import Tier, TierSet
from tests.monitor.conftest import TieredBundle
from tests.monitor.rig import (
    FRAME,
    SPEC,
    Rig,
    monitor_table,
    plant_signal,
    start_in_thread,
)
from tripwire import config
from tripwire.messages import Verdict, VerdictFlag


def _frames(seed: int, count: int) -> list[np.ndarray]:
    x = plant_signal(count * FRAME, seed)
    return [x[:, i * FRAME:(i + 1) * FRAME] for i in range(count)]


def _windows(rig: Rig, sid: int) -> list[Verdict]:
    return [v for v in rig.verdicts if v.source_id == sid
            and not v.flags & (VerdictFlag.STALE | VerdictFlag.INVALID_INPUT)]


def test_a_pinned_tier_is_in_every_heartbeat_and_verdict(tiered_bundle: TieredBundle,
                                                         ipc_dir: Path) -> None:
    cfg = config.from_dict(monitor_table(ipc_dir, tiered_bundle.path, bundle_tier="student",
                                         governor="off"))
    student = load_bundle(tiered_bundle.path).with_tier("student")
    frames = _frames(51, 12)
    with capture_logs() as logs:
        running = start_in_thread(lambda stop: serve(cfg, stop))
        rig = Rig(cfg)
        try:
            rig.connect()
            for seq, f in enumerate(frames):
                rig.send_frame(1, seq, f)
            rig.wait(lambda: rig.verdict(1, len(frames) - 1), "the last verdict")
        finally:
            assert running.finish() == 0
            rig.close()
    assert rig.heartbeats and {h.tier for h in rig.heartbeats} == {1}
    got = _windows(rig, 1)
    assert len(got) == len(frames) - SPEC.blocks + 1
    for v in got:
        assert v.tier == 1 and v.model_id == student.model_id
        assert v.threshold == np.float32(tiered_bundle.thresholds["student"])
    (ready,) = [e for e in logs if e["event"] == "monitor_ready"]
    assert (ready["tier"], ready["tier_name"], ready["tiers"], ready["governor"]) == \
        (1, "student", ["student"], "off")


class _Heavy:
    """A real tier's scorer that is slow while ``heavy`` is set (an overloaded teacher)."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner, self.model_id, self.n_features = inner, inner.model_id, inner.n_features
        self.delay_s = delay_s
        self.heavy = threading.Event()

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.heavy.is_set():
            threading.Event().wait(self.delay_s)  # the model's own time, not a synchronisation
        result: tuple[np.ndarray, np.ndarray] = self.inner.score(x)
        return result

    def warm(self, max_batch: int) -> None:
        self.inner.warm(max_batch)


def test_the_governor_steps_down_from_a_slow_tier_without_dropping_a_window(
        tiered_bundle: TieredBundle, ipc_dir: Path) -> None:
    cfg = config.from_dict(monitor_table(ipc_dir, tiered_bundle.path, governor_window_ms=100.0,
                                         governor_hold_s=600.0, governor_cpu_high=50.0,
                                         governor_cpu_low=40.0))
    bundle = load_bundle(tiered_bundle.path)
    teacher = _Heavy(bundle.scorer(providers="cpu", tier="teacher"), 0.006)
    student = bundle.scorer(providers="cpu", tier="student")
    tiers = TierSet((Tier.of(0, "teacher", teacher, tiered_bundle.thresholds["teacher"]),
                     Tier.of(1, "student", student, tiered_bundle.thresholds["student"])),
                    start=0, governed=True)
    frames = _frames(52, 400)
    with capture_logs() as logs:
        running = start_in_thread(lambda stop: run(cfg, None, SPEC, 0.0, stop, tiers=tiers))
        rig = Rig(cfg)
        try:
            rig.connect()
            teacher.heavy.set()
            seq = 0
            while not rig.heartbeats[-1].tier:  # frames at their own pace until the switch
                assert seq < len(frames) - 20, "the governor never stepped down"
                rig.send_frame(1, seq, frames[seq])
                rig.pump(5)
                seq += 1
            for _ in range(10):  # and a few more on the lighter tier
                rig.send_frame(1, seq, frames[seq])
                seq += 1
            rig.wait(lambda: rig.verdict(1, seq - 1), "the last verdict")
        finally:
            assert running.finish() == 0
            rig.close()
    got = _windows(rig, 1)
    assert [v.seq for v in got] == list(range(SPEC.blocks - 1, seq))  # none lost, none twice
    tiers_seen = [v.tier for v in got]
    assert tiers_seen == sorted(tiers_seen) and tiers_seen[0] == 0 and tiers_seen[-1] == 1
    for v in got:  # each verdict carries the threshold of the tier that scored it
        name = "teacher" if v.tier == 0 else "student"
        assert v.threshold == np.float32(tiered_bundle.thresholds[name])
    (change,) = [e for e in logs if e["event"] == "tier_changed"]
    assert (change["from_tier"], change["to_tier"], change["why"]) == ("teacher", "student", "latency")
    (stopped,) = [e for e in logs if e["event"] == "monitor_stopped"]
    assert stopped["tier_changes"] == 1 and stopped["tier"] == 1 and stopped["governor"] == "auto"


def test_the_governor_climbs_back_with_headroom(tiered_bundle: TieredBundle,
                                                ipc_dir: Path) -> None:
    # The bundle starts at its default tier, int8; an idle monitor has all the headroom.
    cfg = config.from_dict(monitor_table(ipc_dir, tiered_bundle.path, governor_window_ms=50.0,
                                         governor_hold_s=0.2, governor_cpu_high=50.0,
                                         governor_cpu_low=40.0))
    with capture_logs() as logs:
        running = start_in_thread(lambda stop: serve(cfg, stop))
        rig = Rig(cfg)
        try:
            rig.wait(lambda: rig.heartbeats and rig.heartbeats[-1].tier == 0, "the teacher tier")
        finally:
            assert running.finish() == 0
            rig.close()
    tiers = [h.tier for h in rig.heartbeats]
    assert tiers[0] == 2 and tiers == sorted(tiers, reverse=True)
    changes = [(e["from_index"], e["to_index"], e["why"]) for e in logs if e["event"] == "tier_changed"]
    assert changes == [(2, 1, "headroom"), (1, 0, "headroom")]
    (ready,) = [e for e in logs if e["event"] == "monitor_ready"]
    assert ready["tiers"] == ["teacher", "student", "int8"] and ready["tier_name"] == "int8"
