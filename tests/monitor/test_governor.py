"""The tier governor: step down on latency or CPU, back up after a hold (pure, clock passed in)."""

from __future__ import annotations

import pytest

from monitor.governor import Governor, GovernorPolicy, TierChange, tier_order
from tripwire import config

MS = 1_000_000
S = 1_000 * MS
WINDOW = 500 * MS
BUDGET = 6 * MS


def _policy(**kw: object) -> GovernorPolicy:
    base: dict[str, object] = dict(budget_ns=BUDGET, window_ns=WINDOW, down_ratio=0.5,
                                   up_ratio=0.25, hold_ns=2 * S, cpu_high=0.9, cpu_low=0.7,
                                   max_hold_ns=60 * S)
    base.update(kw)
    return GovernorPolicy(**base)  # type: ignore[arg-type]


class _Clock:
    """Drives a governor window by window: ages of the window's verdicts, CPU per window."""

    def __init__(self, gov: Governor) -> None:
        self.gov, self.now, self.cpu = gov, 0, 0

    def window(self, age_ms: float, cpu_cores: float = 0.2, n: int = 200) -> TierChange | None:
        for _ in range(n):
            self.gov.observe(int(age_ms * MS))
        self.now += WINDOW
        self.cpu += int(cpu_cores * WINDOW)
        assert self.gov.due(self.now)
        return self.gov.evaluate(self.now, self.cpu)


def _governor(start: int = 0, n: int = 3, **kw: object) -> _Clock:
    return _Clock(Governor(_policy(**kw), n, start, now_ns=0, cpu_ns=0))


def test_tiers_order_heaviest_first_whatever_the_bundle_order() -> None:
    assert tier_order(["int8", "student", "teacher"]) == ("teacher", "student", "int8")
    assert tier_order(["student", "int8"]) == ("student", "int8")
    assert tier_order(["tiny", "teacher", "huge"]) == ("teacher", "tiny", "huge")
    assert tier_order([""]) == ("",)


def test_steps_down_one_tier_per_window_while_latency_is_high() -> None:
    clk = _governor()
    assert clk.window(1.0) is None  # p99 1 ms of a 6 ms budget: fine
    change = clk.window(3.5)  # above 50 % of the budget
    assert change is not None and (change.from_tier, change.to_tier, change.why) == (0, 1, "latency")
    assert change.p99_ms == pytest.approx(3.5)
    change = clk.window(3.5)
    assert change is not None and change.to_tier == 2
    assert clk.window(5.0) is None  # already the lightest tier
    assert clk.gov.tier == 2 and clk.gov.changes == 2


def test_the_p99_decides_not_the_median() -> None:
    clk = _governor()
    for _ in range(95):
        clk.gov.observe(MS)
    for _ in range(5):
        clk.gov.observe(4 * MS)
    clk.now += WINDOW
    change = clk.gov.evaluate(clk.now, 0)
    assert change is not None and change.why == "latency"


def test_steps_down_when_the_cpu_is_saturated() -> None:
    clk = _governor()
    change = clk.window(0.5, cpu_cores=0.95)
    assert change is not None and change.why == "cpu" and change.cpu_cores == pytest.approx(0.95)


def test_steps_up_only_after_the_hold_and_one_tier_at_a_time() -> None:
    clk = _governor(start=2)
    got = [clk.window(0.5) for _ in range(4)]  # 2 s of headroom: four 0.5 s windows
    assert got[:3] == [None, None, None]
    assert got[3] is not None and (got[3].from_tier, got[3].to_tier, got[3].why) == (2, 1, "headroom")
    assert [clk.window(0.5) for _ in range(3)] == [None] * 3  # a fresh hold before the next
    assert clk.window(0.5) is not None and clk.gov.tier == 0
    assert [clk.window(0.5) for _ in range(8)] == [None] * 8  # the top: nowhere to go


def test_a_window_between_the_levels_restarts_the_hold() -> None:
    clk = _governor(start=1)
    assert [clk.window(0.5) for _ in range(3)] == [None] * 3
    assert clk.window(2.0) is None  # 33 %: not late, not cool
    assert [clk.window(0.5) for _ in range(3)] == [None] * 3  # the hold starts over
    assert clk.window(0.5) is not None
    clk2 = _governor(start=1)
    assert [clk2.window(0.5, cpu_cores=0.8) for _ in range(8)] == [None] * 8  # CPU not cool


def test_a_quick_relapse_doubles_the_hold_and_stability_forgives_it() -> None:
    clk = _governor(start=1)
    for _ in range(4):
        clk.window(0.5)
    assert clk.gov.tier == 0
    assert clk.window(4.0) is not None and clk.gov.tier == 1  # right after stepping up
    assert clk.gov.hold_ns == 4 * S
    assert [clk.window(0.5) for _ in range(7)] == [None] * 7  # now 4 s of headroom are needed
    assert clk.window(0.5) is not None and clk.gov.tier == 0
    for _ in range(121):  # a minute at the top
        assert clk.window(1.0) is None
    assert clk.gov.hold_ns == 2 * S


def test_off_or_single_tier_never_switches() -> None:
    off = _Clock(Governor(_policy(), 3, 1, now_ns=0, cpu_ns=0, enabled=False))
    single = _Clock(Governor(_policy(), 1, 0, now_ns=0, cpu_ns=0))
    for clk in (off, single):
        assert clk.window(5.0, cpu_cores=1.5) is None and clk.window(0.1) is None
    assert off.gov.tier == 1 and not single.gov.enabled
    assert off.gov.last_p99_ns == int(0.1 * MS)  # the figures are still measured
    with pytest.raises(ValueError):
        Governor(_policy(), 3, 3, now_ns=0, cpu_ns=0)


def test_policy_from_config_and_config_checks() -> None:
    table = {"sources": [{"id": 1, "name": "a", "channels": ["x"]}],
             "monitor": {"governor_window_ms": 250.0, "governor_hold_s": 3.0}}
    cfg = config.from_dict(table)
    p = GovernorPolicy.from_config(cfg.monitor, 6.0)
    assert (p.budget_ns, p.window_ns, p.hold_ns) == (6 * MS, 250 * MS, 3 * S)
    assert (cfg.monitor.governor, cfg.monitor.pipeline, cfg.monitor.batch_max_rows) == ("auto", False, 32)
    for bad, key in (({"governor_up_ratio": 0.6}, "governor_up_ratio"),
                     ({"governor_cpu_low": 0.95}, "governor_cpu_low"),
                     ({"governor": "fast"}, "monitor.governor"),
                     ({"bundle_tier": "Teacher"}, "bundle_tier"),
                     ({"batch_max_rows": 0}, "batch_max_rows"),
                     ({"batch_gate_ms": -1.0}, "batch_gate_ms")):
        with pytest.raises(config.ConfigError, match=key):
            config.from_dict({**table, "monitor": bad})
