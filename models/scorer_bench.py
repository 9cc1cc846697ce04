"""What a scoring call costs: timed calls, IO binding against a plain run, one provider's check.

Measuring tools for deploy/gpu_check.py and the tests, never on the monitor's path: they read
``time.perf_counter_ns`` and open their own sessions. ``plain_vs_bound`` answers whether IO
binding pays on the CPU (it must not be slower than ``session.run``); ``check_provider``
opens a scorer on one provider, times its warm-up and its calls per batch size, and says
plainly when the provider is not there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from models.binding import HostBinding, probe_rows
from models.errors import ScorerError
from models.gpu_probe import probe
from models.manifest import CONTRIB_NAME, INPUT_NAME, SCORE_NAME
from models.plan import BindingPlan
from models.providers import CPU, CUDA, ScorerOptions, select_providers
from models.scorer import open_scorer
from models.session import ort_cuda_major, session_options

F32 = npt.NDArray[np.float32]
WARM_CALLS = 50
CHECK_MODEL_ID = bytes(8)


def latency_us(samples_ns: npt.NDArray[np.int64]) -> dict[str, float]:
    us = samples_ns.astype(np.float64) / 1e3
    return {"p50_us": round(float(np.percentile(us, 50)), 2),
            "p99_us": round(float(np.percentile(us, 99)), 2),
            "max_us": round(float(us.max()), 2), "calls": int(us.size)}


def time_calls(fn: Callable[[], object], calls: int) -> npt.NDArray[np.int64]:
    """Nanoseconds of each of ``calls`` calls of ``fn``."""
    out = np.empty(calls, np.int64)
    clock = time.perf_counter_ns
    for i in range(calls):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out


def plain_vs_bound(onnx_bytes: bytes, n_features: int, batches: Sequence[int] = (1, 8, 32),
                   calls: int = 2000, rounds: int = 4) -> dict[str, dict[str, dict[str, float]]]:
    """Per batch size, ``session.run`` against the host IO binding on one CPU session,
    interleaved in ``rounds`` so that drift on a shared machine hits both alike."""
    session = ort.InferenceSession(onnx_bytes, session_options(1), providers=[CPU])
    cap = max(batches)
    binding = HostBinding(session, BindingPlan("host", "cpu", tuple(range(1, cap + 1)), False),
                          n_features)
    rows = probe_rows(cap, n_features)
    out: dict[str, dict[str, dict[str, float]]] = {}
    per_round = max(calls // rounds, 1)
    for b in batches:
        x = np.ascontiguousarray(rows[:b])

        def plain(x: F32 = x) -> object:
            return session.run([SCORE_NAME, CONTRIB_NAME], {INPUT_NAME: x})

        def bound(x: F32 = x) -> object:
            return binding.run(x)

        samples: dict[str, list[npt.NDArray[np.int64]]] = {"plain_run": [], "io_binding": []}
        for fn in (plain, bound):
            for _ in range(WARM_CALLS):
                fn()
        for _ in range(rounds):
            samples["plain_run"].append(time_calls(plain, per_round))
            samples["io_binding"].append(time_calls(bound, per_round))
        out[str(b)] = {k: latency_us(np.concatenate(v)) for k, v in samples.items()}
    return out


def check_provider(
    onnx_bytes: bytes, n_features: int, request: str, options: ScorerOptions,
    batches: Sequence[int] = (1, 8, 32), calls: int = 2000, max_batch: int = 32,
) -> dict[str, Any]:
    """One provider configuration: what it really got, its warm-up, its calls' latency."""
    available = tuple(ort.get_available_providers())
    gpu = probe(request == "tensorrt") if request != "cpu" and CUDA in available else None
    choice = select_providers(request, available, gpu, ort_cuda_major())
    if choice.fallback or (request != "cpu" and not choice.uses_gpu):
        return {"available": False, "requested": request,
                "reason": choice.reason or "no GPU provider usable"}
    t0 = time.perf_counter_ns()
    try:
        scorer = open_scorer(onnx_bytes, CHECK_MODEL_ID, n_features, choice=choice,
                             max_batch=max_batch, options=options)
    except ScorerError as e:
        return {"available": False, "requested": request, "reason": str(e)}
    with scorer:
        t1 = time.perf_counter_ns()
        info = scorer.info()
        if scorer.degraded:
            return {"available": False, **info,
                    "reason": f"fell back to {', '.join(scorer.providers)}"}
        try:
            scorer.warm(max_batch)
        except ScorerError as e:
            return {"available": False, **info, "reason": f"warm-up failed: {e}"}
        t2 = time.perf_counter_ns()
        rows = probe_rows(max(batches), n_features)
        per_batch: dict[str, dict[str, float]] = {}
        for b in batches:
            x = np.ascontiguousarray(rows[:b])

            def call(x: F32 = x) -> object:
                return scorer.score_views(x)

            for _ in range(WARM_CALLS):
                call()
            per_batch[str(b)] = latency_us(time_calls(call, calls))
        return {"available": True, **scorer.info(),
                "session_ms": round((t1 - t0) / 1e6, 1), "warm_ms": round((t2 - t1) / 1e6, 1),
                "batches": per_batch}
