"""Test-only fault hooks of the monitor: an inference stall on demand (the fault campaign).

Off unless ``monitor.fault_hooks = true``. Then ``service.run`` wraps the scorer in a
``StallingScorer`` and logs ``fault_hooks_enabled`` at warning level at start-up, and SIGUSR1
arms one stall: the next model call sleeps ``monitor.fault_stall_ms`` before it scores, as a
hung inference would, and logs ``inference_stalled`` with the stall's own start time
(``t_start_ns``, monotonic: comparable with every other process's stamps on this host).

With the hooks off nothing here runs: the loop calls the bare scorer, so the hot path carries
no check at all. Shell (signals, sleep, logging); never to be enabled in a deployment.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from models.protocol import Scorer

STALL_SIGNAL = signal.SIGUSR1


class StallingScorer:
    """A ``Scorer`` that passes every call through, except that an armed stall sleeps first."""

    def __init__(self, inner: Scorer, stall_ms: float, log: Any) -> None:
        self._inner = inner
        self._stall_s = stall_ms / 1000.0
        self._log = log
        self._armed = False
        self.model_id = inner.model_id
        self.n_features = inner.n_features
        self.degraded = bool(getattr(inner, "degraded", False))
        self.stalls = 0

    def arm(self) -> None:
        """The next ``score`` call stalls (safe to call from a signal handler)."""
        self._armed = True

    def score(self, x: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        if self._armed:
            self._armed = False
            t_start_ns = time.monotonic_ns()
            time.sleep(self._stall_s)
            self.stalls += 1
            self._log.warning("inference_stalled", t_start_ns=t_start_ns,
                              stalled_ms=round((time.monotonic_ns() - t_start_ns) / 1e6, 3),
                              rows=int(x.shape[0]), stalls=self.stalls)
        return self._inner.score(x)

    def warm(self, max_batch: int) -> None:
        self._inner.warm(max_batch)


class StallSignal:
    """SIGUSR1 arms the scorer's next stall while installed (main thread only: elsewhere the
    hook is inert and says so). A context manager: leaving restores the previous handler."""

    def __init__(self, scorer: StallingScorer, log: Any) -> None:
        self._scorer = scorer
        self._log = log
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> StallSignal:
        if threading.current_thread() is not threading.main_thread():
            self._log.warning("fault_hooks_inert", reason="not the main thread: no signal handler")
            return self

        def handler(signum: int, frame: FrameType | None) -> None:
            self._scorer.arm()

        self._previous = signal.signal(STALL_SIGNAL, handler)
        self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(STALL_SIGNAL, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False
