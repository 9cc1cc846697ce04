"""The histogram's percentiles against numpy on the same data."""

from __future__ import annotations

import numpy as np

from tripwire.latency import Histogram


def test_percentiles_within_bucket_error() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=13, sigma=1.0, size=20000).astype(np.int64)
    h = Histogram.new()
    for v in values:
        h.record(int(v))
    for q in (0.5, 0.99, 0.999):
        exact = float(np.quantile(values, q, method="inverted_cdf"))
        got = h.percentile(q)
        assert exact <= got <= exact * 1.01 + 1, (q, exact, got)
    assert h.max_ns == values.max() and h.min_ns == values.min()


def test_merge_and_sparse_round_trip() -> None:
    a, b = Histogram.new(), Histogram.new()
    for v in range(1, 1000):
        a.record(v * 1000)
        b.record(v * 3000)
    a.merge(b)
    c = Histogram.from_sparse(a.to_sparse())
    assert c.total == 1998 and c.percentile(0.99) == a.percentile(0.99)
    assert c.summary_ms()["max"] == 2.997


def test_empty_histogram_reports_zero() -> None:
    assert Histogram.new().summary_ms() == {"count": 0, "p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
