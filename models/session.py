"""Creating the scorer's onnxruntime session, and finding out what it really runs on (shell).

``open_session`` creates the session for a provider choice: with CUDA graphs when asked for
and the CUDA provider leads, retried without them when onnxruntime refuses
(``cuda_graphs_unavailable``, a warning: a model with a node the CUDA provider lacks cannot be
captured), and on the CPU when the GPU session cannot be created at all
(``provider_fallback``, an error, and the choice is marked as a fallback). ``placement`` reads
back where onnxruntime put each node. onnxruntime's automatic retry-on-CPU is disabled, so a
fallback is only ever this module's, and logged.

Deciding is providers.py's; this module only creates and inspects.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnxruntime as ort
import structlog

from models.errors import ProviderError
from models.providers import (
    CPU,
    CUDA,
    Placement,
    ProviderChoice,
    ScorerOptions,
    placement_of,
    provider_options,
)

ORT_LOG_ERRORS_ONLY = 3
RECORD_PLACEMENT = "session.record_ep_graph_assignment_info"
ERROR_CHARS = 300


def ort_cuda_major() -> int:
    """The CUDA major version this onnxruntime was built for (0 when it does not say)."""
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
    so.add_session_config_entry(RECORD_PLACEMENT, "1")  # where each node runs (placement)
    return so


@dataclass(frozen=True, slots=True)
class Opened:
    session: ort.InferenceSession
    choice: ProviderChoice  # as created: (CPU,) and fallback after a failed GPU session
    cuda_graphs: bool  # the session was created with CUDA graphs enabled
    alarmed: bool  # a provider_fallback line was already logged


def _create(onnx_bytes: bytes, providers: tuple[str, ...], n_features: int, max_batch: int,
            threads: int, options: ScorerOptions, graphs: bool) -> ort.InferenceSession:
    listed = [(p, provider_options(p, n_features, max_batch, options, graphs)) for p in providers]
    return ort.InferenceSession(
        onnx_bytes, session_options(threads), providers=listed, enable_fallback=0
    )


def open_session(onnx_bytes: bytes, choice: ProviderChoice, n_features: int, max_batch: int,
                 threads: int, options: ScorerOptions) -> Opened:
    log = structlog.get_logger(component="scorer")

    def create(providers: tuple[str, ...], graphs: bool) -> ort.InferenceSession:
        return _create(onnx_bytes, providers, n_features, max_batch, threads, options, graphs)

    graphs = options.cuda_graphs and choice.providers[0] == CUDA
    try:
        try:
            session = create(choice.providers, graphs)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises bare Exception subclasses
            if not graphs:
                raise
            log.warning("cuda_graphs_unavailable", error=str(e)[:ERROR_CHARS])
            graphs = False
            session = create(choice.providers, False)
    except Exception as e:  # noqa: BLE001
        if choice.providers == (CPU,):
            raise ProviderError(f"cannot create an inference session: {e}") from None
        log.error("provider_fallback", requested=list(choice.providers), used=[CPU],
                  error=str(e)[:ERROR_CHARS])
        try:
            session = create((CPU,), False)
        except Exception as e2:  # noqa: BLE001
            raise ProviderError(f"cannot create an inference session: {e2}") from None
        fallen = ProviderChoice(choice.requested, (CPU,), f"session creation failed: {e}", True)
        return Opened(session, fallen, False, True)
    return Opened(session, choice, graphs, False)


def placement(session: ort.InferenceSession, providers: tuple[str, ...]) -> Placement:
    """Where onnxruntime placed each node (empty when this onnxruntime cannot say)."""
    try:
        pairs = [(sub.ep_name, node.op_type) for sub in session.get_provider_graph_assignment_info()
                 for node in sub.get_nodes()]
    except (AttributeError, RuntimeError):
        pairs = []
    return placement_of(pairs, providers)
