"""The hot path without waste: kernels cached and GIL-free, warmed for every input the monitor
sees, and no allocation per frame from decode through validation to a feature row."""

from __future__ import annotations

import importlib
import threading
import time
import tracemalloc
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from numba.core import types
from numba.core.dispatcher import Dispatcher

from monitor import features, validate
from monitor.features import FeatureSpec, WindowFeatures
from monitor.validate import FrameValidator
from tripwire.config import SourceConfig
from tripwire.messages import Frame, decode_frame, encode_frame

MS = 1_000_000
CHANNELS = tuple(f"ch{i:02d}" for i in range(64))
SPEC = FeatureSpec(CHANNELS, 25600.0, 1024, 128)
SOURCE = SourceConfig(id=3, name="press-3", channels=list(CHANNELS), sample_rate_hz=25600.0,
                      frame_samples=128, min_value=-100.0, max_value=100.0)
PERIOD_NS = 5 * MS  # 128 samples at 25.6 kHz
# Numba's runtime counts its allocations when asked (a private switch, numba pinned).
nrt: Any = importlib.import_module("numba.core.runtime._nrt_python")


def _kernels(mod: ModuleType) -> dict[str, Any]:
    return {name: v for name, v in vars(mod).items() if isinstance(v, Dispatcher)}


def _signature_counts() -> dict[str, int]:
    kernels = {**_kernels(features), **_kernels(validate)}
    return {name: len(k.signatures) for name, k in kernels.items()}


@pytest.mark.parametrize("mod", [features, validate])
def test_every_kernel_is_cached_gil_free_and_keeps_nan_semantics(mod: ModuleType) -> None:
    kernels = _kernels(mod)
    assert kernels
    for name, k in kernels.items():
        assert k.targetoptions.get("nogil") is True, name
        assert type(k._cache).__name__ == "FunctionCache", name  # cache=True
        # only multiply-add fusion: no flag that assumes away NaN or infinity
        assert set(k.targetoptions.get("fastmath", set())) <= {"contract"}, name


def test_a_kernel_runs_while_the_main_thread_makes_progress() -> None:
    spec = FeatureSpec(("a", "b", "c", "d"), 100.0, 512, 1, ())  # a long single push
    features.warm(spec)
    x = np.random.default_rng(0).normal(size=(4, 20_000)).astype(np.float32)
    wf = WindowFeatures(spec, capacity=x.shape[1])
    span: list[int] = []
    started = threading.Event()

    def work() -> None:
        started.set()
        t0 = time.perf_counter_ns()
        wf.push(x)  # one call into the compiled kernel
        span.extend((t0, time.perf_counter_ns()))

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(10.0)
    stamps: list[int] = []
    deadline = time.perf_counter_ns() + 60_000 * MS
    last = 0
    while worker.is_alive() and time.perf_counter_ns() < deadline:
        now = time.perf_counter_ns()
        if now - last >= 100_000:  # a stamp every 0.1 ms of progress
            stamps.append(now)
            last = now
    worker.join(10.0)
    assert not worker.is_alive() and len(span) == 2
    t0, t1 = span
    quarter = (t1 - t0) // 4
    # A kernel holding the GIL would leave its middle half without a single stamp.
    inside = [s for s in stamps if t0 + quarter < s < t1 - quarter]
    assert len(inside) >= 10, (len(inside), (t1 - t0) / 1e6)
    assert wf.ready == x.shape[1] - spec.window + 1


def _wire_frames(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    rng = np.random.default_rng(seed)
    out = []
    for seq in range(count):
        x = rng.normal(0.0, 1.0, (len(CHANNELS), 128)).astype(np.float32)
        header, payload = encode_frame(Frame(SOURCE.id, seq, seq * PERIOD_NS, seq * PERIOD_NS,
                                             25600.0, x))
        out.append((header, bytes(payload)))
    return out


def test_decoded_samples_are_a_view_of_the_payload() -> None:
    header, payload = _wire_frames(1, seed=3)[0]
    samples = decode_frame(header, payload).samples
    assert samples.dtype == np.float32 and samples.flags.c_contiguous
    assert not samples.flags.writeable  # no copy: the kernels read the received bytes
    assert np.shares_memory(samples, np.frombuffer(payload, np.uint8))


def test_warm_compiles_every_signature_the_monitor_sees() -> None:
    features.warm(SPEC)
    validate.warm()
    before = _signature_counts()
    # integer bounds, as a table built in code may give them
    v = FrameValidator([SourceConfig(id=3, name="press-3", channels=list(CHANNELS),
                                     sample_rate_hz=25600.0, min_value=-100, max_value=100)],
                       max_frame_age_ms=1000.0)
    wf = WindowFeatures(SPEC)
    for seq, (header, payload) in enumerate(_wire_frames(10, seed=1)):
        frame = decode_frame(header, payload)  # read-only view of the payload
        assert v.check(frame, seq * PERIOD_NS + MS).accepted
        wf.push(frame.samples)
        wf.push(np.array(frame.samples))  # writable
        wf.pop()
    assert _signature_counts() == before


def test_the_hot_path_does_not_allocate_per_frame() -> None:
    features.warm(SPEC)
    validate.warm()
    frames = _wire_frames(64, seed=2)
    v = FrameValidator([SOURCE], max_frame_age_ms=1000.0)
    wf = WindowFeatures(SPEC)
    rows = np.zeros((4, SPEC.n_features), np.float32)
    made = 0

    def run(first: int, count: int) -> None:
        nonlocal made
        for seq in range(first, first + count):
            header, payload = frames[seq % len(frames)]
            frame = decode_frame(header, payload)
            # the stored frames repeat: give each its own sequence number and time
            frame = Frame(SOURCE.id, seq, seq * PERIOD_NS, seq * PERIOD_NS, 25600.0, frame.samples)
            if v.check(frame, seq * PERIOD_NS + MS).accepted:
                wf.push(frame.samples)
                made += wf.pop_into(rows)

    run(0, 50)  # fill the window, touch every counter once
    tracemalloc.start()
    nrt.memsys_enable_stats()
    try:
        nrt_before = nrt.memsys_get_stats_alloc(), nrt.memsys_get_stats_free()
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        run(50, 1000)
        end, peak = tracemalloc.get_traced_memory()
        nrt_allocs = nrt.memsys_get_stats_alloc() - nrt_before[0]
        nrt_frees = nrt.memsys_get_stats_free() - nrt_before[1]
    finally:
        nrt.memsys_disable_stats()
        tracemalloc.stop()
    assert made == 1050 - SPEC.blocks + 1 and v.rejected_total() == 0
    # Numba's dispatcher borrows each array argument with one small record, freed on return;
    # anything beyond that would be an allocation inside a kernel.
    borrowed = sum(isinstance(t, types.Array)
                   for k in (features._push, validate._scan) for t in k.signatures[0])
    assert nrt_allocs == nrt_frees == borrowed * 1000
    assert end - start < 4096  # no growth: a few bytes a frame would be kilobytes by now
    # transient objects only (a Frame, a view, an outcome: about 1 kB), never a buffer the
    # size of a feature row (2.3 kB) or of a frame (32 kB)
    assert peak - start < 2048 < SPEC.n_features * 4
