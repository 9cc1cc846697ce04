"""A score is judged against the threshold of the model tier that produced it (pure)."""

from __future__ import annotations

import numpy as np

from monitor.decide import Decider
from monitor.features import STATS
from tripwire.config import DecisionConfig
from tripwire.messages import Level

MS = 1_000_000
CHANNELS = ("vib_x", "vib_y", "current", "temp")
PER = len(STATS) + 2
ZERO = np.zeros(len(CHANNELS) * PER, np.float32)


def _decider(**kw: object) -> Decider:
    cfg = DecisionConfig(**{"k": 2, "n": 3, "warn_ratio": 0.5, **kw})  # type: ignore[arg-type]
    return Decider.from_config(cfg, threshold=10.0, channels=CHANNELS, per_channel=PER,
                               source_ids=[1], start_ns=0)


def test_the_threshold_of_each_call_decides_and_scales_warn_and_clear() -> None:
    dec = _decider()
    dec.input_good(1, 0)
    # 12 is above the default threshold (10) but below a lighter tier's (20)
    assert dec.decide(1, 12.0, ZERO, MS).level == Level.WARN
    d = dec.decide(1, 12.0, ZERO, 2 * MS, threshold=20.0)
    assert d.level == Level.WARN and not d.above  # warn level 0.5 x 20 = 10
    assert dec.decide(1, 9.0, ZERO, 3 * MS, threshold=20.0).level == Level.OK
    # votes cast under one tier stand under the next: one above (10), one above (20) -> TRIP
    assert dec.decide(1, 25.0, ZERO, 4 * MS, threshold=20.0).level == Level.WARN
    assert dec.decide(1, 11.0, ZERO, 5 * MS).level == Level.TRIP


def test_the_clear_level_follows_the_tier_threshold() -> None:
    dec = _decider(k=1, n=1, clear_ratio=0.5)
    dec.input_good(1, 0)
    assert dec.decide(1, 25.0, ZERO, MS, threshold=20.0).level == Level.TRIP
    assert dec.decide(1, 11.0, ZERO, 2 * MS, threshold=20.0).level == Level.TRIP  # > 0.5 x 20
    assert dec.decide(1, 9.0, ZERO, 3 * MS, threshold=20.0).level == Level.OK  # < 10


def test_idle_rule_is_exposed_for_the_short_cut() -> None:
    assert _decider().idle_rule is None
    dec = _decider(idle_channel="vib_y", idle_rms_below=0.05)
    assert dec.idle_rule == (1 * PER + STATS.index("rms"), 0.05)
