"""Frame validation: every rejection class, gaps, frozen channels, restarts; a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.validate import FrameValidator, warm
from tripwire.config import SourceConfig
from tripwire.messages import Frame, VerdictFlag

MS = 1_000_000
NOW = 10_000 * MS
SRC = SourceConfig(id=1, name="pump-1", channels=["vib_x", "vib_y", "current", "temp"],
                   min_value=-100.0, max_value=100.0)


def _samples(seed: int = 0, channels: int = 4, n: int = 128) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(channels, n)).astype(np.float32)


def _frame(seq: int, *, t_acq_ns: int = NOW - MS, samples: np.ndarray | None = None,
           source_id: int = 1, rate: float = 6400.0) -> Frame:
    x = _samples(seq) if samples is None else samples
    return Frame(source_id, seq, t_acq_ns, t_acq_ns, rate, x)


@pytest.fixture
def v() -> FrameValidator:
    return FrameValidator([SRC], max_frame_age_ms=50.0, future_tolerance_ms=5.0)


def test_in_order_frames_are_accepted_without_flags(v: FrameValidator) -> None:
    for seq in range(5):
        out = v.check(_frame(seq), NOW)
        assert out.accepted and out.flags == VerdictFlag.NONE and out.missed == 0
    assert v.counts["accepted"] == 5 and v.rejected_total() == 0
    assert v.last_seq(1) == 4


@pytest.mark.parametrize("frame,reason", [
    (_frame(0, source_id=9), "unknown_source"),
    (_frame(0, samples=_samples(channels=3)), "bad_channels"),
    (_frame(0, samples=_samples(n=64)), "bad_length"),
    (_frame(0, rate=8000.0), "bad_rate"),
    (_frame(0, t_acq_ns=NOW - 51 * MS), "stale"),
    (_frame(0, t_acq_ns=NOW + 6 * MS), "future"),
])
def test_shape_and_time_rejections(v: FrameValidator, frame: Frame, reason: str) -> None:
    out = v.check(frame, NOW)
    assert not out.accepted and out.reason == reason
    assert v.counts[reason] == 1 and v.rejected_total() == 1 and v.last_seq(1) == -1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected(v: FrameValidator, bad: float) -> None:
    x = _samples()
    x[2, 77] = bad
    out = v.check(_frame(0, samples=x), NOW)
    assert (out.accepted, out.reason) == (False, "non_finite")


@pytest.mark.parametrize("bad", [100.5, -1e6])
def test_out_of_range_samples_are_rejected(v: FrameValidator, bad: float) -> None:
    x = _samples()
    x[0, 5] = bad
    out = v.check(_frame(0, samples=x), NOW)
    assert (out.accepted, out.reason) == (False, "out_of_range")


def test_repeat_and_reorder_are_rejected_and_do_not_move_the_sequence(v: FrameValidator) -> None:
    assert v.check(_frame(10), NOW).accepted
    assert v.check(_frame(10), NOW).reason == "repeat"
    assert v.check(_frame(8), NOW).reason == "reorder"
    assert v.last_seq(1) == 10
    assert v.check(_frame(11), NOW).flags == VerdictFlag.NONE


def test_gap_is_accepted_flagged_and_counted(v: FrameValidator) -> None:
    v.check(_frame(0), NOW)
    out = v.check(_frame(4), NOW)
    assert out.accepted and out.flags == VerdictFlag.GAP and out.missed == 3
    assert v.counts["gap"] == 1 and v.counts["frames_missed"] == 3


def test_a_rejected_frame_leaves_a_gap_for_the_next(v: FrameValidator) -> None:
    v.check(_frame(0), NOW)
    x = _samples()
    x[0, 0] = np.nan
    assert not v.check(_frame(1, samples=x), NOW).accepted
    out = v.check(_frame(2), NOW)
    assert out.accepted and out.missed == 1 and out.flags & VerdictFlag.GAP


def test_constant_channel_is_accepted_but_flagged_frozen(v: FrameValidator) -> None:
    x = _samples()
    x[1] = 3.25
    out = v.check(_frame(0, samples=x), NOW)
    assert out.accepted and out.frozen and out.flags == VerdictFlag.SENSOR_FROZEN
    assert v.counts["frozen"] == 1


def test_restart_of_numbering_with_fresh_time_is_accepted_as_a_gap(v: FrameValidator) -> None:
    v.check(_frame(500, t_acq_ns=NOW - 10 * MS), NOW)
    # an old frame replayed with its old time is a reorder, however far back
    assert v.check(_frame(100, t_acq_ns=NOW - 30 * MS), NOW).reason == "reorder"
    out = v.check(_frame(0, t_acq_ns=NOW - 5 * MS), NOW)  # numbering back, time forward
    assert out.accepted and out.restart and out.flags & VerdictFlag.GAP and out.missed == 0
    assert v.counts["restart"] == 1 and v.last_seq(1) == 0


def test_boundaries_are_inclusive_of_the_limits(v: FrameValidator) -> None:
    x = _samples()
    x[0, 0], x[0, 1] = 100.0, -100.0
    assert v.check(_frame(0, samples=x, t_acq_ns=NOW - 50 * MS), NOW).accepted
    assert v.check(_frame(1, t_acq_ns=NOW + 5 * MS), NOW).accepted


def test_read_only_samples_after_warm(v: FrameValidator) -> None:
    warm()
    x = _samples()
    x.flags.writeable = False
    assert v.check(_frame(0, samples=x), NOW).accepted
