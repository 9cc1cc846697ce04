"""Execution provider selection from probe results (pure, no GPU needed)."""

from __future__ import annotations

import pytest

from models.providers import (
    CPU,
    CUDA,
    CUDA_LIBS,
    TENSORRT,
    TENSORRT_LIBS,
    GpuProbe,
    ProviderChoice,
    requested_gpu_missing,
    select_providers,
)

ALL = (TENSORRT, CUDA, CPU)
CPU_ONLY = (CPU,)
GOOD = GpuProbe(True, "", 13000, 1, (), CUDA_LIBS + TENSORRT_LIBS)
CUDA_ONLY_LIBS = GpuProbe(True, "", 13000, 1, TENSORRT_LIBS, CUDA_LIBS + TENSORRT_LIBS)
NO_DRIVER = GpuProbe.absent("libcuda.so.1: cannot open shared object file")
NO_DEVICE = GpuProbe(True, "cuInit: CUDA_ERROR_NO_DEVICE (100)", 0, 0, ())
OLD_DRIVER = GpuProbe(True, "", 12040, 1, (), CUDA_LIBS)
NO_CUBLAS = GpuProbe(True, "", 13000, 1, ("libcublasLt.so.13",), CUDA_LIBS)
CUDA_PROBED_ONLY = GpuProbe(True, "", 13000, 1, (), CUDA_LIBS)


@pytest.mark.parametrize(
    ("requested", "available", "probe", "providers", "fallback", "reason"),
    [
        ("cpu", ALL, GOOD, (CPU,), False, "cpu requested"),
        ("auto", ALL, GOOD, (CUDA, CPU), False, ""),
        ("auto", ALL, NO_DRIVER, (CPU,), False, "no CUDA driver"),
        ("auto", ALL, NO_DEVICE, (CPU,), False, "CUDA_ERROR_NO_DEVICE"),
        ("auto", ALL, OLD_DRIVER, (CPU,), False, "needs CUDA 13"),
        ("auto", ALL, NO_CUBLAS, (CPU,), False, "libcublasLt.so.13"),
        ("auto", CPU_ONLY, GOOD, (CPU,), False, "built without the CUDA provider"),
        ("auto", ALL, None, (CPU,), False, "not probed"),
        ("cuda", ALL, GOOD, (CUDA, CPU), False, ""),
        ("cuda", ALL, NO_DRIVER, (CPU,), True, "no CUDA driver"),
        ("cuda", CPU_ONLY, None, (CPU,), True, "built without"),
        ("tensorrt", ALL, GOOD, (TENSORRT, CUDA, CPU), False, ""),
        ("tensorrt", ALL, CUDA_ONLY_LIBS, (CUDA, CPU), True, "libnvinfer.so.10"),
        ("tensorrt", ALL, CUDA_PROBED_ONLY, (CUDA, CPU), True, "not probed"),
        ("tensorrt", (CUDA, CPU), GOOD, (CUDA, CPU), True, "without the TensorRT provider"),
        ("tensorrt", ALL, NO_DEVICE, (CPU,), True, "CUDA_ERROR_NO_DEVICE"),
    ],
)
def test_selection(
    requested: str, available: tuple[str, ...], probe: GpuProbe | None,
    providers: tuple[str, ...], fallback: bool, reason: str,
) -> None:
    choice = select_providers(requested, available, probe, cuda_major=13)
    assert choice.providers == providers
    assert choice.fallback is fallback
    assert reason in choice.reason
    assert choice.requested == requested
    assert choice.uses_gpu is (providers[0] != CPU)


def test_unknown_request_is_refused() -> None:
    with pytest.raises(ValueError, match="providers"):
        select_providers("rocm", ALL, GOOD)


def test_cuda_major_zero_skips_the_driver_version_check() -> None:
    assert select_providers("auto", ALL, OLD_DRIVER, cuda_major=0).providers == (CUDA, CPU)


def test_silently_dropped_gpu_provider_is_detected() -> None:
    choice = ProviderChoice("cuda", (CUDA, CPU), "", False)
    assert requested_gpu_missing(choice, [CPU]) == (CUDA,)
    assert requested_gpu_missing(choice, [CUDA, CPU]) == ()
    trt = ProviderChoice("tensorrt", (TENSORRT, CUDA, CPU), "", False)
    assert requested_gpu_missing(trt, [CUDA, CPU]) == (TENSORRT,)
