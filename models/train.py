"""Train, calibrate and write the demo's model bundle from simulated normal operation (shell).

``build_default_bundle`` generates fault-free runs of every configured machine with
``sim.plant.normal_run`` (several realizations: noise and load profiles differ, the machines
are the live plant's own), computes features with the monitor's own kernels
(``monitor.features.offline_features``), trains the numpy autoencoder (or the PCA baseline),
calibrates the threshold on runs the model never saw, and writes a signed bundle.

Data split, per source, by whole runs (consecutive windows overlap 7/8, so a random split
would leak): 30 % of ``seconds`` in two training runs, 10 % in a validation run (early
stopping and residual scales), 60 % in two calibration runs (threshold only). Runs are long
(90 s at the default 600 s) because bearing temperature wanders with a 15-30 s lag and short
runs never show its range; calibration gets the largest share because the threshold sits in
the tail of the normal scores, which only plenty of data pins down. Simulation and features
are cheap (~2 s for the demo's two machines); training dominates (~5-10 s on 2 cores).

``default_bundle_path`` names a cache directory keyed by everything that shapes the model
(feature spec, machines, sim seed and load profile, this recipe's version, and the source of
the modules that generate, featurize and train), so the demo trains once and reuses it;
``ensure_default_bundle`` verifies a cached bundle and rebuilds it when it does not load.
``kind="tiers"`` trains teacher, student and int8 tiers instead (tier_bundle.py).

``train_from_files`` does the same from recorded normal data (CSV, NPY, Parquet; reading and
splitting in train_data.py) and writes a tiered bundle, or a single-model one for
``kind="autoencoder"``, ``"pca"`` or ``"iforest"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from models import (
    autoencoder,
    calibrate,
    export,
    iforest,
    pca,
    standardize,
    tier_bundle,
    tiers,
    tiers_train,
    train_data,
)
from models.bundle import load_bundle, write_bundle
from models.errors import BundleError, TrainingError
from models.manifest import (
    CONTRIB_NAME,
    DEV_KEY,
    INPUT_NAME,
    SCORE_NAME,
    canonical_json,
)
from models.tiers_train import TierTrainConfig
from monitor import bands, features
from monitor.features import FeatureSpec, offline_features
from sim import machine, plant
from sim.plant import normal_run
from tripwire.config import Config

RECIPE_VERSION = 1
DEFAULT_SECONDS = 600.0
SPLIT = {"train": (0.30, 2), "val": (0.10, 1), "calib": (0.60, 2)}  # share of seconds, runs
Progress = Callable[[str, float], None]
F32 = npt.NDArray[np.float32]



class _Reporter:
    """Forwards progress at most once per 10 % of a stage, and always its end."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, fraction: float) -> None:
        if self.progress is None or self.last.get(stage, 0.0) >= 1.0:
            return
        if fraction >= 1.0 or fraction - self.last.get(stage, -1.0) >= 0.1:
            self.last[stage] = fraction
            self.progress(stage, min(fraction, 1.0))


@dataclasses.dataclass(frozen=True, slots=True)
class NormalData:
    train: F32
    val: F32
    calib: F32
    sha256: str
    seconds: float  # per source
    runs: dict[str, list[int]]  # normal_run realization numbers per role


def spec_for(cfg: Config) -> FeatureSpec:
    """The feature spec the monitor computes for this config (all sources must agree)."""
    if not cfg.sources:
        raise TrainingError("no sources configured")
    first = cfg.sources[0]
    for s in cfg.sources[1:]:
        if s.channels != first.channels:
            raise TrainingError(f"source {s.id}: channels {s.channels} differ from {first.channels}")
        if s.sample_rate_hz != first.sample_rate_hz:
            raise TrainingError(f"source {s.id}: sample rate differs from source {first.id}'s")
    return FeatureSpec(tuple(first.channels), first.sample_rate_hz, cfg.monitor.window, cfg.monitor.hop)


def _runs(seed: int) -> dict[str, list[int]]:
    """Realization numbers; 0 is what the live plant plays and is never used for training."""
    nxt = 1 + 16 * seed
    out: dict[str, list[int]] = {}
    for role, (_, count) in SPLIT.items():
        out[role] = list(range(nxt, nxt + count))
        nxt += count
    return out


