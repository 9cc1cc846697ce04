"""HDR-style latency histogram: log-linear buckets, fixed memory, O(1) record.

Pure core: values are integers (nanoseconds) handed in by the caller; nothing here reads
a clock. Relative bucket error is below 1/SUB_BUCKETS (about 0.8 %); max and min are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUB_BITS = 7
SUB_BUCKETS = 1 << SUB_BITS  # linear sub-buckets per power of two
MAX_EXP = 40  # up to ~1.1e12 ns (18 minutes); larger values clamp into the top bucket


def _index(value: int) -> int:
    if value < SUB_BUCKETS:
        return max(value, 0)
    shift = min(value.bit_length() - SUB_BITS - 1, MAX_EXP)
    sub = min((value >> shift) - SUB_BUCKETS, SUB_BUCKETS - 1)  # 0..SUB_BUCKETS-1
    return (shift + 1) * SUB_BUCKETS + sub


def _upper(index: int) -> int:
    """Highest value that maps to ``index`` (reported percentiles never under-state)."""
    if index < SUB_BUCKETS:
        return index
    shift, sub = divmod(index, SUB_BUCKETS)
    return ((SUB_BUCKETS + sub + 1) << (shift - 1)) - 1


@dataclass(slots=True)
class Histogram:
    counts: np.ndarray
    total: int = 0
    min_ns: int = 0
    max_ns: int = 0

    @classmethod
    def new(cls) -> "Histogram":
        return cls(np.zeros(SUB_BUCKETS * (MAX_EXP + 2), dtype=np.int64))

    def record(self, value_ns: int) -> None:
        v = int(value_ns)
        if v < 0:
            v = 0
        self.counts[_index(v)] += 1
        if self.total == 0 or v < self.min_ns:
            self.min_ns = v
        if v > self.max_ns:
            self.max_ns = v
        self.total += 1

    def merge(self, other: "Histogram") -> None:
        if other.total == 0:
            return
        self.counts += other.counts
        self.min_ns = other.min_ns if self.total == 0 else min(self.min_ns, other.min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)
        self.total += other.total

    def percentile(self, q: float) -> int:
        """Value at or below which a fraction ``q`` (0..1) of the records lie."""
        if self.total == 0:
            return 0
        rank = max(1, int(np.ceil(q * self.total)))
        idx = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min(_upper(idx), self.max_ns)

    def summary(self, unit_ns: float, digits: int, suffix: str = "") -> dict[str, float]:
        """``count`` and p50, p99, p999, max in units of ``unit_ns`` (keys end in ``suffix``)."""
        def conv(ns: int) -> float:
            return round(ns / unit_ns, digits)

        return {
            "count": self.total,
            f"p50{suffix}": conv(self.percentile(0.50)),
            f"p99{suffix}": conv(self.percentile(0.99)),
            f"p999{suffix}": conv(self.percentile(0.999)),
            f"max{suffix}": conv(self.max_ns),
        }

    def summary_ms(self) -> dict[str, float]:
        return self.summary(1e6, 4)

    def to_sparse(self) -> dict[str, object]:
        """Compact form for sending over the control path (JSON)."""
        nz = np.nonzero(self.counts)[0]
        return {
            "idx": nz.tolist(), "n": self.counts[nz].tolist(),
            "min": self.min_ns, "max": self.max_ns, "total": self.total,
        }

    @classmethod
    def from_sparse(cls, d: dict[str, object]) -> "Histogram":
        """The inverse of ``to_sparse``. It reads a peer's reply, so anything ``to_sparse``
        cannot write (a bucket outside the table, a negative count or time, a figure beyond
        int64) raises ValueError (OverflowError for numbers numpy or int() cannot hold)."""
        h = cls.new()
        idx = np.asarray(d["idx"], dtype=np.int64)
        n = np.asarray(d["n"], dtype=np.int64)
        if idx.ndim != 1 or idx.shape != n.shape:
            raise ValueError("sparse histogram: idx and n must be lists of equal length")
        if ((idx < 0) | (idx >= h.counts.size)).any() or (n < 0).any():
            raise ValueError("sparse histogram: bucket index out of range or negative count")
        h.counts[idx] = n
        h.min_ns, h.max_ns, h.total = int(d["min"]), int(d["max"]), int(d["total"])  # type: ignore[call-overload]
        if not (0 <= h.min_ns <= h.max_ns < 2**63 and 0 <= h.total < 2**63):
            raise ValueError("sparse histogram: min, max or total out of range")
        return h
