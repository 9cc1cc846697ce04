"""The model-tier governor: which tier scores the next batch (pure core).

A tiered bundle holds models from heaviest to lightest (teacher, student, int8 student);
tier index 0 is the heaviest (or the only model), and that index is what every heartbeat and
verdict carries. Once per window (``window_ns``) the shell hands over the process's CPU time
and the governor looks at the window just ended:

    hot   the p99 of verdict age (t_verdict - t_acq) exceeds ``down_ratio`` x the verdict
          budget, or the process used more than ``cpu_high`` of one core: step DOWN a tier
          (a lighter model), at most one tier per window;
    cool  the p99 is under ``up_ratio`` x budget and the CPU under ``cpu_low``: once cool
          windows have run without a break for the hold time, step UP one tier;
    else  neither: stay, and the hold starts over.

The gap between the down and up levels, and the hold, are the hysteresis. A step down that
comes within one hold of a step up means the step up was premature: the hold doubles (up to
``max_hold_ns``), and falls back to its base once the tier has stayed put that long, so a
load sitting at a tier's edge does not make the tiers flap. The shell switches between
batches only, so no row is ever dropped by a switch.

Time and CPU time are arguments; nothing here reads a clock, loads a model or logs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tripwire.config import MonitorConfig

# Known tier names from heaviest to lightest; any other name ranks after them, in bundle order.
TIER_RANK = ("teacher", "student", "int8")
AGE_SAMPLES = 4096  # verdict ages kept per window (the most recent, when more arrive)
MAX_HOLD_S = 60.0
P99 = 0.99


def tier_order(names: Sequence[str]) -> tuple[str, ...]:
    """Tier names from heaviest to lightest: the governor's index order."""
    def rank(item: tuple[int, str]) -> tuple[int, int]:
        i, name = item
        return (TIER_RANK.index(name), i) if name in TIER_RANK else (len(TIER_RANK), i)
    return tuple(name for _, name in sorted(enumerate(names), key=rank))


@dataclass(frozen=True, slots=True)
class GovernorPolicy:
    budget_ns: int  # the verdict budget (interlock.verdict_budget_ms)
    window_ns: int
    down_ratio: float = 0.5
    up_ratio: float = 0.25
    hold_ns: int = 2_000_000_000
    cpu_high: float = 0.9  # of one core
    cpu_low: float = 0.7
    max_hold_ns: int = int(MAX_HOLD_S * 1e9)

    @classmethod
    def from_config(cls, cfg: MonitorConfig, budget_ms: float) -> GovernorPolicy:
        return cls(int(budget_ms * 1e6), int(cfg.governor_window_ms * 1e6),
                   cfg.governor_down_ratio, cfg.governor_up_ratio,
                   int(cfg.governor_hold_s * 1e9), cfg.governor_cpu_high, cfg.governor_cpu_low,
                   max(int(MAX_HOLD_S * 1e9), int(cfg.governor_hold_s * 1e9)))


@dataclass(frozen=True, slots=True)
class TierChange:
    from_tier: int
    to_tier: int
    why: str  # "latency", "cpu" (down) or "headroom" (up)
    p99_ms: float  # of the window that decided it
    cpu_cores: float


class Governor:
    def __init__(self, policy: GovernorPolicy, n_tiers: int, start_tier: int, *, now_ns: int,
                 cpu_ns: int, enabled: bool = True) -> None:
        if n_tiers < 1 or not 0 <= start_tier < n_tiers:
            raise ValueError(f"start tier {start_tier} is not one of {n_tiers} tiers")
        self.policy = policy
        self.n_tiers = n_tiers
        self.tier = start_tier
        self.enabled = enabled and n_tiers > 1
        self.changes = 0
        self.last_p99_ns = 0
        self.last_cpu_cores = 0.0
        self._ages = np.zeros(AGE_SAMPLES, dtype=np.int64)
        self._n = 0
        self._t0, self._cpu0 = now_ns, cpu_ns
        self._cool_since: int | None = None
        self._hold_ns = policy.hold_ns
        self._last_up_ns: int | None = None
        self._last_change_ns = now_ns

    def restart(self, now_ns: int, cpu_ns: int) -> None:
        """Start the first window now (the loop starts serving)."""
        self._t0, self._cpu0, self._n = now_ns, cpu_ns, 0
        self._cool_since = None
        self._last_change_ns = now_ns

    def observe(self, age_ns: int) -> None:
        """One published verdict's age (t_verdict - t_acq)."""
        self._ages[self._n % AGE_SAMPLES] = age_ns
        self._n += 1

    def due(self, now_ns: int) -> bool:
        return now_ns - self._t0 >= self.policy.window_ns

    @property
    def hold_ns(self) -> int:
        return self._hold_ns

    def evaluate(self, now_ns: int, cpu_ns: int) -> TierChange | None:
        """Close the window ending now (``cpu_ns``: the process's CPU time so far); the
        change of tier it calls for, already applied, or None."""
        p = self.policy
        wall = max(now_ns - self._t0, 1)
        cpu = max(cpu_ns - self._cpu0, 0) / wall
        p99 = self._p99()
        window_start = self._t0
        self._t0, self._cpu0, self._n = now_ns, cpu_ns, 0
        self.last_p99_ns, self.last_cpu_cores = p99, cpu
        if not self.enabled:
            return None
        if now_ns - self._last_change_ns >= p.max_hold_ns:
            self._hold_ns = p.hold_ns  # stable for long: forgive earlier flaps
        late, busy = p99 > p.down_ratio * p.budget_ns, cpu > p.cpu_high
        if late or busy:
            self._cool_since = None
            if self.tier + 1 >= self.n_tiers:
                return None
            if self._last_up_ns is not None and now_ns - self._last_up_ns < self._hold_ns:
                self._hold_ns = min(2 * self._hold_ns, p.max_hold_ns)
            return self._step(+1, "latency" if late else "cpu", now_ns, p99, cpu)
        if not (p99 < p.up_ratio * p.budget_ns and cpu < p.cpu_low):
            self._cool_since = None
            return None
        if self._cool_since is None:
            self._cool_since = window_start
        if self.tier == 0 or now_ns - self._cool_since < self._hold_ns:
            return None
        self._cool_since = now_ns  # the next step up needs a fresh hold
        self._last_up_ns = now_ns
        return self._step(-1, "headroom", now_ns, p99, cpu)

    def _step(self, by: int, why: str, now_ns: int, p99_ns: int, cpu: float) -> TierChange:
        change = TierChange(self.tier, self.tier + by, why, round(p99_ns / 1e6, 3), round(cpu, 3))
        self.tier += by
        self.changes += 1
        self._last_change_ns = now_ns
        return change

    def _p99(self) -> int:
        n = min(self._n, AGE_SAMPLES)
        if n == 0:
            return 0
        k = max(0, math.ceil(P99 * n) - 1)
        return int(np.partition(self._ages[:n], k)[k])
