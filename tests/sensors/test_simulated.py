"""The in-process simulated source: interleaving, pacing, limits, faults."""

from __future__ import annotations

import numpy as np
import pytest

from sensors.errors import SourceStateError
from sensors.simulated import SimulatedSource
from sensors.source import SourceState
from tests.sensors.common import FakeClock, read_all
from tripwire.config import FaultConfig, SimConfig, SourceConfig

CHANNELS = ["vib_x", "vib_y", "current", "temp"]
SOURCES = [SourceConfig(id=1, name="pump-1", channels=CHANNELS),
           SourceConfig(id=2, name="fan-2", channels=CHANNELS)]


def test_frames_interleave_by_due_time() -> None:
    with SimulatedSource(SOURCES, SimConfig(), paced=False, seconds=0.1) as src:
        frames = read_all(src)
    assert src.state is SourceState.CLOSED
    assert [(f.source_id, f.seq) for f in frames] == [(s, k) for k in range(5) for s in (1, 2)]
    for f in frames:
        assert f.samples.shape == (4, 128) and f.samples.dtype == np.float32
        assert f.sample_rate_hz == 6400.0


def test_different_rates_keep_their_own_period() -> None:
    slow = SourceConfig(id=3, name="slow", channels=CHANNELS, frame_samples=256)
    with SimulatedSource([SOURCES[0], slow], SimConfig(), paced=False, seconds=0.08) as src:
        order = [f.source_id for f in read_all(src)]
    assert order.count(1) == 4 and order.count(3) == 2


def test_paced_on_the_clock() -> None:
    clock = FakeClock()
    with SimulatedSource(SOURCES[:1], SimConfig(), paced=True, seconds=0.1, poll_s=1.0,
                         clock=clock, sleep=clock.sleep) as src:
        start = clock.now_ns
        frames = read_all(src)
    assert [(f.t_acq_ns - start) / 1e6 for f in frames] == pytest.approx([20, 40, 60, 80, 100])


def test_same_seed_same_frames_as_the_plant() -> None:
    from sim.plant import Plant

    with SimulatedSource(SOURCES, SimConfig(seed=3), paced=False, seconds=0.04) as src:
        frames = [f for f in read_all(src) if f.source_id == 2]
    plant = Plant(SOURCES, SimConfig(seed=3))
    plant.start_schedule()
    for f in frames:
        np.testing.assert_array_equal(f.samples, plant.next_frame(2))


def test_fault_schedule_starts_on_open() -> None:
    sim = SimConfig(faults=[FaultConfig(kind="spike", source=1, at_s=0.05)])
    with SimulatedSource(SOURCES, sim, paced=False, seconds=0.2) as src:
        frames = read_all(src)
        onsets = src.plant.onsets()
    peak = {sid: max(float(np.abs(f.samples[0]).max()) for f in frames if f.source_id == sid)
            for sid in (1, 2)}
    assert peak[1] > 10 * peak[2]
    assert [(o.source_id, o.kind) for o in onsets] == [(1, "spike")]


def test_plant_only_while_open() -> None:
    src = SimulatedSource(SOURCES, SimConfig(), paced=False)
    with pytest.raises(SourceStateError):
        _ = src.plant
    with src:
        src.plant.set_permit(False)
        assert src.read() is not None
    with pytest.raises(SourceStateError):
        _ = src.plant
