"""The bench's signal bank: frames, determinism, rate and fault injection."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.errors import BenchConfigError
from bench.signals import BEARING, RMS_STEP, BenchLoad, Fault, SignalBank
from tests.bench.conftest import SMALL


def test_frames_are_contiguous_float32_views_of_the_load_shape(small_bank: SignalBank) -> None:
    f = small_bank.frame(1, 5)
    assert f.shape == (SMALL.channels, SMALL.frame_samples)
    assert f.dtype == np.float32 and f.flags.c_contiguous
    assert not f.flags.writeable  # a healthy frame is the bank itself: read-only
    assert np.all(np.isfinite(f)) and float(np.std(f)) > 0


def test_same_seed_same_stream_machines_and_seeds_differ() -> None:
    a, b, c = SignalBank(SMALL, seed=1), SignalBank(SMALL, seed=1), SignalBank(SMALL, seed=2)
    assert np.array_equal(a.block(0, 3, 4), b.block(0, 3, 4))
    assert not np.allclose(a.block(0, 0, 8), a.block(1, 0, 8))
    assert not np.allclose(a.block(0, 0, 8), c.block(0, 0, 8))
    assert not np.allclose(a.channel_rms(0), a.channel_rms(1))


def test_the_loop_repeats_and_joins_without_a_step(small_bank: SignalBank) -> None:
    k = small_bank.loop_frames
    assert np.array_equal(small_bank.frame(0, k + 2), small_bank.frame(0, 2))
    across = small_bank.block(0, k - 1, 2)  # the last frame of the loop, then the first
    inside = small_bank.block(0, 2, 2)
    step = np.abs(np.diff(across, axis=1)).max()
    assert step < 3 * np.abs(np.diff(inside, axis=1)).max()


def test_stream_time_and_rate_of_the_full_load() -> None:
    load = BenchLoad()  # 16 machines x 64 channels at 25.6 kHz: 26.2 M samples/s
    assert load.samples_per_s == pytest.approx(26_214_400)
    assert load.frames_per_s == pytest.approx(3200)
    bank = SignalBank(load)
    steps = round(load.rate_hz / load.frame_samples)  # one second of stream
    t0 = time.monotonic()
    made = sum(bank.frame(m, k).size for k in range(steps) for m in range(load.machines))
    elapsed = time.monotonic() - t0
    assert made == load.samples_per_s
    assert elapsed < 1.0, f"one second of the full load took {elapsed:.3f} s to generate"


def _kurtosis(x: np.ndarray) -> float:
    d = x - x.mean()
    return float(np.mean(d**4) / np.mean(d**2) ** 2)


def test_bearing_fault_starts_at_its_sample_on_its_channel_only() -> None:
    bank = SignalBank(SMALL, seed=3)
    healthy = SignalBank(SMALL, seed=3)
    fs = SMALL.frame_samples
    at_sample = 5 * fs + 40
    onset = bank.inject(1, Fault(BEARING, channel=2, size=6.0), at_sample / SMALL.rate_hz)
    assert onset.sample == at_sample and bank.onsets() == [onset]
    assert np.array_equal(bank.frame(1, 4), healthy.frame(1, 4))
    assert np.array_equal(bank.block(0, 0, 20), healthy.block(0, 0, 20))  # other machine
    f, h = bank.frame(1, 5), healthy.frame(1, 5)
    assert f.flags.writeable  # a faulted frame is a copy, the bank is untouched
    assert np.array_equal(f[:, :40], h[:, :40])
    assert np.array_equal(np.delete(f, 2, axis=0), np.delete(h, 2, axis=0))
    later, normal = bank.block(1, 6, 16)[2], healthy.block(1, 6, 16)[2]
    assert np.abs(later - normal).max() > 3.0 * bank.channel_rms(1)[2]
    assert _kurtosis(later) > _kurtosis(normal) + 1.0  # impulsive
    assert bank.clear(1) == 1 and bank.onsets() == []
    assert np.array_equal(bank.frame(1, 8), healthy.frame(1, 8))


def test_rms_step_scales_one_channel() -> None:
    bank = SignalBank(SMALL, seed=3)
    healthy = SignalBank(SMALL, seed=3)
    bank.inject(0, Fault(RMS_STEP, channel=1, size=3.0), 0.0)
    f, h = bank.frame(0, 7), healthy.frame(0, 7)
    assert np.allclose(f[1], 3.0 * h[1])
    assert np.array_equal(f[0], h[0])


@pytest.mark.parametrize("make", [
    lambda b: b.inject(5, Fault(), 0.0),
    lambda b: b.inject(0, Fault(channel=9), 0.0),
    lambda b: b.inject(0, Fault(), -1.0),
    lambda b: b.frame(0, -1),
    lambda b: b.frame(2, 0),
    lambda b: Fault(kind="spark"),
    lambda b: Fault(size=0.0),
    lambda b: BenchLoad(window=1000, hop=128),
    lambda b: SignalBank(SMALL, loop_frames=4),
])
def test_bad_requests_are_config_errors(small_bank: SignalBank, make: object) -> None:
    with pytest.raises(BenchConfigError):
        make(small_bank)  # type: ignore[operator]


def test_a_fault_window_ends_at_its_sample() -> None:
    bank = SignalBank(SMALL, seed=3)
    healthy = SignalBank(SMALL, seed=3)
    fs = SMALL.frame_samples
    onset = bank.inject(0, Fault(RMS_STEP, channel=1, size=3.0), 2 * fs / SMALL.rate_hz,
                        until_s=(4 * fs + 10) / SMALL.rate_hz)
    assert (onset.sample, onset.end) == (2 * fs, 4 * fs + 10)
    assert np.array_equal(bank.frame(0, 1), healthy.frame(0, 1))
    assert np.allclose(bank.frame(0, 3)[1], 3.0 * healthy.frame(0, 3)[1])
    last = bank.frame(0, 4)
    assert np.allclose(last[1, :10], 3.0 * healthy.frame(0, 4)[1, :10])
    assert np.array_equal(last[1, 10:], healthy.frame(0, 4)[1, 10:])
    assert np.array_equal(bank.frame(0, 5), healthy.frame(0, 5))
    with pytest.raises(BenchConfigError):
        bank.inject(0, Fault(), 1.0, until_s=0.5)


def test_idle_machines_stand_still_below_the_idle_rule_and_the_others_run_above_it() -> None:
    from dataclasses import replace

    from bench.signals import IDLE_RMS_BELOW

    load = replace(SMALL, machines=4, idle=2)
    bank = SignalBank(load, seed=3)
    assert load.running == 2
    for m in range(4):
        rms0 = float(bank.channel_rms(m)[0])
        assert (rms0 < IDLE_RMS_BELOW) == (m >= load.running), (m, rms0)
    # The running machines are the same as in a plant without still machines.
    assert np.array_equal(bank.block(1, 0, 4), SignalBank(replace(load, idle=0), seed=3).block(1, 0, 4))
    for bad in (-1, 4):
        with pytest.raises(BenchConfigError, match="idle"):
            replace(load, idle=bad)
