"""Decision rules added for issue 3: hysteresis, announcement rate, idle suppression."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.decide import Decider
from monitor.features import STATS
from tripwire.config import ConfigError, DecisionConfig, from_dict
from tripwire.messages import Level

MS = 1_000_000
S = 1_000 * MS
CHANNELS = ("vib_x", "vib_y", "current", "temp")
PER = len(STATS) + 2
ZERO = np.zeros(len(CHANNELS) * PER, np.float32)


def _decider(**kw: object) -> Decider:
    cfg = DecisionConfig(**{"k": 2, "n": 3, "warn_ratio": 0.7, **kw})  # type: ignore[arg-type]
    return Decider.from_config(cfg, threshold=10.0, channels=CHANNELS, per_channel=PER,
                               source_ids=[1, 2], start_ns=0)


def _levels(dec: Decider, scores: list[float], t0: int = 0) -> list[Level]:
    out = []
    for i, s in enumerate(scores):
        t = t0 + i * 20 * MS
        dec.input_good(1, t)  # the input is fine throughout
        out.append(dec.decide(1, s, ZERO, t).level)
    return out


def test_defaults_keep_the_plain_k_of_n_rule() -> None:
    cfg = DecisionConfig()
    assert (cfg.clear_ratio, cfg.max_trips_per_period, cfg.idle_channel) == (1.0, 0, "")
    dec = _decider()
    assert _levels(dec, [11, 11, 9, 9, 9]) == [Level.WARN, Level.TRIP, Level.TRIP, Level.WARN,
                                               Level.WARN]


def test_hysteresis_holds_trip_until_scores_fall_below_the_clear_level() -> None:
    dec = _decider(clear_ratio=0.5)
    levels = _levels(dec, [11, 11, 9, 8, 6, 4, 4, 9])
    # 9, 8 and 6 still vote (above 5 = 0.5 x 10); two windows below 5 end the episode
    assert levels == [Level.WARN, Level.TRIP, Level.TRIP, Level.TRIP, Level.TRIP, Level.TRIP,
                      Level.OK, Level.WARN]
    # once cleared, the upper threshold applies again: 9 alone never votes
    assert _levels(dec, [9, 9, 9], t0=S) == [Level.WARN] * 3


def test_onsets_are_marked_and_announcements_rate_limited() -> None:
    dec = _decider(k=1, n=1, max_trips_per_period=2, rate_period_s=60.0)
    t = 0
    announced = []
    for _ in range(4):  # four separate TRIP episodes within a minute
        dec.input_good(1, t)
        d = dec.decide(1, 11.0, ZERO, t)
        assert d.level == Level.TRIP and d.onset  # the level is never held back
        announced.append(d.announce)
        assert not dec.decide(1, 11.0, ZERO, t + MS).onset  # still the same episode
        dec.decide(1, 0.0, ZERO, t + 2 * MS)
        t += 10 * S
    assert announced == [True, True, False, False]
    dec.input_good(1, 61 * S)
    d = dec.decide(1, 11.0, ZERO, 61 * S)  # the first onset left the period
    assert d.onset and d.announce and not d.rate_limited
    # the other source has its own budget
    dec.input_good(2, 61 * S)
    assert dec.decide(2, 11.0, ZERO, 61 * S).announce


def test_warn_and_trip_have_separate_budgets() -> None:
    dec = _decider(k=2, n=2, max_trips_per_period=1)
    first = dec.decide(1, 8.0, ZERO, 0)
    assert first.level == Level.WARN and first.announce
    dec.decide(1, 0.0, ZERO, MS)
    assert dec.decide(1, 8.0, ZERO, 2 * MS).rate_limited  # a second WARN onset: quiet
    trip = [dec.decide(1, 11.0, ZERO, (3 + i) * MS) for i in range(2)][-1]
    assert trip.level == Level.TRIP and trip.announce  # WARN -> TRIP is a TRIP onset


def test_input_trip_counts_as_an_onset_once() -> None:
    dec = _decider(bad_input_trip_ms=100.0)
    first = dec.input_trip(1, 200 * MS)
    assert first is not None and first.onset
    again = dec.input_trip(1, 202 * MS)
    assert again is not None and not again.onset


def _row(vib_rms: float) -> np.ndarray:
    row = np.full(len(CHANNELS) * PER, 1.0, np.float32)
    row[STATS.index("rms")] = vib_rms  # vib_x is channel 0
    return row


def test_idle_windows_are_not_scored() -> None:
    dec = _decider(k=1, n=1, idle_channel="vib_x", idle_rms_below=0.02)
    d = dec.decide(1, 50.0, ZERO, 0, features=_row(0.01))
    assert d.level == Level.OK and d.idle and not d.above and d.votes == 0
    d = dec.decide(1, 50.0, ZERO, MS, features=_row(0.2))
    assert d.level == Level.TRIP and not d.idle
    # idle ends a trip episode; without a feature row the rule cannot apply
    assert dec.decide(1, 50.0, ZERO, 2 * MS, features=_row(0.0)).level == Level.OK
    assert dec.decide(1, 50.0, ZERO, 3 * MS).level == Level.TRIP


def test_idle_does_not_hide_bad_input() -> None:
    dec = _decider(idle_channel="vib_x", idle_rms_below=0.02, bad_input_trip_ms=100.0)
    d = dec.decide(1, 0.0, ZERO, 200 * MS, features=_row(0.0))
    assert d.level == Level.TRIP and d.input_trip and d.idle


def test_idle_is_off_by_default() -> None:
    dec = _decider(k=1, n=1)
    assert not dec.is_idle(_row(0.0))
    assert dec.decide(1, 50.0, ZERO, 0, features=_row(0.0)).level == Level.TRIP


@pytest.mark.parametrize("decision, match", [
    ({"clear_ratio": 0.0}, "clear_ratio"),
    ({"clear_ratio": 1.5}, "clear_ratio"),
    ({"max_trips_per_period": -1}, "max_trips_per_period"),
    ({"rate_period_s": 0.0}, "rate_period_s"),
    ({"idle_channel": "vib_x"}, "idle_rms_below"),
    ({"idle_channel": "vib_z", "idle_rms_below": 0.1}, "idle_channel"),
])
def test_config_refuses_bad_rule_keys(decision: dict[str, object], match: str) -> None:
    table = {"sources": [{"id": 1, "name": "p", "channels": list(CHANNELS)}], "decision": decision}
    with pytest.raises(ConfigError, match=match):
        from_dict(table)


def test_decider_refuses_an_unknown_idle_channel() -> None:
    with pytest.raises(ValueError, match="idle_channel"):
        Decider(threshold=1.0, k=1, n=1, warn_ratio=0.7, bad_input_trip_ms=1.0,
                channels=CHANNELS, per_channel=PER, source_ids=[1], start_ns=0,
                idle_channel="nope", idle_rms_below=0.1)


def test_channels_on_ok_names_contributors_in_every_scored_verdict() -> None:
    contrib = ZERO.copy()
    contrib[PER * 2] = 1.0  # current
    assert _decider().decide(1, 1.0, contrib, 0).channels == ()
    d = _decider(channels_on_ok=True).decide(1, 1.0, contrib, 0)
    assert d.level == Level.OK and d.channels == ("current",)
