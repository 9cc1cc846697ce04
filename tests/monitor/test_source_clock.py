"""A source's clock against ours: learning, drift, steps, and the offset verdicts get."""

from __future__ import annotations

import pytest

from monitor.source_clock import (
    HOST_BAND_NS,
    LEARN_FRAMES,
    MAX_DRIFT_PPM,
    STEP_CONFIRM,
    SourceClock,
)

MS = 1_000_000
PERIOD = 20 * MS
AGE = 50 * MS
FUTURE = 5 * MS


def judge(c: SourceClock, t_acq: int, now: int) -> str:
    return c.judge(t_acq, now, max_age_ns=AGE, future_ns=FUTURE).late


def test_learning_takes_the_least_delay_even_after_a_late_first_frame() -> None:
    c = SourceClock()
    assert judge(c, 0, 40 * MS) == ""  # the first frame sets the floor: 40 ms (delay unknowable)
    assert c.floor_ns == 40 * MS
    assert judge(c, PERIOD, PERIOD + MS) == ""  # 39 ms earlier than the floor: still learning
    assert c.floor_ns == MS


def test_a_single_early_frame_is_rejected_and_moves_nothing() -> None:
    c = SourceClock()
    now = 0
    for k in range(LEARN_FRAMES):
        now = k * PERIOD
        judge(c, now - MS, now)
    now += PERIOD
    assert judge(c, now + 3000 * MS, now) == "future"  # a bad stamp
    assert c.floor_ns == MS and c.steps == 0
    now += PERIOD
    assert judge(c, now - MS, now) == ""


def test_a_confirmed_forward_step_reanchors() -> None:
    c = SourceClock()
    now = 0
    for k in range(LEARN_FRAMES):
        now = k * PERIOD
        judge(c, now - MS, now)
    verdicts = []
    for _ in range(STEP_CONFIRM + 1):
        now += PERIOD
        verdicts.append(judge(c, now + 3000 * MS, now))
    assert verdicts == ["future"] * (STEP_CONFIRM - 1) + ["", ""]
    assert c.steps == 1 and c.floor_ns == -3000 * MS


def test_drift_within_the_bound_is_followed_and_a_step_is_not() -> None:
    c = SourceClock()
    drift_ppm = MAX_DRIFT_PPM // 2  # the source's clock runs slow: d grows 250 us per second
    now = 0
    for k in range(3000):  # 60 s
        now = k * PERIOD
        d = MS + now * drift_ppm // 1_000_000
        assert judge(c, now - d, now) == "", k
    assert c.floor_ns is not None and c.floor_ns > 10 * MS  # followed 15 ms of drift
    # the same growth as a step: stale until the floor has crept up (which takes minutes)
    for k in range(3000, 3100):
        now = k * PERIOD
        assert judge(c, now - (c.floor_ns + 60 * MS), now) == "stale"


BAND_MS = HOST_BAND_NS / MS


@pytest.mark.parametrize(("floor_ms", "offset_ms"), [
    (0.0, 0.0), (BAND_MS / 2, 0.0), (BAND_MS, 0.0), (BAND_MS + 0.5, 0.5),
    (10_000.0, 10_000.0 - BAND_MS), (-0.5, -0.5), (-10_000.0, -10_000.0),
])
def test_offset_is_continuous_in_the_floor(floor_ms: float, offset_ms: float) -> None:
    c = SourceClock()
    c.judge(0, round(floor_ms * MS), max_age_ns=AGE, future_ns=FUTURE)
    assert c.offset_ns == round(offset_ms * MS)


def test_nothing_learned_means_no_offset() -> None:
    assert SourceClock().offset_ns == 0
