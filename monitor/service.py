"""The monitor process: ``serve(cfg, stop)`` (shell, wiring only).

Start-up refuses to run on a bundle it cannot trust: the bundle must load and verify
(models.bundle), its feature spec must match the config (channels of every source, sample
rate, window, hop) and its model width must match the spec. Then every numba kernel and every
batch size of the model is warmed, garbage is collected and frozen, the sockets are bound, and
``monitor_ready`` is logged. The loop (loop.py) runs until ``stop`` is set or SIGTERM/SIGINT
arrive; ``monitor_stopped`` carries the counters and per-stage latency summaries.

Exit codes: 0 stopped cleanly, 2 bundle refused, 3 sockets could not be bound.
"""

from __future__ import annotations

import gc
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import structlog

from monitor import features, validate
from monitor.errors import BundleRefused, BusError, FeatureSpecError
from monitor.features import FeatureSpec
from monitor.loop import MonitorLoop, batch_capacity
from tripwire import realtime
from tripwire.config import Config

if TYPE_CHECKING:
    from models.protocol import Scorer

EXIT_OK, EXIT_BUNDLE_REFUSED, EXIT_BUS = 0, 2, 3


def check_spec(spec_dict: Any, cfg: Config) -> FeatureSpec:
    """The bundle's feature spec, if it matches what the configured sources send."""
    try:
        spec = FeatureSpec.from_dict(spec_dict)
    except FeatureSpecError as e:
        raise BundleRefused("spec_invalid", str(e)) from None
    m = cfg.monitor
    if (spec.window, spec.hop) != (m.window, m.hop):
        raise BundleRefused("spec_mismatch", f"bundle window/hop {spec.window}/{spec.hop}, "
                            f"config monitor.window/hop {m.window}/{m.hop}")
    for i, s in enumerate(cfg.sources):
        if tuple(s.channels) != spec.channels:
            raise BundleRefused("spec_mismatch", f"sources[{i}].channels {s.channels} != "
                                f"bundle channels {list(spec.channels)}")
        if s.sample_rate_hz != spec.sample_rate_hz:
            raise BundleRefused("spec_mismatch", f"sources[{i}].sample_rate_hz {s.sample_rate_hz} "
                                f"!= bundle {spec.sample_rate_hz}")
    return spec


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def load_checked_bundle(cfg: Config) -> tuple[Scorer, FeatureSpec, float]:
    """Load, verify and check the configured bundle, and build its scorer."""
    if not cfg.monitor.bundle:
        raise BundleRefused("no_bundle", "monitor.bundle is empty")
    try:
        from models.bundle import DEV_KEY, load_bundle, read_key_file
    except ImportError as e:
        raise BundleRefused("models_unavailable", str(e)) from None
    key_file = str(getattr(cfg.monitor, "bundle_key_file", "") or "")
    try:
        key = read_key_file(key_file) if key_file else DEV_KEY
        bundle = load_bundle(cfg.monitor.bundle, key)
    except Exception as e:  # whatever stops a bundle from loading refuses it
        raise BundleRefused(_snake(type(e).__name__), str(e)) from None
    spec = check_spec(bundle.feature_spec, cfg)
    try:
        scorer = bundle.scorer(providers=cfg.monitor.providers,
                               intra_op_threads=cfg.monitor.intra_op_threads,
                               max_batch=batch_capacity(cfg, spec))
    except Exception as e:
        raise BundleRefused(_snake(type(e).__name__), str(e)) from None
    if scorer.n_features != spec.n_features:
        raise BundleRefused("spec_mismatch", f"model takes {scorer.n_features} features, "
                            f"the spec makes {spec.n_features}")
    return scorer, spec, float(bundle.threshold)


def serve(cfg: Config, stop: threading.Event | None = None) -> int:
    """Run the monitor until ``stop`` is set or a termination signal arrives."""
    log = structlog.get_logger(component="monitor")
    stop = stop if stop is not None else threading.Event()
    with _signals_set(stop):
        try:
            scorer, spec, threshold = load_checked_bundle(cfg)
        except BundleRefused as e:
            log.error("bundle_refused", bundle=cfg.monitor.bundle, reason=e.reason, detail=e.detail)
            return EXIT_BUNDLE_REFUSED
        return run(cfg, scorer, spec, threshold, stop)


def run(cfg: Config, scorer: Scorer, spec: FeatureSpec, threshold: float,
        stop: threading.Event) -> int:
    """Warm, bind and loop with a ready scorer (``serve`` after its checks; tests)."""
    log = structlog.get_logger(component="monitor")
    t0 = time.monotonic_ns()
    features.warm(spec)
    validate.warm()
    scorer.warm(batch_capacity(cfg, spec))
    scorer, hooks = _fault_hooks(cfg, scorer, log)
    loop = MonitorLoop(cfg, scorer, spec, threshold)
    try:
        loop.open()
    except BusError as e:
        log.error("bus_bind_failed", error=str(e), frames=cfg.bus.frames,
                  monitor_out=cfg.bus.monitor_out)
        return EXIT_BUS
    gc.collect()
    gc.freeze()  # start-up objects never get scanned again: shorter collections later
    gc_pauses = _GcPauses()
    gc.callbacks.append(gc_pauses)
    realtime.apply(cfg.monitor.realtime_priority, "monitor")  # after the JIT warm-up, not before
    try:
        log.info("monitor_ready", warmup_ms=round((time.monotonic_ns() - t0) / 1e6, 1),
                 sources=[s.id for s in cfg.sources], n_features=spec.n_features,
                 threshold=threshold, model_id=bytes(scorer.model_id).hex(),
                 frames=cfg.bus.frames, monitor_out=cfg.bus.monitor_out)
        with hooks:
            loop.run(stop)
    finally:
        loop.close()
        gc.callbacks.remove(gc_pauses)
        gc.unfreeze()
        log.info("monitor_stopped", gc_pause_max_ms=gc_pauses.max_ms(), **loop.summary())
    return EXIT_OK


def _fault_hooks(cfg: Config, scorer: Scorer, log: Any) -> tuple[Scorer, AbstractContextManager[Any]]:
    """The scorer as the loop sees it, and what installs the test-only hooks (nothing when off)."""
    if not cfg.monitor.fault_hooks:
        return scorer, nullcontext()
    from monitor.fault_hooks import STALL_SIGNAL, StallingScorer, StallSignal

    stalling = StallingScorer(scorer, cfg.monitor.fault_stall_ms, log)
    log.warning("fault_hooks_enabled", stall_ms=cfg.monitor.fault_stall_ms,
                signal=STALL_SIGNAL.name, note="test-only fault injection; never in a deployment")
    return stalling, StallSignal(stalling, log)


class _GcPauses:
    """The longest collector pause per generation: a pause stops the heartbeat too."""

    def __init__(self) -> None:
        self._t0 = 0
        self.max_ns = [0, 0, 0]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic_ns()
        if phase == "start":
            self._t0 = now
        else:
            gen = info.get("generation", 0)
            self.max_ns[gen] = max(self.max_ns[gen], now - self._t0)

    def max_ms(self) -> list[float]:
        return [round(v / 1e6, 3) for v in self.max_ns]


@contextmanager
def _signals_set(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop``; only the main thread may install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    previous: dict[int, Callable[..., Any] | int | None] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
