"""Decision rules: from window scores to OK / WARN / TRIP per source (pure core).

The scorer (the model) only scores; this object decides, as in river's detector/decider
split. Per source, for each window in order:

    IDLE  (idle suppression, when configured) the window's RMS on ``idle_channel`` is below
          ``idle_rms_below``: the machine is stopped or coasting, so the window is not scored.
          It votes "not above", ends a TRIP episode's hysteresis, and is OK with
          ``idle=True`` (the shell sets VerdictFlag.IDLE) unless the input trip below holds.
    TRIP  at least k of the last n windows voted above, or the source's input has been bad
          (rejected, stale or frozen) for longer than bad_input_trip_ms
    WARN  the latest score is >= warn_ratio * threshold (this includes a window above the
          threshold that has not yet made k of n)
    OK    otherwise

A window votes above when its score exceeds the threshold (with model tiers, the threshold
of the tier that scored it: ``decide(threshold=...)``; warn and clear levels scale with it);
while the source is in a TRIP episode (hysteresis, ``clear_ratio`` < 1) it keeps voting
above down to the lower clear level ``clear_ratio * threshold``, so a score hovering at the
threshold does not chatter between TRIP and WARN. A score that is not a number counts as
above: a model that cannot say "normal" is not normal.

Every decision that raises a source's level (OK -> WARN, OK or WARN -> TRIP) is an *onset*:
the shell announces it (alarm, SCADA event, log line). ``max_trips_per_period`` bounds the
announcements: at most that many WARN onsets and that many TRIP onsets per source in any
``rate_period_s``; beyond that the decision says ``rate_limited`` and the shell should stay
quiet. The level itself is never held back: the interlock latches on the first TRIP anyway,
and a verdict that said OK while the rule says TRIP would be a lie on the safety path.

WARN and TRIP name the top three channels by summed absolute feature contribution; OK
windows do too with ``channels_on_ok`` (off by default: it costs an argsort per window and
bytes in every verdict). Time is an argument (``now_ns``); nothing here reads a clock or logs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from monitor.features import STATS
from tripwire.config import DecisionConfig
from tripwire.messages import Level

TOP_CHANNELS = 3
_RMS = STATS.index("rms")


@dataclass(frozen=True, slots=True)
class Decision:
    level: Level
    above: bool  # this window scored above the threshold
    votes: int  # windows voting above among the last n
    input_trip: bool  # TRIP because the input stayed bad, whatever the score
    channels: tuple[str, ...] = ()
    idle: bool = False  # idle suppression: the window was not scored
    onset: bool = False  # the level rose with this decision: announce it
    rate_limited: bool = False  # an onset beyond max_trips_per_period: do not announce

    @property
    def announce(self) -> bool:
        return self.onset and not self.rate_limited


@dataclass(slots=True)
class _SourceState:
    history: int  # bit i set: the window i steps back voted above
    last_good_ns: int
    level: Level = Level.OK  # the level of the last decision
    onsets: dict[Level, deque[int]] = field(
        default_factory=lambda: {Level.WARN: deque(), Level.TRIP: deque()})


class Decider:
    def __init__(
        self,
        *,
        threshold: float,
        k: int,
        n: int,
        warn_ratio: float,
        bad_input_trip_ms: float,
        channels: Sequence[str],
        per_channel: int,
        source_ids: Sequence[int],
        start_ns: int,
        clear_ratio: float = 1.0,
        max_onsets_per_period: int = 0,
        rate_period_s: float = 3600.0,
        idle_channel: str = "",
        idle_rms_below: float = 0.0,
        channels_on_ok: bool = False,
    ) -> None:
        if not 1 <= k <= n <= 64:
            raise ValueError(f"k, n: need 1 <= k <= n <= 64, got k={k} n={n}")
        if not 0 < warn_ratio <= 1:
            raise ValueError(f"warn_ratio: must be in (0, 1], got {warn_ratio}")
        if not 0 < clear_ratio <= 1:
            raise ValueError(f"clear_ratio: must be in (0, 1], got {clear_ratio}")
        if not math.isfinite(threshold):
            raise ValueError(f"threshold: must be finite, got {threshold}")
        if max_onsets_per_period < 0 or not rate_period_s > 0:
            raise ValueError("max_onsets_per_period must be >= 0 and rate_period_s > 0")
        if idle_channel and (idle_channel not in channels or not idle_rms_below > 0):
            raise ValueError(f"idle_channel: {idle_channel!r} must be one of {list(channels)} "
                             f"with idle_rms_below > 0")
        self.threshold = float(threshold)
        self.k, self.n = k, n
        self._mask = (1 << n) - 1
        self._warn_ratio, self._clear_ratio = warn_ratio, clear_ratio
        self._warn = warn_ratio * self.threshold
        self._clear = clear_ratio * self.threshold
        self._bad_ns = int(bad_input_trip_ms * 1e6)
        self._channels = tuple(channels)
        self._per = per_channel
        self._max_onsets = max_onsets_per_period
        self._period_ns = int(rate_period_s * 1e9)
        self._idle_at = (self._channels.index(idle_channel) * per_channel + _RMS
                         if idle_channel else -1)
        self._idle_below = float(idle_rms_below)
        self._channels_on_ok = channels_on_ok
        # A source that never sent a good frame has been bad since start-up.
        self._sources = {sid: _SourceState(0, start_ns) for sid in source_ids}

    @classmethod
    def from_config(
        cls, cfg: DecisionConfig, *, threshold: float, channels: Sequence[str], per_channel: int,
        source_ids: Sequence[int], start_ns: int,
    ) -> Decider:
        return cls(
            threshold=threshold, k=cfg.k, n=cfg.n, warn_ratio=cfg.warn_ratio,
            bad_input_trip_ms=cfg.bad_input_trip_ms, channels=channels, per_channel=per_channel,
            source_ids=source_ids, start_ns=start_ns, clear_ratio=cfg.clear_ratio,
            max_onsets_per_period=cfg.max_trips_per_period, rate_period_s=cfg.rate_period_s,
            idle_channel=cfg.idle_channel, idle_rms_below=cfg.idle_rms_below,
            channels_on_ok=cfg.channels_on_ok,
        )

    # --- input health ------------------------------------------------------------------

    def input_good(self, source_id: int, now_ns: int) -> None:
        """A usable frame (accepted, not frozen) arrived from the source."""
        self._sources[source_id].last_good_ns = now_ns

    def bad_for_ns(self, source_id: int, now_ns: int) -> int:
        """How long since the source's last usable frame (or since start-up)."""
        return max(0, now_ns - self._sources[source_id].last_good_ns)

    def input_tripped(self, source_id: int, now_ns: int) -> bool:
        return self.bad_for_ns(source_id, now_ns) > self._bad_ns

    # --- windows -----------------------------------------------------------------------

    def is_idle(self, features: npt.NDArray[np.float32] | None) -> bool:
        """Whether a raw feature row shows an idle machine (False when the rule is off)."""
        if self._idle_at < 0 or features is None:
            return False
        row = np.asarray(features).reshape(-1)
        return row.size > self._idle_at and bool(row[self._idle_at] < self._idle_below)

    @property
    def idle_rule(self) -> tuple[int, float] | None:
        """(feature index, RMS level below which the machine is idle), or None when off."""
        return (self._idle_at, self._idle_below) if self._idle_at >= 0 else None

    def decide(
        self, source_id: int, score: float, contrib: npt.NDArray[np.float32], now_ns: int,
        features: npt.NDArray[np.float32] | None = None, threshold: float | None = None,
    ) -> Decision:
        """Record one window's score for the source and return its decision.

        ``features`` is the window's raw feature row; idle suppression needs it and does
        nothing without it. ``threshold``: the threshold of the model that produced this
        score (a tier of a tiered bundle), when it is not the decider's own; the warn and
        clear levels scale with it. Votes already cast stand across a change of model.
        """
        state = self._sources[source_id]
        idle = self.is_idle(features)
        if threshold is None:
            thr, warn, clear = self.threshold, self._warn, self._clear
        else:
            thr = float(threshold)
            warn, clear = self._warn_ratio * thr, self._clear_ratio * thr
        above = not idle and not score <= thr  # NaN counts as above
        in_trip = state.level == Level.TRIP
        vote = not idle and not score <= (clear if in_trip else thr)
        state.history = ((state.history << 1) | int(vote)) & self._mask
        votes = state.history.bit_count()
        input_trip = self.input_tripped(source_id, now_ns)
        if input_trip or (votes >= self.k and not idle):
            level = Level.TRIP
        elif not idle and (above or score >= warn):
            level = Level.WARN
        else:
            self._settle(state, Level.OK, now_ns)
            named = self.top_channels(contrib) if self._channels_on_ok and not idle else ()
            return Decision(Level.OK, False, votes, False, named, idle=idle)
        onset, limited = self._settle(state, level, now_ns)
        return Decision(level, above, votes, input_trip, self.top_channels(contrib), idle,
                        onset, limited)

    def input_trip(self, source_id: int, now_ns: int) -> Decision | None:
        """TRIP for a source whose input stayed bad too long, without a window to score."""
        if not self.input_tripped(source_id, now_ns):
            return None
        state = self._sources[source_id]
        onset, limited = self._settle(state, Level.TRIP, now_ns)
        return Decision(Level.TRIP, False, state.history.bit_count(), True, (), False, onset,
                        limited)

    def _settle(self, state: _SourceState, level: Level, now_ns: int) -> tuple[bool, bool]:
        """Record the source's new level; (is it an onset, is its announcement rate-limited)."""
        onset = level > state.level
        state.level = level
        if not onset or self._max_onsets == 0:
            return onset, False
        times = state.onsets[level]
        while times and now_ns - times[0] >= self._period_ns:
            times.popleft()
        if len(times) >= self._max_onsets:
            return True, True
        times.append(now_ns)
        return True, False

    def top_channels(self, contrib: npt.NDArray[np.float32]) -> tuple[str, ...]:
        """Up to three channel names, largest summed |contribution| first; ties keep order."""
        n_ch = len(self._channels)
        row = np.asarray(contrib, dtype=np.float64).reshape(-1)
        if row.size != n_ch * self._per:
            return ()
        sums = np.nan_to_num(np.abs(row).reshape(n_ch, self._per).sum(axis=1), nan=0.0)
        order = np.argsort(-sums, kind="stable")[:TOP_CHANNELS]
        return tuple(self._channels[i] for i in order if sums[i] > 0.0)
