"""Incremental sliding-window features per source (pure core, numba kernels).

Each hop of H new samples is reduced once into a block of per-channel statistics (count,
mean, central moments M2..M4, min, max, band sums of squares). A ring of W/H blocks is merged
oldest to newest with the pairwise moment formulas of Chan et al. / Pebay, so a window costs
O(W/H) merges per hop, never a pass over W samples. Per channel, in this order:

    mean, rms, p2p, crest = max|x - mean| / std, kurt = excess kurtosis (0 for a Gaussian),
    band_<lo>_<hi> = log10(mean square of the band-passed signal + 1e-12), one per band

A constant channel (zero variance) has crest 0 and kurtosis 0. Band energies come from a
streaming bank of 4th-order Butterworth band-pass filters (two biquads per band, bilinear
transform with pre-warped edges) because numba cannot call np.fft, and a filter bank gives the
same energies per hop without a transform over the whole window. Filter state runs on across
hops; after ``reset()`` it starts from the steady state of the first sample, so a channel's
level does not ring the filters.

``offline_features`` (training) pushes a whole recording through the same kernels, so it gives
the same numbers as streaming in any chunk sizes.

Hot path: every kernel is compiled with ``cache=True`` and ``nogil=True`` and ``warm`` compiles
them for every input the monitor sees before the first frame; pushing a float32 C-contiguous
frame allocates nothing (all state is preallocated per source, and rows land in a buffer that
``pop_into`` copies out). This module never reads a clock, never touches a socket and never logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from monitor.bands import NYQUIST_CLAMP, SECTIONS, band_sections
from monitor.errors import FeatureSpecError

STATS = ("mean", "rms", "p2p", "crest", "kurt")
SPEC_VERSION = 1
DEFAULT_BANDS_HZ: tuple[tuple[float, float], ...] = (
    (10.0, 200.0), (200.0, 800.0), (800.0, 1800.0), (1800.0, 3000.0),
)
_ENERGY_FLOOR = 1e-12

# Block record fields (the middle axis of the block ring, blocks x fields x channels).
_N, _MEAN, _M2, _M3, _M4, _MIN, _MAX, _SS0 = range(8)

F32Array = npt.NDArray[np.float32]
F64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    channels: tuple[str, ...]
    sample_rate_hz: float
    window: int
    hop: int
    bands_hz: tuple[tuple[float, float], ...] = DEFAULT_BANDS_HZ

    def __post_init__(self) -> None:
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise FeatureSpecError(f"channels: need distinct names, got {self.channels!r}")
        if not (self.sample_rate_hz > 0 and math.isfinite(self.sample_rate_hz)):
            raise FeatureSpecError(f"sample_rate_hz: must be > 0, got {self.sample_rate_hz!r}")
        if self.hop <= 0 or self.window <= 0 or self.window % self.hop:
            raise FeatureSpecError(
                f"window: must be a positive multiple of hop, got {self.window}/{self.hop}")
        for lo, hi in self.bands_hz:
            if not 0 < lo < min(hi, NYQUIST_CLAMP * self.sample_rate_hz):
                raise FeatureSpecError(
                    f"bands_hz: band ({lo}, {hi}) is empty below Nyquist at {self.sample_rate_hz} Hz")

    @property
    def per_channel(self) -> int:
        return len(STATS) + len(self.bands_hz)

    @property
    def n_features(self) -> int:
        return len(self.channels) * self.per_channel

    @property
    def blocks(self) -> int:
        return self.window // self.hop

    def names(self) -> list[str]:
        """Feature names, channel-major: ``vib_x.mean, vib_x.rms, ..., vib_y.mean, ...``."""
        per = list(STATS) + [f"band_{lo:g}_{hi:g}" for lo, hi in self.bands_hz]
        return [f"{ch}.{name}" for ch in self.channels for name in per]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "channels": list(self.channels),
            "sample_rate_hz": self.sample_rate_hz,
            "window": self.window,
            "hop": self.hop,
            "bands_hz": [[lo, hi] for lo, hi in self.bands_hz],
            "kurtosis": "excess",
            "features": self.names(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Parse a manifest's spec; the feature list, when present, must match ours exactly."""
        if not isinstance(d, dict):
            raise FeatureSpecError("feature spec: expected a table")
        if d.get("version", SPEC_VERSION) != SPEC_VERSION:
            raise FeatureSpecError(f"version: unsupported feature spec version {d.get('version')!r}")
        try:
            spec = cls(
                channels=tuple(str(c) for c in d["channels"]),
                sample_rate_hz=float(d["sample_rate_hz"]),
                window=int(d["window"]),
                hop=int(d["hop"]),
                bands_hz=tuple((float(lo), float(hi)) for lo, hi in d.get("bands_hz", DEFAULT_BANDS_HZ)),
            )
        except FeatureSpecError:
            raise
        # OverflowError: float() of an integer beyond float range, int() of an infinite float
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise FeatureSpecError(f"feature spec: {type(e).__name__}: {e}") from None
        if d.get("kurtosis", "excess") != "excess":
            raise FeatureSpecError(f"kurtosis: only 'excess' is computed, got {d.get('kurtosis')!r}")
        names = d.get("features")
        if names is not None and (not isinstance(names, list) or names != spec.names()):
            raise FeatureSpecError("features: the manifest's feature list differs from this monitor's")
        return spec


