"""Which onnxruntime execution providers to ask for, given what a probe found (pure core).

onnxruntime-gpu lists the CUDA and TensorRT providers as *available* whenever it was built
with them, even on a machine with no GPU, no driver, or no CUDA libraries; asking for them
there prints error spam and falls back to the CPU. So the shell first probes what is really
usable (gpu_probe.py) and this function decides from the probe's findings. It never imports
onnxruntime, never loads a library and never reads the environment.

Policy:
- "cpu": the CPU provider only.
- "auto": CUDA (then CPU) when the CUDA provider is built in and the probe found a device, a
  new enough driver and every library the provider links; else CPU. TensorRT is never chosen
  automatically: it builds engines at start-up, which only pays for large models.
- "cuda" / "tensorrt": the requested provider when usable; otherwise the best usable lower
  tier (TensorRT -> CUDA -> CPU), marked ``fallback``: an explicit request that could not be
  honoured is an alarm (the scorer is then ``degraded``), not a refusal to run.

Also here: the options each provider is created with (``provider_options``, from
``ScorerOptions``), and the check of where onnxruntime really placed the graph's nodes
(``placement_problem``): a GPU session that runs every node on the CPU has fallen back as
surely as one that dropped its provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from models.manifest import INPUT_NAME

if TYPE_CHECKING:
    from tripwire.config import MonitorConfig

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

Requested = Literal["auto", "cpu", "cuda", "tensorrt"]
REQUESTS: tuple[str, ...] = ("auto", "cpu", "cuda", "tensorrt")

# Shared libraries each provider of onnxruntime-gpu 1.31 (CUDA 13 build) links; read off the
# provider libraries' dynamic sections (readelf -d). The CUDA provider loads cuDNN lazily
# and only for operators this project's graphs do not use (convolutions, attention), so
# cuDNN is required for TensorRT only.
CUDA_LIBS: tuple[str, ...] = (
    "libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10",
)
TENSORRT_LIBS: tuple[str, ...] = ("libnvinfer.so.10", "libnvonnxparser.so.10", "libcudnn.so.9")

DEFAULT_GRAPH_BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
MAX_GRAPH_BATCH = 4096
# Nodes onnxruntime may leave on the CPU in a GPU session without it meaning a fallback:
# copies between devices and shape bookkeeping.
HOST_SIDE_OPS = frozenset({"MemcpyFromHost", "MemcpyToHost", "Shape", "Size"})


@dataclass(frozen=True, slots=True)
class ScorerOptions:
    """How a scorer runs batches, beyond which provider (``monitor.*`` config keys).

    cuda_graphs: capture one CUDA graph per size in ``graph_batch_sizes`` (CUDA provider
    only; a batch is padded to the next captured size). TensorRT: engine and timing caches in
    ``trt_cache_dir`` ("" = no cache: engines are rebuilt at every start; the directory must
    be writable by the service only, since a cached engine is loaded without a signature
    check), fp16 off unless ``trt_fp16``, and one optimisation profile from 1 to max_batch
    rows tuned for ``trt_opt_batch`` rows. ``device_buffers``: CUDA without graphs binds
    tensors on the GPU (padded sizes, as for graphs) instead of host arrays that onnxruntime
    copies itself; not a config key, gpu_check measures both ways.
    """

    cuda_graphs: bool = False
    graph_batch_sizes: tuple[int, ...] = DEFAULT_GRAPH_BATCHES
    trt_cache_dir: str = ""
    trt_fp16: bool = False
    trt_opt_batch: int = 16
    device_buffers: bool = False

    def __post_init__(self) -> None:
        sizes = self.graph_batch_sizes
        if not sizes or any(not 1 <= b <= MAX_GRAPH_BATCH for b in sizes) or \
                any(a >= b for a, b in zip(sizes, sizes[1:])):
            raise ValueError(f"graph_batch_sizes must be increasing sizes in 1..{MAX_GRAPH_BATCH}, "
                             f"got {list(sizes)}")
        if self.trt_opt_batch < 1:
            raise ValueError(f"trt_opt_batch must be >= 1, got {self.trt_opt_batch}")


def options_from_config(monitor: MonitorConfig) -> ScorerOptions:
    """The scorer options a monitor config asks for (its keys are checked by config.py)."""
    return ScorerOptions(
        cuda_graphs=monitor.cuda_graphs,
        graph_batch_sizes=tuple(monitor.graph_batch_sizes),
        trt_cache_dir=monitor.trt_cache_dir,
        trt_fp16=monitor.trt_fp16,
    )


@dataclass(frozen=True, slots=True)
class GpuProbe:
    """What the shell found out about the machine (gpu_probe.probe builds this)."""

    driver_loaded: bool  # libcuda.so.1 could be loaded
    driver_error: str  # why cuInit or a query failed, "" when it worked
    driver_version: int  # cuDriverGetVersion, e.g. 13000 for CUDA 13.0; 0 if unknown
    devices: int  # cuDeviceGetCount
    missing_libs: tuple[str, ...]  # sonames that were tried and did not load
    checked_libs: tuple[str, ...] = ()  # sonames that were tried

    @classmethod
    def absent(cls, why: str) -> GpuProbe:
        return cls(False, why, 0, 0, ())

    def lib_problem(self, libs: Sequence[str]) -> str:
        unchecked = [lib for lib in libs if lib not in self.checked_libs]
        missing = [lib for lib in libs if lib in self.missing_libs]
        if missing:
            return "not found: " + ", ".join(missing)
        if unchecked:
            return "not probed: " + ", ".join(unchecked)
        return ""


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    requested: str
    providers: tuple[str, ...]
    reason: str  # why a GPU provider was not used; "" when the request was met
    fallback: bool  # an explicit GPU request could not be honoured

    @property
    def uses_gpu(self) -> bool:
        return self.providers[0] != CPU


def _cuda_problem(available: Sequence[str], probe: GpuProbe | None, cuda_major: int) -> str:
    """Empty when the CUDA provider can really run here, else the reason it cannot."""
    if CUDA not in available:
        return "onnxruntime was built without the CUDA provider"
    if probe is None:
        return "GPU not probed"
    if not probe.driver_loaded:
        return f"no CUDA driver ({probe.driver_error or 'libcuda.so.1 not found'})"
    if probe.driver_error:
        return f"CUDA driver unusable ({probe.driver_error})"
    if probe.devices < 1:
        return "no CUDA device visible"
    if cuda_major and probe.driver_version < cuda_major * 1000:
        return (
            f"driver supports CUDA {probe.driver_version // 1000}.{probe.driver_version % 1000 // 10}, "
            f"onnxruntime needs CUDA {cuda_major}"
        )
    libs = probe.lib_problem(CUDA_LIBS)
    return f"CUDA libraries {libs}" if libs else ""


def _tensorrt_problem(available: Sequence[str], probe: GpuProbe | None, cuda_major: int) -> str:
    problem = _cuda_problem(available, probe, cuda_major)
    if problem:
        return problem
    if TENSORRT not in available:
        return "onnxruntime was built without the TensorRT provider"
    libs = probe.lib_problem(TENSORRT_LIBS) if probe is not None else "not probed"
    return f"TensorRT libraries {libs}" if libs else ""


def select_providers(
    requested: str, available: Sequence[str], probe: GpuProbe | None, cuda_major: int = 13
) -> ProviderChoice:
    """Decide the provider list; ``cuda_major`` is the CUDA major onnxruntime was built for."""
    if requested not in REQUESTS:
        raise ValueError(f"providers must be one of {list(REQUESTS)}, got {requested!r}")
    if requested == "cpu":
        return ProviderChoice(requested, (CPU,), "cpu requested", False)
    cuda_problem = _cuda_problem(available, probe, cuda_major)
    if requested == "auto":
        if not cuda_problem:
            return ProviderChoice(requested, (CUDA, CPU), "", False)
        return ProviderChoice(requested, (CPU,), cuda_problem, False)
    if requested == "cuda":
        if not cuda_problem:
            return ProviderChoice(requested, (CUDA, CPU), "", False)
        return ProviderChoice(requested, (CPU,), cuda_problem, True)
    trt_problem = _tensorrt_problem(available, probe, cuda_major)
    if not trt_problem:
        return ProviderChoice(requested, (TENSORRT, CUDA, CPU), "", False)
    if not cuda_problem:
        return ProviderChoice(requested, (CUDA, CPU), f"TensorRT unusable: {trt_problem}", True)
    return ProviderChoice(requested, (CPU,), cuda_problem, True)


def requested_gpu_missing(choice: ProviderChoice, actual: Sequence[str]) -> tuple[str, ...]:
    """GPU providers that were asked for but that the created session does not use."""
    return tuple(p for p in choice.providers if p != CPU and p not in actual)


def provider_options(
    name: str, n_features: int, max_batch: int, options: ScorerOptions, cuda_graphs: bool = False
) -> dict[str, str]:
    """onnxruntime provider options for ``name`` (all values as strings, as ORT takes them)."""
    if name == CUDA:
        opts = {"device_id": "0"}
        if cuda_graphs:
            opts["enable_cuda_graph"] = "1"
        return opts
    if name == TENSORRT:
        # One optimisation profile covering every batch size the scorer binds, so TensorRT
        # builds its engine once, at session creation, and never when a new size first shows.
        opt = min(options.trt_opt_batch, max_batch)
        opts = {
            "device_id": "0",
            "trt_fp16_enable": "True" if options.trt_fp16 else "False",
            "trt_profile_min_shapes": f"{INPUT_NAME}:1x{n_features}",
            "trt_profile_opt_shapes": f"{INPUT_NAME}:{opt}x{n_features}",
            "trt_profile_max_shapes": f"{INPUT_NAME}:{max_batch}x{n_features}",
        }
        if options.trt_cache_dir:
            opts.update({
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": options.trt_cache_dir,
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": options.trt_cache_dir,
            })
        return opts
    return {}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a session's nodes run: node count per provider, and the op types left on the
    CPU (besides copies and shape bookkeeping) when a GPU provider leads."""

    nodes: Mapping[str, int]
    cpu_ops: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(self.nodes.values())


