"""Decision rules: from window scores to OK / WARN / TRIP per source (pure core).

The scorer (the model) only scores; this object decides, as in river's detector/decider
split. Per source:

    TRIP  at least k of the last n windows scored above the threshold, or the source's input
          has been bad (rejected, stale or frozen) for longer than bad_input_trip_ms
    WARN  the latest score is >= warn_ratio * threshold (this includes a window above the
          threshold that has not yet made k of n)
    OK    otherwise

A score that is not a number counts as above the threshold: a model that cannot say
"normal" is not normal. WARN and TRIP name the top three channels by summed absolute
feature contribution. Time is an argument (``now_ns``); nothing here reads a clock or logs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tripwire.config import DecisionConfig
from tripwire.messages import Level

TOP_CHANNELS = 3


@dataclass(frozen=True, slots=True)
class Decision:
    level: Level
    above: bool  # this window scored above the threshold
    votes: int  # windows above the threshold among the last n
    input_trip: bool  # TRIP because the input stayed bad, whatever the score
    channels: tuple[str, ...] = ()


@dataclass(slots=True)
class _SourceState:
    history: int  # bit i set: the window i steps back scored above the threshold
    last_good_ns: int


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
    ) -> None:
        if not 1 <= k <= n <= 64:
            raise ValueError(f"k, n: need 1 <= k <= n <= 64, got k={k} n={n}")
        if not 0 < warn_ratio <= 1:
            raise ValueError(f"warn_ratio: must be in (0, 1], got {warn_ratio}")
        if not math.isfinite(threshold):
            raise ValueError(f"threshold: must be finite, got {threshold}")
        self.threshold = float(threshold)
        self.k, self.n = k, n
        self._mask = (1 << n) - 1
        self._warn = warn_ratio * self.threshold
        self._bad_ns = int(bad_input_trip_ms * 1e6)
        self._channels = tuple(channels)
        self._per = per_channel
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
            source_ids=source_ids, start_ns=start_ns,
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

    def decide(
        self, source_id: int, score: float, contrib: npt.NDArray[np.float32], now_ns: int,
    ) -> Decision:
        """Record one window's score for the source and return its decision."""
        state = self._sources[source_id]
        above = not score <= self.threshold  # NaN counts as above
        state.history = ((state.history << 1) | int(above)) & self._mask
        votes = state.history.bit_count()
        input_trip = self.input_tripped(source_id, now_ns)
        if input_trip or votes >= self.k:
            level = Level.TRIP
        elif above or score >= self._warn:
            level = Level.WARN
        else:
            return Decision(Level.OK, above, votes, False)
        return Decision(level, above, votes, input_trip, self.top_channels(contrib))

    def input_trip(self, source_id: int, now_ns: int) -> Decision | None:
        """TRIP for a source whose input stayed bad too long, without a window to score."""
        if not self.input_tripped(source_id, now_ns):
            return None
        votes = self._sources[source_id].history.bit_count()
        return Decision(Level.TRIP, False, votes, True)

    def top_channels(self, contrib: npt.NDArray[np.float32]) -> tuple[str, ...]:
        """Up to three channel names, largest summed |contribution| first; ties keep order."""
        n_ch = len(self._channels)
        row = np.asarray(contrib, dtype=np.float64).reshape(-1)
        if row.size != n_ch * self._per:
            return ()
        sums = np.nan_to_num(np.abs(row).reshape(n_ch, self._per).sum(axis=1), nan=0.0)
        order = np.argsort(-sums, kind="stable")[:TOP_CHANNELS]
        return tuple(self._channels[i] for i in order if sums[i] > 0.0)
