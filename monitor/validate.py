"""Per-source frame validation after the codec accepted the bytes (pure core).

``decode_frame`` already checked integrity (crc over header and payload), structure and the
connection identity (cell address, source key). Here a frame is checked against what its
source is configured to send and against what came before:

    rejected: unknown_source, bad_channels, bad_rate, bad_length      (shape vs SourceConfig)
              repeat (seq == last), reorder (seq < last),             (sequence)
              insertion (seq further ahead than the source can have sent since the last
              accepted frame, by both its own clock and ours, plus INSERT_SLACK_FRAMES)
              future (earlier than the source's clock allows),        (time, source_clock.py)
              stale (later than max age beyond the source's delay floor)
              non_finite (NaN/Inf), out_of_range (min/max_value)      (values)
    accepted, flagged: GAP (seq > last + 1, the number missed is counted),
              SENSOR_FROZEN (a channel is exactly constant over the frame),
              restart (seq went backwards but t_acq went forwards: the publisher restarted
              its numbering; counted and flagged GAP so the caller resets its windows)

Only accepted frames advance the source's last sequence number, so a rejected frame leaves a
hole that the next accepted frame reports as a gap (an inserted frame leaves none: the stream
goes on as if it never came). Time is judged against each source's learned clock offset, and
an accepted frame's ``offset_ns`` puts its times on the monitor's clock (source_clock.py).
Bad data is data: nothing here raises for a bad frame, and ``now_ns`` is always an argument;
this module never reads a clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from monitor.source_clock import SourceClock
from tripwire.config import SourceConfig
from tripwire.messages import Frame, VerdictFlag

REJECT_REASONS = (
    "unknown_source", "bad_channels", "bad_rate", "bad_length", "repeat", "reorder",
    "insertion", "future", "stale", "non_finite", "out_of_range",
)
# Frames a source may be ahead of what elapsed time explains (a publisher catching up after a
# stall sends a burst whose stamps are close together).
INSERT_SLACK_FRAMES = 64
_NON_FINITE, _OUT_OF_RANGE, _FROZEN = 1, 2, 4
_SENSOR_FROZEN = int(VerdictFlag.SENSOR_FROZEN)  # tested as an int: IntFlag's & is slow Python


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool
    reason: str = ""  # one of REJECT_REASONS when rejected
    flags: VerdictFlag = VerdictFlag.NONE
    missed: int = 0  # frames missing before this one (GAP)
    restart: bool = False  # the source restarted its sequence; reset windows
    offset_ns: int = 0  # add to the frame's times to put them on the monitor's clock

    @property
    def frozen(self) -> bool:
        return bool(int(self.flags) & _SENSOR_FROZEN)


ACCEPTED = Outcome(True)
_REJECTED = {reason: Outcome(False, reason) for reason in REJECT_REASONS}


@njit(cache=True, nogil=True)
def _scan(x: npt.NDArray[np.float32], lo: float, hi: float) -> int:
    """Bit 1 non-finite (then alone), bit 2 outside [lo, hi], bit 4 some channel constant.

    No early exit and no branch per sample: each test is or-ed into a flag, so the loop over
    a channel's samples runs in SIMD lanes. ``v - v`` is 0 for every finite value and NaN for
    NaN and +-inf, and NaN compares unequal to everything, so ``v - v != 0`` is "not finite".
    """
    n_ch, n = x.shape
    bad = False
    outside = False
    frozen = False
    for c in range(n_ch):
        first = x[c, 0]
        varies = False
        for t in range(n):
            v = x[c, t]
            bad |= (v - v) != 0.0
            outside |= (v < lo) | (v > hi)
            varies |= v != first
        frozen |= not varies
    if bad:
        return _NON_FINITE
    return (_OUT_OF_RANGE if outside else 0) | (_FROZEN if frozen and n > 1 else 0)


@dataclass(slots=True)
class _SourceState:
    cfg: SourceConfig
    period_ns: int  # one frame of samples
    clock: SourceClock
    min_value: float  # cfg's bounds as floats: the scan is compiled for float64 bounds
    max_value: float
    last_seq: int = -1  # -1: nothing accepted yet
    last_t_acq_ns: int = 0
    last_recv_ns: int = 0


class FrameValidator:
    """Stateful checks for every configured source; ``counts`` holds a counter per reason."""

    def __init__(
        self,
        sources: Sequence[SourceConfig],
        *,
        max_frame_age_ms: float,
        future_tolerance_ms: float = 5.0,
    ) -> None:
        self._sources = {
            s.id: _SourceState(s, max(1, round(s.frame_samples / s.sample_rate_hz * 1e9)),
                               SourceClock(), float(s.min_value), float(s.max_value))
            for s in sources
        }
        self._max_age_ns = int(max_frame_age_ms * 1e6)
        self._future_ns = int(future_tolerance_ms * 1e6)
        self.counts: Counter[str] = Counter()

    def last_seq(self, source_id: int) -> int:
        """Sequence number of the source's last accepted frame, -1 before the first."""
        state = self._sources.get(source_id)
        return state.last_seq if state is not None else -1

    def offset_ns(self, source_id: int) -> int:
        """What puts the source's times on the monitor's clock (0 before it is learned)."""
        state = self._sources.get(source_id)
        return state.clock.offset_ns if state is not None else 0

    def clocks(self) -> dict[int, SourceClock]:
        return {sid: state.clock for sid, state in self._sources.items()}

    def check(self, frame: Frame, now_ns: int) -> Outcome:
        out = self._check(frame, now_ns)
        if out.accepted:
            self.counts["accepted"] += 1
            if out.missed:
                self.counts["gap"] += 1
                self.counts["frames_missed"] += out.missed
            if out.frozen:
                self.counts["frozen"] += 1
            if out.restart:
                self.counts["restart"] += 1
        else:
            self.counts[out.reason] += 1
        return out

    def _check(self, frame: Frame, now_ns: int) -> Outcome:
        state = self._sources.get(frame.source_id)
        if state is None:
            return _REJECTED["unknown_source"]
        cfg = state.cfg
        if frame.channels != len(cfg.channels):
            return _REJECTED["bad_channels"]
        if abs(frame.sample_rate_hz - cfg.sample_rate_hz) > 1e-9 * cfg.sample_rate_hz:
            return _REJECTED["bad_rate"]
        if frame.length != cfg.frame_samples:
            return _REJECTED["bad_length"]
        restart = False
        if state.last_seq >= 0 and frame.seq <= state.last_seq:
            if frame.seq == state.last_seq:
                return _REJECTED["repeat"]
            if frame.t_acq_ns <= state.last_t_acq_ns:
                return _REJECTED["reorder"]
            restart = True  # numbering went back, time went on: a restarted publisher
        elif state.last_seq >= 0 and frame.seq - state.last_seq - 1 > INSERT_SLACK_FRAMES:
            span_ns = max(frame.t_acq_ns - state.last_t_acq_ns, now_ns - state.last_recv_ns)
            if frame.seq - state.last_seq - 1 > span_ns // state.period_ns + INSERT_SLACK_FRAMES:
                return _REJECTED["insertion"]
        timing = state.clock.judge(frame.t_acq_ns, now_ns, max_age_ns=self._max_age_ns,
                                   future_ns=self._future_ns)
        if timing.step:
            self.counts["clock_step"] += 1
        if timing.late:
            return _REJECTED[timing.late]
        code = _scan(frame.samples, state.min_value, state.max_value)
        if code & _NON_FINITE:
            return _REJECTED["non_finite"]
        if code & _OUT_OF_RANGE:
            return _REJECTED["out_of_range"]
        missed = 0 if state.last_seq < 0 or restart else frame.seq - state.last_seq - 1
        state.last_seq = frame.seq
        state.last_t_acq_ns = frame.t_acq_ns
        state.last_recv_ns = now_ns
        flags = VerdictFlag.NONE
        if missed or restart:
            flags |= VerdictFlag.GAP
        if code & _FROZEN:
            flags |= VerdictFlag.SENSOR_FROZEN
        if flags == VerdictFlag.NONE and timing.offset_ns == 0:
            return ACCEPTED
        return Outcome(True, "", flags, missed, restart, timing.offset_ns)

    def rejected_total(self) -> int:
        return sum(self.counts[r] for r in REJECT_REASONS)


def warm() -> None:
    """Compile the value scan for writable and read-only frames."""
    x = np.zeros((1, 2), dtype=np.float32)
    _scan(x, -1.0, 1.0)
    x.flags.writeable = False
    _scan(x, -1.0, 1.0)
