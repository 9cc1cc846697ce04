"""The model tiers: training, distillation, int8 QDQ graphs, onnxruntime agreement, SKAB runs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models import skab, skab_tiers, tiers
from models.scorer import OnnxScorer, session_options
from models.tiers import TierModel
from models.tiers_train import TierTrainConfig, train_tiers

SMALL = TierTrainConfig(
    teacher_hidden=(32, 32, 3, 32, 32), student_hidden=(12, 12),
    teacher_epochs=40, student_epochs=60, qat_epochs=20,
)
FEW = ["valve1/0", "other/5", "valve2/1"]


def _normal(n: int, seed: int) -> np.ndarray:
    """Six correlated channels with a slow wander, like SKAB's rolling means."""
    rng = np.random.default_rng(seed)
    common = np.cumsum(rng.normal(0.0, 0.05, (n, 2)), axis=0)
    mix = np.array([[1.0, 0.5, 0.0, 0.8, 0.2, 0.0], [0.0, 0.5, 1.0, 0.0, 0.6, 1.0]])
    return common @ mix + rng.normal(0.0, 0.3, (n, 6))


@pytest.fixture(scope="module")
def trained() -> dict[str, TierModel]:
    return train_tiers(_normal(400, 0), SMALL)


@pytest.fixture(scope="module")
def probe_rows() -> np.ndarray:
    """Held-out normal rows, then rows with one or two channels shifted by 1-6 std."""
    normal = _normal(300, 1)
    rng = np.random.default_rng(2)
    shifted = _normal(300, 3)
    cols = rng.integers(0, 6, (300, 2))
    shifted[np.arange(300), cols[:, 0]] += rng.uniform(1.0, 6.0, 300) * 0.35
    shifted[np.arange(300), cols[:, 1]] -= rng.uniform(0.0, 3.0, 300) * 0.35
    return np.vstack([normal, shifted])


def _ort(model: TierModel) -> OnnxScorer:
    return skab_tiers.open_cpu_scorer(tiers.to_onnx(model), model.n_features)


def test_int8_graph_carries_qdq_around_every_matmul(trained: dict[str, TierModel]) -> None:
    graph = onnx.load_model_from_string(tiers.to_onnx(trained["int8"])).graph
    ops = Counter(n.op_type for n in graph.node)
    n_layers = len(trained["int8"].layers)
    assert ops["MatMul"] == n_layers
    assert ops["QuantizeLinear"] == 2 * n_layers  # each MatMul's input and product
    assert ops["DequantizeLinear"] == 3 * n_layers  # ... and its int8 weight
    producers = {n.output[0]: n.op_type for n in graph.node}
    for node in graph.node:
        if node.op_type == "MatMul":
            assert [producers[i] for i in node.input] == ["DequantizeLinear"] * 2
    int8_inits = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert sum(1 for i in int8_inits if i.name.endswith("_int8")) == n_layers
    float_graph = onnx.load_model_from_string(tiers.to_onnx(trained["student"])).graph
    assert not any(n.op_type.endswith("Linear") for n in float_graph.node)


