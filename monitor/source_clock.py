"""Each source's clock against the monitor's (pure core): offset, delay, and time translation.

A source stamps ``t_acq_ns`` on its own clock. The simulator and local adapters share the
host's monotonic clock; a remote device, or a publisher in another time namespace, does not,
and its clock may be seconds off. Judged naively (``now - t_acq``), a source 10 s behind has
every frame stale, one 10 s ahead has every frame in the future, and a verdict carrying its
t_acq looks 10 s late (or 10 s early, hiding real delay) at the interlock.

What a receiver can observe is ``d = t_recv - t_acq`` = transport delay + clock offset, and
it cannot split the two from one side. ``SourceClock`` therefore learns the *floor* of d, the
least delay seen (offset + the least transport delay), and judges each frame's delay as its
excess over that floor:

- learning: over a source's first ``LEARN_FRAMES`` frames the floor follows every lower d;
- after that the floor follows a lower d freely within ``future_ns`` (a frame can only be
  early by jitter); a frame earlier than that is rejected as ``future``, unless
  ``STEP_CONFIRM`` frames in a row agree, which is a forward step of the source's clock
  (counted in ``steps``) and re-anchors the floor. Following the floor *down* can never
  hide delay: it only makes frames look later;
- the floor rises at most ``MAX_DRIFT_PPM`` of elapsed time (two crystals drifting apart),
  so a source whose d grows faster than that (real delay, or its clock stepping back) has
  frames judged late: past ``max_age_ns`` they are ``stale``, and the decision rules trip
  when a source stays stale (``decision.bad_input_trip_ms``); below it, the verdicts carry
  the delay to the interlock, whose timeliness rule judges it.

Verdicts carry t_acq on the monitor's clock: ``t_acq + offset_ns``. A floor within
[0, ``HOST_BAND_NS``] is a source on the host's clock with a small transport delay, and is
not translated (its ages stay exact). A floor above the band is a source behind us: the
offset is the floor less the band, so its ages are never understated, and overstated by at
most the band. A negative floor is a source ahead of us: the offset is the floor. The offset
is continuous in the floor, so a floor near the band's edges does not make times jump.

Limits (inherent to one-way timestamps, documented, not hidden):
- frames before the floor is learned cannot be judged late: a source whose first frames all
  arrive late has that delay taken for offset, and it is hidden until a timely frame shows
  it (the floor follows it down and ages become honest again);
- for a source ahead of us, a translated age is short by the least transport delay seen (on
  one host, tens of µs); for a source behind us, long by at most ``HOST_BAND_NS``;
- real delay that creeps up slower than ``MAX_DRIFT_PPM`` is taken for clock drift;
- a source clock step is caught only when it exceeds the bounds (``future_ns`` forward,
  ``max_age_ns`` back, or the interlock's verdict budget for what reaches verdicts).

Pure: time arrives as arguments, no clock is read, nothing is logged.
"""

from __future__ import annotations

from dataclasses import dataclass

LEARN_FRAMES = 8
STEP_CONFIRM = 3  # consecutive too-early frames that make a forward clock step
MAX_DRIFT_PPM = 500  # how fast the floor may rise: 0.5 ms per second
HOST_BAND_NS = 500_000  # a floor in [0, 0.5 ms] is the host's own clock


@dataclass(frozen=True, slots=True)
class Timing:
    """One frame's time judgement: ``late`` is "" (in time), "future" or "stale"."""

    late: str
    excess_ns: int  # delay beyond the floor
    offset_ns: int  # add to the source's times to put them on the monitor's clock
    step: bool = False  # this frame confirmed a forward step of the source's clock


class SourceClock:
    """The floor of ``t_recv - t_acq`` for one source; see the module docstring."""

    __slots__ = ("floor_ns", "frames", "steps", "_last_ns", "_early", "_early_min")

    def __init__(self) -> None:
        self.floor_ns: int | None = None
        self.frames = 0  # frames that updated the floor
        self.steps = 0  # confirmed forward steps of the source's clock
        self._last_ns = 0
        self._early = 0  # consecutive frames earlier than the floor allows
        self._early_min = 0

    @property
    def offset_ns(self) -> int:
        floor = self.floor_ns
        if floor is None or 0 <= floor <= HOST_BAND_NS:
            return 0
        return floor if floor < 0 else floor - HOST_BAND_NS

    def judge(self, t_acq_ns: int, now_ns: int, *, max_age_ns: int, future_ns: int) -> Timing:
        d = now_ns - t_acq_ns
        floor = self.floor_ns
        step = False
        if floor is None:
            floor = d
        elif d - floor < -future_ns and self.frames >= LEARN_FRAMES:
            self._early += 1
            self._early_min = d if self._early == 1 else min(self._early_min, d)
            if self._early < STEP_CONFIRM:
                return Timing("future", d - floor, self.offset_ns)
            floor, step = self._early_min, True
            self.steps += 1
        elif d < floor:
            floor = d
        else:
            floor = min(d, floor + (now_ns - self._last_ns) * MAX_DRIFT_PPM // 1_000_000)
        self._early = 0
        self.floor_ns = floor
        self.frames += 1
        self._last_ns = now_ns
        excess = d - floor
        return Timing("stale" if excess > max_age_ns else "", excess, self.offset_ns, step)
