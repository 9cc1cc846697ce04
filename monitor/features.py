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
the same numbers as streaming in any chunk sizes. This module never reads a clock, never
touches a socket and never logs.
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

# Block record layout (last axis of the block ring).
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


@njit(cache=True, nogil=True)
def _reduce_block(pend: F64Array, rec: F64Array, bank: F64Array, zs: F64Array) -> None:
    """Reduce one full hop ``pend`` (C, H) into ``rec`` (C, 7 + B); advance the filters."""
    n_ch, h = pend.shape
    n_bands = bank.shape[0]
    for c in range(n_ch):
        s = 0.0
        lo = pend[c, 0]
        hi = pend[c, 0]
        for t in range(h):
            x = pend[c, t]
            s += x
            lo = min(lo, x)
            hi = max(hi, x)
        mean = s / h
        m2 = 0.0
        m3 = 0.0
        m4 = 0.0
        for t in range(h):
            d = pend[c, t] - mean
            d2 = d * d
            m2 += d2
            m3 += d2 * d
            m4 += d2 * d2
        rec[c, _N] = h
        rec[c, _MEAN] = mean
        rec[c, _M2] = m2
        rec[c, _M3] = m3
        rec[c, _M4] = m4
        rec[c, _MIN] = lo
        rec[c, _MAX] = hi
    for b in range(n_bands):
        c = 0
        while c + 4 <= n_ch:
            _band4(pend, rec, bank, zs, b, c)
            c += 4
        while c < n_ch:
            _band1(pend, rec, bank, zs, b, c)
            c += 1


# The band filters dominate a hop's cost, and each biquad is a chain of dependent multiply-adds:
# one channel at a time leaves the CPU waiting on that chain. _band4 runs four channels' chains
# side by side (state in locals, not in the array, until the hop ends), which the CPU overlaps.
# Both run the same arithmetic: two sections of transposed direct form II, numerator
# g * (1 - z^-2), exactly as SECTIONS == 2 designs them.


@njit(cache=True, nogil=True, inline="always")
def _band1(pend: F64Array, rec: F64Array, bank: F64Array, zs: F64Array, b: int, c: int) -> None:
    g0, a10, a20 = bank[b, 0, 0], bank[b, 0, 1], bank[b, 0, 2]
    g1, a11, a21 = bank[b, 1, 0], bank[b, 1, 1], bank[b, 1, 2]
    p0, q0, p1, q1 = zs[c, b, 0, 0], zs[c, b, 0, 1], zs[c, b, 1, 0], zs[c, b, 1, 1]
    ss = 0.0
    for t in range(pend.shape[1]):
        v = pend[c, t]
        y = g0 * v + p0
        p0 = q0 - a10 * y
        q0 = -g0 * v - a20 * y
        w = g1 * y + p1
        p1 = q1 - a11 * w
        q1 = -g1 * y - a21 * w
        ss += w * w
    zs[c, b, 0, 0], zs[c, b, 0, 1], zs[c, b, 1, 0], zs[c, b, 1, 1] = p0, q0, p1, q1
    rec[c, _SS0 + b] = ss


