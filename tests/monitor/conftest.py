"""Monitor test fixtures: a real ONNX model written as a signed bundle (and as a three-tier
bundle), and ipc endpoints.

The model is tiny but real: a standardizer fitted on normal simulated features, squared
z-scores as contributions and their mean as the score, built with onnx.helper and written by
models.bundle, so the monitor loads it exactly as it loads a trained one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.bundle import write_bundle, write_tiered_bundle
from monitor.features import offline_features
from tests.monitor.rig import RATE, SPEC, plant_signal


def _model_bytes(mean: np.ndarray, std: np.ndarray, name: str = "tiny_zscore") -> bytes:
    f = mean.shape[0]
    nodes = [
        helper.make_node("Sub", ["features", "mu"], ["centred"]),
        helper.make_node("Div", ["centred", "sigma"], ["z"]),
        helper.make_node("Mul", ["z", "z"], ["contrib"]),
        helper.make_node("ReduceMean", ["contrib"], ["score"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", f])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("contrib", TensorProto.FLOAT, ["N", f])],
        initializer=[numpy_helper.from_array(mean.astype(np.float32), "mu"),
                     numpy_helper.from_array(std.astype(np.float32), "sigma")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model, full_check=True)
    data: bytes = model.SerializeToString()
    return data


@dataclass(frozen=True)
class TinyBundle:
    path: Path
    threshold: float
    onnx_bytes: bytes


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    train = offline_features(plant_signal(int(20 * RATE), seed=1), SPEC).astype(np.float64)
    mean, std = train.mean(axis=0), np.maximum(train.std(axis=0), 1e-3)
    held_out = offline_features(plant_signal(int(5 * RATE), seed=2), SPEC).astype(np.float64)
    scores = (((held_out - mean) / std) ** 2).mean(axis=1)
    threshold = float(3.0 * scores.max())
    onnx_bytes = _model_bytes(mean, std)
    n = SPEC.n_features
    manifest = {
        "kind": "pca",
        "feature_spec": SPEC.to_dict(),
        "feature_names": SPEC.names(),
        "inputs": {"features": [None, n]},
        "outputs": {"score": [None], "contrib": [None, n]},
        "threshold": threshold,
        "calibration": {"target_far": 0.001, "n_windows": int(held_out.shape[0]),
                        "score_quantiles": {"max": float(scores.max())}},
        "training": {"data_sha256": "0" * 64, "seconds": 20.0, "seed": 1},
        "metrics": {},
    }
    path = write_bundle(tmp_path_factory.mktemp("bundle") / "tiny", onnx_bytes, manifest)
    return TinyBundle(path, threshold, onnx_bytes)



@dataclass(frozen=True)
class TieredBundle:
    path: Path
    thresholds: dict[str, float]  # per tier


TIER_SCALE = {"teacher": 1.0, "student": 1.25, "int8": 1.5}


@pytest.fixture(scope="session")
def tiered_bundle(tmp_path_factory: pytest.TempPathFactory) -> TieredBundle:
    """Three tiers of the same z-score model (distinct graphs, distinct thresholds); the
    default tier is int8, as ``tripwire train`` writes it."""
    train = offline_features(plant_signal(int(20 * RATE), seed=1), SPEC).astype(np.float64)
    mean, std = train.mean(axis=0), np.maximum(train.std(axis=0), 1e-3)
    held_out = offline_features(plant_signal(int(5 * RATE), seed=2), SPEC).astype(np.float64)
    base = float(3.0 * (((held_out - mean) / std) ** 2).mean(axis=1).max())
    n = SPEC.n_features
    graphs = {name: _model_bytes(mean, std, f"tiny_{name}") for name in TIER_SCALE}
    thresholds = {name: base * k for name, k in TIER_SCALE.items()}
    tiers = {name: {"threshold": thresholds[name],
                    "calibration": {"target_far": 0.001, "n_windows": int(held_out.shape[0]),
                                    "score_quantiles": {"max": base / 3}}}
             for name in TIER_SCALE}
    manifest = {
        "kind": "tiers",
        "feature_spec": SPEC.to_dict(),
        "inputs": {"features": [None, n]},
        "outputs": {"score": [None], "contrib": [None, n]},
        "training": {"data_sha256": "0" * 64, "seconds": 20.0, "seed": 1},
        "metrics": {},
    }
    path = write_tiered_bundle(tmp_path_factory.mktemp("tiered") / "tiers", graphs, tiers,
                               manifest, "int8")
    return TieredBundle(path, thresholds)


class SwitchedScorer:
    """A real scorer with a switch: while ``failing`` is set, every call raises."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.model_id, self.n_features = inner, inner.model_id, inner.n_features
        self.failing = threading.Event()

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.failing.is_set():
            raise RuntimeError("injected inference failure")
        result: tuple[np.ndarray, np.ndarray] = self.inner.score(x)
        return result

    def warm(self, max_batch: int) -> None:
        self.inner.warm(max_batch)
