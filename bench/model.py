"""The bench's model: PCA T²/Q fitted on the signal bank's normal features, exported to ONNX.

The bench measures cost, so its model is the project's classical baseline (models.pca) at the
bench's feature width (channels x 9 features): small, deterministic, and exported with the
same graph builder as shipped bundles. The threshold flags a window whose score exceeds the
highest normal score by half again (the bank's normal signal is a loop, so the live stream's
normal windows are the fitted ones).

Builds arrays and bytes only: never opens an inference session, never reads a clock, never
touches a socket or a file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.errors import BenchConfigError
from bench.numpy_features import numpy_offline_features
from bench.signals import BenchLoad, SignalBank
from models.export import pca_to_onnx
from models.pca import fit_pca
from monitor.errors import FeatureSpecError
from monitor.features import FeatureSpec, offline_features

F32 = npt.NDArray[np.float32]

THRESHOLD_MARGIN = 1.5


@dataclass(frozen=True, slots=True)
class BenchModel:
    onnx_bytes: bytes
    n_features: int
    threshold: float  # a window scoring above this is flagged
    rows: F32  # the normal feature rows it was fitted on, machine after machine


def feature_spec(load: BenchLoad) -> FeatureSpec:
    """The monitor's feature spec for the load: its channels, rate, window and hop, the
    default bands."""
    try:
        return FeatureSpec(load.channel_names(), load.rate_hz, load.window, load.hop)
    except FeatureSpecError as e:
        raise BenchConfigError(f"load: {e}") from None


def normal_rows(bank: SignalBank, plain: bool = False) -> F32:
    """One loop's worth of windows (``loop_frames`` rows) per machine: the monitor's numba
    features, or with ``plain`` the numpy baseline's (whose band energies differ a little)."""
    load = bank.load
    spec = feature_spec(load)
    features = numpy_offline_features if plain else offline_features
    frames = bank.loop_frames + load.window // load.frame_samples
    rows = [features(bank.block(m, 0, frames), spec)[: bank.loop_frames]
            for m in range(load.machines)]
    return np.concatenate(rows, axis=0)


def build_model(bank: SignalBank, plain: bool = False) -> BenchModel:
    """The bench model fitted on the bank's normal windows. ``plain``: fitted on the numpy
    baseline's features, for the plain pipeline (a model must see the features it scores)."""
    rows = normal_rows(bank, plain)
    pca = fit_pca(rows)
    scores, _ = pca.score(rows)
    threshold = THRESHOLD_MARGIN * float(np.max(scores))
    return BenchModel(pca_to_onnx(pca), pca.n_features, threshold, rows)
