"""The inference worker: one thread that runs the model on one batch at a time (shell).

``score_batch`` runs a batch's model call and stores its results (scores and contributions,
or the error) and when it ran; the loop calls it inline when ``monitor.pipeline`` is off.
``InferenceWorker`` runs it in its own thread: ``submit`` hands over a batch, the thread
scores it, parks it in ``done`` and writes an eventfd that the loop's select() watches;
``take`` collects it. One batch in flight at most: the loop never submits while ``busy``.

Only the model call runs here. Deciding and publishing stay on the loop's thread, which
owns the Decider, the PUB socket, the counters and the histograms: a ZeroMQ socket must not
be used from two threads, and one owner needs no lock on the hot path, so the heartbeat tick
and the verdicts can never interleave inside a send. Verdict order per source follows from
batches completing in the order they were submitted. onnxruntime releases the GIL inside
``run``, so the loop reads frames and computes features (numba, nogil) while a batch scores.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.protocol import Scorer
    from monitor.batch import Batch

STOP_TIMEOUT_S = 10.0


def score_batch(batch: Batch, scorer: Scorer) -> None:
    """Score the batch's model rows; never raises (a failure is stored as ``batch.error``).
    A scorer that can write into the caller's arrays (``score_into``, OnnxScorer) writes
    into the batch's own: no allocation per batch."""
    m = batch.model_rows
    into = getattr(scorer, "score_into", None)
    batch.t_start_ns = time.monotonic_ns()
    try:
        if into is not None:
            into(batch.x[:m], batch.score_out, batch.contrib_out)
            scores, contrib = batch.score_out[:m], batch.contrib_out[:m]
        else:
            scores, contrib = scorer.score(batch.x[:m])
        if scores.shape[0] != m or contrib.shape != (m, batch.x.shape[1]):
            raise ValueError(f"scorer returned {scores.shape} and {contrib.shape} for {m} rows")
    except Exception as e:  # the model must never take the monitor down
        batch.error, batch.scores, batch.contrib = e, None, None
    else:
        batch.error, batch.scores, batch.contrib = None, scores, contrib
    batch.t_end_ns = time.monotonic_ns()


class InferenceWorker:
    """The model's thread; ``open`` starts it, ``close`` joins it (a context manager)."""

    def __init__(self, name: str = "monitor-inference") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Batch, Scorer] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._inflight: Batch | None = None
        self._done: Batch | None = None
        self.fd = -1

    def open(self) -> InferenceWorker:
        if self._thread is not None or self.fd >= 0:
            raise RuntimeError("an InferenceWorker opens once")
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Let the batch in flight finish (it stays in ``done``), then stop the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> InferenceWorker:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def busy(self) -> bool:
        """A batch is in the model, or scored and not yet taken."""
        return self._inflight is not None

    @property
    def inflight(self) -> Batch | None:
        """The batch handed over and not yet taken back."""
        return self._inflight

    @property
    def finished(self) -> bool:
        return self._done is not None

    def submit(self, batch: Batch, scorer: Scorer) -> None:
        if self._inflight is not None or self._thread is None:
            raise RuntimeError("submit: a batch is already in flight, or the worker is closed")
        self._inflight = batch
        self._jobs.put((batch, scorer))

    def take(self) -> Batch | None:
        """The scored batch, once (None while it is still in the model)."""
        done = self._done
        if done is None:
            return None
        self._done = None
        self._inflight = None
        if self.fd >= 0:
            try:
                os.eventfd_read(self.fd)
            except BlockingIOError:  # already read with an earlier wake-up
                pass
        return done

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch, scorer = job
            score_batch(batch, scorer)
            self._done = batch  # set before the wake-up: the loop reads it after select
            try:
                os.eventfd_write(self.fd, 1)
            except OSError:  # closed after a join that timed out: nobody is waiting
                return
