"""``OnnxScorer``: the runtime ``Scorer`` over an onnxruntime session (shell).

Creating a scorer picks the execution providers (probe the GPU for real, then
providers.select_providers), builds one session (all graph optimizations, sequential
execution, ``intra_op_threads`` threads, one inter-op thread), and then checks what the
session really uses: a GPU provider that was asked for but silently dropped is logged as
``provider_fallback`` at error level and leaves the scorer ``degraded``. onnxruntime's own
logging is quietened (errors only per session, fatal only for its process-wide logger), and
its automatic retry-on-CPU is disabled, so every fallback goes through this module and is
logged once as a structured line.

onnxruntime exceptions are translated into ProviderError / InferenceError here and never
cross into the monitor. The scorer decides nothing: scores go to the decision rules.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import structlog

from models import gpu_probe
from models.errors import InferenceError, ProviderError
from models.manifest import CONTRIB_NAME, INPUT_NAME, SCORE_NAME
from models.protocol import Scorer, check_batch
from models.providers import (
    CPU,
    CUDA,
    TENSORRT,
    GpuProbe,
    ProviderChoice,
    requested_gpu_missing,
    select_providers,
)

__all__ = ["OnnxScorer", "Scorer", "open_scorer"]

ORT_LOG_ERRORS_ONLY = 3
# onnxruntime's process-wide logger prints provider-library load failures as red error text
# (CUDA provider present, CUDA libraries absent). Those failures are reported here as one
# structured ``provider_fallback`` line instead, so that logger is raised to fatal only.
ORT_DEFAULT_LOG_FATAL_ONLY = 4
DEFAULT_MAX_BATCH = 64



def _ort_cuda_major() -> int:
    try:
        from onnxruntime.capi import (  # noqa: PLC0415
            build_and_package_info as info,
        )

        return int(str(getattr(info, "cuda_version", "0")).split(".")[0] or 0)
    except (ImportError, ValueError):
        return 0


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = 1
    so.log_severity_level = ORT_LOG_ERRORS_ONLY
    return so


def _provider_options(name: str, n_features: int, max_batch: int) -> dict[str, Any]:
    if name == CUDA:
        return {"device_id": 0}
    if name == TENSORRT:
        # One optimisation profile covering every batch size the monitor uses, so TensorRT
        # does not rebuild its engine the first time a new batch size appears.
        return {
            "device_id": 0,
            "trt_profile_min_shapes": f"{INPUT_NAME}:1x{n_features}",
            "trt_profile_opt_shapes": f"{INPUT_NAME}:{min(2, max_batch)}x{n_features}",
            "trt_profile_max_shapes": f"{INPUT_NAME}:{max_batch}x{n_features}",
        }
    return {}


def _create(
    onnx_bytes: bytes, providers: tuple[str, ...], n_features: int, max_batch: int, threads: int
) -> ort.InferenceSession:
    listed = [(p, _provider_options(p, n_features, max_batch)) for p in providers]
    return ort.InferenceSession(
        onnx_bytes, session_options(threads), providers=listed, enable_fallback=0
    )


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
) -> OnnxScorer:
    """Build a ready scorer. ``probe`` and ``choice`` exist for tests (forced selections)."""
    if intra_op_threads < 1 or max_batch < 1:
        raise ProviderError(
            f"intra_op_threads and max_batch must be >= 1, got {intra_op_threads}, {max_batch}"
        )
    log = structlog.get_logger(component="scorer")
    ort.set_default_logger_severity(ORT_DEFAULT_LOG_FATAL_ONLY)
    available = tuple(ort.get_available_providers())
    gpu: GpuProbe | None = None
    if choice is None:
        if providers != "cpu" and CUDA in available:
            gpu = (probe or gpu_probe.probe)(providers == "tensorrt")
        try:
            choice = select_providers(providers, available, gpu, _ort_cuda_major())
        except ValueError as e:
            raise ProviderError(str(e)) from None

    degraded = choice.fallback
    alarmed = False
    try:
        session = _create(onnx_bytes, choice.providers, n_features, max_batch, intra_op_threads)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises bare Exception subclasses
        if choice.providers == (CPU,):
            raise ProviderError(f"cannot create an inference session: {e}") from None
        log.error("provider_fallback", requested=list(choice.providers), used=[CPU],
                  error=str(e)[:300])
        degraded = alarmed = True
        try:
            session = _create(onnx_bytes, (CPU,), n_features, max_batch, intra_op_threads)
        except Exception as e2:  # noqa: BLE001
            raise ProviderError(f"cannot create an inference session: {e2}") from None
        choice = ProviderChoice(choice.requested, (CPU,), f"session creation failed: {e}", True)

    actual = tuple(session.get_providers())
    dropped = requested_gpu_missing(choice, actual)
    log.info(
        "providers_selected", requested=choice.requested, providers=list(actual),
        reason=choice.reason or None, gpu_devices=gpu.devices if gpu else None,
        driver_version=gpu.driver_version if gpu else None,
    )
    if dropped:
        degraded = True
        log.error("provider_fallback", requested=list(choice.providers), used=list(actual),
                  dropped=list(dropped))
    elif choice.fallback and not alarmed:
        log.error("provider_fallback", requested=choice.requested, used=list(actual),
                  reason=choice.reason)
    return OnnxScorer(session, model_id, n_features, actual, degraded)


class OnnxScorer:
    """A ready inference session behind the Scorer protocol; a context manager."""

    def __init__(
        self,
        session: ort.InferenceSession,
        model_id: bytes,
        n_features: int,
        providers: tuple[str, ...],
        degraded: bool,
    ) -> None:
        if len(model_id) != 8:
            raise ProviderError(f"model_id must be 8 bytes, got {len(model_id)}")
        self._session: ort.InferenceSession | None = session
        self._outputs = [SCORE_NAME, CONTRIB_NAME]
        self.model_id = model_id
        self.n_features = n_features
        self.providers = providers
        self.degraded = degraded

    @property
    def closed(self) -> bool:
        return self._session is None

    def score(
        self, x: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        session = self._session
        if session is None:
            raise InferenceError("scorer is closed")
        arr = check_batch(x, self.n_features)
        if arr.shape[0] == 0:
            return np.empty(0, np.float32), np.empty((0, self.n_features), np.float32)
        try:
            score, contrib = session.run(self._outputs, {INPUT_NAME: arr})
        except Exception as e:  # noqa: BLE001 - translated at the boundary
            raise InferenceError(f"inference failed: {e}") from None
        return score, contrib

    def warm(self, max_batch: int) -> None:
        for b in range(1, max_batch + 1):
            self.score(np.zeros((b, self.n_features), dtype=np.float32))

    def close(self) -> None:
        self._session = None  # onnxruntime frees the session with its last reference

    def __enter__(self) -> OnnxScorer:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