@njit(cache=True, nogil=True, inline="always")
def _band4(pend: F64Array, rec: F64Array, bank: F64Array, zs: F64Array, b: int, c: int) -> None:
    g0, a10, a20 = bank[b, 0, 0], bank[b, 0, 1], bank[b, 0, 2]
    g1, a11, a21 = bank[b, 1, 0], bank[b, 1, 1], bank[b, 1, 2]
    pa0, qa0, pa1, qa1 = zs[c, b, 0, 0], zs[c, b, 0, 1], zs[c, b, 1, 0], zs[c, b, 1, 1]
    pb0, qb0, pb1, qb1 = zs[c + 1, b, 0, 0], zs[c + 1, b, 0, 1], zs[c + 1, b, 1, 0], zs[c + 1, b, 1, 1]
    pc0, qc0, pc1, qc1 = zs[c + 2, b, 0, 0], zs[c + 2, b, 0, 1], zs[c + 2, b, 1, 0], zs[c + 2, b, 1, 1]
    pd0, qd0, pd1, qd1 = zs[c + 3, b, 0, 0], zs[c + 3, b, 0, 1], zs[c + 3, b, 1, 0], zs[c + 3, b, 1, 1]
    sa = 0.0
    sb = 0.0
    sc = 0.0
    sd = 0.0
    for t in range(pend.shape[1]):
        va = pend[c, t]
        vb = pend[c + 1, t]
        vc = pend[c + 2, t]
        vd = pend[c + 3, t]
        ya = g0 * va + pa0
        yb = g0 * vb + pb0
        yc = g0 * vc + pc0
        yd = g0 * vd + pd0
        pa0 = qa0 - a10 * ya
        pb0 = qb0 - a10 * yb
        pc0 = qc0 - a10 * yc
        pd0 = qd0 - a10 * yd
        qa0 = -g0 * va - a20 * ya
        qb0 = -g0 * vb - a20 * yb
        qc0 = -g0 * vc - a20 * yc
        qd0 = -g0 * vd - a20 * yd
        wa = g1 * ya + pa1
        wb = g1 * yb + pb1
        wc = g1 * yc + pc1
        wd = g1 * yd + pd1
        pa1 = qa1 - a11 * wa
        pb1 = qb1 - a11 * wb
        pc1 = qc1 - a11 * wc
        pd1 = qd1 - a11 * wd
        qa1 = -g1 * ya - a21 * wa
        qb1 = -g1 * yb - a21 * wb
        qc1 = -g1 * yc - a21 * wc
        qd1 = -g1 * yd - a21 * wd
        sa += wa * wa
        sb += wb * wb
        sc += wc * wc
        sd += wd * wd
    zs[c, b, 0, 0], zs[c, b, 0, 1], zs[c, b, 1, 0], zs[c, b, 1, 1] = pa0, qa0, pa1, qa1
    zs[c + 1, b, 0, 0], zs[c + 1, b, 0, 1], zs[c + 1, b, 1, 0], zs[c + 1, b, 1, 1] = pb0, qb0, pb1, qb1
    zs[c + 2, b, 0, 0], zs[c + 2, b, 0, 1], zs[c + 2, b, 1, 0], zs[c + 2, b, 1, 1] = pc0, qc0, pc1, qc1
    zs[c + 3, b, 0, 0], zs[c + 3, b, 0, 1], zs[c + 3, b, 1, 0], zs[c + 3, b, 1, 1] = pd0, qd0, pd1, qd1
    rec[c, _SS0 + b] = sa
    rec[c + 1, _SS0 + b] = sb
    rec[c + 2, _SS0 + b] = sc
    rec[c + 3, _SS0 + b] = sd


@njit(cache=True, nogil=True)
def _prime(samples: F32Array, at: int, bank: F64Array, zs: F64Array) -> None:
    """Filter state as if each channel had sat at its first value forever (output 0).

    Without this, a channel with a large level (a temperature) would ring every band for the
    first window after a reset. For numerator g(1 - z^-2) and a constant input x0, the first
    section's steady state is z1 = z2 = -g x0; its output is 0, so later sections rest at 0.
    """
    for c in range(zs.shape[0]):
        x0 = samples[c, at]
        for b in range(zs.shape[1]):
            zs[c, b, 0, 0] = -bank[b, 0, 0] * x0
            zs[c, b, 0, 1] = -bank[b, 0, 0] * x0
            for k in range(1, zs.shape[2]):
                zs[c, b, k, 0] = 0.0
                zs[c, b, k, 1] = 0.0


