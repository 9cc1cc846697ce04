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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

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
