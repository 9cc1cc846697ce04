"""The SIMD kernels against a one-channel-at-a-time reference written in plain Python.

The kernels run channels side by side in vector lanes and several samples per visit to a
channel; none of that may change a channel's arithmetic. The reference below is the textbook
version (one channel, one sample at a time, the same formulas in the same order), so the
statistics must agree to the bit. The band filters may fuse a multiply and an add (one
rounding instead of two), so band energies agree to float32 rounding.

Shapes are chosen to hit the edges: a channel count that fills no vector exactly, a hop that
is not a multiple of the unroll, and hop 1 without bands (the SKAB evaluation's shape).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.bands import band_sections
from monitor.features import (
    DEFAULT_BANDS_HZ,
    FeatureSpec,
    WindowFeatures,
    offline_features,
)


def _hop_record(xs: list[float], sections: list[np.ndarray], z: list[list[float]]) -> list[float]:
    """n, mean, m2, m3, m4, min, max, then one sum of squares per band (advancing ``z``)."""
    h = len(xs)
    s, lo, hi = 0.0, xs[0], xs[0]
    for v in xs:
        s += v
        lo = min(lo, v)
        hi = max(hi, v)
    mean = s / h
    m2 = m3 = m4 = 0.0
    for v in xs:
        d = v - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
    sums = []
    for sec, st in zip(sections, z):
        (g0, a10, a20), (g1, a11, a21) = (tuple(map(float, row)) for row in sec)
        p0, q0, p1, q1 = st
        ss = 0.0
        for v in xs:
            y = g0 * v + p0
            p0 = q0 - a10 * y
            q0 = -g0 * v - a20 * y
            w = g1 * y + p1
            p1 = q1 - a11 * w
            q1 = -g1 * y - a21 * w
            ss += w * w
        st[:] = [p0, q0, p1, q1]
        sums.append(ss)
    return [float(h), mean, m2, m3, m4, lo, hi, *sums]


def _window(records: list[list[float]], slot_order: list[int], n_bands: int) -> list[float]:
    """Merge hop records oldest first (Chan et al. / Pebay); band sums in ring-slot order."""
    n, mean, m2, m3, m4, lo, hi = records[0][:7]
    for r in records[1:]:
        nb_, na = r[0], n
        n = na + nb_
        d = r[1] - mean
        dn = d / n
        dn2 = dn * dn
        m4 = (m4 + r[4] + d * dn2 * dn * na * nb_ * (na * na - na * nb_ + nb_ * nb_)
              + 6.0 * dn2 * (na * na * r[2] + nb_ * nb_ * m2)
              + 4.0 * dn * (na * r[3] - nb_ * m3))
        m3 = m3 + r[3] + d * dn2 * na * nb_ * (na - nb_) + 3.0 * dn * (na * r[2] - nb_ * m2)
        m2 = m2 + r[2] + d * dn * na * nb_
        mean = mean + nb_ * dn
        lo = min(lo, r[5])
        hi = max(hi, r[6])
    var = m2 / n
    flat = not (var > 1e-12 * mean * mean and var > 0.0)
    out = [mean, math.sqrt(mean * mean + var), hi - lo,
           0.0 if flat else max(hi - mean, mean - lo) / math.sqrt(var),
           0.0 if flat else (m4 / n) / (var * var) - 3.0]
    for b in range(n_bands):
        ss = 0.0
        for j in slot_order:
            ss += records[j][7 + b]
        out.append(math.log10(ss / n + 1e-12))
    return out


def _reference(x: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    sections = [band_sections(lo, hi, spec.sample_rate_hz) for lo, hi in spec.bands_hz]
    hops = x.shape[1] // spec.hop
    rows = np.zeros((max(0, hops - spec.blocks + 1), spec.n_features), np.float32)
    for c in range(x.shape[0]):
        x0 = float(x[c, 0])
        z = [[-float(sec[0, 0]) * x0, -float(sec[0, 0]) * x0, 0.0, 0.0] for sec in sections]
        records = []
        for k in range(hops):
            xs = [float(v) for v in x[c, k * spec.hop:(k + 1) * spec.hop]]
            records.append(_hop_record(xs, sections, z))
            if k >= spec.blocks - 1:
                first = k - spec.blocks + 1
                window = records[first:]
                # the ring's slot of hop i is i % blocks; sums run slot 0 first
                order = sorted(range(spec.blocks), key=lambda j: (first + j) % spec.blocks)
                per = spec.per_channel
                rows[first, c * per:(c + 1) * per] = _window(window, order, len(sections))
    return rows


def _signal(channels: int, n: int, seed: int, level: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 6400.0
    tones = np.sin(2 * np.pi * rng.uniform(20, 2500, (channels, 1)) * t)
    x = level + tones + rng.standard_t(5, (channels, n)) * 0.3
    x[0] = level  # a constant channel
    return x.astype(np.float32)


@pytest.mark.parametrize(("spec", "level"), [
    (FeatureSpec(tuple(f"s{i}" for i in range(3)), 1.0, 5, 1, ()), 0.0),  # SKAB's shape
    (FeatureSpec(tuple(f"s{i}" for i in range(3)), 1.0, 5, 1, ()), 1000.0),
    (FeatureSpec(tuple(f"c{i}" for i in range(11)), 6400.0, 60, 6, DEFAULT_BANDS_HZ), 0.0),
    (FeatureSpec(tuple(f"c{i}" for i in range(9)), 6400.0, 64, 16, DEFAULT_BANDS_HZ), 60.0),
])
def test_kernels_give_the_one_channel_reference(spec: FeatureSpec, level: float) -> None:
    x = _signal(len(spec.channels), 40 * spec.hop + 3, seed=spec.hop, level=level)
    want = _reference(x, spec)
    got = offline_features(x, spec)
    assert got.shape == want.shape and got.shape[0] > 10
    per = spec.per_channel
    stats = np.zeros(spec.n_features, bool)
    for c in range(len(spec.channels)):
        stats[c * per:c * per + 5] = True
    np.testing.assert_array_equal(got[:, stats], want[:, stats])
    np.testing.assert_allclose(got[:, ~stats], want[:, ~stats], rtol=2e-6, atol=1e-6)


def test_streaming_hops_that_straddle_pushes_match_the_reference() -> None:
    spec = FeatureSpec(tuple(f"c{i}" for i in range(5)), 6400.0, 42, 7, DEFAULT_BANDS_HZ)
    x = _signal(5, 300, seed=4, level=5.0)
    wf = WindowFeatures(spec)
    rows = []
    for start in range(0, x.shape[1], 11):  # pushes never line up with hops
        wf.push(x[:, start:start + 11])
        rows.append(wf.pop())
    got = np.concatenate(rows)
    want = _reference(x, spec)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
