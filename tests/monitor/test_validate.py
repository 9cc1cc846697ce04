"""Frame validation: every rejection class, gaps, frozen channels, restarts, insertion, and
time judged against each source's learned clock; a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.source_clock import HOST_BAND_NS, LEARN_FRAMES
from monitor.validate import INSERT_SLACK_FRAMES, FrameValidator, warm
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
])
def test_shape_rejections(v: FrameValidator, frame: Frame, reason: str) -> None:
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


TRANSPORT = MS // 5  # the least delay from acquisition to validation in these tests


def _learned(v: FrameValidator, *, skew_ns: int = 0, frames: int = LEARN_FRAMES) -> int:
    """Feed on-time frames from a source whose clock runs ``skew_ns`` ahead of ours; returns
    the last time used (frames are 20 ms apart, each received TRANSPORT after acquisition)."""
    now = NOW
    for seq in range(frames):
        now = NOW + seq * 20 * MS
        assert v.check(_frame(seq, t_acq_ns=now - TRANSPORT + skew_ns), now).accepted
    return now


@pytest.mark.parametrize(("delay_ms", "reason"), [(51, "stale"), (-6, "future")])
def test_time_rejections_after_the_clock_is_learned(v: FrameValidator, delay_ms: int,
                                                     reason: str) -> None:
    now = _learned(v) + 20 * MS
    out = v.check(_frame(LEARN_FRAMES, t_acq_ns=now - TRANSPORT - delay_ms * MS), now)
    assert not out.accepted and out.reason == reason
    assert v.counts[reason] == 1 and v.last_seq(1) == LEARN_FRAMES - 1


def test_boundaries_are_inclusive_of_the_limits(v: FrameValidator) -> None:
    now = _learned(v) + 20 * MS
    x = _samples()
    x[0, 0], x[0, 1] = 100.0, -100.0
    assert v.check(_frame(LEARN_FRAMES, samples=x, t_acq_ns=now - TRANSPORT - 50 * MS), now).accepted


def test_future_boundary_is_inclusive(v: FrameValidator) -> None:
    now = _learned(v) + 20 * MS
    assert v.check(_frame(LEARN_FRAMES, t_acq_ns=now - TRANSPORT + 5 * MS), now).accepted


@pytest.mark.parametrize("skew_s", [10, -10])
def test_a_skewed_source_is_judged_on_its_own_clock(v: FrameValidator, skew_s: int) -> None:
    skew = skew_s * 1000 * MS
    now = _learned(v, skew_ns=skew)
    assert v.rejected_total() == 0
    now += 20 * MS
    out = v.check(_frame(LEARN_FRAMES, t_acq_ns=now - TRANSPORT + skew), now)
    assert out.accepted and out.offset_ns == v.offset_ns(1)
    age_ns = now - (now - TRANSPORT + skew + out.offset_ns)  # what a verdict shows; truly TRANSPORT
    if skew > 0:
        assert age_ns == 0  # ahead of us: short by the least transport delay
    else:
        assert age_ns == HOST_BAND_NS  # behind us: never short, long by at most the band
    now += 20 * MS
    late = v.check(_frame(LEARN_FRAMES + 1, t_acq_ns=now - 60 * MS + skew), now)
    assert late.reason == "stale"  # real delay beyond the bound is not hidden by the skew


def test_a_source_on_the_host_clock_is_not_translated(v: FrameValidator) -> None:
    now = _learned(v) + 20 * MS
    out = v.check(_frame(LEARN_FRAMES, t_acq_ns=now - 3 * MS), now)
    assert out.accepted and out.offset_ns == 0  # floor 1 ms: inside the host band


def test_a_forward_clock_step_is_confirmed_then_followed(v: FrameValidator) -> None:
    now = _learned(v)
    reasons = []
    for seq in range(LEARN_FRAMES, LEARN_FRAMES + 4):
        now += 20 * MS
        reasons.append(v.check(_frame(seq, t_acq_ns=now - MS + 2000 * MS), now).reason)
    assert reasons == ["future", "future", "", ""]
    assert v.counts["clock_step"] == 1 and v.counts["future"] == 2


def test_a_backward_clock_step_stays_stale(v: FrameValidator) -> None:
    now = _learned(v)
    for seq in range(LEARN_FRAMES, LEARN_FRAMES + 50):
        now += 20 * MS
        assert v.check(_frame(seq, t_acq_ns=now - MS - 2000 * MS), now).reason == "stale"


def test_a_frame_far_ahead_of_its_stream_is_an_insertion(v: FrameValidator) -> None:
    now = _learned(v)
    now += 20 * MS
    out = v.check(_frame(LEARN_FRAMES + 5000, t_acq_ns=now - MS), now)
    assert out.reason == "insertion" and v.counts["insertion"] == 1
    out = v.check(_frame(LEARN_FRAMES, t_acq_ns=now - MS), now)  # the stream goes on, no hole
    assert out.accepted and out.missed == 0


def test_a_long_outage_explains_a_long_gap(v: FrameValidator) -> None:
    now = _learned(v)
    missed = 10 * INSERT_SLACK_FRAMES
    now += (missed + 1) * 20 * MS  # the frames in between were lost, and time passed
    out = v.check(_frame(LEARN_FRAMES + missed, t_acq_ns=now - MS), now)
    assert out.accepted and out.missed == missed


def test_read_only_samples_after_warm(v: FrameValidator) -> None:
    warm()
    x = _samples()
    x.flags.writeable = False
    assert v.check(_frame(0, samples=x), NOW).accepted
