"""The plain numpy features agree with the monitor's numba kernels on the same windows."""

from __future__ import annotations

import numpy as np

from bench.model import feature_spec
from bench.numpy_features import NumpyWindow, numpy_offline_features
from bench.signals import SignalBank
from monitor.features import STATS, offline_features
from tests.bench.conftest import SMALL

SPEC = feature_spec(SMALL)
PER = SPEC.per_channel


def _split(rows: np.ndarray) -> np.ndarray:
    return rows.astype(np.float64).reshape(rows.shape[0], len(SPEC.channels), PER)


def test_same_windows_stats_agree_band_energies_close(small_bank: SignalBank) -> None:
    signal = small_bank.block(0, 0, 40)
    a, b = offline_features(signal, SPEC), numpy_offline_features(signal, SPEC)
    assert a.shape == b.shape == (40 - SPEC.blocks + 1, SPEC.n_features)
    sa, sb = _split(a), _split(b)
    k = len(STATS)
    np.testing.assert_allclose(sb[..., :k], sa[..., :k], rtol=1e-4, atol=1e-5)
    # Band energies: an FFT of the window alone vs a filter bank that has run all along.
    energy_ratio = 10.0 ** (sb[..., k:] - sa[..., k:])
    assert np.median(np.abs(energy_ratio - 1.0)) < 0.3
    assert np.all((energy_ratio > 0.2) & (energy_ratio < 5.0))


def test_any_chunking_gives_the_same_rows(small_bank: SignalBank) -> None:
    signal = small_bank.block(1, 0, 20)
    whole = numpy_offline_features(signal, SPEC)
    w = NumpyWindow(SPEC)
    parts = [w.push(signal[:, i : i + 77]) for i in range(0, signal.shape[1], 77)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_constant_channel_and_a_tone_in_band() -> None:
    n = 4 * SPEC.window
    t = np.arange(n) / SPEC.sample_rate_hz
    signal = np.zeros((len(SPEC.channels), n), np.float32)
    signal[0] = 5.0  # constant: crest and kurtosis 0
    signal[1] = np.sin(2 * np.pi * 1000.0 * t)  # inside band (800, 1800): mean square 1/2
    row = _split(numpy_offline_features(signal, SPEC))[-1]
    k = len(STATS)
    assert row[0, 3] == 0.0 and row[0, 4] == 0.0
    assert row[0, k:].max() < -6  # no band energy (log10 near the floor)
    bands = [f"{lo:g}" for lo, _ in SPEC.bands_hz]
    mid = bands.index("800")
    assert abs(10.0 ** row[1, k + mid] - 0.5) < 0.05
    assert row[1, k + mid] > row[1, k:].max() - 1e-9