def collect_normal(
    cfg: Config, spec: FeatureSpec, seconds: float = DEFAULT_SECONDS, seed: int = 0,
    progress: Progress | None = None,
) -> NormalData:
    report = _Reporter(progress)
    runs = _runs(seed)
    parts: dict[str, list[F32]] = {role: [] for role in SPLIT}
    total = sum(len(r) for r in runs.values()) * len(cfg.sources)
    done = 0
    for source in cfg.sources:
        for role, (share, count) in SPLIT.items():
            for run in runs[role]:
                signal = normal_run(source, cfg.sim, seconds * share / count, run=run)
                rows = offline_features(signal, spec)
                if rows.shape[0] == 0:
                    raise TrainingError(f"{seconds} s of data is shorter than one window")
                parts[role].append(rows)
                done += 1
                report("simulate", done / total)
    arrays = {role: np.concatenate(p).astype(np.float32, copy=False) for role, p in parts.items()}
    for role, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise TrainingError(f"{role} features contain non-finite values")
    digest = hashlib.sha256()
    for role in SPLIT:
        digest.update(role.encode())
        digest.update(np.ascontiguousarray(arrays[role]).tobytes())
    return NormalData(arrays["train"], arrays["val"], arrays["calib"], digest.hexdigest(),
                      seconds, runs)