def _filter_bank(spec: FeatureSpec) -> F64Array:
    bank = np.zeros((max(len(spec.bands_hz), 1), SECTIONS, 3), dtype=np.float64)
    for b, (lo, hi) in enumerate(spec.bands_hz):
        bank[b] = band_sections(lo, hi, spec.sample_rate_hz)
    return bank[: len(spec.bands_hz)]


# --- kernels ---------------------------------------------------------------------------
#
# Layout: channels are the last (contiguous) axis of every state array, and the pending hop
# is held transposed (time-major, float32, which holds the samples exactly), so a kernel's
# inner loop runs across channels and the compiler turns it into SIMD lanes (8 float64 to an
# AVX-512 vector, 4 with AVX2) without reordering any channel's own arithmetic: a channel's
# sums still run sample by sample in time order. Each pass takes UNROLL samples per visit to a channel,
# so its running state is loaded and stored once per UNROLL samples, not once per sample.
# error_model="numpy" drops zero-division checks, which would keep the loops scalar (every
# divisor is a sample count, or guarded). Only the band filters let the compiler fuse a
# multiply and an add into one FMA (fastmath "contract": one rounding instead of two, no
# change to NaN or infinity handling); the statistics keep plain arithmetic, so they give
# the same numbers as one channel at a time.

UNROLL = 4


