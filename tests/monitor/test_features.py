"""Window features: streaming equals offline, moments equal numpy's, bands select frequency."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.bands import band_response, band_sections
from monitor.errors import FeatureSpecError
from monitor.features import (
    DEFAULT_BANDS_HZ,
    FeatureSpec,
    WindowFeatures,
    offline_features,
    warm,
)

RATE = 6400.0
SPEC = FeatureSpec(("vib_x", "vib_y", "current", "temp"), RATE, 1024, 128)


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    x = np.stack([
        rng.normal(0.0, 0.3, n) + np.sin(2 * np.pi * 50 * t),
        rng.standard_t(4, n) * 0.2 + 0.5 * np.sin(2 * np.pi * 1200 * t),
        10.0 + 0.5 * np.sin(2 * np.pi * 50 * t) + rng.normal(0, 0.05, n),
        60.0 + rng.normal(0.0, 0.01, n),
    ])
    return x.astype(np.float32)


def _stats(spec: FeatureSpec, row: np.ndarray, channel: int, name: str) -> float:
    return float(row[spec.names().index(f"{spec.channels[channel]}.{name}")])


def test_names_are_channel_major_and_count_matches() -> None:
    names = SPEC.names()
    assert len(names) == SPEC.n_features == 4 * (5 + len(DEFAULT_BANDS_HZ))
    assert names[:6] == ["vib_x.mean", "vib_x.rms", "vib_x.p2p", "vib_x.crest", "vib_x.kurt",
                         "vib_x.band_10_200"]
    assert names[SPEC.per_channel] == "vib_y.mean"


def test_spec_round_trips_through_a_dict() -> None:
    d = SPEC.to_dict()
    assert FeatureSpec.from_dict(d) == SPEC
    assert d["features"] == SPEC.names() and d["kurtosis"] == "excess"


@pytest.mark.parametrize("change", [
    {"features": ["x"]}, {"kurtosis": "plain"}, {"version": 99}, {"window": 1000},
    {"bands_hz": [[3300, 3400]]}, {"channels": ["a", "a"]}, {"hop": "many"},
])
def test_bad_spec_dicts_are_refused(change: dict[str, object]) -> None:
    d = {**SPEC.to_dict(), **change}
    if "bands_hz" in change or "channels" in change or "hop" in change:
        d.pop("features")
    with pytest.raises(FeatureSpecError):
        FeatureSpec.from_dict(d)


def test_band_design_has_unit_gain_at_centre_and_half_power_at_edges() -> None:
    for lo, hi in DEFAULT_BANDS_HZ:
        sec = band_sections(lo, hi, RATE)
        assert band_response(sec, lo, RATE) == pytest.approx(math.sqrt(0.5), rel=1e-6)
        assert band_response(sec, hi, RATE) == pytest.approx(math.sqrt(0.5), rel=1e-6)
        assert band_response(sec, 0.0, RATE) == pytest.approx(0.0, abs=1e-12)
        assert band_response(sec, lo / 8, RATE) < 0.02
        assert band_response(sec, min(hi * 8, 0.499 * RATE), RATE) < 0.05


def test_band_above_nyquist_is_clamped_or_refused() -> None:
    sec = band_sections(2000.0, 5000.0, RATE)  # high edge clamped below 3200 Hz
    assert band_response(sec, 2500.0, RATE) > 0.7
    with pytest.raises(FeatureSpecError):
        band_sections(3300.0, 4000.0, RATE)


@pytest.mark.parametrize("band", range(len(DEFAULT_BANDS_HZ)))
def test_band_energy_responds_to_a_sine_in_its_band(band: int) -> None:
    spec = FeatureSpec(("x",), RATE, 1024, 128)
    lo, hi = DEFAULT_BANDS_HZ[band]
    t = np.arange(int(RATE)) / RATE
    sine = np.sin(2 * np.pi * math.sqrt(lo * hi) * t)[None].astype(np.float32)
    energies = offline_features(sine, spec)[-1][5:]
    assert energies[band] == pytest.approx(math.log10(0.5), abs=0.05)  # unit gain in band
    others = np.delete(energies, band)
    assert energies[band] - others.max() > 1.0  # at least ten times the energy of any other band


def test_streaming_in_frames_equals_offline() -> None:
    x = _signal(2.0)
    offline = offline_features(x, SPEC)
    wf = WindowFeatures(SPEC)
    rows = []
    for start in range(0, x.shape[1], 128):
        made = wf.push(x[:, start:start + 128])
        assert made == (1 if start // 128 >= SPEC.blocks - 1 else 0)
        rows.append(wf.pop())
    streamed = np.concatenate(rows)
    assert streamed.shape == offline.shape == (x.shape[1] // 128 - 7, SPEC.n_features)
    np.testing.assert_array_equal(streamed, offline)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_rows(chunks: list[int]) -> None:
    x = _signal(1.0, seed=3)
    offline = offline_features(x, SPEC)
    wf = WindowFeatures(SPEC, capacity=2)
    out = np.zeros((offline.shape[0], SPEC.n_features), np.float32)
    got, pos = 0, 0
    while pos < x.shape[1]:
        for k in chunks:
            wf.push(x[:, pos:pos + k])
            pos += k
            got += wf.pop_into(out, got)
            if pos >= x.shape[1]:
                break
    np.testing.assert_array_equal(out[:got], offline)
    assert got == offline.shape[0]


@pytest.mark.parametrize("level", [0.0, 1000.0])
def test_incremental_moments_equal_numpy(level: float) -> None:
    x = _signal(1.0, seed=7)
    x[:2] += np.float32(level)  # a large level must not cost precision (stable merging)
    feats = offline_features(x, SPEC)
    for w in (0, 5, feats.shape[0] - 1):
        win = x[:, w * 128: w * 128 + 1024].astype(np.float64)
        for c in range(4):
            v = win[c]
            mean, d = v.mean(), v - v.mean()
            var = (d * d).mean()
            expect = {
                "mean": mean, "rms": math.sqrt((v * v).mean()), "p2p": np.ptp(v),
                "crest": np.abs(d).max() / math.sqrt(var),
                "kurt": (d ** 4).mean() / var ** 2 - 3.0,
            }
            for name, value in expect.items():
                got = _stats(SPEC, feats[w], c, name)
                assert got == pytest.approx(value, rel=1e-4, abs=1e-5), (w, c, name)


def test_constant_channel_gives_finite_zero_shape_features() -> None:
    spec = FeatureSpec(("temp",), RATE, 1024, 128)
    row = offline_features(np.full((1, 2048), 60.0, np.float32), spec)[0]
    assert np.all(np.isfinite(row))
    assert row[:5].tolist() == [60.0, 60.0, 0.0, 0.0, 0.0]
    assert np.all(row[5:] == np.float32(-12.0))  # the level does not ring the filters


def test_reset_starts_over_like_a_fresh_state() -> None:
    x = _signal(0.5, seed=11)
    fresh = offline_features(x, SPEC)
    wf = WindowFeatures(SPEC)
    wf.push(_signal(0.3, seed=12)[:, :1000])
    wf.reset()
    assert wf.ready == 0
    wf.push(x)
    np.testing.assert_array_equal(wf.pop(), fresh)


def test_short_signal_has_no_windows_and_shapes_are_checked() -> None:
    assert offline_features(np.zeros((4, 1000), np.float32), SPEC).shape == (0, SPEC.n_features)
    wf = WindowFeatures(SPEC)
    with pytest.raises(ValueError):
        wf.push(np.zeros((3, 128), np.float32))
    wf.push(np.zeros((4, 2048), np.float32))
    with pytest.raises(ValueError):
        wf.pop_into(np.zeros((2, SPEC.n_features), np.float32))


def test_read_only_frames_are_accepted_after_warm() -> None:
    warm(SPEC)
    x = _signal(0.2)
    x.flags.writeable = False  # frames arrive as read-only views of ZeroMQ buffers
    wf = WindowFeatures(SPEC)
    assert wf.push(x) == x.shape[1] // 128 - 7
    np.testing.assert_array_equal(wf.pop(), offline_features(x, SPEC))
