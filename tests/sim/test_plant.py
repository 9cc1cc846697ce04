"""The plant simulator: deterministic, continuous, and each fault changes what it should."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from sim.errors import SimConfigError, SimError
from sim.machine import Machine, machine_params
from sim.plant import Plant, normal_run
from tripwire.config import FaultConfig, SimConfig, SourceConfig

FS = 6400.0
CH = ["vib_x", "vib_y", "current", "temp"]
PUMP = SourceConfig(1, "pump-1", list(CH))
FAN = SourceConfig(2, "fan-2", list(CH))


def _frames(plant: Plant, source_id: int, n: int) -> np.ndarray:
    return np.concatenate([plant.next_frame(source_id) for _ in range(n)], axis=1)


def _kurtosis(x: np.ndarray) -> float:
    x = x - x.mean()
    return float((x**4).mean() / (x**2).mean() ** 2)


def _high_band(x: np.ndarray, lo_hz: float = 1000.0) -> float:
    spec = np.abs(np.fft.rfft(x - x.mean())) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / FS)
    return float(spec[freqs >= lo_hz].sum() / len(x))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean((x - x.mean()) ** 2)))


def _faulted(kind: str, at_s: float = 1.0, ramp_s: float = 0.5, steady: bool = False) -> Plant:
    sim = SimConfig(seed=3, faults=[FaultConfig(kind, 1, at_s=at_s, ramp_s=ramp_s)],
                    load_change_every_s=0.0 if steady else 4.0)
    plant = Plant([PUMP, FAN], sim)
    plant.start_schedule()
    return plant


def test_frames_have_the_configured_shape_and_dtype() -> None:
    plant = Plant([PUMP, FAN], SimConfig(seed=0))
    block = plant.next_frame(1)
    assert block.shape == (4, 128) and block.dtype == np.float32 and block.flags.c_contiguous
    assert np.isfinite(block).all()
    assert plant.samples_generated(1) == 128 and plant.samples_generated(2) == 0


def test_same_seed_gives_identical_frames_and_machines_differ() -> None:
    a = Plant([PUMP, FAN], SimConfig(seed=7))
    b = Plant([PUMP, FAN], SimConfig(seed=7))
    for _ in range(30):
        for sid in (1, 2):
            np.testing.assert_array_equal(a.next_frame(sid), b.next_frame(sid))
    other = Plant([PUMP, FAN], SimConfig(seed=8))
    assert not np.array_equal(_frames(other, 1, 5), _frames(Plant([PUMP], SimConfig(seed=7)), 1, 5))
    assert machine_params(7, 1) != machine_params(7, 2)
    assert machine_params(7, 1) == machine_params(7, 1)


def test_output_does_not_depend_on_block_size() -> None:
    """Phase accumulators and filter state carry over: blocks join without a seam."""
    p = machine_params(0, 1)
    one = Machine(p, CH, FS, 1.0, seed=0, source_id=1).generate(6400)
    parts = Machine(p, CH, FS, 1.0, seed=0, source_id=1)
    cut = np.concatenate([parts.generate(n) for n in (1, 127, 128, 1000, 5144)], axis=1)
    np.testing.assert_allclose(cut, one, rtol=1e-5, atol=1e-4)


def test_frame_boundaries_are_smooth() -> None:
    plant = Plant([PUMP], SimConfig(seed=1))
    x = _frames(plant, 1, 50)
    temp_steps = np.abs(np.diff(x[3]))
    # temperature moves by noise only (no jumps at the 128-sample seams)
    assert temp_steps.max() < 0.2
    vib = x[0]
    seam = np.abs(vib[128::128] - vib[127:-1:128])
    assert seam.max() < 6 * np.abs(np.diff(vib)).std() + 0.5


def test_load_changes_move_current_and_stay_in_range() -> None:
    x = normal_run(PUMP, SimConfig(seed=2, load_change_every_s=2.0), 30.0)
    p = machine_params(2, 1)
    per_s = x[2].reshape(30, -1).mean(axis=1)
    load = (per_s / p.rated_a - 0.35) / 0.65
    assert load.min() > 0.45 and load.max() < 1.05
    assert per_s.max() - per_s.min() > 0.05 * p.rated_a  # the profile really changes


def test_normal_run_is_fast_deterministic_and_not_the_live_realization() -> None:
    sim = SimConfig(seed=0)
    t0 = time.perf_counter()
    x = normal_run(PUMP, sim, 60.0)
    elapsed = time.perf_counter() - t0
    assert x.shape == (4, 384_000) and x.dtype == np.float32
    assert elapsed < 3.0, elapsed  # about 0.1 s when the machine is idle
    np.testing.assert_array_equal(normal_run(PUMP, sim, 1.0), x[:, :6400])
    live = _frames(Plant([PUMP], sim), 1, 50)
    assert not np.allclose(live, x[:, : live.shape[1]])
    assert abs(_rms(live[0]) / _rms(x[0, : live.shape[1]]) - 1) < 0.5  # same machine, though
    with pytest.raises(SimConfigError):
        normal_run(PUMP, sim, 0.0)


def test_generic_channel_names_get_a_vibration_like_signal() -> None:
    src = SourceConfig(5, "odd", ["acc_z", "current"])
    x = normal_run(src, SimConfig(seed=0), 2.0)
    assert abs(float(x[0].mean())) < 0.05 and 0.02 < _rms(x[0]) < 1.0


def test_no_fault_before_the_schedule_starts() -> None:
    sim = SimConfig(seed=3, faults=[FaultConfig("spike", 1, at_s=0.0)])
    plant = Plant([PUMP], sim)
    x = _frames(plant, 1, 100)
    assert plant.onsets() == [] and np.abs(x[0]).max() < 2.0
    plant.start_schedule()
    with pytest.raises(SimError):
        plant.start_schedule()


def test_fault_onset_is_counted_from_the_schedule_start() -> None:
    sim = SimConfig(seed=3, faults=[FaultConfig("imbalance", 2, at_s=0.25)])
    plant = Plant([PUMP, FAN], sim)
    _frames(plant, 2, 7)
    plant.start_schedule()
    _frames(plant, 2, 20)
    (onset,) = plant.onsets()
    assert (onset.source_id, onset.kind) == (2, "imbalance")
    assert onset.sample_index == 7 * 128 + 1600
    assert onset.t_plant_s == pytest.approx(onset.sample_index / FS)


def test_fault_on_unknown_source_is_refused() -> None:
    with pytest.raises(SimConfigError, match="source"):
        Plant([PUMP], SimConfig(faults=[FaultConfig("bearing", 9, at_s=1.0)]))


def test_bearing_fault_raises_kurtosis_and_high_band_energy() -> None:
    plant = _faulted("bearing", at_s=1.0, ramp_s=0.5)
    x = _frames(plant, 1, 150)  # 3 s: healthy 0..1 s, full severity from 1.5 s
    healthy, faulty = x[0, :6400], x[0, -6400:]
    assert _kurtosis(faulty) > _kurtosis(healthy) + 0.7
    assert _high_band(faulty) > 3 * _high_band(healthy)
    peak_ratio = np.abs(faulty).max() / _rms(healthy)
    assert 3.0 < peak_ratio < 10.0  # clearly visible, not absurd
    assert [o.kind for o in plant.onsets()] == ["bearing"]
    assert _kurtosis(_frames(plant, 2, 50)[0]) < 3.0  # the other machine stays healthy


def test_imbalance_grows_the_one_x_component_threefold() -> None:
    plant = _faulted("imbalance", at_s=1.0, ramp_s=0.5, steady=True)
    x = _frames(plant, 1, 150)[0]
    p = machine_params(3, 1)

    def one_x(seg: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        f = np.fft.rfftfreq(len(seg), 1 / FS)
        band = (f > p.shaft_hz * 0.9) & (f < p.shaft_hz * 1.05)
        return float(spec[band].max())

    ratio = one_x(x[-6400:]) / one_x(x[:6400])
    assert 2.5 < ratio < 3.5, ratio


def test_spike_is_one_huge_sample_on_vib_x() -> None:
    plant = _faulted("spike", at_s=0.5)
    x = _frames(plant, 1, 50)
    (onset,) = plant.onsets()
    rms = _rms(x[0, :3000])
    big = np.flatnonzero(np.abs(x[0]) > 20 * rms)
    assert big.tolist() == [onset.sample_index]
    assert np.abs(x[1]).max() < 10 * rms  # vib_y untouched


def test_freeze_holds_vib_x_at_its_last_value() -> None:
    plant = _faulted("freeze", at_s=0.5)
    x = _frames(plant, 1, 60)
    (onset,) = plant.onsets()
    frozen = x[0, onset.sample_index :]
    assert frozen.var() == 0.0 and frozen[0] == x[0, onset.sample_index - 1]
    assert x[1, onset.sample_index :].var() > 0  # other channels alive
    assert x[0, : onset.sample_index].var() > 0


def test_permit_drop_spins_machines_down_and_back_up() -> None:
    plant = Plant([PUMP, FAN], SimConfig(seed=4, load_change_every_s=0.0))
    before = _frames(plant, 1, 50)
    plant.set_permit(False)
    _frames(plant, 1, 150)  # 3 s, ~4 time constants
    stopped = _frames(plant, 1, 50)
    assert _rms(stopped[0]) < 0.1 * _rms(before[0])
    assert stopped[2].mean() < 0.05 * before[2].mean()
    assert _rms(stopped[0]) > 0.001  # the sensor noise floor remains
    plant.set_permit(True)
    _frames(plant, 1, 200)
    again = _frames(plant, 1, 50)
    assert _rms(again[0]) > 0.7 * _rms(before[0])
    assert again[2].mean() > 0.9 * before[2].mean()


def test_spin_down_is_gradual() -> None:
    plant = Plant([PUMP], SimConfig(seed=4, load_change_every_s=0.0))
    before = _rms(_frames(plant, 1, 50)[0])
    plant.set_permit(False)
    rms = [_rms(_frames(plant, 1, 10)[0]) for _ in range(10)]  # 0.2 s steps
    assert rms[0] > 0.3 * before  # not a cliff
    assert all(b < a * 1.1 for a, b in itertools.pairwise(rms))  # decays
