"""Teacher, student and int8 tiers from normal feature rows, to one signed tiered bundle (shell).

``train_tier_bundle`` trains the three tiers with tiers_train.py (teacher autoencoder, student
distilled from the teacher's soft scores, the student after quantization-aware training),
exports each to ONNX (tiers.to_onnx: the int8 tier as QDQ pairs, which onnxruntime's graph
optimizations fuse into int8 kernels when the session is built with ORT_ENABLE_ALL, as every
scorer is), and calibrates each tier's threshold on held-out normal rows scored through
onnxruntime on the CPU, so the threshold is set on exactly the numbers the runtime will
compare with it. Then it writes ``teacher.onnx``, ``student.onnx``, ``int8.onnx`` and the
manifest (bundle.write_tiered_bundle).

Training rows beyond ``max_train_rows`` are thinned to an even stride (consecutive windows
overlap, so neighbours add little); the calibration rows are never thinned, because the
threshold sits in their tail. This module logs nothing and reads no clock except to time
training for the manifest's metrics.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models import calibrate, tiers, tiers_train
from models.bundle import write_tiered_bundle
from models.errors import TrainingError
from models.manifest import CONTRIB_NAME, DEV_KEY, INPUT_NAME, SCORE_NAME
from models.scorer import open_scorer
from models.tiers import TIERS, TierModel
from models.tiers_train import TierTrainConfig
from monitor.features import FeatureSpec

Progress = Callable[[str, float], None]
F32 = npt.NDArray[np.float32]

DEFAULT_TIER = "int8"
DEFAULT_MAX_TRAIN_ROWS = 12_000
CHUNK_ROWS = 4096
# The monitor's feature rows are wider (36 for the demo) than SKAB's 8, so the student gets
# more room than tiers_train's SKAB default; the teacher keeps its narrow code.
MONITOR_TIER_CONFIG = TierTrainConfig(
    teacher_hidden=(128, 128, 8, 128, 128), student_hidden=(32, 32),
    teacher_epochs=40, student_epochs=60, qat_epochs=20,
)


def thin(rows: F32, max_rows: int) -> F32:
    """At most ``max_rows`` rows at an even stride, first row kept, order kept."""
    if max_rows < 8:
        raise TrainingError(f"max_train_rows must be >= 8, got {max_rows}")
    if len(rows) <= max_rows:
        return rows
    stride = -(-len(rows) // max_rows)  # ceiling division
    return rows[::stride]


def onnx_scores(graph: bytes, n_features: int, *row_sets: F32) -> list[F32]:
    """Scores of each row set through onnxruntime on the CPU, all graph optimizations."""
    out: list[F32] = []
    # the model id only labels the scorer; the bundle assigns the real one
    with open_scorer(graph, bytes(8), n_features, providers="cpu") as scorer:
        for rows in row_sets:
            parts = [scorer.score(rows[i:i + CHUNK_ROWS])[0]
                     for i in range(0, len(rows), CHUNK_ROWS)]
            out.append(np.concatenate(parts) if parts else np.empty(0, np.float32))
    return out


def _tier_entry(
    model: TierModel, graph: bytes, calib: F32, val: F32, teacher_calib: F32 | None,
    target_far: float, margin: float,
) -> tuple[dict[str, Any], F32]:
    cal_scores, val_scores = onnx_scores(graph, model.n_features, calib, val)
    cal = calibrate.calibrate(cal_scores, target_far, margin)
    metrics: dict[str, Any] = {
        "params": model.n_params,
        "quantized": model.quantized,
        "onnx_bytes": len(graph),
        "calib_score_max_over_threshold": round(float(cal_scores.max()) / cal.threshold, 4),
        # agreement with numpy: how far the runtime's kernels stray from the trained maths
        "max_abs_diff_numpy_vs_onnx": float(np.max(np.abs(model.score(calib)[0] - cal_scores))),
    }
    if len(val):
        metrics["val_far_at_threshold"] = calibrate.far_at(val_scores, cal.threshold)
    if teacher_calib is not None:
        metrics["score_corr_with_teacher"] = float(np.corrcoef(cal_scores, teacher_calib)[0, 1])
    return {"threshold": cal.threshold, "calibration": cal.to_dict(), "metrics": metrics}, cal_scores


def tiers_manifest(spec: FeatureSpec, *, training: dict[str, Any],
                   metrics: dict[str, Any]) -> dict[str, Any]:
    """A tiered bundle's manifest: the model's interface for ``spec``, and what it came from."""
    n = spec.n_features
    return {
        "kind": "tiers",
        "feature_spec": spec.to_dict(),
        "inputs": {INPUT_NAME: [None, n]},
        "outputs": {SCORE_NAME: [None], CONTRIB_NAME: [None, n]},
        "training": training,
        "metrics": metrics,
    }


def train_tier_bundle(
    train: F32, val: F32, calib: F32, data_sha256: str, spec: FeatureSpec, out_dir: Path, *,
    data_seconds: float, seed: int = 0, key: bytes = DEV_KEY, target_far: float = calibrate.DEFAULT_TARGET_FAR,
    margin: float = calibrate.DEFAULT_MARGIN, tier_cfg: TierTrainConfig = MONITOR_TIER_CONFIG,
    max_train_rows: int = DEFAULT_MAX_TRAIN_ROWS, default_tier: str = DEFAULT_TIER,
    training_info: dict[str, Any] | None = None, progress: Progress | None = None,
) -> Path:
    """Train, export, calibrate each tier on ``calib``; write the tiered bundle at ``out_dir``.

    ``val`` (may be empty) only measures each tier's false-alarm rate at its threshold.
    ``data_seconds`` is how much signal the rows came from (the manifest's training.seconds).
    """
    if default_tier not in TIERS:
        raise TrainingError(f"default tier {default_tier!r} is not one of {list(TIERS)}")
    for name, rows in (("train", train), ("calib", calib)):
        if rows.ndim != 2 or rows.shape[1] != spec.n_features or len(rows) < 8:
            raise TrainingError(f"{name} rows: need (>= 8, {spec.n_features}), got {rows.shape}")
    note: Progress = progress or (lambda stage, fraction: None)
    t0 = time.monotonic()
    cfg = dataclasses.replace(tier_cfg, seed=seed)
    fit_rows = thin(train, max_train_rows)
    note("teacher", 0.0)
    teacher = tiers_train.train_teacher(fit_rows, cfg)
    note("teacher", 1.0)
    note("student", 0.0)
    student = tiers_train.distill_student(teacher, fit_rows, cfg)
    note("student", 1.0)
    note("int8", 0.0)
    int8 = tiers_train.quantize_student(student, teacher, fit_rows, cfg)
    note("int8", 1.0)
    train_s = time.monotonic() - t0
    models = {"teacher": teacher, "student": student, "int8": int8}
    graphs: dict[str, bytes] = {}
    entries: dict[str, dict[str, Any]] = {}
    teacher_scores: F32 | None = None
    for i, (name, model) in enumerate(models.items()):
        note("calibrate", i / len(models))
        graphs[name] = tiers.to_onnx(model)
        entries[name], scores = _tier_entry(model, graphs[name], calib, val, teacher_scores,
                                            target_far, margin)
        teacher_scores = scores if name == "teacher" else teacher_scores
    note("calibrate", 1.0)
    manifest = tiers_manifest(spec, training={
        "data_sha256": data_sha256, "seed": seed, "seconds": float(data_seconds),
        "tier_config": dataclasses.asdict(cfg), "max_train_rows": max_train_rows,
        "graph_optimization": "ORT_ENABLE_ALL when a session is built",
        **(training_info or {}),
    }, metrics={
        "n_train": len(train), "n_fit": len(fit_rows), "n_val": len(val),
        "n_calib": len(calib), "train_seconds": round(train_s, 3),
    })
    path = write_tiered_bundle(out_dir, graphs, entries, manifest, default_tier, key)
    note("write", 1.0)
    return path
