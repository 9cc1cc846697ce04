"""Test data shared by the models tests: a small feature spec, synthetic normal rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.manifest import CONTRIB_NAME, INPUT_NAME, SCORE_NAME
from monitor.features import FeatureSpec

SPEC = FeatureSpec(channels=("a", "b"), sample_rate_hz=6400.0, window=256, hop=64)
F = SPEC.n_features


def synthetic_normal(n: int, seed: int) -> np.ndarray:
    """Correlated 'normal' feature rows: three latent factors mixed into F features + noise."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1234).normal(size=(3, F))  # the same plant for every seed
    latent = rng.normal(size=(n, 3))
    x = latent @ mix + 0.05 * rng.normal(size=(n, F)) + np.linspace(-2, 5, F)
    return x.astype(np.float32)


def manifest_for(kind: str, threshold: float, n_features: int = F) -> dict[str, Any]:
    return {
        "kind": kind,
        "feature_spec": SPEC.to_dict(),
        "inputs": {INPUT_NAME: [None, n_features]},
        "outputs": {SCORE_NAME: [None], CONTRIB_NAME: [None, n_features]},
        "threshold": threshold,
        "calibration": {"target_far": 1e-3, "n_windows": 2000, "score_quantiles": {}},
        "training": {"data_sha256": "0" * 64, "seconds": 1.0, "seed": 0},
        "metrics": {},
    }
