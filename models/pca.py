"""PCA baseline: Hotelling T² plus Q (squared prediction error), kept for comparison.

Pure core, numpy only. On standardized features z, with the k leading principal directions P
(F, k) and their variances lam (k,):
    t  = z P                      scores in the model subspace
    T² = sum(t² / lam)            distance inside the subspace
    r  = z - t Pᵀ                 residual outside it;  Q = sum(r²)
    score = (T² / mean_T² + Q / mean_Q) / 2      (means over training data; normal ≈ 1)
Per-feature contributions average to the score:
    contrib_j = F/2 * (r_j² / mean_Q + z_j * (t lam⁻¹ Pᵀ)_j / mean_T²)
The T² part of a contribution can be slightly negative (the decomposition is exact, not a
sum of squares); ranking features by it is still meaningful. The exported ONNX graph
computes the same expressions in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.errors import TrainingError
from models.standardize import F32, Standardizer

DEFAULT_VARIANCE_KEPT = 0.95


@dataclass(frozen=True, slots=True)
class PcaModel:
    standardizer: Standardizer
    components: F32  # (F, k)
    t2_weights: F32  # (k, F): lam⁻¹ Pᵀ
    q_factor: float  # F / (2 mean_Q)
    t2_factor: float  # F / (2 mean_T²)

    @property
    def n_features(self) -> int:
        return self.standardizer.n_features

    @property
    def n_components(self) -> int:
        return int(self.components.shape[1])

    def score(self, x: npt.NDArray[np.floating]) -> tuple[F32, F32]:
        z = self.standardizer.apply(x)
        t = z @ self.components
        r = z - t @ self.components.T
        u = t @ self.t2_weights
        terms = (r * r) * np.float32(self.q_factor) + (z * u) * np.float32(self.t2_factor)
        contrib: F32 = terms.astype(np.float32, copy=False)
        score: F32 = contrib.mean(axis=1, dtype=np.float32)
        return score, contrib


def fit_pca(
    x_train: npt.NDArray[np.floating], variance_kept: float = DEFAULT_VARIANCE_KEPT
) -> PcaModel:
    if not 0 < variance_kept < 1:
        raise TrainingError(f"variance_kept must be in (0, 1), got {variance_kept}")
    std = Standardizer.fit(x_train)
    z = std.apply(x_train).astype(np.float64)
    n, f = z.shape
    if f < 2:
        raise TrainingError("PCA needs at least two features")
    cov = (z.T @ z) / max(n - 1, 1)
    lam, vecs = np.linalg.eigh(cov)  # ascending
    lam, vecs = lam[::-1], vecs[:, ::-1]
    lam = np.maximum(lam, 1e-9)
    frac = np.cumsum(lam) / np.sum(lam)
    k = int(np.searchsorted(frac, variance_kept) + 1)
    k = min(max(k, 1), f - 1)  # keep a residual subspace, or Q is always zero
    p = vecs[:, :k]
    # Fix each direction's sign so the same data always gives the same model bytes.
    p = p * np.where(p[np.argmax(np.abs(p), axis=0), np.arange(k)] < 0, -1.0, 1.0)
    t = z @ p
    t2 = np.sum(t * t / lam[:k], axis=1)
    q = np.sum((z - t @ p.T) ** 2, axis=1)
    mean_t2 = max(float(np.mean(t2)), 1e-9)
    mean_q = max(float(np.mean(q)), 1e-9)
    return PcaModel(
        standardizer=std,
        components=p.astype(np.float32),
        t2_weights=(p / lam[:k]).T.astype(np.float32),
        q_factor=f / (2.0 * mean_q),
        t2_factor=f / (2.0 * mean_t2),
    )
