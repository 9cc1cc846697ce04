"""Growing faults: they start at onset, grow with the time course they claim, stay deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from sim.plant import Plant
from tripwire.config import ConfigError, FaultConfig, SimConfig, SourceConfig, from_dict

FS = 6400.0
CH = ["vib_x", "vib_y", "current", "temp"]
PUMP = SourceConfig(1, "pump-1", list(CH))
GROWING = ("bearing_wear", "imbalance_growth", "cavitation")


def _plant(kind: str | None, at_s: float = 1.0, ramp_s: float = 10.0, run: int = 3,
           steady: bool = True) -> Plant:
    faults = [] if kind is None else [FaultConfig(kind, 1, at_s=at_s, ramp_s=ramp_s)]  # type: ignore[arg-type]
    sim = SimConfig(seed=0, faults=faults, load_change_every_s=0.0 if steady else 4.0)
    plant = Plant([PUMP], sim, run=run)
    plant.start_schedule()
    return plant


def _seconds(plant: Plant, seconds: float) -> np.ndarray:
    return plant.next_block(1, round(seconds * FS))


def _band_power(x: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    spec = np.abs(np.fft.rfft(x - x.mean())) ** 2
    f = np.fft.rfftfreq(len(x), 1 / FS)
    return float(spec[(f >= lo_hz) & (f < hi_hz)].sum() / len(x))


def _one_x(x: np.ndarray) -> float:
    """Amplitude of the strongest tone below 40 Hz (the shaft runs at 20-30 Hz)."""
    spec = np.abs(np.fft.rfft(x - x.mean())) * 2 / len(x)
    f = np.fft.rfftfreq(len(x), 1 / FS)
    return float(spec[(f > 10) & (f < 40)].max())


@pytest.mark.parametrize("kind", GROWING)
def test_nothing_changes_before_onset(kind: str) -> None:
    healthy = _seconds(_plant(None), 1.0)
    faulty = _plant(kind, at_s=1.0)
    np.testing.assert_array_equal(_seconds(faulty, 1.0), healthy)
    _seconds(faulty, 0.1)
    (onset,) = faulty.onsets()
    assert onset.kind == kind and onset.sample_index == 6400


@pytest.mark.parametrize("kind", GROWING)
def test_same_signal_whatever_the_block_sizes(kind: str) -> None:
    a = _seconds(_plant(kind, at_s=0.2, ramp_s=1.0), 2.0)
    b_plant = _plant(kind, at_s=0.2, ramp_s=1.0)
    b = np.concatenate([b_plant.next_block(1, n) for n in (100, 1181, 128, 5000, 6391)], axis=1)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)
    c = _seconds(_plant(kind, at_s=0.2, ramp_s=1.0, run=4), 2.0)
    assert not np.allclose(c, a)  # another realization


def test_bearing_wear_starts_slowly_and_accelerates() -> None:
    plant = _plant("bearing_wear", at_s=0.0, ramp_s=40.0)
    base = _band_power(_seconds(_plant(None), 2.0)[0], 1500, 3000)
    power = []
    temp = []
    for _ in range(20):
        x = _seconds(plant, 2.0)
        power.append(_band_power(x[0], 1500, 3000) / base)
        temp.append(float(x[3].mean()))
    # a quarter of the way in the defect is still hard to see; by the end it dominates
    assert power[4] < 1.6 and power[-1] > 5.0
    assert power[14] - power[9] > 1.5 * (power[9] - power[4])  # growth accelerates
    assert temp[-1] - temp[0] > 1.5  # the bearing warms up (up to ~3 degC)


def test_imbalance_growth_raises_the_1x_component_monotonically() -> None:
    plant = _plant("imbalance_growth", at_s=0.0, ramp_s=20.0)
    before = _one_x(_seconds(_plant(None), 4.0)[0])
    amps = [_one_x(_seconds(plant, 4.0)[0]) / before for _ in range(6)]
    assert all(b > a for a, b in zip(amps, amps[1:5]))
    assert 1.8 < amps[-1] < 3.3  # 2.2x..3x at full severity, within the FFT's leakage


def test_cavitation_is_bursty_broadband_vibration_and_current_ripple() -> None:
    healthy = _seconds(_plant(None), 12.0)
    x = _seconds(_plant("cavitation", at_s=0.0, ramp_s=2.0), 12.0)
    seg = int(0.05 * FS)
    hf = lambda v: np.array([_band_power(v[i:i + seg], 1000, 3000)  # noqa: E731
                             for i in range(int(4 * FS), len(v) - seg, seg)])
    ratio = hf(x[0]) / np.median(hf(healthy[0]))
    # bursts: some 50 ms segments are quiet, others loud
    assert 0.1 < np.mean(ratio > 3.0) < 0.95 and np.mean(ratio < 1.5) > 0.05
    ripple = _band_power(x[2, int(4 * FS):], 8, 20)
    assert ripple > 5 * _band_power(healthy[2, int(4 * FS):], 8, 20)


def test_config_accepts_the_new_kinds_and_still_refuses_others() -> None:
    base = {"sources": [{"id": 1, "name": "p", "channels": CH}]}
    for kind in GROWING:
        cfg = from_dict({**base, "sim": {"faults": [{"kind": kind, "source": 1, "at_s": 5.0,
                                                      "ramp_s": 60.0}]}})
        assert cfg.sim.faults[0].kind == kind
    with pytest.raises(ConfigError, match="kind"):
        from_dict({**base, "sim": {"faults": [{"kind": "rust", "source": 1, "at_s": 5.0}]}})


def test_next_block_is_the_frame_stream() -> None:
    a = Plant([PUMP], SimConfig(seed=2))
    b = Plant([PUMP], SimConfig(seed=2))
    frames = np.concatenate([a.next_frame(1) for _ in range(10)], axis=1)
    np.testing.assert_allclose(b.next_block(1, 1280), frames, rtol=1e-5, atol=1e-4)
