"""The ``Scorer`` seam, and a numpy implementation of it (pure core).

A scorer turns a batch of feature rows into an anomaly score per row and a contribution per
feature; deciding what a score means is the monitor's decision rules' job, not the scorer's.
``OnnxScorer`` (scorer.py) is the runtime implementation; ``NumpyScorer`` runs a trained
model's own numpy forward pass: the reference the ONNX export is tested against, and a
second implementation the scorer conformance suite runs over. Nothing here imports
onnxruntime, so the monitor's core can type against ``Scorer`` freely.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from models.errors import InferenceError


@runtime_checkable
class Scorer(Protocol):
    model_id: bytes  # 8 raw bytes
    n_features: int

    def score(
        self, x: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(B, F) float32 -> score (B,) float32, contrib (B, F) float32."""
        ...

    def warm(self, max_batch: int) -> None:
        """Run every batch size 1..max_batch once so no shape pays a first-call cost later."""
        ...


class ScoringModel(Protocol):
    """What NumpyScorer needs of a trained model (AutoencoderModel, PcaModel)."""

    @property
    def n_features(self) -> int: ...

    def score(
        self, x: npt.NDArray[np.floating]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...


def check_batch(x: npt.ArrayLike, n_features: int) -> npt.NDArray[np.float32]:
    """A C-contiguous float32 (B, n_features) view or copy; InferenceError on a wrong shape."""
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise InferenceError(f"expected a (batch, {n_features}) array, got shape {arr.shape}")
    return arr


class NumpyScorer:
    def __init__(self, model: ScoringModel, model_id: bytes) -> None:
        self.model = model
        self.model_id = model_id
        self.n_features = model.n_features
        self.degraded = False

    def score(
        self, x: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        arr = check_batch(x, self.n_features)
        return self.model.score(arr)

    def warm(self, max_batch: int) -> None:
        for b in range(1, max_batch + 1):
            self.score(np.zeros((b, self.n_features), dtype=np.float32))
