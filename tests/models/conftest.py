"""Shared fixtures: a small feature spec, synthetic normal features, trained tiny models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models import autoencoder, calibrate, export, pca
from models.bundle import DEV_KEY, write_bundle
from tests.models.common import manifest_for, synthetic_normal


@pytest.fixture(scope="session")
def normal_data() -> dict[str, np.ndarray]:
    return {
        "train": synthetic_normal(3000, 1),
        "val": synthetic_normal(800, 2),
        "calib": synthetic_normal(2000, 3),
        "test": synthetic_normal(2000, 4),
    }


@pytest.fixture(scope="session")
def ae_model(normal_data: dict[str, np.ndarray]) -> autoencoder.AutoencoderModel:
    cfg = autoencoder.AeTrainConfig(max_epochs=40, patience=5, seed=0)
    model, _ = autoencoder.train_autoencoder(normal_data["train"], normal_data["val"], cfg)
    return model


@pytest.fixture(scope="session")
def pca_model(normal_data: dict[str, np.ndarray]) -> pca.PcaModel:
    return pca.fit_pca(normal_data["train"])


@pytest.fixture(scope="session")
def ae_onnx(ae_model: autoencoder.AutoencoderModel) -> bytes:
    return export.autoencoder_to_onnx(ae_model)


@pytest.fixture
def make_bundle(
    tmp_path: Path, ae_onnx: bytes, ae_model: autoencoder.AutoencoderModel,
    normal_data: dict[str, np.ndarray],
) -> Callable[..., Path]:
    threshold = calibrate.calibrate(ae_model.score(normal_data["calib"])[0]).threshold

    def make(name: str = "bundle", key: bytes = DEV_KEY, **overrides: Any) -> Path:
        manifest = manifest_for("autoencoder", threshold)
        manifest.update(overrides)
        return write_bundle(tmp_path / name, ae_onnx, manifest, key)

    return make
