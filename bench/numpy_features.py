"""A plain numpy implementation of the monitor's window features: the baseline numba must beat.

Pure core (numpy only): never reads a clock, never touches a socket. What a competent engineer
would write without numba: a ring of the last W samples per source, and at every hop the whole
window recomputed with vectorised numpy, in float64:

- mean, rms, p2p, crest, kurt exactly as ``monitor.features`` defines them (a constant
  channel has crest 0 and kurtosis 0), so they agree with the numba kernels to rounding;
- band energies from one real FFT of the Hann-tapered, mean-removed window, weighted by the
  same 4th-order Butterworth band-pass responses (``monitor.bands``) that the numba filter
  bank runs, and scaled by the taper's power so that a stationary signal's mean square comes
  out unbiased. The numba bank filters the stream continuously (its state carries history
  from before the window); the FFT sees the window alone, so band energies differ by a few
  per cent to tens of per cent, and the bench reports that difference rather than hiding it.

The feature order is the monitor's: channel-major, ``mean, rms, p2p, crest, kurt, band_*``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from monitor.bands import band_sections
from monitor.features import FeatureSpec

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_ENERGY_FLOOR = 1e-12  # the monitor's floor under log10


def band_power_weights(spec: FeatureSpec) -> F64:
    """(bands, W//2 + 1): |H_b(f_k)|² times the one-sided fold, over W·Σ taper², per rfft bin."""
    w = spec.window
    taper = np.hanning(w)
    omega = 2.0 * np.pi * np.fft.rfftfreq(w)  # rad/sample, 0..pi
    zi = np.exp(-1j * omega)
    fold = np.full(omega.size, 2.0)
    fold[0] = 1.0
    if w % 2 == 0:
        fold[-1] = 1.0
    out = np.empty((len(spec.bands_hz), omega.size), np.float64)
    for b, (lo, hi) in enumerate(spec.bands_hz):
        h = np.ones(omega.size, np.complex128)
        for g, a1, a2 in band_sections(lo, hi, spec.sample_rate_hz):
            h *= g * (1.0 - zi * zi) / (1.0 + a1 * zi + a2 * zi * zi)
        out[b] = np.abs(h) ** 2 * fold / (w * np.sum(taper * taper))
    return out


def window_features(x: npt.NDArray[np.floating], taper: F64, weights: F64) -> F32:
    """One feature row of a whole window ``x`` (channels, W), oldest sample first."""
    x64 = np.asarray(x, dtype=np.float64)
    mean = x64.mean(axis=1)
    d = x64 - mean[:, None]
    d2 = d * d
    var = d2.mean(axis=1)
    ok = (var > 1e-12 * mean * mean) & (var > 0.0)
    safe = np.where(ok, var, 1.0)
    stats = np.empty((x64.shape[0], 5 + weights.shape[0]), np.float64)
    stats[:, 0] = mean
    stats[:, 1] = np.sqrt(mean * mean + var)
    stats[:, 2] = x64.max(axis=1) - x64.min(axis=1)
    stats[:, 3] = np.where(ok, np.abs(d).max(axis=1) / np.sqrt(safe), 0.0)
    stats[:, 4] = np.where(ok, (d2 * d2).mean(axis=1) / (safe * safe) - 3.0, 0.0)
    spectrum = np.fft.rfft(d * taper, axis=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    stats[:, 5:] = np.log10(power @ weights.T + _ENERGY_FLOOR)
    row: F32 = stats.astype(np.float32).ravel()
    return row


class NumpyWindow:
    """Per-source state of the plain implementation: a ring of the last W samples.

    ``push`` takes samples (channels, n), any n, and returns a row for every hop boundary
    it crosses once the first window is full, oldest first. Not thread-safe."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._ring = np.zeros((len(spec.channels), spec.window), np.float32)
        self._pos = 0  # next column to write
        self._seen = 0  # samples pushed since the start
        self._taper = np.hanning(spec.window)
        self._weights = band_power_weights(spec)

    def _write(self, chunk: F32) -> None:
        n = chunk.shape[1]
        w = self.spec.window
        first = min(n, w - self._pos)
        self._ring[:, self._pos : self._pos + first] = chunk[:, :first]
        if n > first:
            self._ring[:, : n - first] = chunk[:, first:]
        self._pos = (self._pos + n) % w

    def push(self, samples: npt.NDArray[np.floating]) -> F32:
        """New rows (k, n_features) float32; k is 0 until a window is full."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(self.spec.channels):
            raise ValueError(f"samples: expected ({len(self.spec.channels)}, n), got {x.shape}")
        hop, w = self.spec.hop, self.spec.window
        rows: list[F32] = []
        i = 0
        while i < x.shape[1]:
            take = min(hop - self._seen % hop, x.shape[1] - i)
            self._write(x[:, i : i + take])
            self._seen += take
            i += take
            if self._seen % hop == 0 and self._seen >= w:
                ordered = np.concatenate((self._ring[:, self._pos :], self._ring[:, : self._pos]),
                                         axis=1)
                rows.append(window_features(ordered, self._taper, self._weights))
        if not rows:
            return np.empty((0, self.spec.n_features), np.float32)
        return np.stack(rows)


def numpy_offline_features(signal: npt.NDArray[np.floating], spec: FeatureSpec) -> F32:
    """(channels, T) -> (n_windows, n_features), the same windows as ``offline_features``."""
    return NumpyWindow(spec).push(signal)
