"""Deadline-aware dynamic batching: when a batch of windows goes to the model (pure core).

Rows (one feature window each) wait in a bounded batch. ``BatchGate.close_reason`` says
whether the batch should go now, by the first rule that holds:

    FULL      it holds ``max_rows``: no room for another frame's windows
    SLACK     the most urgent row's slack (its verdict deadline, t_acq + budget, minus now)
              is below the predicted service time of a batch of this size: waiting longer
              would make it late. Only rows that can still meet their deadline count: a row
              that arrived late is lost either way, and closing a batch per late row would
              shrink batches exactly when a backlog needs them full
    GATE      the oldest row has waited ``gate_ns`` since it was ready
    NO_MODEL  no row in it needs the model (every window idle): nothing to wait for
    DRAINED   work-conserving: the input is drained and the model is idle (unless
              ``wait_when_idle``: a GPU site may prefer fuller batches to a sooner start)

A batch that should go while the model is still busy stays open and keeps taking rows until
it is full; it goes the moment the model is free. ``wake_ns`` is when the next rule falls due
on the clock, so the shell can sleep exactly that long.

``CostModel`` predicts the service time of a batch (close to last verdict out) per batch
size, learned online from measured calls: for each size an exponentially weighted mean and
mean deviation, and the prediction is mean + ``margin`` x deviation (the estimator TCP uses
for its retransmission timer): a noisy machine predicts longer and so closes batches sooner.
Sizes never measured borrow from the nearest measured size, scaled by rows. Warm-up seeds
every size the model will see.

Time is an argument everywhere; nothing here reads a clock, touches a socket or logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

GAIN = 1 / 8  # weight of a new measurement in the mean (TCP's alpha)
DEV_GAIN = 1 / 4  # and in the mean deviation (TCP's beta)
MARGIN = 4.0  # deviations added to the mean: an upper bound, not a guess at the middle


class CloseReason(IntEnum):
    FULL = 1
    SLACK = 2
    GATE = 3
    NO_MODEL = 4
    DRAINED = 5


class CostModel:
    """Predicted service time (ns) of a batch by its number of rows."""

    def __init__(self, max_rows: int, *, margin: float = MARGIN) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.max_rows = max_rows
        self._margin = margin
        self._mean = np.zeros(max_rows + 1, dtype=np.float64)
        self._dev = np.zeros(max_rows + 1, dtype=np.float64)
        self._seen = np.zeros(max_rows + 1, dtype=bool)
        self._predict = np.zeros(max_rows + 1, dtype=np.int64)  # cached, refreshed per observe
        self._all_seen = False

    def observe(self, rows: int, duration_ns: int) -> None:
        """One measured batch of ``rows`` rows (sizes beyond ``max_rows`` count as the largest)."""
        m = min(max(rows, 1), self.max_rows)
        d = float(max(duration_ns, 0))
        if not self._seen[m]:
            self._mean[m], self._dev[m], self._seen[m] = d, d / 2, True
        else:
            err = d - self._mean[m]
            self._mean[m] += GAIN * err
            self._dev[m] += DEV_GAIN * (abs(err) - self._dev[m])
        self._refresh(m)

    def predict_ns(self, rows: int) -> int:
        """Upper estimate of the service time of ``rows`` rows; 0 for no rows or no data."""
        if rows <= 0:
            return 0
        if rows > self.max_rows:  # beyond the table: scale the largest size by rows
            return int(self._predict[self.max_rows] * rows / self.max_rows)
        return int(self._predict[rows])

    def _refresh(self, m: int) -> None:
        if self._all_seen:  # after warm-up: only the size just measured moved
            self._predict[m] = int(self._mean[m] + self._margin * self._dev[m])
            return
        upper = self._mean + self._margin * self._dev
        seen = np.flatnonzero(self._seen)
        self._all_seen = bool(self._seen[1:].all())
        sizes = np.arange(self.max_rows + 1)
        pos = np.searchsorted(seen, sizes)
        lo = seen[np.clip(pos - 1, 0, seen.size - 1)]
        hi = seen[np.clip(pos, 0, seen.size - 1)]
        near = np.where(np.abs(sizes - lo) <= np.abs(hi - sizes), lo, hi)
        # an unmeasured size borrows from the nearest measured one, scaled up by rows
        scaled = upper[near] * np.maximum(1.0, sizes / near)
        self._predict[:] = scaled.astype(np.int64)
        self._predict[0] = 0

    def table_us(self) -> dict[int, float]:
        """Predictions of measured sizes in µs (for the status reply)."""
        return {int(m): round(float(self._predict[m]) / 1e3, 1) for m in np.flatnonzero(self._seen)}


@dataclass(frozen=True, slots=True)
class BatchGate:
    max_rows: int
    gate_ns: int
    wait_when_idle: bool = False

    def close_reason(
        self, *, now_ns: int, rows: int, model_rows: int, oldest_ready_ns: int,
        next_deadline_ns: int | None, predicted_ns: int, drained: bool, model_idle: bool,
    ) -> CloseReason | None:
        """The rule that closes the batch now, or None to keep waiting.

        ``next_deadline_ns``: the earliest verdict deadline not yet passed among the rows
        (None: all are late); ``predicted_ns``: the cost model's service time for a batch
        of this size.
        """
        if rows <= 0:
            return None
        if rows >= self.max_rows:
            return CloseReason.FULL
        if next_deadline_ns is not None and next_deadline_ns - now_ns < predicted_ns:
            return CloseReason.SLACK
        if now_ns - oldest_ready_ns >= self.gate_ns:
            return CloseReason.GATE
        if model_rows == 0:
            return CloseReason.NO_MODEL
        if drained and model_idle and not self.wait_when_idle:
            return CloseReason.DRAINED
        return None

    def wake_ns(self, *, rows: int, oldest_ready_ns: int, next_deadline_ns: int | None,
                predicted_ns: int) -> int | None:
        """When the clock alone would close the batch (the earlier of GATE and SLACK)."""
        if rows <= 0:
            return None
        gate = oldest_ready_ns + self.gate_ns
        return gate if next_deadline_ns is None else min(gate, next_deadline_ns - predicted_ns)
