"""One check suite that every FrameSource implementation passes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sensors.errors import SourceStateError
from sensors.replay import ReplaySource
from sensors.simulated import SimulatedSource
from sensors.source import FrameSource, SourceState
from tests.sensors.common import read_all
from tripwire.config import SimConfig, SourceConfig

CHANNELS = ["vib_x", "vib_y", "current", "temp"]
Factory = Callable[[], FrameSource]


@pytest.fixture(params=["replay-csv", "replay-npy", "simulated"])
def make_source(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    data = np.random.default_rng(1).normal(size=(4, 128 * 6)).astype(np.float32)
    if request.param == "replay-csv":
        lines = [",".join(CHANNELS)] + [",".join(f"{v:.6f}" for v in data[:, i]) for i in range(data.shape[1])]
        (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
        return lambda: ReplaySource(tmp_path / "r.csv", source_id=1, channels=CHANNELS,
                                    sample_rate_hz=6400.0, frame_samples=128, paced=False)
    if request.param == "replay-npy":
        np.save(tmp_path / "r.npy", data)
        return lambda: ReplaySource(tmp_path / "r.npy", source_id=1, channels=CHANNELS,
                                    sample_rate_hz=6400.0, frame_samples=128, paced=False)
    sources = [SourceConfig(id=1, name="m", channels=CHANNELS)]
    return lambda: SimulatedSource(sources, SimConfig(), paced=False, seconds=0.12)


def test_is_a_frame_source(make_source: Factory) -> None:
    assert isinstance(make_source(), FrameSource)


def test_frames_are_well_formed(make_source: Factory) -> None:
    with make_source() as src:
        frames = read_all(src)
        assert src.state is SourceState.DRAINED
    assert len(frames) == 6
    assert [f.seq for f in frames] == list(range(6))
    t_acq = [f.t_acq_ns for f in frames]
    assert t_acq == sorted(t_acq) and t_acq[0] > 0
    for f in frames:
        assert f.samples.shape == (4, 128)
        assert f.samples.dtype == np.float32 and f.samples.flags.c_contiguous
        assert f.t_pub_ns == 0 and f.sample_rate_hz == 6400.0


def test_lifecycle(make_source: Factory) -> None:
    src = make_source()
    assert src.state is SourceState.NEW
    with pytest.raises(SourceStateError):
        src.read()
    with src:
        assert src.state is SourceState.OPEN
        assert src.read() is not None
    assert src.state is SourceState.CLOSED
    with pytest.raises(SourceStateError):
        src.read()
    with pytest.raises(SourceStateError):
        src.__enter__()  # a closed source cannot be reused


def test_close_is_idempotent(make_source: Factory) -> None:
    src = make_source()
    with src:
        pass
    src.close()
    assert src.state is SourceState.CLOSED
