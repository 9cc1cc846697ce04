"""Isolation forest in the bundle format: ONNX equals numpy, contributions, a signed bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models import iforest, train
from models.bundle import load_bundle
from models.errors import TrainingError
from models.skab_forest import IsolationForest
from monitor.features import offline_features
from sim.plant import normal_run
from tests.models.test_train import SECONDS, _cfg


@pytest.fixture(scope="module")
def fitted() -> tuple[iforest.IforestModel, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 6)).astype(np.float32)
    return iforest.fit_iforest(x, n_trees=40, seed=3), x


def test_scores_match_the_reference_forest(fitted: tuple[iforest.IforestModel, np.ndarray]) -> None:
    model, x = fitted
    q = np.random.default_rng(2).normal(size=(200, 6)).astype(np.float32) * 2
    ours, _ = model.score(q)
    ref = IsolationForest.fit(x.astype(np.float64), 40, 256, 3).score(q.astype(np.float64))
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_onnx_equals_numpy_and_contributions_average_to_the_score(
    fitted: tuple[iforest.IforestModel, np.ndarray],
) -> None:
    model, _ = fitted
    q = np.random.default_rng(4).normal(size=(64, 6)).astype(np.float32) * 3
    session = ort.InferenceSession(iforest.to_onnx(model), providers=["CPUExecutionProvider"])
    score, contrib = session.run(None, {"features": q})
    want_score, want_contrib = model.score(q)
    np.testing.assert_allclose(score, want_score, atol=1e-5)
    np.testing.assert_allclose(contrib, want_contrib, atol=1e-5)
    np.testing.assert_allclose(contrib.mean(axis=1), score, atol=1e-5)


def test_an_outlier_scores_high_and_its_feature_leads(
    fitted: tuple[iforest.IforestModel, np.ndarray],
) -> None:
    model, _ = fitted
    normal = np.zeros((1, 6), dtype=np.float32)
    odd = normal.copy()
    odd[0, 4] = 9.0
    s_normal, _ = model.score(normal)
    s_odd, contrib = model.score(odd)
    s_far, _ = model.score(np.full((1, 6), 5.0, dtype=np.float32))
    assert s_far[0] > 0.6 > s_normal[0]
    assert s_odd[0] > s_normal[0]
    assert int(np.argmax(contrib[0])) == 4


def test_refuses_too_little_data() -> None:
    with pytest.raises(TrainingError, match="2-D table"):
        iforest.fit_iforest(np.zeros((1, 3)))


def test_iforest_bundle(tmp_path: Path) -> None:
    cfg = _cfg()
    path = train.build_default_bundle(cfg, tmp_path / "if", seconds=SECONDS, kind="iforest")
    bundle = load_bundle(path)
    assert bundle.kind == "iforest" and bundle.manifest["metrics"]["trees"] == iforest.DEFAULT_TREES
    with bundle.scorer(providers="cpu") as scorer:
        scores, _ = scorer.score(offline_features(normal_run(cfg.sources[0], cfg.sim, 10.0, run=998),
                                                  train.spec_for(cfg)))
    assert np.mean(scores > bundle.threshold) < 0.01