@njit(cache=True, nogil=True)
def _window_row(blocks: F64Array, oldest: int, row: F32Array, per: int) -> None:
    """Merge the ring (oldest first) into window statistics and write one feature row."""
    nb, n_ch, width = blocks.shape
    n_bands = width - _SS0
    for c in range(n_ch):
        first = blocks[oldest, c]
        n = first[_N]
        mean = first[_MEAN]
        m2 = first[_M2]
        m3 = first[_M3]
        m4 = first[_M4]
        lo = first[_MIN]
        hi = first[_MAX]
        for j in range(1, nb):
            r = blocks[(oldest + j) % nb, c]
            nb_ = r[_N]
            na = n
            n = na + nb_
            d = r[_MEAN] - mean
            dn = d / n
            dn2 = dn * dn
            m4 = (m4 + r[_M4] + d * dn2 * dn * na * nb_ * (na * na - na * nb_ + nb_ * nb_)
                  + 6.0 * dn2 * (na * na * r[_M2] + nb_ * nb_ * m2)
                  + 4.0 * dn * (na * r[_M3] - nb_ * m3))
            m3 = m3 + r[_M3] + d * dn2 * na * nb_ * (na - nb_) + 3.0 * dn * (na * r[_M2] - nb_ * m2)
            m2 = m2 + r[_M2] + d * dn * na * nb_
            mean = mean + nb_ * dn
            lo = min(lo, r[_MIN])
            hi = max(hi, r[_MAX])
        var = m2 / n
        base = c * per
        row[base + 0] = mean
        row[base + 1] = math.sqrt(mean * mean + var)
        row[base + 2] = hi - lo
        # A variance below float32 resolution of the level is a constant channel.
        if var > 1e-12 * mean * mean and var > 0.0:
            row[base + 3] = max(hi - mean, mean - lo) / math.sqrt(var)
            row[base + 4] = (m4 / n) / (var * var) - 3.0
        else:
            row[base + 3] = 0.0
            row[base + 4] = 0.0
        for b in range(n_bands):
            ss = 0.0
            for j in range(nb):
                ss += blocks[j, c, _SS0 + b]
            row[base + 5 + b] = math.log10(ss / n + _ENERGY_FLOOR)


@njit(cache=True, nogil=True)
def _push(samples: F32Array, pend: F64Array, state: npt.NDArray[np.int64], blocks: F64Array,
          bank: F64Array, zs: F64Array, out: F32Array, per: int) -> int:
    """Append samples (C, n); reduce each completed hop; write a row per complete window.

    state = [fill of the pending hop, next ring slot, hops seen, rows waiting in out].
    The caller guarantees ``out`` has room for every window this call can complete.
    """
    n_ch, n = samples.shape
    h = pend.shape[1]
    nb = blocks.shape[0]
    fill, head, seen, ready = state[0], state[1], state[2], state[3]
    made = 0
    i = 0
    while i < n:
        if seen == 0 and fill == 0:
            _prime(samples, i, bank, zs)
        take = min(h - fill, n - i)
        for c in range(n_ch):
            for t in range(take):
                pend[c, fill + t] = samples[c, i + t]
        fill += take
        i += take
        if fill == h:
            _reduce_block(pend, blocks[head], bank, zs)
            head = (head + 1) % nb
            seen += 1
            fill = 0
            if seen >= nb:
                _window_row(blocks, head, out[ready], per)
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
        self._pend = np.zeros((n_ch, spec.hop), dtype=np.float64)
        self._blocks = np.zeros((spec.blocks, n_ch, _SS0 + n_bands), dtype=np.float64)
        self._zs = np.zeros((n_ch, n_bands, SECTIONS, 2), dtype=np.float64)
        self._state = np.zeros(4, dtype=np.int64)
        self._out = np.zeros((max(capacity, 1), spec.n_features), dtype=np.float32)

    @property
    def ready(self) -> int:
        """Feature rows computed and not yet popped."""
        return int(self._state[3])

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
                         self._out, self.spec.per_channel))

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