def test_onnxruntime_runs_the_int8_graph_with_int8_kernels(
    trained: dict[str, TierModel], tmp_path: Path
) -> None:
    so = session_options(1)
    so.optimized_model_filepath = str(tmp_path / "int8_optimized.onnx")
    ort.InferenceSession(tiers.to_onnx(trained["int8"]), so, providers=["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "int8_optimized.onnx")).graph.node)
    assert ops["QLinearMatMul"] == len(trained["int8"].layers)
    assert ops["MatMul"] == 0 and ops["Gemm"] == 0 and ops["FusedGemm"] == 0


@pytest.mark.parametrize("name", tiers.TIERS)
def test_onnx_equals_the_numpy_forward(
    trained: dict[str, TierModel], probe_rows: np.ndarray, name: str
) -> None:
    model = trained[name]
    want_score, want_contrib = model.score(probe_rows)
    with _ort(model) as scorer:
        score, contrib = scorer.score(probe_rows.astype(np.float32))
    assert score.dtype == np.float32 and contrib.shape == want_contrib.shape
    tol = 1e-4 if not model.quantized else 1e-3
    # int8: a value on a rounding boundary may round one step differently in either
    # implementation; allow that for a handful of entries, never broadly.
    close = np.isclose(contrib, want_contrib, rtol=tol, atol=tol)
    assert close.mean() > 0.995
    assert np.isclose(score, want_score, rtol=tol, atol=tol).mean() > 0.99


def test_training_is_seeded() -> None:
    a = train_tiers(_normal(200, 5), SMALL)
    b = train_tiers(_normal(200, 5), SMALL)
    for name in tiers.TIERS:
        for la, lb in zip(a[name].layers, b[name].layers, strict=True):
            np.testing.assert_array_equal(la.weight, lb.weight)
    assert tiers.to_onnx(a["int8"]) == tiers.to_onnx(b["int8"])


def test_student_is_much_smaller_and_tracks_the_teacher(
    trained: dict[str, TierModel], probe_rows: np.ndarray
) -> None:
    teacher, student, int8 = (trained[n] for n in tiers.TIERS)
    assert student.n_params * 5 < teacher.n_params
    t, s, q = (m.score(probe_rows)[0] for m in (teacher, student, int8))
    assert np.corrcoef(t, s)[0, 1] > 0.9
    assert np.corrcoef(t, q)[0, 1] > 0.9
    assert np.median(np.abs(s - t) / np.maximum(t, 1.0)) < 0.2


def test_every_tier_separates_shifted_rows_from_normal(
    trained: dict[str, TierModel], probe_rows: np.ndarray
) -> None:
    for model in trained.values():
        score = model.score(probe_rows)[0]
        assert np.median(score[300:]) > 2.0 * np.median(score[:300])


def test_features_are_causal_and_continue_from_history() -> None:
    rows = np.random.default_rng(6).normal(size=(120, 8))
    whole = tiers.rolling_features(rows)
    np.testing.assert_allclose(tiers.rolling_features(rows[60:], rows[:60]), whole[60:])
    changed = rows.copy()
    changed[100:] += 5.0
    np.testing.assert_array_equal(tiers.rolling_features(changed)[:100], whole[:100])


def test_unknown_tier_is_refused(skab_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown tier"):
        skab_tiers.evaluate(skab_dir, "float16", names=FEW)


def test_tiers_on_a_few_skab_files(skab_dir: Path) -> None:
    report = skab_tiers.evaluate(skab_dir, "int8", names=FEW, cfg=SMALL)
    assert report["detector"] == "int8"
    assert [f["file"] for f in report["files"]] == FEW
    assert set(report["tiers"]) == set(tiers.TIERS)
    assert report["tiers"]["int8"]["f1"] == report["f1"]
    for figures in report["tiers"].values():
        assert figures["f1"] > 0.6
    rates = report["throughput"]
    assert rates["batch"] == 32 and all(rates[n] > 0 for n in tiers.TIERS)
    assert rates["int8_vs_teacher"] == pytest.approx(rates["int8"] / rates["teacher"], rel=0.01)
    assert set(report["baselines"]) == set(skab_tiers.BASELINES)
    for figures in report["baselines"].values():
        assert 0.0 <= figures["f1"] <= 1.0 and 0.0 <= figures["far"] <= 100.0
    json.dumps(report)


def test_features_come_from_the_monitor_kernels_and_equal_plain_rolling_means() -> None:
    rows = np.random.default_rng(7).normal(size=(200, 8)) * 40.0 + 100.0
    x = rows[:, list(tiers.CHANNELS)]
    for k, w in enumerate(tiers.WINDOWS_ROWS):
        want = np.stack([x[i - w + 1:i + 1].mean(axis=0) for i in range(w - 1, len(x))])
        got = tiers.rolling_features(rows)[w - 1:, k * len(tiers.CHANNELS):(k + 1) * len(tiers.CHANNELS)]
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_run_routes_tier_names(skab_dir: Path) -> None:
    assert skab.DEFAULT_TIER in skab.TIERS == tiers.TIERS
    with pytest.raises(ValueError, match="unknown detector"):
        skab.run(skab_dir, "no-such-tier")


@pytest.mark.slow
def test_full_benchmark_tier_figures(skab_dir: Path) -> None:
    report = skab.run(skab_dir, "default")
    assert report["detector"] == skab.DEFAULT_TIER
    assert report["f1"] > 0.78 and report["far"] < 13.55 and report["mar"] < 28.02
    assert report["nab"]["standard"] > 32.42
    assert report["protocol"]["files"] == 34
    figures = report["tiers"]
    assert abs(figures["int8"]["f1"] - figures["teacher"]["f1"]) <= 0.02
    assert report["throughput"]["int8_vs_teacher"] >= 2.0
