"""``train_from_files``: recorded normal data (CSV, NPY) to a signed, tiered bundle."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from models import calibrate, train, train_data
from models.bundle import load_bundle
from models.errors import IntegrityError, SignatureError, TrainingError, UnknownTier
from models.manifest import model_id_for
from models.tier_bundle import onnx_scores
from models.tiers_train import TierTrainConfig
from monitor.features import FeatureSpec
from sim.plant import normal_run
from tripwire.config import Config, from_dict

CHANNELS = ["vib_x", "vib_y", "current", "temp"]
TINY = TierTrainConfig(teacher_hidden=(24, 24, 4, 24, 24), student_hidden=(12, 12),
                       teacher_epochs=6, student_epochs=8, qat_epochs=4)
CSV_SECONDS, NPY_SECONDS = 8.0, 12.0


def _cfg() -> Config:
    return from_dict({"sources": [{"id": 1, "name": "m1", "channels": CHANNELS}],
                      "monitor": {"window": 512, "hop": 128}})


def _signal(cfg: Config, seconds: float, run: int) -> np.ndarray:
    return np.asarray(normal_run(cfg.sources[0], cfg.sim, seconds, run=run), dtype=np.float32)


def _write_csv(path: Path, signal: np.ndarray, rate_hz: float, sep: str = ",") -> Path:
    t = np.arange(signal.shape[1]) / rate_hz
    table = np.vstack([t, signal]).T
    np.savetxt(path, table, delimiter=sep, header=sep.join(["time", *CHANNELS]), comments="",
               fmt="%.9g")
    return path


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, list[Path]]:
    cfg = _cfg()
    d = tmp_path_factory.mktemp("rec")
    rate = cfg.sources[0].sample_rate_hz
    csv = _write_csv(d / "day1.csv", _signal(cfg, CSV_SECONDS, 101), rate, sep=";")
    npy = d / "day2.npy"
    np.save(npy, _signal(cfg, NPY_SECONDS, 102).T)  # samples-first
    return cfg, [csv, npy]


@pytest.fixture(scope="module")
def bundle_dir(recordings: tuple[Config, list[Path]],
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg, files = recordings
    stages: list[str] = []
    out = train.train_from_files(
        list(files), train.spec_for(cfg), tmp_path_factory.mktemp("out") / "tiers",
        sep=";", time_col="time", tier_cfg=TINY,
        progress=lambda stage, frac: stages.append(stage),
    )
    assert {"read", "teacher", "student", "int8", "calibrate", "write"} <= set(stages)
    return out


def test_tiered_bundle_loads_with_every_tier(bundle_dir: Path,
                                             recordings: tuple[Config, list[Path]]) -> None:
    cfg, files = recordings
    assert {p.name for p in bundle_dir.iterdir()} == {
        "manifest.json", "teacher.onnx", "student.onnx", "int8.onnx"}
    bundle = load_bundle(bundle_dir)
    bundle.check_spec(train.spec_for(cfg))
    assert bundle.kind == "tiers"
    assert set(bundle.tiers) == {"teacher", "student", "int8"}
    assert bundle.tier == "int8"  # the default tier is what the monitor runs
    m = bundle.manifest
    assert bundle.threshold == m["tiers"]["int8"]["threshold"]
    assert bundle.model_id_hex == m["tiers"]["int8"]["model_id"]
    for name in bundle.tiers:
        data = (bundle_dir / f"{name}.onnx").read_bytes()
        assert m["tiers"][name]["sha256"] == hashlib.sha256(data).hexdigest()
    listed = {f["name"]: f["sha256"] for f in m["training"]["files"]}
    assert listed == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_training_hash_is_the_samples_as_loaded(bundle_dir: Path,
                                                recordings: tuple[Config, list[Path]]) -> None:
    cfg, files = recordings
    spec = train.spec_for(cfg)
    digest = hashlib.sha256()
    for p in files:
        digest.update(train_data.read_signal(p, spec, time_col="time").tobytes())
    m = json.loads((bundle_dir / "manifest.json").read_text())
    assert m["training"]["data_sha256"] == digest.hexdigest()
    assert m["training"]["seconds"] == pytest.approx(CSV_SECONDS + NPY_SECONDS)


def test_thresholds_come_from_held_out_normal_data(bundle_dir: Path,
                                                   recordings: tuple[Config, list[Path]]) -> None:
    cfg, files = recordings
    spec = train.spec_for(cfg)
    data = train_data.load_files(files, spec, time_col="time")
    bundle = load_bundle(bundle_dir)
    for name in bundle.tiers:
        tier = bundle.with_tier(name)
        cal = tier.calibration
        assert cal["n_windows"] == len(data.calib) != len(data.train)
        scores = onnx_scores(tier.onnx_bytes, spec.n_features, data.calib)[0]
        expected = calibrate.calibrate(scores, cal["target_far"], cal["margin"]).threshold
        assert tier.threshold == pytest.approx(expected, rel=1e-6)
        # ... and a clearly shifted copy of held-out data scores above it
        shifted = data.calib.copy()
        shifted[:, 1] += 50.0 * data.train[:, 1].std()
        assert float(np.median(onnx_scores(tier.onnx_bytes, spec.n_features, shifted)[0])) \
            > tier.threshold


def test_tier_selection(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    teacher = bundle.with_tier("teacher")
    assert teacher.tier == "teacher"
    assert teacher.threshold == bundle.manifest["tiers"]["teacher"]["threshold"]
    assert teacher.model_id_hex == model_id_for(hashlib.sha256(teacher.onnx_bytes).hexdigest())
    rows = np.zeros((3, bundle.n_features), np.float32)
    with bundle.scorer(providers="cpu", tier="teacher") as s_teacher, \
            bundle.scorer(providers="cpu") as s_default:
        assert s_teacher.model_id == teacher.model_id
        assert s_default.model_id == bundle.with_tier("int8").model_id
        assert s_teacher.score(rows)[0].shape == (3,)
    with pytest.raises(UnknownTier, match="fp16"):
        bundle.scorer(providers="cpu", tier="fp16")


def test_tampered_tier_file_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle_dir, copy)
    raw = bytearray((copy / "student.onnx").read_bytes())
    raw[-5] ^= 0x01
    (copy / "student.onnx").write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="student.onnx"):
        load_bundle(copy)  # even though the default tier (int8) is intact


def test_tampered_tier_threshold_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle_dir, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["tiers"]["teacher"]["threshold"] *= 10
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SignatureError):
        load_bundle(copy)


def test_single_model_kind_from_files_still_loads(recordings: tuple[Config, list[Path]],
                                                  tmp_path: Path) -> None:
    cfg, files = recordings
    out = train.train_from_files([files[1]], train.spec_for(cfg), tmp_path / "pca", kind="pca")
    bundle = load_bundle(out)
    assert bundle.kind == "pca" and bundle.tiers == () and bundle.tier == ""
    with pytest.raises(UnknownTier):
        bundle.with_tier("int8")


def _spec() -> FeatureSpec:
    return train.spec_for(_cfg())


def test_bad_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    spec = _spec()
    good = np.random.default_rng(0).normal(size=(4, 4096)).astype(np.float32)
    nan = good.copy()
    nan[2, 100] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(TrainingError, match="not finite"):
        train_data.load_files([tmp_path / "nan.npy"], spec)
    csv = _write_csv(tmp_path / "a.csv", good, spec.sample_rate_hz, sep=",")
    with pytest.raises(TrainingError, match="not ';'"):
        train_data.load_files([csv], spec, sep=";")
    slow = _write_csv(tmp_path / "slow.csv", good, spec.sample_rate_hz / 2)
    with pytest.raises(TrainingError, match="Hz"):
        train_data.load_files([slow], spec, time_col="time")
    with pytest.raises(TrainingError, match="no column"):
        train_data.load_files([csv], spec, channels=["a", "b", "c", "d"])
    np.save(tmp_path / "short.npy", good[:, :600])
    with pytest.raises(TrainingError, match="shorter than one"):
        train_data.load_files([tmp_path / "short.npy"], spec)


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow installed")
def test_parquet_without_pyarrow_says_so(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(TrainingError, match="pyarrow"):
        train_data.load_files([tmp_path / "x.parquet"], _spec())


def test_parquet_reads_the_same_samples_as_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow (the parquet extra) is not installed")
    import pyarrow.parquet as pq

    cfg = _cfg()
    spec = train.spec_for(cfg)
    signal = _signal(cfg, 2.0, 103)
    rate = cfg.sources[0].sample_rate_hz
    table = {"time": np.arange(signal.shape[1]) / rate, **{c: signal[i] for i, c in enumerate(CHANNELS)}}
    pq.write_table(pa.table(table), tmp_path / "day3.parquet")
    got = train_data.read_signal(tmp_path / "day3.parquet", spec, time_col="time")
    np.testing.assert_array_equal(got, signal)
    with pytest.raises(TrainingError, match="Parquet columns"):
        train_data.read_signal(tmp_path / "day3.parquet", spec, channels=["nope", "a", "b", "c"])


def test_simulator_path_writes_tiers_too(tmp_path: Path) -> None:
    cfg = _cfg()
    out = train.build_default_bundle(cfg, tmp_path / "sim", seconds=20.0, kind="tiers")
    bundle = load_bundle(out)
    bundle.check_spec(train.spec_for(cfg))
    assert bundle.tier == "int8" and set(bundle.tiers) == {"teacher", "student", "int8"}
    assert bundle.manifest["training"]["generator"] == "sim.plant.normal_run"
