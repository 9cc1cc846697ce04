"""The scorer's IO binding on the CPU: the same code the GPU path runs (binding.py).

Host layout (CPU provider, CUDA without graphs, TensorRT) and device layout (CUDA graphs; here
with its "device" tensors on the CPU) both score exactly as a plain ``session.run``, warm
every batch size, and allocate nothing per call.
"""

from __future__ import annotations

import ctypes
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from structlog.testing import capture_logs

from models import export
from models.binding import WARM_RUNS_PER_SIZE, DeviceBinding, HostBinding, probe_rows
from models.errors import InferenceError
from models.manifest import CONTRIB_NAME, INPUT_NAME, SCORE_NAME
from models.pca import fit_pca
from models.plan import BindingPlan
from models.providers import CPU
from models.scorer import OnnxScorer, open_scorer
from models.session import session_options
from tests.models.common import F, synthetic_normal

MODEL_ID = bytes.fromhex("0123456789abcdef")
WIDE = 576  # the bench's width: 64 channels x 9 features
DEVICE_SIZES = (1, 2, 4, 8, 32)


def _wide_onnx() -> bytes:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(1500, 12)) @ rng.normal(size=(12, WIDE)) + 0.1 * rng.normal(
        size=(1500, WIDE))
    return export.pca_to_onnx(fit_pca(rows.astype(np.float32)))


@pytest.fixture(scope="module")
def wide_onnx() -> bytes:
    return _wide_onnx()


