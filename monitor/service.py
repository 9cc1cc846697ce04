"""The monitor process: ``serve(cfg, stop)`` (shell, wiring only).

Start-up refuses to run on a bundle it cannot trust: the bundle must load and verify
(models.bundle), its feature spec must match the config (channels of every source, sample
rate, window, hop) and the width of every model it will use must match the spec. A tiered
bundle gets a scorer per tier the governor may use (tiers.py). Then every numba kernel and
every batch size of every tier is warmed (the timed calls seed the batch cost model),
garbage is collected and frozen, the sockets are bound, and ``monitor_ready`` is logged.
The loop (loop.py) runs until ``stop`` is set or SIGTERM/SIGINT arrive; ``monitor_stopped``
carries the counters and per-stage latency summaries.

Exit codes: 0 stopped cleanly, 2 bundle refused, 3 sockets could not be bound.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import structlog

from monitor import features, validate
from monitor.dispatch import batch_capacity
from monitor.errors import BundleRefused, BusError, FeatureSpecError
from monitor.features import FeatureSpec
from monitor.loop import MonitorLoop
from monitor.tiers import Tier, TierSet, open_tiers, snake
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


def load_checked_bundle(cfg: Config) -> tuple[TierSet, FeatureSpec]:
    """Load, verify and check the configured bundle, and build its scorers."""
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
        raise BundleRefused(snake(type(e).__name__), str(e)) from None
    spec = check_spec(bundle.feature_spec, cfg)
    return open_tiers(bundle, cfg.monitor, spec.n_features, batch_capacity(cfg, spec)), spec


def serve(cfg: Config, stop: threading.Event | None = None) -> int:
    """Run the monitor until ``stop`` is set or a termination signal arrives."""
    log = structlog.get_logger(component="monitor")
    stop = stop if stop is not None else threading.Event()
    with _signals_set(stop):
        try:
            tiers, spec = load_checked_bundle(cfg)
        except BundleRefused as e:
            log.error("bundle_refused", bundle=cfg.monitor.bundle, reason=e.reason, detail=e.detail)
            return EXIT_BUNDLE_REFUSED
        return run(cfg, None, spec, 0.0, stop, tiers=tiers)


def run(cfg: Config, scorer: Scorer | None, spec: FeatureSpec, threshold: float,
        stop: threading.Event, *, tiers: TierSet | None = None) -> int:
    """Warm, bind and loop with a ready scorer, or with ready ``tiers`` (``serve`` after its
    checks; tests)."""
    log = structlog.get_logger(component="monitor")
    t0 = time.monotonic_ns()
    if tiers is None:
        if scorer is None:
            raise ValueError("run: give a scorer or tiers")
        tiers = TierSet.single(scorer, threshold)
    features.warm(spec)
    validate.warm()
    tiers, hooks = _hooked_tiers(cfg, tiers, log)
    loop = MonitorLoop(cfg, tiers, spec)
    loop.warm()
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
    realtime.apply(cfg.monitor.realtime_priority, "monitor", cfg.monitor.cpus,  # once warm
                   cfg.monitor.io_cpus)
    try:
        start = tiers.tiers[tiers.start]
        log.info("monitor_ready", warmup_ms=round((time.monotonic_ns() - t0) / 1e6, 1),
                 sources=[s.id for s in cfg.sources], n_features=spec.n_features,
                 threshold=start.threshold, model_id=start.model_id.hex(),
                 tier=start.index, tier_name=start.name, tiers=tiers.names(),
                 governor="auto" if tiers.governed else "off", pipeline=cfg.monitor.pipeline,
                 batch_max_rows=cfg.monitor.batch_max_rows, frames=cfg.bus.frames,
                 monitor_out=cfg.bus.monitor_out)
        with hooks:
            loop.run(stop)
    finally:
        loop.close()
        gc.callbacks.remove(gc_pauses)
        gc.unfreeze()
        log.info("monitor_stopped", **gc_pauses.summary(), **loop.summary())
    return EXIT_OK


def _hooked_tiers(cfg: Config, tiers: TierSet,
                  log: Any) -> tuple[TierSet, AbstractContextManager[Any]]:
    """With the test-only fault hooks on, the start tier's scorer stalls on demand, and the
    tier stays put (a stall must hit the model it was aimed at)."""
    if not cfg.monitor.fault_hooks:
        return tiers, nullcontext()
    start = tiers.tiers[tiers.start]
    stalling, hooks = _fault_hooks(cfg, start.scorer, log)
    if tiers.governed:
        log.warning("governor_pinned", tier=start.name, reason="fault_hooks")
    return TierSet((Tier.of(start.index, start.name, stalling, start.threshold),)), hooks


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
    """The collector's pauses per generation: how many, their total and the longest (a
    pause stops the heartbeat too)."""

    def __init__(self) -> None:
        self._t0 = 0
        self.max_ns = [0, 0, 0]
        self.total_ns = [0, 0, 0]
        self.count = [0, 0, 0]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic_ns()
        if phase == "start":
            self._t0 = now
        else:
            gen = info.get("generation", 0)
            took = now - self._t0
            self.max_ns[gen] = max(self.max_ns[gen], took)
            self.total_ns[gen] += took
            self.count[gen] += 1

    def max_ms(self) -> list[float]:
        return [round(v / 1e6, 3) for v in self.max_ns]

    def summary(self) -> dict[str, list[float] | list[int]]:
        return {"gc_pause_max_ms": self.max_ms(), "gc_collections": list(self.count),
                "gc_total_ms": [round(v / 1e6, 3) for v in self.total_ns]}


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
