"""The monitor's test-only inference stall: off by default, armed by SIGUSR1, logged loudly."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import structlog
from structlog.testing import capture_logs

from models.bundle import load_bundle
from monitor import service
from monitor.fault_hooks import STALL_SIGNAL, StallingScorer, StallSignal
from tests.monitor.conftest import TinyBundle
from tests.monitor.rig import SPEC, monitor_table
from tripwire import config


def _scorer(tiny_bundle: TinyBundle) -> object:
    from models.bundle import DEV_KEY

    return load_bundle(tiny_bundle.path, DEV_KEY).scorer(providers="cpu", max_batch=4)


def _timed_score(scorer: StallingScorer, x: np.ndarray) -> float:
    t0 = time.monotonic_ns()
    scorer.score(x)
    return (time.monotonic_ns() - t0) / 1e6


def test_hooks_are_off_by_default_and_the_loop_gets_the_bare_scorer(tiny_bundle: TinyBundle,
                                                                     ipc_dir: Path) -> None:
    cfg = config.from_dict(monitor_table(ipc_dir, tiny_bundle.path))
    assert cfg.monitor.fault_hooks is False
    inner = _scorer(tiny_bundle)
    with capture_logs() as logs:
        scorer, hooks = service._fault_hooks(cfg, inner, structlog.get_logger())  # type: ignore[arg-type]
    assert scorer is inner and logs == []
    with hooks:
        assert signal.getsignal(STALL_SIGNAL) is signal.SIG_DFL


def test_config_refuses_a_stall_out_of_range(tiny_bundle: TinyBundle, ipc_dir: Path) -> None:
    for bad in (0.0, -5.0, 1e9):
        with pytest.raises(config.ConfigError, match="monitor.fault_stall_ms"):
            config.from_dict(monitor_table(ipc_dir, tiny_bundle.path, fault_hooks=True, fault_stall_ms=bad))


def test_sigusr1_stalls_exactly_the_next_model_call(tiny_bundle: TinyBundle, ipc_dir: Path) -> None:
    cfg = config.from_dict(monitor_table(ipc_dir, tiny_bundle.path, fault_hooks=True, fault_stall_ms=60.0))
    inner = _scorer(tiny_bundle)
    x = np.zeros((2, SPEC.n_features), dtype=np.float32)
    with capture_logs() as logs:
        scorer, hooks = service._fault_hooks(cfg, inner, structlog.get_logger())  # type: ignore[arg-type]
        assert isinstance(scorer, StallingScorer)
        assert scorer.model_id == inner.model_id and scorer.n_features == inner.n_features  # type: ignore[attr-defined]
        with hooks:
            assert _timed_score(scorer, x) < 50  # not armed: no stall
            before = time.monotonic_ns()
            os.kill(os.getpid(), STALL_SIGNAL)  # the handler runs in this (the main) thread
            assert _timed_score(scorer, x) >= 60
            assert _timed_score(scorer, x) < 50  # one stall per signal
        assert signal.getsignal(STALL_SIGNAL) is signal.SIG_DFL  # the handler is gone again
    enabled = [e for e in logs if e["event"] == "fault_hooks_enabled"]
    assert enabled and enabled[0]["log_level"] == "warning" and enabled[0]["stall_ms"] == 60.0
    (stall,) = [e for e in logs if e["event"] == "inference_stalled"]
    assert stall["log_level"] == "warning" and stall["stalled_ms"] >= 60
    assert before <= stall["t_start_ns"] <= time.monotonic_ns()
    # Scores are the model's own, stall or not.
    s_stalled, c_stalled = StallingScorer(inner, 1.0, structlog.get_logger()).score(x)  # type: ignore[arg-type]
    s_plain, c_plain = inner.score(x)  # type: ignore[attr-defined]
    assert np.array_equal(s_stalled, s_plain) and np.array_equal(c_stalled, c_plain)


def test_the_signal_hook_is_inert_outside_the_main_thread(tiny_bundle: TinyBundle) -> None:
    import threading

    scorer = StallingScorer(_scorer(tiny_bundle), 10.0, structlog.get_logger())  # type: ignore[arg-type]
    seen: list[object] = []
    with capture_logs() as logs:
        def body() -> None:
            with StallSignal(scorer, structlog.get_logger()):
                seen.append(signal.getsignal(STALL_SIGNAL))
        t = threading.Thread(target=body)
        t.start()
        t.join(10)
    assert seen == [signal.SIG_DFL]
    assert [e["event"] for e in logs] == ["fault_hooks_inert"]