@njit(cache=True, nogil=True, error_model="numpy")
def _reduce_block(pend: F32Array, rec: F64Array, bank: F64Array, zs: F64Array) -> None:
    """Reduce one full hop ``pend`` (H, C) into ``rec`` (7 + B, C); advance the filters."""
    h, n_ch = pend.shape
    for c in range(n_ch):
        rec[_N, c] = h
        rec[_MEAN, c] = 0.0
        rec[_MIN, c] = pend[0, c]
        rec[_MAX, c] = pend[0, c]
        rec[_M2, c] = 0.0
        rec[_M3, c] = 0.0
        rec[_M4, c] = 0.0
    t = 0
    while t + UNROLL <= h:
        _sum_min_max(pend, t, UNROLL, rec)
        t += UNROLL
    for tail in range(t, h):
        _sum_min_max(pend, tail, 1, rec)
    for c in range(n_ch):
        rec[_MEAN, c] = rec[_MEAN, c] / h
    t = 0
    while t + UNROLL <= h:
        _moments(pend, t, UNROLL, rec)
        t += UNROLL
    for tail in range(t, h):
        _moments(pend, tail, 1, rec)
    for b in range(bank.shape[0]):
        _band(pend, rec[_SS0 + b], bank[b], zs[b])


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _sum_min_max(pend: F32Array, t0: int, steps: int, rec: F64Array) -> None:
    for c in range(pend.shape[1]):
        s, lo, hi = rec[_MEAN, c], rec[_MIN, c], rec[_MAX, c]
        for t in range(t0, t0 + steps):
            x = np.float64(pend[t, c])
            s += x
            lo = min(lo, x)
            hi = max(hi, x)
        rec[_MEAN, c], rec[_MIN, c], rec[_MAX, c] = s, lo, hi


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _moments(pend: F32Array, t0: int, steps: int, rec: F64Array) -> None:
    for c in range(pend.shape[1]):
        mean, m2, m3, m4 = rec[_MEAN, c], rec[_M2, c], rec[_M3, c], rec[_M4, c]
        for t in range(t0, t0 + steps):
            d = pend[t, c] - mean
            d2 = d * d
            m2 += d2
            m3 += d2 * d
            m4 += d2 * d2
        rec[_M2, c], rec[_M3, c], rec[_M4, c] = m2, m3, m4


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _band(pend: F32Array, ss: F64Array, sec: F64Array, z: F64Array) -> None:
    """One band over a hop; ``ss`` (C,) gets the output's sum of squares, ``z``
    (SECTIONS, 2, C) carries the filter state across hops."""
    h = pend.shape[0]
    for c in range(pend.shape[1]):
        ss[c] = 0.0
    t = 0
    while t + UNROLL <= h:
        _band_steps(pend, t, UNROLL, ss, sec, z)
        t += UNROLL
    for tail in range(t, h):
        _band_steps(pend, tail, 1, ss, sec, z)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _band_steps(pend: F32Array, t0: int, steps: int, ss: F64Array, sec: F64Array,
                z: F64Array) -> None:
    """Two sections of transposed direct form II, numerator g * (1 - z^-2), exactly as
    SECTIONS == 2 designs them."""
    g0, a10, a20 = sec[0, 0], sec[0, 1], sec[0, 2]
    g1, a11, a21 = sec[1, 0], sec[1, 1], sec[1, 2]
    for c in range(pend.shape[1]):
        p0, q0, p1, q1, s = z[0, 0, c], z[0, 1, c], z[1, 0, c], z[1, 1, c], ss[c]
        for t in range(t0, t0 + steps):
            v = np.float64(pend[t, c])
            y = g0 * v + p0
            p0 = q0 - a10 * y
            q0 = -g0 * v - a20 * y
            w = g1 * y + p1
            p1 = q1 - a11 * w
            q1 = -g1 * y - a21 * w
            s += w * w
        z[0, 0, c], z[0, 1, c], z[1, 0, c], z[1, 1, c], ss[c] = p0, q0, p1, q1, s