def _session(onnx_bytes: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(onnx_bytes, session_options(1), providers=[CPU])


def _plain(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    score, contrib = session.run([SCORE_NAME, CONTRIB_NAME],
                                 {INPUT_NAME: np.ascontiguousarray(x, np.float32)})
    return score, contrib


def _device_scorer(onnx_bytes: bytes, n_features: int,
                   copier: Callable[[int, int, int], None] | None = None,
                   cls: type[DeviceBinding] = DeviceBinding) -> OnnxScorer:
    session = _session(onnx_bytes)
    binding = cls(session, BindingPlan("device", "cpu", DEVICE_SIZES, False), n_features, copier)
    return OnnxScorer(session, MODEL_ID, n_features, (CPU,), False, binding)


def _memmove(dst: int, src: int, nbytes: int) -> None:
    """A host-memory copier: what cudaMemcpy is to a CUDA tensor, for a CPU one."""
    ctypes.memmove(dst, src, nbytes)


LAYOUTS = ["host", "device", "device-copier"]


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _scorer(layout: str, onnx_bytes: bytes, n_features: int, max_batch: int = 8) -> OnnxScorer:
    if layout == "host":
        return open_scorer(onnx_bytes, MODEL_ID, n_features, providers="cpu", max_batch=max_batch)
    return _device_scorer(onnx_bytes, n_features, _memmove if layout == "device-copier" else None)


@pytest.fixture
def scored(layout: str, ae_onnx: bytes) -> Iterator[tuple[OnnxScorer, ort.InferenceSession]]:
    with _scorer(layout, ae_onnx, F) as scorer:
        yield scorer, _session(ae_onnx)


def test_every_batch_size_scores_as_a_plain_run(scored, normal_data) -> None:
    scorer, plain = scored
    scorer.warm(8)
    x = normal_data["test"]
    # up, down again (stale rows in a padded size), padded far, beyond capacity (pieces)
    for b in (*range(1, 9), 8, 3, 1, 19, 40, 75):
        score, contrib = scorer.score(x[:b])
        ref_score, ref_contrib = _plain(plain, x[:b])
        np.testing.assert_allclose(score, ref_score, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(contrib, ref_contrib, rtol=1e-6, atol=1e-6)


def test_views_into_and_copies_agree(scored, normal_data) -> None:
    scorer, _ = scored
    x = normal_data["test"][:5]
    copied = scorer.score(x)
    views = scorer.score_views(x)
    out_score, out_contrib = np.zeros(8, np.float32), np.zeros((8, F), np.float32)
    scorer.score_into(x, out_score, out_contrib)
    for score, contrib in (views, (out_score[:5], out_contrib[:5])):
        np.testing.assert_array_equal(score, copied[0])
        np.testing.assert_array_equal(contrib, copied[1])
    scorer.score(normal_data["test"][5:10])
    np.testing.assert_array_equal(out_score[:5], copied[0])  # the caller's arrays are its own


def test_warm_runs_every_batch_size(layout: str, ae_onnx: bytes) -> None:
    with _scorer(layout, ae_onnx, F, max_batch=8) as scorer:
        scorer.warm(8)
        binding = scorer.binding
        assert scorer.warmed == 8
        if layout == "host":
            assert all(binding.runs[b] >= 1 for b in range(1, 9))
        else:
            assert all(binding.runs[s] >= WARM_RUNS_PER_SIZE for s in DEVICE_SIZES)
            assert binding.readback == ("direct" if layout == "device-copier" else "numpy")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_call_allocates_nothing(layout: str, wide_onnx: bytes) -> None:
    """At the bench's width a batch of 32 rows has 72 KB of contributions; a bound call must
    not allocate them (tracemalloc sees numpy's buffers), nor grow over many calls. (A few KB
    of unrelated interpreter noise is allowed for.)"""
    with _scorer(layout, wide_onnx, WIDE, max_batch=32) as scorer:
        scorer.warm(32)
        x = probe_rows(32, WIDE)
        out_score, out_contrib = np.zeros(32, np.float32), np.zeros((32, WIDE), np.float32)
        first = scorer.score_views(x)[1].ctypes.data
        tracemalloc.start()
        try:
            scorer.score(x)  # the copying call: proves tracemalloc sees the outputs
            _, copy_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(300):
                scorer.score_views(x)
                scorer.score_into(x, out_score, out_contrib)
            after, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert copy_peak >= 32 * WIDE * 4
        assert peak - before < 16384 and after - before < 16384
        assert scorer.score_views(x)[1].ctypes.data == first  # the same bound buffer


def test_memory_does_not_grow_over_many_calls(wide_onnx: bytes) -> None:
    def rss_kib() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4

    with _scorer("host", wide_onnx, WIDE, max_batch=32) as scorer:
        scorer.warm(32)
        x = probe_rows(32, WIDE)
        for _ in range(500):
            scorer.score_views(x)
        start = rss_kib()
        for _ in range(3000):
            scorer.score_views(x)
        assert rss_kib() - start < 4096


class _ReplayDrifts(DeviceBinding):
    """A binding whose replays drift from the eager run, as a broken graph capture would."""

    def _read(self, slot: Any) -> None:
        super()._read(slot)
        if self.graphs_active and self.runs[slot.size] >= 1:
            slot.host_score += 1.0


def test_a_graph_that_disagrees_with_its_eager_run_is_switched_off(ae_onnx: bytes,
                                                                   normal_data) -> None:
    scorer = _device_scorer(ae_onnx, F, cls=_ReplayDrifts)
    scorer.binding.graphs_active = True  # as if captured on a GPU
    with capture_logs() as logs:
        scorer.warm(8)
    assert not scorer.cuda_graphs
    (line,) = [e for e in logs if e["event"] == "cuda_graph_mismatch"]
    assert line["log_level"] == "error" and line["batch"] == 1
    x = normal_data["test"][:6]  # still correct, eagerly (run options now skip graphs)
    np.testing.assert_allclose(scorer.score(x)[0], _plain(_session(ae_onnx), x)[0], rtol=1e-6)


@pytest.mark.parametrize("broken", ["wrong", "raises"])
def test_a_direct_copy_that_fails_its_check_is_not_used(broken: str, ae_onnx: bytes,
                                                        normal_data) -> None:
    def copier(dst: int, src: int, nbytes: int) -> None:
        if broken == "raises":
            raise OSError("cudaMemcpy failed with CUDA error 700")
        ctypes.memset(dst, 0, nbytes)

    scorer = _device_scorer(ae_onnx, F, copier)
    with capture_logs() as logs:
        scorer.warm(4)
    assert scorer.binding.readback == "numpy"
    assert [e["event"] for e in logs] == ["readback_fallback"]
    x = normal_data["test"][:3]
    np.testing.assert_allclose(scorer.score(x)[0], _plain(_session(ae_onnx), x)[0], rtol=1e-6)


def test_concurrent_callers_each_get_their_own_rows(ae_onnx: bytes, normal_data) -> None:
    x = normal_data["test"]
    ref = _plain(_session(ae_onnx), x[:64])[0]
    errors: list[str] = []
    with open_scorer(ae_onnx, MODEL_ID, F, providers="cpu", max_batch=8) as scorer:
        def work(offset: int) -> None:
            for i in range(300):
                lo = (offset + i) % 56
                got = scorer.score(x[lo:lo + 8])[0]
                if not np.allclose(got, ref[lo:lo + 8], rtol=1e-6, atol=1e-6):
                    errors.append(f"rows {lo}..{lo + 8}")
                    return

        threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert not errors and not any(t.is_alive() for t in threads)


def test_score_into_refuses_arrays_that_do_not_fit(ae_onnx: bytes) -> None:
    with open_scorer(ae_onnx, MODEL_ID, F, providers="cpu", max_batch=8) as scorer:
        x = np.zeros((4, F), np.float32)
        with pytest.raises(InferenceError, match="fewer"):
            scorer.score_into(x, np.zeros(3, np.float32), np.zeros((4, F), np.float32))
        with pytest.raises(InferenceError, match="do not fit"):
            scorer.score_into(x, np.zeros(4, np.float32), np.zeros((4, F + 1), np.float32))
        scorer.close()
        with pytest.raises(InferenceError, match="closed"):
            scorer.score_views(x)
        with pytest.raises(InferenceError, match="closed"):
            scorer.score_into(x, np.zeros(4, np.float32), np.zeros((4, F), np.float32))


def test_host_binding_refuses_the_device_layout_and_back() -> None:
    session = _session(export.pca_to_onnx(fit_pca(synthetic_normal(300, 1))))
    with pytest.raises(ValueError, match="host layout"):
        HostBinding(session, BindingPlan("device", "cpu", (1, 2), False), F)
    with pytest.raises(ValueError, match="device layout"):
        DeviceBinding(session, BindingPlan("host", "cpu", (1, 2), False), F)