def placement_of(assigned: Sequence[tuple[str, str]], providers: Sequence[str]) -> Placement:
    """Summarise ``(provider, op_type)`` pairs, one per node, for a session using ``providers``."""
    nodes: dict[str, int] = {}
    for ep, _ in assigned:
        nodes[ep] = nodes.get(ep, 0) + 1
    gpu_led = bool(providers) and providers[0] != CPU
    cpu_ops = sorted({op for ep, op in assigned if ep == CPU and op not in HOST_SIDE_OPS})
    return Placement(nodes, tuple(cpu_ops) if gpu_led else ())


def placement_problem(placement: Placement, providers: Sequence[str]) -> tuple[bool, str]:
    """(fallen_back, detail) for a session that uses ``providers``.

    A GPU-led session with no node on any GPU provider has fallen back (an alarm); one with
    some compute nodes on the CPU is partial (worth a warning: each crossing costs a copy).
    No placement record (an onnxruntime too old to give one) is no evidence either way.
    """
    if not providers or providers[0] == CPU or placement.total == 0:
        return False, ""
    on_gpu = sum(n for ep, n in placement.nodes.items() if ep != CPU)
    if on_gpu == 0:
        return True, f"all {placement.total} nodes run on the CPU"
    if placement.cpu_ops:
        return False, "ops on the CPU: " + ", ".join(placement.cpu_ops)
    return False, ""