def train_bundle(
    data: NormalData, spec: FeatureSpec, out_dir: Path, *, kind: str = "autoencoder",
    seed: int = 0, key: bytes = DEV_KEY, target_far: float = calibrate.DEFAULT_TARGET_FAR,
    margin: float = calibrate.DEFAULT_MARGIN, training_info: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Fit one model kind on ``data``, calibrate on ``data.calib``, write the bundle."""
    t0 = time.monotonic()
    report = _Reporter(progress)
    metrics: dict[str, Any] = {}
    if kind == "tiers":
        info = {"recipe": RECIPE_VERSION, "runs": data.runs, **(training_info or {})}
        return tier_bundle.train_tier_bundle(
            data.train, data.val, data.calib, data.sha256, spec, out_dir,
            data_seconds=data.seconds, seed=seed, key=key, target_far=target_far, margin=margin,
            training_info=info, progress=report,
        )
    if kind == "autoencoder":
        cfg = autoencoder.AeTrainConfig(seed=seed)
        model, fit = autoencoder.train_autoencoder(
            data.train, data.val, cfg, lambda f: report("train", f)
        )
        onnx_bytes = export.autoencoder_to_onnx(model)
        scorer: autoencoder.AutoencoderModel | pca.PcaModel | iforest.IforestModel = model
        metrics.update(
            layers=autoencoder.layer_sizes(spec.n_features, cfg), epochs=fit.epochs,
            best_epoch=fit.best_epoch, train_loss=fit.train_loss, val_loss=fit.val_loss,
        )
    elif kind == "pca":
        model_pca = pca.fit_pca(data.train)
        onnx_bytes = export.pca_to_onnx(model_pca)
        scorer = model_pca
        metrics.update(components=model_pca.n_components,
                       variance_kept=pca.DEFAULT_VARIANCE_KEPT)
    elif kind == "iforest":
        model_if = iforest.fit_iforest(data.train, seed=seed)
        report("train", 0.5)
        onnx_bytes = iforest.to_onnx(model_if)
        scorer = model_if
        metrics.update(trees=len(model_if.trees), sample_rows=model_if.sample_rows)
    else:
        raise TrainingError(f"unknown model kind {kind!r}")
    report("train", 1.0)
    report("calibrate", 0.0)
    cal = calibrate.calibrate(scorer.score(data.calib)[0], target_far, margin)
    val_scores = scorer.score(data.val)[0]
    metrics.update(
        n_train=int(data.train.shape[0]), n_val=int(data.val.shape[0]),
        n_calib=int(data.calib.shape[0]),
        val_far_at_threshold=calibrate.far_at(val_scores, cal.threshold),
        val_score_q999=float(np.quantile(val_scores, 0.999)),
        train_seconds=round(time.monotonic() - t0, 3),
    )
    n = spec.n_features
    manifest = {
        "kind": kind,
        "feature_spec": spec.to_dict(),
        "inputs": {INPUT_NAME: [None, n]},
        "outputs": {SCORE_NAME: [None], CONTRIB_NAME: [None, n]},
        "threshold": cal.threshold,
        "calibration": cal.to_dict(),
        "training": {"data_sha256": data.sha256, "seconds": data.seconds, "seed": seed,
                     "recipe": RECIPE_VERSION, "runs": data.runs,
                     "clip_z": standardize.DEFAULT_CLIP_Z, **(training_info or {})},
        "metrics": metrics,
    }
    report("calibrate", 1.0)
    report("write", 1.0)
    return write_bundle(out_dir, onnx_bytes, manifest, key)


def build_default_bundle(
    cfg: Config, out_dir: Path, *, seconds: float = DEFAULT_SECONDS, seed: int = 0,
    key: bytes = DEV_KEY, progress: Progress | None = None, kind: str = "autoencoder",
) -> Path:
    """Simulate, featurize, train, calibrate; the bundle appears at ``out_dir`` atomically."""
    t0 = time.monotonic()
    spec = spec_for(cfg)
    data = collect_normal(cfg, spec, seconds, seed, progress)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        info = {"generator": "sim.plant.normal_run", "sources": [s.id for s in cfg.sources],
                "sim_seed": cfg.sim.seed}
        train_bundle(data, spec, tmp, kind=kind, seed=seed, key=key, training_info=info,
                     progress=progress)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    structlog.get_logger(component="train").info(
        "bundle_trained", path=str(out_dir), kind=kind, seconds=seconds,
        elapsed_s=round(time.monotonic() - t0, 2),
    )
    return out_dir


def _code_digest(modules: list[ModuleType]) -> str:
    h = hashlib.sha256()
    for mod in modules:
        try:
            h.update(inspect.getsource(mod).encode())
        except (OSError, TypeError):  # no source shipped: fall back to the module's name
            h.update(mod.__name__.encode())
    return h.hexdigest()


def default_bundle_path(cfg: Config, cache_dir: Path, kind: str = "autoencoder") -> Path:
    spec = spec_for(cfg)
    key = {
        "recipe": RECIPE_VERSION,
        "kind": kind,
        "seconds": DEFAULT_SECONDS,
        "spec": spec.to_dict(),
        "sim": {"seed": cfg.sim.seed, "load_change_every_s": cfg.sim.load_change_every_s},
        "sources": [{"id": s.id, "channels": s.channels, "rate": s.sample_rate_hz}
                    for s in cfg.sources],
        "code": _code_digest([plant, machine, bands, features, autoencoder, pca, iforest,
                              standardize, calibrate, export, sys.modules[__name__]]
                             + ([tier_bundle, tiers, tiers_train] if kind == "tiers" else [])),
    }
    digest = hashlib.sha256(canonical_json(key)).hexdigest()[:16]
    return Path(cache_dir) / f"{kind}-{digest}"


def ensure_default_bundle(
    cfg: Config, cache_dir: Path, *, key: bytes = DEV_KEY, progress: Progress | None = None,
    kind: str = "autoencoder",
) -> Path:
    """The cached default bundle, verified; trained (again) when absent or refused."""
    path = default_bundle_path(cfg, cache_dir, kind)
    if path.exists():
        try:
            load_bundle(path, key).check_spec(spec_for(cfg))
            return path
        except BundleError as e:
            structlog.get_logger(component="train").warning(
                "bundle_cache_rejected", path=str(path), error=str(e)
            )
    return build_default_bundle(cfg, path, key=key, progress=progress, kind=kind)


def train_from_files(
    paths: list[str | Path], spec: FeatureSpec, out_dir: str | Path, *,
    sep: str | None = None, time_col: str | None = None, channels: list[str] | None = None,
    kind: str = "tiers", default_tier: str = tier_bundle.DEFAULT_TIER, seed: int = 0,
    key: bytes = DEV_KEY, target_far: float = calibrate.DEFAULT_TARGET_FAR,
    margin: float = calibrate.DEFAULT_MARGIN,
    train_fraction: float = train_data.DEFAULT_TRAIN_FRACTION,
    val_fraction: float = train_data.DEFAULT_VAL_FRACTION,
    tier_cfg: TierTrainConfig = tier_bundle.MONITOR_TIER_CONFIG,
    progress: Progress | None = None,
) -> Path:
    """Recorded normal data -> a signed bundle at ``out_dir`` (atomically replaced).

    ``spec`` is ``spec_for(cfg)``; each file holds its channels (or ``channels``, in order).
    ``kind``: "tiers" (teacher, student, int8; ``default_tier`` is what the monitor runs),
    or a single-model "autoencoder", "pca" or "iforest" bundle.
    """
    t0 = time.monotonic()
    report = _Reporter(progress)
    report("read", 0.0)
    data = train_data.load_files(paths, spec, sep=sep, time_col=time_col, channels=channels,
                                 train_fraction=train_fraction, val_fraction=val_fraction)
    report("read", 1.0)
    info: dict[str, Any] = {"generator": "files", "files": data.files,
                            "split": {"train": train_fraction, "val": val_fraction}}
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if kind == "tiers":
            tier_bundle.train_tier_bundle(
                data.train, data.val, data.calib, data.sha256, spec, tmp,
                data_seconds=data.seconds, seed=seed, key=key, target_far=target_far,
                margin=margin, tier_cfg=tier_cfg, default_tier=default_tier,
                training_info=info, progress=report,
            )
        else:
            if len(data.val) == 0:
                raise TrainingError(f"kind {kind!r} needs a validation part (val_fraction > 0)")
            normal = NormalData(data.train, data.val, data.calib, data.sha256, data.seconds, {})
            train_bundle(normal, spec, tmp, kind=kind, seed=seed, key=key, target_far=target_far,
                         margin=margin, training_info=info, progress=progress)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    structlog.get_logger(component="train").info(
        "bundle_trained", path=str(out), kind=kind, files=len(data.files),
        seconds=round(data.seconds, 3), elapsed_s=round(time.monotonic() - t0, 2),
    )
    return out
