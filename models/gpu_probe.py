"""Find out whether a CUDA GPU is really usable here, before onnxruntime is asked for it (shell).

Loads the driver (libcuda.so.1) with ctypes and asks it for its version and device count,
then loads each CUDA library an execution provider links. A library that is not on the
loader path is also looked for in the NVIDIA pip wheels (``site-packages/nvidia/*/lib``) and
TensorRT's (``tensorrt_libs``) and, when found there, loaded globally by full path, so that
onnxruntime's own load by soname then finds it (the dynamic loader matches sonames of
libraries already loaded). Loading is the test: a library that is present but cannot load
(wrong architecture, missing dependency) counts as missing.

Only ever called when a GPU provider might be chosen. The decision itself is providers.py's.
``device_to_host_copier`` hands the scorer's device binding libcudart's ``cudaMemcpy``, so
reading a result back from the GPU allocates nothing.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from collections.abc import Callable, Sequence

from models.providers import CUDA_LIBS, TENSORRT_LIBS, GpuProbe

_WHEEL_PATTERNS = ("nvidia/*/lib/{}", "nvidia/*/*/lib/{}", "tensorrt_libs/{}")


def _candidates(soname: str) -> list[str]:
    found: list[str] = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        for pattern in _WHEEL_PATTERNS:
            found.extend(sorted(glob.glob(os.path.join(entry, pattern.format(soname)))))
    return found


def _load(soname: str) -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        pass
    for path in _candidates(soname):
        try:
            return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
    return None


def load_library(soname: str) -> bool:
    """Load a shared library globally by soname, or from a pip wheel; True when it loaded."""
    return _load(soname) is not None


CUDA_MEMCPY_DEVICE_TO_HOST = 2  # cudaMemcpyKind


def device_to_host_copier(soname: str = CUDA_LIBS[0]) -> Callable[[int, int, int], None] | None:
    """``copy(host_dst, device_src, nbytes)`` through libcudart's cudaMemcpy, or None when
    the runtime library cannot be loaded. Synchronous: it returns with the bytes in place.
    A failed copy raises OSError naming the CUDA error code."""
    lib = _load(soname)
    if lib is None:
        return None
    try:
        memcpy = lib.cudaMemcpy
    except AttributeError:
        return None
    memcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    memcpy.restype = ctypes.c_int

    def copy(dst: int, src: int, nbytes: int) -> None:
        rc = memcpy(dst, src, nbytes, CUDA_MEMCPY_DEVICE_TO_HOST)
        if rc != 0:
            raise OSError(f"cudaMemcpy failed with CUDA error {rc}")

    return copy


def _error_name(lib: ctypes.CDLL, code: int) -> str:
    name = ctypes.c_char_p()
    try:
        if lib.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
            return f"{name.value.decode()} ({code})"
    except (AttributeError, OSError):
        pass
    return f"CUDA error {code}"


def probe_driver() -> tuple[bool, str, int, int]:
    """(loaded, error, driver_version, devices) from libcuda.so.1."""
    try:
        lib = ctypes.CDLL("libcuda.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        return False, str(e), 0, 0
    try:
        rc = lib.cuInit(0)
        if rc != 0:
            return True, f"cuInit: {_error_name(lib, rc)}", 0, 0
        version = ctypes.c_int(0)
        rc = lib.cuDriverGetVersion(ctypes.byref(version))
        if rc != 0:
            return True, f"cuDriverGetVersion: {_error_name(lib, rc)}", 0, 0
        count = ctypes.c_int(0)
        rc = lib.cuDeviceGetCount(ctypes.byref(count))
        if rc != 0:
            return True, f"cuDeviceGetCount: {_error_name(lib, rc)}", version.value, 0
    except AttributeError as e:  # a libcuda without the driver API entry points
        return True, f"libcuda.so.1 lacks {e}", 0, 0
    return True, "", int(version.value), int(count.value)


def probe(tensorrt: bool = False) -> GpuProbe:
    """Probe the driver and the CUDA libraries (and TensorRT's when asked)."""
    loaded, error, version, devices = probe_driver()
    if not loaded or error or devices < 1:
        return GpuProbe(loaded, error, version, devices, ())
    libs: Sequence[str] = CUDA_LIBS + TENSORRT_LIBS if tensorrt else CUDA_LIBS
    missing = tuple(lib for lib in libs if not load_library(lib))
    return GpuProbe(True, "", version, devices, missing, tuple(libs))