@njit(cache=True, nogil=True, error_model="numpy")
def _prime(samples: F32Array, at: int, bank: F64Array, zs: F64Array) -> None:
    """Filter state as if each channel had sat at its first value forever (output 0).

    Without this, a channel with a large level (a temperature) would ring every band for the
    first window after a reset. For numerator g(1 - z^-2) and a constant input x0, the first
    section's steady state is z1 = z2 = -g x0; its output is 0, so later sections rest at 0.
    """
    for b in range(zs.shape[0]):
        for c in range(zs.shape[3]):
            x0 = np.float64(samples[c, at])
            zs[b, 0, 0, c] = -bank[b, 0, 0] * x0
            zs[b, 0, 1, c] = -bank[b, 0, 0] * x0
            for k in range(1, zs.shape[1]):
                zs[b, k, 0, c] = 0.0
                zs[b, k, 1, c] = 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _window_row(blocks: F64Array, oldest: int, acc: F64Array, row: F32Array, per: int) -> None:
    """Merge the ring (oldest first) into window statistics in ``acc`` and write one row."""
    nb, width, n_ch = blocks.shape
    n_bands = width - _SS0
    first = blocks[oldest]
    for k in range(_SS0):
        for c in range(n_ch):
            acc[k, c] = first[k, c]
    for j in range(1, nb):
        r = blocks[(oldest + j) % nb]
        for c in range(n_ch):
            nb_ = r[_N, c]
            na = acc[_N, c]
            n = na + nb_
            mean, m2, m3, m4 = acc[_MEAN, c], acc[_M2, c], acc[_M3, c], acc[_M4, c]
            d = r[_MEAN, c] - mean
            dn = d / n
            dn2 = dn * dn
            acc[_M4, c] = (m4 + r[_M4, c] + d * dn2 * dn * na * nb_ * (na * na - na * nb_ + nb_ * nb_)
                           + 6.0 * dn2 * (na * na * r[_M2, c] + nb_ * nb_ * m2)
                           + 4.0 * dn * (na * r[_M3, c] - nb_ * m3))
            acc[_M3, c] = (m3 + r[_M3, c] + d * dn2 * na * nb_ * (na - nb_)
                           + 3.0 * dn * (na * r[_M2, c] - nb_ * m2))
            acc[_M2, c] = m2 + r[_M2, c] + d * dn * na * nb_
            acc[_MEAN, c] = mean + nb_ * dn
            acc[_N, c] = n
            acc[_MIN, c] = min(acc[_MIN, c], r[_MIN, c])
            acc[_MAX, c] = max(acc[_MAX, c], r[_MAX, c])
    for b in range(n_bands):  # ring order: the sum's order does not depend on the head
        for c in range(n_ch):
            acc[_SS0 + b, c] = 0.0
        for j in range(nb):
            for c in range(n_ch):
                acc[_SS0 + b, c] += blocks[j, _SS0 + b, c]
    # The features over acc's rows, in place: N..MAX become mean, rms, p2p, crest, kurt.
    for c in range(n_ch):
        n, mean, m4 = acc[_N, c], acc[_MEAN, c], acc[_M4, c]
        lo, hi = acc[_MIN, c], acc[_MAX, c]
        var = acc[_M2, c] / n
        # A variance below float32 resolution of the level is a constant channel.
        flat = not (var > 1e-12 * mean * mean and var > 0.0)
        acc[0, c] = mean
        acc[1, c] = math.sqrt(mean * mean + var)
        acc[2, c] = hi - lo
        acc[3, c] = 0.0 if flat else max(hi - mean, mean - lo) / math.sqrt(var)
        acc[4, c] = 0.0 if flat else (m4 / n) / (var * var) - 3.0
        for b in range(n_bands):
            acc[_SS0 + b, c] = acc[_SS0 + b, c] / n
    for c in range(n_ch):
        base = c * per
        for k in range(len(STATS)):
            row[base + k] = acc[k, c]
        for b in range(n_bands):
            row[base + len(STATS) + b] = math.log10(acc[_SS0 + b, c] + _ENERGY_FLOOR)


@njit(cache=True, nogil=True, error_model="numpy")
def _push(samples: F32Array, pend: F32Array, state: npt.NDArray[np.int64], blocks: F64Array,
          bank: F64Array, zs: F64Array, acc: F64Array, out: F32Array, per: int) -> int:
    """Append samples (C, n); reduce each completed hop; write a row per complete window.

    state = [fill of the pending hop, next ring slot, hops seen, rows waiting in out].
    The caller guarantees ``out`` has room for every window this call can complete.
    """
    n_ch, n = samples.shape
    h = pend.shape[0]
    nb = blocks.shape[0]
    fill, head, seen, ready = state[0], state[1], state[2], state[3]
    made = 0
    i = 0
    while i < n:
        if seen == 0 and fill == 0:
            _prime(samples, i, bank, zs)
        take = min(h - fill, n - i)
        for t in range(take):  # into the hop, transposed: time-major, channels contiguous
            for c in range(n_ch):
                pend[fill + t, c] = samples[c, i + t]
        fill += take
        i += take
        if fill == h:
            _reduce_block(pend, blocks[head], bank, zs)
            head = (head + 1) % nb
            seen += 1
            fill = 0
            if seen >= nb:
                _window_row(blocks, head, acc, out[ready], per)
                ready += 1
                made += 1
    state[0], state[1], state[2], state[3] = fill, head, seen, ready
    return made


