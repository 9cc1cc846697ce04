"""Feature standardization shared by every model kind (pure core, numpy only).

z = clip((x - mean) / std, -clip_z, clip_z). The band-energy features are already
log10 energies, and the remaining ones (mean, rms, peak-to-peak, crest, kurtosis) are
well-scaled after standardizing, so no further log transform is applied. The clip keeps one
absurd input (a sensor glitch, a saturated channel) from driving the network into a region
it never saw; the clipped value is still far outside normal, so the score stays high.

The exported ONNX graph applies exactly these operations (Sub, Div, Clip) in float32, and
``apply`` mirrors that order so numpy and onnxruntime agree to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.errors import TrainingError

F32 = npt.NDArray[np.float32]

DEFAULT_CLIP_Z = 10.0
# A feature that barely moves in normal data (a temperature mean over a short window) must
# not turn measurement noise into huge z values: its std is floored relative to its scale.
RELATIVE_STD_FLOOR = 1e-4
ABSOLUTE_STD_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class Standardizer:
    mean: F32
    std: F32
    clip_z: float = DEFAULT_CLIP_Z

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, x: npt.NDArray[np.floating], clip_z: float = DEFAULT_CLIP_Z) -> Standardizer:
        if x.ndim != 2 or x.shape[0] < 2:
            raise TrainingError(f"need a (windows, features) matrix with >= 2 rows, got {x.shape}")
        if not np.all(np.isfinite(x)):
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise TrainingError(f"training features contain {bad} non-finite values")
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=0)
        std = x64.std(axis=0)
        floor = np.maximum(RELATIVE_STD_FLOOR * np.abs(mean), ABSOLUTE_STD_FLOOR)
        std = np.maximum(std, floor)
        return cls(mean.astype(np.float32), std.astype(np.float32), float(clip_z))

    def apply(self, x: npt.NDArray[np.floating]) -> F32:
        z = (np.asarray(x, dtype=np.float32) - self.mean) / self.std
        clipped: F32 = np.clip(z, np.float32(-self.clip_z), np.float32(self.clip_z))
        return clipped
