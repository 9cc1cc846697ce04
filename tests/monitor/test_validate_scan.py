"""The validator's value scan against numpy: non-finite first, then range, then frozen
channels, on random frames with NaN, infinities, values at and beyond the bounds and
constant channels planted in them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.validate import FrameValidator, warm
from tripwire.config import SourceConfig
from tripwire.messages import Frame, VerdictFlag

MS = 1_000_000
LO, HI = -2.0, 2.0
PLANTS = st.sampled_from(["nan", "inf", "-inf", "low", "high", "at_lo", "at_hi", "freeze"])


def _expected(x: np.ndarray) -> tuple[bool, str, bool]:
    if not np.all(np.isfinite(x)):
        return False, "non_finite", False
    if np.any(x < LO) or np.any(x > HI):
        return False, "out_of_range", False
    frozen = x.shape[1] > 1 and bool(np.any(np.all(x == x[:, :1], axis=1)))
    return True, "", frozen


@settings(max_examples=300, deadline=None)
@given(channels=st.integers(1, 11), n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       plants=st.lists(st.tuples(PLANTS, st.integers(0, 10**6)), max_size=3))
def test_scan_outcome_matches_numpy(channels: int, n: int, seed: int,
                                    plants: list[tuple[str, int]]) -> None:
    warm()
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, (channels, n)).astype(np.float32)
    values = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "low": -2.5, "high": 2.5,
              "at_lo": LO, "at_hi": HI}
    for kind, where in plants:
        c, t = where % channels, (where // channels) % n
        if kind == "freeze":
            x[c] = x[c, 0]
        else:
            x[c, t] = values[kind]
    src = SourceConfig(id=1, name="s", channels=[f"c{i}" for i in range(channels)],
                       frame_samples=n, min_value=LO, max_value=HI)
    v = FrameValidator([src], max_frame_age_ms=1000.0)
    out = v.check(Frame(1, 0, 0, 0, 6400.0, x), MS)
    accepted, reason, frozen = _expected(x)
    assert (out.accepted, out.reason) == (accepted, reason)
    assert bool(out.flags & VerdictFlag.SENSOR_FROZEN) == frozen
