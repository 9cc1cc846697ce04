"""How the bench reports figures: histograms as percentiles in µs, rates per second.

Pure core: turns numbers it is handed into plain dicts (JSON-ready, units in key names). It
never reads a clock and never measures anything itself.
"""

from __future__ import annotations

from tripwire.latency import Histogram


def latency_us(hist: Histogram) -> dict[str, float]:
    """``count``, ``p50_us``, ``p99_us``, ``p999_us``, ``max_us`` of a histogram of ns."""
    return hist.summary(1e3, 2, "_us")


def rate_per_s(count: float, elapsed_ns: int) -> float:
    """``count`` over ``elapsed_ns``, per second; 0 when no time passed."""
    return round(count * 1e9 / elapsed_ns, 1) if elapsed_ns > 0 else 0.0


def ratio(numerator: float, denominator: float) -> float:
    """A side-by-side ratio, rounded for reading; 0 when the denominator is 0."""
    return round(numerator / denominator, 2) if denominator > 0 else 0.0
