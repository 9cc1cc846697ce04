"""Training on simulated normal data: threshold separates held-out normal from faulty windows."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from models import autoencoder, calibrate, train
from models.bundle import MODEL_FILE, load_bundle
from models.errors import SpecMismatch, TrainingError
from monitor.features import offline_features
from sim.plant import normal_run
from tripwire.config import Config, from_dict

CHANNELS = ["vib_x", "vib_y", "current", "temp"]
SECONDS = 60.0  # per source; small and fast, still several load changes per run


def _cfg(window: int = 1024, sources: int = 1) -> Config:
    table = {
        "sources": [{"id": i + 1, "name": f"m{i + 1}", "channels": CHANNELS} for i in range(sources)],
        "monitor": {"window": window, "hop": 128},
    }
    return from_dict(table)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    cfg = _cfg()
    out = tmp_path_factory.mktemp("train") / "ae"
    stages: list[str] = []
    path = train.build_default_bundle(cfg, out, seconds=SECONDS, seed=0,
                                      progress=lambda stage, frac: stages.append(stage))
    assert {"simulate", "train", "calibrate", "write"} <= set(stages)
    return cfg, path


def _impulses(signal: np.ndarray, rate_hz: float, every_s: float, size_rms: float) -> np.ndarray:
    """Bearing-like damage: decaying 2 kHz rings on the vibration channels."""
    out = signal.copy()
    t = np.arange(64) / rate_hz
    ring = np.exp(-t / 0.001) * np.sin(2 * np.pi * 2000 * t)
    step = int(every_s * rate_hz)
    for ch in (0, 1):
        amp = size_rms * float(signal[ch].std())
        for start in range(0, signal.shape[1] - ring.size, step):
            out[ch, start : start + ring.size] += amp * ring
    return out


def test_threshold_separates_normal_from_faulty(trained: tuple[Config, Path]) -> None:
    cfg, path = trained
    bundle = load_bundle(path)
    spec = train.spec_for(cfg)
    bundle.check_spec(spec)
    held_out = normal_run(cfg.sources[0], cfg.sim, 20.0, run=999)  # never trained or calibrated on
    with bundle.scorer(providers="cpu") as scorer:
        normal_scores, _ = scorer.score(offline_features(held_out, spec))
        faulty = _impulses(held_out, 6400.0, every_s=1 / 90, size_rms=5.0)
        fault_scores, contrib = scorer.score(offline_features(faulty, spec))
    assert np.mean(normal_scores > bundle.threshold) < 0.01
    assert np.mean(fault_scores > bundle.threshold) > 0.95
    top = np.argsort(contrib.mean(axis=0))[-3:]
    assert any(bundle.feature_names[i].startswith("vib_") for i in top)


def test_manifest_records_the_recipe(trained: tuple[Config, Path]) -> None:
    _, path = trained
    m = load_bundle(path).manifest
    assert m["kind"] == "autoencoder"
    assert m["calibration"]["target_far"] == calibrate.DEFAULT_TARGET_FAR
    assert m["calibration"]["margin"] == calibrate.DEFAULT_MARGIN
    assert m["threshold"] == pytest.approx(m["calibration"]["quantile_score"] * m["calibration"]["margin"])
    assert m["training"]["seconds"] == SECONDS and m["training"]["generator"] == "sim.plant.normal_run"
    assert len(m["training"]["data_sha256"]) == 64
    runs = m["training"]["runs"]
    used = runs["train"] + runs["val"] + runs["calib"]
    assert 0 not in used and len(set(used)) == len(used)  # never the live realization, no reuse
    assert m["metrics"]["n_calib"] > m["metrics"]["n_train"] > 0


def test_training_is_deterministic(trained: tuple[Config, Path], tmp_path: Path) -> None:
    cfg, path = trained
    again = train.build_default_bundle(cfg, tmp_path / "again", seconds=SECONDS, seed=0)
    digest = hashlib.sha256((again / MODEL_FILE).read_bytes()).hexdigest()
    assert digest == load_bundle(path).manifest["sha256"]


def test_pca_bundle(tmp_path: Path) -> None:
    cfg = _cfg()
    path = train.build_default_bundle(cfg, tmp_path / "pca", seconds=SECONDS, kind="pca")
    bundle = load_bundle(path)
    assert bundle.kind == "pca" and bundle.manifest["metrics"]["components"] >= 1
    with bundle.scorer(providers="cpu") as scorer:
        scores, _ = scorer.score(offline_features(normal_run(cfg.sources[0], cfg.sim, 10.0, run=998),
                                                  train.spec_for(cfg)))
    assert np.mean(scores > bundle.threshold) < 0.01


def test_default_path_is_keyed_by_what_shapes_the_model(tmp_path: Path) -> None:
    a = train.default_bundle_path(_cfg(), tmp_path)
    assert a == train.default_bundle_path(_cfg(), tmp_path)
    assert a.parent == tmp_path and a.name.startswith("autoencoder-")
    assert a != train.default_bundle_path(_cfg(window=512), tmp_path)
    assert a != train.default_bundle_path(_cfg(sources=2), tmp_path)
    reseeded = dataclasses.replace(_cfg(), sim=dataclasses.replace(_cfg().sim, seed=5))
    assert a != train.default_bundle_path(reseeded, tmp_path)
    assert a != train.default_bundle_path(_cfg(), tmp_path, kind="pca")


def test_ensure_reuses_a_verified_cache_and_rebuilds_a_bad_one(
    trained: tuple[Config, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, built = trained
    cached = train.default_bundle_path(cfg, tmp_path)
    cached.parent.mkdir(parents=True, exist_ok=True)
    for f in built.iterdir():
        (cached / f.name).parent.mkdir(exist_ok=True)
        (cached / f.name).write_bytes(f.read_bytes())
    calls: list[Path] = []

    def fake_build(cfg: Config, out_dir: Path, **kw: object) -> Path:
        calls.append(out_dir)
        return out_dir

    monkeypatch.setattr(train, "build_default_bundle", fake_build)
    assert train.ensure_default_bundle(cfg, tmp_path) == cached and calls == []
    (cached / MODEL_FILE).write_bytes(b"corrupt")
    assert train.ensure_default_bundle(cfg, tmp_path) == cached and calls == [cached]


def test_spec_mismatch_against_another_config(trained: tuple[Config, Path]) -> None:
    _, path = trained
    with pytest.raises(SpecMismatch) as err:
        load_bundle(path).check_spec(train.spec_for(_cfg(window=512)))
    assert err.value.field == "window"


def test_sources_must_share_channels() -> None:
    cfg = from_dict({"sources": [{"id": 1, "name": "a", "channels": CHANNELS},
                                 {"id": 2, "name": "b", "channels": ["x", "y"]}]})
    with pytest.raises(TrainingError, match="channels"):
        train.spec_for(cfg)


def test_autoencoder_refuses_unusable_data() -> None:
    x = np.zeros((50, 6), np.float32)
    x[3, 2] = np.nan
    with pytest.raises(TrainingError, match="non-finite"):
        autoencoder.train_autoencoder(x, np.zeros((10, 6), np.float32))
    with pytest.raises(TrainingError, match="does not fit"):
        autoencoder.train_autoencoder(np.zeros((50, 6), np.float32), np.zeros((10, 5), np.float32))


def test_calibration_statistics() -> None:
    scores = np.linspace(0.0, 1.0, 10_001)
    cal = calibrate.calibrate(scores, target_far=1e-3, margin=2.0)
    assert cal.quantile_score == pytest.approx(0.999)
    assert cal.threshold == pytest.approx(1.998)
    assert cal.observed_far == 0.0 and not cal.undersampled
    assert calibrate.calibrate(scores[:100], target_far=1e-3).undersampled
    with pytest.raises(TrainingError):
        calibrate.calibrate(np.array([1.0, np.nan]))
    with pytest.raises(TrainingError):
        calibrate.calibrate(scores, target_far=0.0)


def test_progress_is_throttled() -> None:
    seen: list[tuple[str, float]] = []
    report = train._Reporter(lambda stage, frac: seen.append((stage, frac)))
    for i in range(1, 201):
        report("train", i / 250)
    report("train", 1.0)
    report("train", 1.0)
    assert len(seen) <= 12 and seen[-1] == ("train", 1.0)
    assert [f for _, f in seen] == sorted(f for _, f in seen)
