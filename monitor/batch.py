"""One preallocated batch of windows on its way to the model (pure core, data only).

Rows keep their arrival order. A row the model must score has its features in ``x`` (the
model's input, compacted: ``x[:model_rows]`` is passed as it is, never copied); a row whose
machine is idle (the decision rules' idle rule, read from the row's own features) skips the
model and keeps its features in ``idle_x`` for the idle verdict. ``slot`` says which: a row's
index into ``x`` when >= 0, ``-1 - i`` for ``idle_x[i]``. The dispatcher owns three of these
(one filling, one in the model, one being published); ``reset`` rewinds the counters.

Results (scores, contributions or the error, and when the call ran) are set on the batch by
whoever ran the model; nothing here runs it, reads a clock or logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from monitor.features import WindowFeatures

F32 = npt.NDArray[np.float32]


class Batch:
    def __init__(self, capacity: int, n_features: int, *, idle_at: int = -1,
                 idle_below: float = 0.0) -> None:
        """``idle_at``: the feature index of the idle rule (-1: no row is ever idle here)."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.x = np.zeros((capacity, n_features), dtype=np.float32)
        self.idle_x = np.zeros((capacity, n_features), dtype=np.float32)
        self.source = np.zeros(capacity, dtype=np.int64)
        self.seq = np.zeros(capacity, dtype=np.uint64)
        self.t_acq_ns = np.zeros(capacity, dtype=np.int64)
        self.t_ready_ns = np.zeros(capacity, dtype=np.int64)
        self.t_recv_ns = np.zeros(capacity, dtype=np.int64)  # its frame was received
        self.flags = np.zeros(capacity, dtype=np.int64)
        self.slot = np.zeros(capacity, dtype=np.int64)
        # the model's outputs, for a scorer that writes into the caller's arrays
        self.score_out = np.zeros(capacity, dtype=np.float32)
        self.contrib_out = np.zeros((capacity, n_features), dtype=np.float32)
        self._idle_at = idle_at
        self._idle_below = float(idle_below)
        self.rows = self.model_rows = self.idle_rows = 0
        self.earliest_acq_ns = 0
        # set when the batch goes to the model, and by whoever runs it
        self.tier = 0
        self.t_close_ns = 0
        self.t_start_ns = self.t_end_ns = 0
        self.scores: Any = None
        self.contrib: Any = None
        self.error: Exception | None = None

    def reset(self) -> None:
        self.rows = self.model_rows = self.idle_rows = 0
        self.earliest_acq_ns = 0
        self.scores = self.contrib = self.error = None
        self.t_start_ns = self.t_end_ns = 0

    def room(self, rows: int) -> bool:
        return self.rows + rows <= self.capacity

    @property
    def oldest_ready_ns(self) -> int:
        return int(self.t_ready_ns[0])

    def append(self, wf: WindowFeatures, source_id: int, seq: int, t_acq_ns: int,
               t_ready_ns: int, first_flags: int, flags: int, hop_ns: int,
               t_recv_ns: int) -> int:
        """Move the source's ready windows in (the first gets ``first_flags``, the others
        ``flags``); returns how many of them were idle. The caller checked ``room``.

        ``t_acq_ns`` is when the newest window's last sample was acquired; each window
        before it ended ``hop_ns`` earlier (a frame longer than a hop makes several).
        ``t_recv_ns``: when their frame was received."""
        start = self.model_rows
        made = wf.pop_into(self.x, start)
        write = start
        idle = 0
        for j in range(made):
            at = start + j
            r = self.rows
            if self._idle_at >= 0 and self.x[at, self._idle_at] < self._idle_below:
                self.idle_x[self.idle_rows] = self.x[at]
                self.slot[r] = -1 - self.idle_rows
                self.idle_rows += 1
                idle += 1
            else:
                if write != at:
                    self.x[write] = self.x[at]
                self.slot[r] = write
                write += 1
            self.source[r] = source_id
            self.seq[r] = seq
            t_acq = t_acq_ns - (made - 1 - j) * hop_ns
            self.t_acq_ns[r] = t_acq
            self.t_ready_ns[r] = t_ready_ns
            self.t_recv_ns[r] = t_recv_ns
            self.flags[r] = first_flags if j == 0 else flags
            if r == 0 or t_acq < self.earliest_acq_ns:
                self.earliest_acq_ns = t_acq
            self.rows += 1
        self.model_rows = write
        return idle

    def next_deadline_ns(self, now_ns: int, budget_ns: int) -> int | None:
        """The earliest verdict deadline (t_acq + budget) among rows still able to meet one,
        i.e. not yet past it at ``now_ns``; None when every row is already late."""
        if self.rows == 0:
            return None
        first = self.earliest_acq_ns + budget_ns
        if first >= now_ns:
            return first
        deadlines = self.t_acq_ns[:self.rows] + budget_ns
        alive = deadlines[deadlines >= now_ns]
        return int(alive.min()) if alive.size else None

    def features(self, slot: int) -> F32:
        """The feature row behind a slot (a model row or an idle row)."""
        row: F32 = self.x[slot] if slot >= 0 else self.idle_x[-1 - slot]
        return row
