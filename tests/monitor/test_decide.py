"""Decision rules: k-of-n, warn, bad-input trip and top channels, with a fake clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.decide import Decider
from tripwire.config import DecisionConfig
from tripwire.messages import Level

MS = 1_000_000
CHANNELS = ("vib_x", "vib_y", "current", "temp")
PER = 3
T0 = 1_000 * MS


def _decider(k: int = 3, n: int = 5) -> Decider:
    return Decider.from_config(DecisionConfig(k=k, n=n, warn_ratio=0.7, bad_input_trip_ms=1000.0),
                               threshold=10.0, channels=CHANNELS, per_channel=PER,
                               source_ids=[1, 2], start_ns=T0)


def _contrib(per_channel: list[float]) -> np.ndarray:
    return np.repeat(np.asarray(per_channel, np.float32) / PER, PER)


ZERO = _contrib([0, 0, 0, 0])


def test_low_scores_are_ok_without_channels() -> None:
    d = _decider().decide(1, 1.0, _contrib([1, 2, 3, 4]), T0)
    assert d.level == Level.OK and d.channels == () and not d.above


def test_warn_ratio_and_single_exceedance_warn() -> None:
    dec = _decider()
    assert dec.decide(1, 6.9, ZERO, T0).level == Level.OK
    assert dec.decide(1, 7.0, ZERO, T0).level == Level.WARN
    d = dec.decide(1, 11.0, ZERO, T0)
    assert d.level == Level.WARN and d.above and d.votes == 1


def test_k_of_n_trips_and_decays() -> None:
    dec = _decider(k=3, n=5)
    scores = (11, 1, 11, 1, 11, 11, 1, 1, 1, 1)
    levels = [dec.decide(1, s, ZERO, T0).level for s in scores]
    assert levels == [Level.WARN, Level.OK, Level.WARN, Level.OK, Level.TRIP,
                      Level.TRIP, Level.TRIP, Level.OK, Level.OK, Level.OK]


def test_sources_are_independent() -> None:
    dec = _decider(k=2, n=2)
    dec.decide(1, 11.0, ZERO, T0)
    assert dec.decide(2, 11.0, ZERO, T0).level == Level.WARN
    assert dec.decide(1, 11.0, ZERO, T0).level == Level.TRIP


def test_nan_score_counts_as_above() -> None:
    dec = _decider(k=1, n=1)
    d = dec.decide(1, math.nan, ZERO, T0)
    assert d.above and d.level == Level.TRIP


def test_bad_input_trips_after_the_configured_time() -> None:
    dec = _decider()
    dec.input_good(1, T0 + 100 * MS)
    assert dec.input_trip(1, T0 + 1100 * MS) is None
    d = dec.input_trip(1, T0 + 1101 * MS)
    assert d is not None and d.level == Level.TRIP and d.input_trip
    # a low score does not hide bad input
    assert dec.decide(1, 0.0, ZERO, T0 + 1200 * MS).level == Level.TRIP
    dec.input_good(1, T0 + 1300 * MS)
    assert dec.decide(1, 0.0, ZERO, T0 + 1301 * MS).level == Level.OK


def test_a_source_that_never_sent_is_bad_since_start() -> None:
    dec = _decider()
    assert dec.bad_for_ns(2, T0 + 5 * MS) == 5 * MS
    assert dec.input_trip(2, T0 + 1001 * MS) is not None


def test_top_channels_are_summed_per_channel_and_ordered() -> None:
    dec = _decider(k=1, n=1)
    d = dec.decide(1, 50.0, _contrib([0.5, 4.0, 0.0, 2.0]), T0)
    assert d.level == Level.TRIP and d.channels == ("vib_y", "temp", "vib_x")
    row = np.zeros(len(CHANNELS) * PER, np.float32)
    row[PER * 2 + 1] = -9.0  # magnitude counts, sign does not
    assert dec.top_channels(row) == ("current",)
    assert dec.top_channels(np.zeros(5, np.float32)) == ()


@pytest.mark.parametrize("kw", [{"k": 0}, {"k": 6, "n": 5}, {"warn_ratio": 0.0},
                                {"threshold": math.inf}])
def test_bad_parameters_raise(kw: dict[str, float]) -> None:
    args = dict(threshold=10.0, k=3, n=5, warn_ratio=0.7, bad_input_trip_ms=1000.0,
                channels=CHANNELS, per_channel=PER, source_ids=[1], start_ns=0)
    args.update(kw)
    with pytest.raises(ValueError):
        Decider(**args)  # type: ignore[arg-type]
