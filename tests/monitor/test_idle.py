"""The idle short-cut: windows of an idle machine skip the model, and no fault onset on a
running machine is caught any later for it (real sockets, a real ONNX model)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from structlog.testing import capture_logs

from models.bundle import load_bundle
from monitor.service import run
from tests.monitor.conftest import TinyBundle
from tests.monitor.rig import (
    FRAME,
    RATE,
    SPEC,
    Rig,
    monitor_table,
    plant_signal,
    start_in_thread,
)
from tripwire import config
from tripwire.messages import Level, Verdict, VerdictFlag

N_FRAMES = 48
START_AT = 12  # the idle machine starts running here
FAULT_AT = 32  # and both running machines get a fault here


def _idle(n: int, seed: int) -> np.ndarray:
    """An idling machine: no shaft vibration, its drive powered and warm."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(0, 0.01, n), rng.normal(0, 0.01, n),
                     12.0 + rng.normal(0, 0.05, n), 55.0 + rng.normal(0, 0.02, n)]).astype(np.float32)


def _with_fault(x: np.ndarray) -> np.ndarray:
    t = np.arange(FAULT_AT * FRAME, N_FRAMES * FRAME) / RATE
    x[1, FAULT_AT * FRAME:] += (4.0 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    return x


def _plant() -> dict[int, list[np.ndarray]]:
    n = N_FRAMES * FRAME
    starts = np.concatenate([_idle(START_AT * FRAME, 61)[:, :],
                             plant_signal(n - START_AT * FRAME, 62, start=START_AT * FRAME)], axis=1)
    signals = {1: _idle(n, 63), 2: _with_fault(plant_signal(n, 64)), 3: _with_fault(starts)}
    return {sid: [x[:, i * FRAME:(i + 1) * FRAME] for i in range(N_FRAMES)]
            for sid, x in signals.items()}


class _Counting:
    """The bundle's real scorer, counting the rows it is asked to score."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.model_id, self.n_features = inner, inner.model_id, inner.n_features
        self.rows = 0
        self.counting = False

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.counting:
            self.rows += x.shape[0]
        result: tuple[np.ndarray, np.ndarray] = self.inner.score(x)
        return result

    def warm(self, max_batch: int) -> None:
        self.inner.warm(max_batch)


def _run(tiny: TinyBundle, ipc_dir: Path, skip: bool) -> tuple[dict[int, list[Verdict]], int, Any]:
    table = monitor_table(ipc_dir, tiny.path, idle_skip=skip)
    table["sources"].append({**table["sources"][0], "id": 3, "name": "mill-3"})
    table["decision"].update(idle_channel="vib_x", idle_rms_below=0.1)
    cfg = config.from_dict(table)
    bundle = load_bundle(tiny.path)
    scorer = _Counting(bundle.scorer(providers="cpu"))
    plant = _plant()
    with capture_logs() as logs:
        running = start_in_thread(lambda stop: run(cfg, scorer, SPEC, bundle.threshold, stop))
        rig = Rig(cfg)
        try:
            rig.connect()
            scorer.counting = True
            for seq in range(N_FRAMES):
                for sid in (1, 2, 3):
                    rig.send_frame(sid, seq, plant[sid][seq])
            rig.wait(lambda: all(rig.verdict(sid, N_FRAMES - 1) for sid in (1, 2, 3)), "verdicts")
        finally:
            assert running.finish() == 0
            rig.close()
    (stopped,) = [e for e in logs if e["event"] == "monitor_stopped"]
    got = {sid: [v for v in rig.verdicts if v.source_id == sid
                 and not v.flags & (VerdictFlag.STALE | VerdictFlag.INVALID_INPUT)]
           for sid in (1, 2, 3)}
    return got, scorer.rows, stopped


def _fault_trip(vs: list[Verdict]) -> int:
    """The first TRIP from the fault's onset on (the machine was OK just before it)."""
    level = {v.seq: v.level for v in vs}
    assert level[FAULT_AT - 1] == Level.OK
    return next(v.seq for v in vs if v.level == Level.TRIP and v.seq >= FAULT_AT)


def test_idle_windows_skip_the_model_and_no_onset_is_caught_later(tiny_bundle: TinyBundle,
                                                                 ipc_dir: Path) -> None:
    skipped, rows_skip, stop_skip = _run(tiny_bundle, ipc_dir, skip=True)
    scored, rows_all, stop_all = _run(tiny_bundle, ipc_dir, skip=False)
    windows = N_FRAMES - SPEC.blocks + 1
    for got in (skipped, scored):
        assert all(len(got[sid]) == windows for sid in (1, 2, 3))
        assert all(v.level == Level.OK and v.flags & VerdictFlag.IDLE for v in got[1])
        # the running machine and the one that started mid-way both trip on the fault (a
        # start-up transient may trip the second too: the model knows only steady running)
        assert _fault_trip(got[2]) == FAULT_AT + 2 and _fault_trip(got[3]) == FAULT_AT + 2
    for sid in (1, 2, 3):  # the same decisions, window by window, short-cut or not
        assert [(v.seq, v.level, v.flags & VerdictFlag.IDLE) for v in skipped[sid]] == \
            [(v.seq, v.level, v.flags & VerdictFlag.IDLE) for v in scored[sid]]
    idle = sum(1 for sid in (1, 2, 3) for v in skipped[sid] if v.flags & VerdictFlag.IDLE)
    assert idle >= windows + 1  # all of machine 1, and machine 3 before it started
    assert all(math.isnan(v.score) for sid in (1, 3) for v in skipped[sid] if v.flags & VerdictFlag.IDLE)
    assert not any(math.isnan(v.score) for sid in (1, 3) for v in scored[sid])
    # the model saw only the running machines' windows
    assert rows_all == 3 * windows and rows_skip == rows_all - idle
    assert stop_skip["idle_skipped"] == idle and stop_all["idle_skipped"] == 0
    assert stop_skip["model_rows"] == rows_skip and stop_all["model_rows"] == rows_all
