"""``OnnxScorer``: the runtime ``Scorer`` over an onnxruntime session and its IO binding (shell).

``open_scorer`` picks the execution providers (probe the GPU for real, then
providers.select_providers), has session.py create the session, and then checks what the
session really uses. Every silent fallback is logged once, at error level, as
``provider_fallback`` and leaves the scorer ``degraded``: a GPU session that could not be
created (the scorer runs on the CPU), a GPU provider asked for but dropped by onnxruntime,
and a GPU session whose every node onnxruntime placed on the CPU. Some compute nodes on the
CPU is ``provider_partial`` (a warning). onnxruntime's process-wide logger is quietened to
fatal only, so these structured lines are the one report of a fallback.

Scoring runs through binding.py: buffers bound once per batch size, so a call allocates
nothing beyond, in ``score``, the caller's own copy of the result (``score_into`` writes into
the caller's arrays, ``score_views`` hands back the bound buffers). Calls are serialised by a
lock. onnxruntime exceptions are translated into ProviderError / InferenceError here and
never cross into the monitor. The scorer decides nothing: scores go to the decision rules.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import structlog

from models import gpu_probe
from models.binding import Binding, DeviceBinding, HostBinding
from models.errors import InferenceError, ProviderError
from models.plan import BindingPlan, plan_binding
from models.protocol import Scorer
from models.providers import (
    CUDA,
    GpuProbe,
    Placement,
    ProviderChoice,
    ScorerOptions,
    placement_problem,
    requested_gpu_missing,
    select_providers,
)
from models.session import open_session, ort_cuda_major, placement, session_options

__all__ = ["OnnxScorer", "Scorer", "ScorerOptions", "open_scorer", "session_options"]

F32 = npt.NDArray[np.float32]
# onnxruntime's process-wide logger prints provider-library load failures as red error text
# (CUDA provider present, CUDA libraries absent). Those failures are reported here as one
# structured ``provider_fallback`` line instead, so that logger is raised to fatal only.
ORT_DEFAULT_LOG_FATAL_ONLY = 4
DEFAULT_MAX_BATCH = 64


def open_scorer(
    onnx_bytes: bytes,
    model_id: bytes,
    n_features: int,
    *,
    providers: str = "auto",
    intra_op_threads: int = 1,
    max_batch: int = DEFAULT_MAX_BATCH,
    probe: Callable[[bool], GpuProbe] | None = None,
    choice: ProviderChoice | None = None,
    options: ScorerOptions | None = None,
) -> OnnxScorer:
    """Build a scorer (call ``warm`` before the first batch that matters). ``probe`` and
    ``choice`` exist for tests (forced selections)."""
    if intra_op_threads < 1 or max_batch < 1:
        raise ProviderError(
            f"intra_op_threads and max_batch must be >= 1, got {intra_op_threads}, {max_batch}"
        )
    options = options or ScorerOptions()
    log = structlog.get_logger(component="scorer")
    ort.set_default_logger_severity(ORT_DEFAULT_LOG_FATAL_ONLY)
    available = tuple(ort.get_available_providers())
    gpu: GpuProbe | None = None
    if choice is None:
        if providers != "cpu" and CUDA in available:
            gpu = (probe or gpu_probe.probe)(providers == "tensorrt")
        try:
            choice = select_providers(providers, available, gpu, ort_cuda_major())
        except ValueError as e:
            raise ProviderError(str(e)) from None

    opened = open_session(onnx_bytes, choice, n_features, max_batch, intra_op_threads, options)
    session, choice = opened.session, opened.choice
    degraded = choice.fallback
    actual = tuple(session.get_providers())
    dropped = requested_gpu_missing(choice, actual)
    where = placement(session, actual)
    all_on_cpu, place_detail = placement_problem(where, actual)
    plan = plan_binding(actual, max_batch, options, opened.cuda_graphs)
    log.info(
        "providers_selected", requested=choice.requested, providers=list(actual),
        reason=choice.reason or None, gpu_devices=gpu.devices if gpu else None,
        driver_version=gpu.driver_version if gpu else None, binding=plan.layout,
        cuda_graphs=plan.cuda_graphs, nodes=dict(where.nodes) or None,
    )
    if dropped:
        degraded = True
        log.error("provider_fallback", requested=list(choice.providers), used=list(actual),
                  dropped=list(dropped))
    elif all_on_cpu:
        degraded = True
        log.error("provider_fallback", requested=list(choice.providers), used=list(actual),
                  detail=place_detail)
    elif choice.fallback and not opened.alarmed:
        log.error("provider_fallback", requested=choice.requested, used=list(actual),
                  reason=choice.reason)
    if place_detail and not all_on_cpu:
        log.warning("provider_partial", providers=list(actual), detail=place_detail)
    try:
        binding = make_binding(session, plan, n_features)
    except Exception as e:  # noqa: BLE001
        raise ProviderError(f"cannot bind the session's inputs and outputs: {e}") from None
    return OnnxScorer(session, model_id, n_features, actual, degraded, binding,
                      requested=choice.requested, reason=choice.reason, placement=where)


def make_binding(session: ort.InferenceSession, plan: BindingPlan, n_features: int) -> Binding:
    """The binding a plan asks for (device layout on CUDA reads back through libcudart)."""
    if plan.layout == "host":
        return HostBinding(session, plan, n_features)
    copier = gpu_probe.device_to_host_copier() if plan.device == "cuda" else None
    return DeviceBinding(session, plan, n_features, copier)


class OnnxScorer:
    """A ready inference session behind the Scorer protocol; a context manager."""

    def __init__(
        self,
        session: ort.InferenceSession,
        model_id: bytes,
        n_features: int,
        providers: tuple[str, ...],
        degraded: bool,
        binding: Binding | None = None,
        *,
        requested: str = "",
        reason: str = "",
        placement: Placement | None = None,
    ) -> None:
        if len(model_id) != 8:
            raise ProviderError(f"model_id must be 8 bytes, got {len(model_id)}")
        if binding is None:
            plan = BindingPlan("host", "cpu", tuple(range(1, DEFAULT_MAX_BATCH + 1)), False)
            binding = HostBinding(session, plan, n_features)
        self._session: ort.InferenceSession | None = session
        self._binding: Binding | None = binding
        self._lock = threading.Lock()
        self.model_id = model_id
        self.n_features = n_features
        self.providers = providers
        self.degraded = degraded
        self.requested = requested
        self.reason = reason
        self.placement = placement or Placement({}, ())
        self.warmed = 0  # the largest max_batch warmed so far

    @property
    def closed(self) -> bool:
        return self._session is None

    @property
    def binding(self) -> Binding:
        if self._binding is None:
            raise InferenceError("scorer is closed")
        return self._binding

    @property
    def cuda_graphs(self) -> bool:
        """CUDA graphs in use (they may be switched off by a failed warm-up check)."""
        return self._binding is not None and self._binding.graphs_active

    def score(self, x: npt.NDArray[np.float32]) -> tuple[F32, F32]:
        """Scores (B,) and contributions (B, F): arrays the caller owns."""
        binding, arr = self._checked(x)
        if arr.shape[0] == 0:
            return self._empty()
        with self._lock:
            score, contrib, owned = self._run(binding, arr)
            if not owned:
                return score.copy(), contrib.copy()
        return score, contrib

    def score_views(self, x: npt.NDArray[np.float32]) -> tuple[F32, F32]:
        """As ``score``, without allocating: views of the scorer's bound output buffers,
        valid until its next call. Only for a caller that reads them before scoring again,
        in the same thread."""
        binding, arr = self._checked(x)
        if arr.shape[0] == 0:
            return self._empty()
        with self._lock:
            score, contrib, _ = self._run(binding, arr)
        return score, contrib

    def score_into(self, x: npt.NDArray[np.float32], score_out: F32, contrib_out: F32) -> None:
        """As ``score``, into the caller's float32 arrays of at least ``len(x)`` rows: no
        allocation, and nothing shared with the scorer once it returns."""
        binding, arr = self._checked(x)
        rows = arr.shape[0]
        if score_out.shape[0] < rows or contrib_out.shape[0] < rows:
            raise InferenceError(f"output arrays hold fewer than the batch's {rows} rows")
        if rows == 0:
            return
        with self._lock:
            score, contrib, _ = self._run(binding, arr)
            try:
                np.copyto(score_out[:rows], score)
                np.copyto(contrib_out[:rows], contrib)
            except (ValueError, TypeError) as e:
                raise InferenceError(f"output arrays do not fit the results: {e}") from None

    def _checked(self, x: npt.NDArray[np.float32]) -> tuple[Binding, npt.NDArray[Any]]:
        binding = self._binding
        if binding is None:
            raise InferenceError("scorer is closed")
        arr = np.asarray(x)
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise InferenceError(
                f"expected a (batch, {self.n_features}) array, got shape {arr.shape}"
            )
        return binding, arr

    def _empty(self) -> tuple[F32, F32]:
        return np.empty(0, np.float32), np.empty((0, self.n_features), np.float32)

    @staticmethod
    def _run(binding: Binding, arr: npt.NDArray[Any]) -> tuple[F32, F32, bool]:
        try:
            return binding.run(arr)
        except Exception as e:  # noqa: BLE001 - translated at the boundary
            raise InferenceError(f"inference failed: {e}") from None

    def warm(self, max_batch: int) -> None:
        """Run every batch size 1..max_batch (and capture and check each CUDA graph)."""
        binding = self.binding
        with self._lock:
            try:
                binding.warm(max_batch)
            except Exception as e:  # noqa: BLE001
                raise InferenceError(f"warm-up failed: {e}") from None
        self.warmed = max(self.warmed, max_batch)

    def info(self) -> dict[str, Any]:
        """What this scorer really runs on, for logs and gpu_check."""
        binding = self.binding
        plan = binding.plan
        return {
            "requested": self.requested, "providers": list(self.providers),
            "degraded": self.degraded, "reason": self.reason or None,
            "binding": plan.layout, "device": plan.device,
            "bound_sizes": list(plan.sizes) if plan.layout == "device" else f"1..{plan.capacity}",
            "cuda_graphs": self.cuda_graphs, "readback": binding.readback,
            "nodes": dict(self.placement.nodes), "cpu_ops": list(self.placement.cpu_ops),
        }

    def close(self) -> None:
        # onnxruntime frees the session with its last reference (the binding holds one)
        with self._lock:
            self._session = None
            self._binding = None

    def __enter__(self) -> OnnxScorer:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
