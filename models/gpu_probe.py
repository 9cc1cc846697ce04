"""Find out whether a CUDA GPU is really usable here, before onnxruntime is asked for it (shell).

Loads the driver (libcuda.so.1) with ctypes and asks it for its version and device count,
then loads each CUDA library an execution provider links. A library that is not on the
loader path is also looked for in the NVIDIA pip wheels (``site-packages/nvidia/*/lib``) and
TensorRT's (``tensorrt_libs``) and, when found there, loaded globally by full path, so that
onnxruntime's own load by soname then finds it (the dynamic loader matches sonames of
libraries already loaded). Loading is the test: a library that is present but cannot load
(wrong architecture, missing dependency) counts as missing.

Only ever called when a GPU provider might be chosen. The decision itself is providers.py's.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from collections.abc import Sequence

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


def load_library(soname: str) -> bool:
    """Load a shared library globally by soname, or from a pip wheel; True when it loaded."""
    try:
        ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL)
        return True
    except OSError:
        pass
    for path in _candidates(soname):
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            return True
        except OSError:
            continue
    return False


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