class WindowFeatures:
    """Per-source streaming state. Not thread-safe: one owner pushes and pops."""

    def __init__(self, spec: FeatureSpec, capacity: int = 16) -> None:
        self.spec = spec
        n_ch, n_bands = len(spec.channels), len(spec.bands_hz)
        self._bank = _filter_bank(spec)
        self._pend = np.zeros((spec.hop, n_ch), dtype=np.float32)
        self._blocks = np.zeros((spec.blocks, _SS0 + n_bands, n_ch), dtype=np.float64)
        self._zs = np.zeros((n_bands, SECTIONS, 2, n_ch), dtype=np.float64)
        self._acc = np.zeros((_SS0 + n_bands, n_ch), dtype=np.float64)
        self._state = np.zeros(4, dtype=np.int64)
        self._out = np.zeros((max(capacity, 1), spec.n_features), dtype=np.float32)

    @property
    def ready(self) -> int:
        """Feature rows computed and not yet popped."""
        return int(self._state[3])

    @property
    def pending(self) -> int:
        """Samples pushed since the last window was made (fewer than a hop)."""
        return int(self._state[0])

    def push(self, samples: npt.NDArray[Any]) -> int:
        """Add samples (channels, n), any n; returns how many new windows became ready."""
        x = np.ascontiguousarray(samples, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(self.spec.channels):
            raise ValueError(f"samples: expected ({len(self.spec.channels)}, n), got {x.shape}")
        most = self.ready + (int(self._state[0]) + x.shape[1]) // self.spec.hop
        if most > self._out.shape[0]:  # an unusually large push: grow once, not per hop
            grown = np.zeros((max(most, 2 * self._out.shape[0]), self.spec.n_features), np.float32)
            grown[: self.ready] = self._out[: self.ready]
            self._out = grown
        return int(_push(x, self._pend, self._state, self._blocks, self._bank, self._zs,
                         self._acc, self._out, self.spec.per_channel))

    def pop_into(self, out: F32Array, start: int = 0) -> int:
        """Move every ready row into ``out[start:]`` (oldest first); returns how many."""
        k = self.ready
        if k > out.shape[0] - start:
            raise ValueError(f"out: room for {out.shape[0] - start} rows, {k} ready")
        out[start : start + k] = self._out[:k]
        self._state[3] = 0
        return k

    def pop(self) -> F32Array:
        """Ready rows as a new array (allocates; the hot path uses ``pop_into``)."""
        rows = self._out[: self.ready].copy()
        self._state[3] = 0
        return rows

    def reset(self) -> None:
        """Forget history and filter state (after a gap or a restart); unpopped rows are dropped."""
        self._pend[:] = 0.0
        self._blocks[:] = 0.0
        self._zs[:] = 0.0
        self._state[:] = 0


def offline_features(signal: npt.NDArray[Any], spec: FeatureSpec) -> F32Array:
    """(channels, T) -> (n_windows, n_features) float32, with the streaming kernels."""
    x = np.ascontiguousarray(signal, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != len(spec.channels):
        raise ValueError(f"signal: expected ({len(spec.channels)}, T), got {x.shape}")
    n_windows = max(0, x.shape[1] // spec.hop - spec.blocks + 1)
    wf = WindowFeatures(spec, capacity=n_windows)
    wf.push(x)
    return wf.pop()


def warm(spec: FeatureSpec) -> None:
    """Compile every kernel (writable and read-only inputs) before the first real frame."""
    wf = WindowFeatures(spec)
    probe = np.zeros((len(spec.channels), spec.hop), dtype=np.float32)
    frozen = probe.copy()
    frozen.flags.writeable = False
    for _ in range(spec.blocks):
        wf.push(probe)
        wf.push(frozen)
        wf.pop()
