"""From feature rows to model calls: the batches, the gate, the worker, the cost model (shell).

Three preallocated batches (batch.py): one fills while another is in the model and the
third, scored, is being published (two would force the next model call to wait until the
last batch's verdicts are out). ``poll`` asks the gate (batching.py) whether the filling
batch goes now; only while the model is free, since a batch that is due while the model is
busy keeps taking rows until the model is free or the batch is full. Going means: the
current tier's scorer is fixed for the batch (tiers switch between batches only), then with
``monitor.pipeline`` the batch goes to the inference worker (pipeline.py) and a free batch
starts filling; without, or when no row in it needs the model, it is scored and completed
right here.

``collect`` takes a scored batch from the worker. If the next batch is due it goes to the
model first, so that model call runs while this batch's rows are decided and published
(the loop's ``complete`` callback); a batch that needs no model call waits until this one
is published, so verdicts leave in row order. The cost model of each tier learns the
service time (batch closed -> its last verdict published) of every batch size; warm-up
seeds it with the model call alone at every size.

Figures: ``batch_wait`` (row ready -> its batch closed), ``inference`` and ``handoff``
(scored -> taken back by the loop) histograms, the rows per batch, batches counted by the
rule that closed them. No log lines here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from monitor.batch import Batch
from monitor.batching import BatchGate, CloseReason, CostModel
from monitor.features import FeatureSpec
from monitor.pipeline import InferenceWorker, score_batch
from monitor.tiers import TierSet
from tripwire.config import Config
from tripwire.latency import Histogram

SEED_CALLS = 3  # timed model calls per batch size at warm-up

Complete = Callable[[Batch], None]  # decide and publish every row of a finished batch


def rows_per_frame(cfg: Config, spec: FeatureSpec) -> int:
    """The most windows one frame can complete."""
    return max(s.frame_samples for s in cfg.sources) // spec.hop + 1


def batch_capacity(cfg: Config, spec: FeatureSpec) -> int:
    """Rows a batch can hold (and the largest batch the model is warmed for): a batch is
    full at ``monitor.batch_max_rows``, with room left for every window one frame can make."""
    return cfg.monitor.batch_max_rows + rows_per_frame(cfg, spec) - 1


class Dispatcher:
    def __init__(self, tiers: TierSet, *, n_features: int, capacity: int, max_rows: int,
                 gate_ms: float, wait_when_idle: bool, pipeline: bool, budget_ns: int,
                 idle_rule: tuple[int, float] | None, complete: Complete,
                 latency: dict[str, Histogram], counts: Counter[str]) -> None:
        idle_at, idle_below = idle_rule if idle_rule is not None else (-1, 0.0)
        self.tiers = tiers
        self.tier_pos = tiers.start
        self.max_rows = min(max_rows, capacity)
        self._gate = BatchGate(self.max_rows, int(gate_ms * 1e6), wait_when_idle)
        self._budget_ns = budget_ns
        self._costs = [CostModel(capacity) for _ in tiers.tiers]
        self.filling = Batch(capacity, n_features, idle_at=idle_at, idle_below=idle_below)
        self._free = [Batch(capacity, n_features, idle_at=idle_at, idle_below=idle_below)
                      for _ in range(2)]
        self._worker = InferenceWorker() if pipeline else None
        self._complete = complete
        self._latency = latency
        self.counts = counts
        self.batch_rows = Histogram.new()

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        if self._worker is not None:
            self._worker.open()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    def stop(self) -> None:
        """Join the worker, then complete the batch it was scoring (its verdicts go out)."""
        if self._worker is None:
            return
        self._worker.close()
        done = self._worker.take()
        if done is not None:
            self._finish(done)
            done.reset()
            self._free.append(done)

    @property
    def fd(self) -> int:
        """The worker's wake-up descriptor (-1 without a worker)."""
        return self._worker.fd if self._worker is not None else -1

    def warm(self) -> None:
        """Every tier's scorer at every batch size, then timed calls to seed its cost model."""
        x = self.filling.x
        for tier, cost in zip(self.tiers.tiers, self._costs, strict=True):
            tier.scorer.warm(x.shape[0])
            for m in range(1, x.shape[0] + 1):
                for _ in range(SEED_CALLS):
                    t0 = time.monotonic_ns()
                    tier.scorer.score(x[:m])
                    cost.observe(m, time.monotonic_ns() - t0)

    # --- state -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.busy

    @property
    def finished(self) -> bool:
        """A scored batch waits in the worker for ``collect``."""
        return self._worker is not None and self._worker.finished

    @property
    def full(self) -> bool:
        return self.filling.rows >= self.max_rows

    def overrun_ns(self, now_ns: int) -> int:
        """How far the batch in the model has run past its predicted service time (0 when
        it is on time, scored, or there is none): a stalled model, not a slow frame."""
        b = self._worker.inflight if self._worker is not None else None
        if b is None or self.finished:
            return 0
        return max(0, now_ns - b.t_close_ns - self._costs[b.tier].predict_ns(b.rows))

    def predicted_ns(self, rows: int) -> int:
        return self._costs[self.tier_pos].predict_ns(rows)

    def cost_table_us(self) -> dict[int, float]:
        return self._costs[self.tier_pos].table_us()

    # --- closing batches ---------------------------------------------------------------

    def poll(self, now_ns: int, drained: bool) -> bool:
        """Send the filling batch to the model if a rule says so and the model is free."""
        b = self.filling
        if b.rows == 0 or self.busy:
            return False
        reason = self._gate.close_reason(
            now_ns=now_ns, rows=b.rows, model_rows=b.model_rows,
            oldest_ready_ns=b.oldest_ready_ns,
            next_deadline_ns=b.next_deadline_ns(now_ns, self._budget_ns),
            predicted_ns=self.predicted_ns(b.rows), drained=drained, model_idle=True)
        if reason is None:
            return False
        self._dispatch(reason, now_ns)
        return True

    def wake_ns(self, now_ns: int) -> int | None:
        """When the clock alone would close the filling batch (None: nothing to wake for)."""
        b = self.filling
        if b.rows == 0 or self.busy:
            return None  # while busy the worker's wake-up comes first
        return self._gate.wake_ns(rows=b.rows, oldest_ready_ns=b.oldest_ready_ns,
                                  next_deadline_ns=b.next_deadline_ns(now_ns, self._budget_ns),
                                  predicted_ns=self.predicted_ns(b.rows))

    def _dispatch(self, reason: CloseReason, now_ns: int) -> None:
        b = self.filling
        b.tier = self.tier_pos
        b.t_close_ns = now_ns
        b.error = b.scores = b.contrib = None
        self.counts["batches"] += 1
        self.counts[f"batch_close_{reason.name.lower()}"] += 1
        self.counts["model_rows"] += b.model_rows
        self.counts["batched_rows"] += b.rows
        self.batch_rows.record(b.rows)
        wait = self._latency["batch_wait"]
        for t_ready in b.t_ready_ns[:b.rows].tolist():
            wait.record(now_ns - t_ready)
        scorer = self.tiers.tiers[b.tier].scorer
        if self._worker is not None and b.model_rows:
            self._worker.submit(b, scorer)
            # a free model leaves a free batch: at most one is in the model, one published
            self.filling = self._free.pop()
            self.filling.reset()
            return
        if b.model_rows:
            score_batch(b, scorer)
        self._finish(b)
        b.reset()

    def collect(self, now_ns: int, drained: bool) -> bool:
        """Complete the batch the worker scored, if there is one."""
        if self._worker is None:
            return False
        done = self._worker.take()
        if done is None:
            return False
        self._latency["handoff"].record(time.monotonic_ns() - done.t_end_ns)
        if self.filling.model_rows:
            self.poll(now_ns, drained)  # the next model call overlaps this batch's verdicts
        self._finish(done)
        done.reset()
        self._free.append(done)
        self.poll(time.monotonic_ns(), drained)
        return True

    def _finish(self, b: Batch) -> None:
        self._complete(b)
        if b.model_rows:  # a batch of idle rows only says nothing about the model's cost
            self._latency["inference"].record(b.t_end_ns - b.t_start_ns)
            self._costs[b.tier].observe(b.rows, time.monotonic_ns() - b.t_close_ns)
