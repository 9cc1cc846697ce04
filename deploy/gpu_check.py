"""Check the execution providers on this machine and print what each one really does, as JSON.

    .venv/bin/python deploy/gpu_check.py [--calls 2000] [--bundle DIR [--key-file F]]

For each configuration (CPU; CUDA with IO binding to host arrays, or to GPU tensors; CUDA
with CUDA graphs; TensorRT): the provider the scorer really got, how its inputs and outputs
are bound, how long its session and its warm-up of every batch shape took, and p50/p99/max
µs of a scoring call at batch sizes 1, 8 and 32. A configuration whose provider is not usable here says so, with the
reason, in the JSON and in one line on stderr; the check still completes (on a CPU-only
machine in well under a minute). Also: IO binding against a plain ``session.run`` on the
CPU, on the same session. The model is a PCA at the bench's width (64 channels x 9
features = 576) fitted on synthetic rows, or the given bundle's default tier.

Run it on the deployment target before switching ``monitor.cuda_graphs`` or
``monitor.providers`` on: the numbers say whether they help there. Exit code 0 when the
check completed, 2 on bad arguments or an unloadable bundle.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    import models  # noqa: F401 - an installed checkout
except ImportError:  # run from a bare checkout: the repository root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import onnxruntime as ort

from models.errors import BundleError
from models.export import pca_to_onnx
from models.gpu_probe import probe
from models.pca import fit_pca
from models.providers import ScorerOptions
from models.scorer_bench import check_provider, plain_vs_bound
from tripwire.logs import configure

BENCH_FEATURES = 64 * 9
BATCHES = (1, 8, 32)
MAX_BATCH = 32
TRAIN_ROWS = 4000
LATENT = 24


def bench_sized_model(n_features: int = BENCH_FEATURES, seed: int = 0) -> bytes:
    """A PCA T²/Q model over ``n_features`` correlated synthetic features, as ONNX."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(LATENT, n_features))
    rows = rng.normal(size=(TRAIN_ROWS, LATENT)) @ mix + 0.1 * rng.normal(size=(TRAIN_ROWS, n_features))
    return pca_to_onnx(fit_pca(rows.astype(np.float32)))


def _model(args: argparse.Namespace) -> tuple[bytes, int, str]:
    if not args.bundle:
        return bench_sized_model(), BENCH_FEATURES, f"pca, {BENCH_FEATURES} synthetic features"
    from models.bundle import DEV_KEY, load_bundle, read_key_file  # noqa: PLC0415

    key = read_key_file(args.key_file) if args.key_file else DEV_KEY
    bundle = load_bundle(args.bundle, key)
    return bundle.onnx_bytes, bundle.n_features, f"bundle {args.bundle} ({bundle.kind})"


def run_check(onnx_bytes: bytes, n_features: int, calls: int, trt_cache: str) -> dict[str, Any]:
    configs = {
        "cpu": ("cpu", ScorerOptions()),
        "cuda_iobinding": ("cuda", ScorerOptions()),
        "cuda_device_buffers": ("cuda", ScorerOptions(device_buffers=True)),
        "cuda_graphs": ("cuda", ScorerOptions(cuda_graphs=True)),
        "tensorrt": ("tensorrt", ScorerOptions(trt_cache_dir=trt_cache)),
    }
    results: dict[str, Any] = {}
    for name, (request, options) in configs.items():
        results[name] = check_provider(onnx_bytes, n_features, request, options, BATCHES, calls,
                                       MAX_BATCH)
        if not results[name]["available"]:
            print(f"gpu_check: {name}: unavailable: {results[name]['reason']}", file=sys.stderr)
        elif results[name]["requested"] == "cuda" and name == "cuda_graphs" \
                and not results[name]["cuda_graphs"]:
            print("gpu_check: cuda_graphs: the CUDA provider runs, but without graphs "
                  "(see the scorer's log lines)", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=2000, help="timed calls per batch size")
    p.add_argument("--bundle", default="", help="check this model bundle instead")
    p.add_argument("--key-file", default="", help="the bundle's site signing key")
    args = p.parse_args(argv)
    if args.calls < 10:
        p.error("--calls must be >= 10")
    configure("warning", "json", stream=sys.stderr)  # scorer log lines on stderr, JSON on stdout
    try:
        onnx_bytes, n_features, model = _model(args)
    except BundleError as e:
        print(f"gpu_check: {e}", file=sys.stderr)
        return 2
    gpu = probe(True)
    with tempfile.TemporaryDirectory(prefix="tripwire-trt-") as trt_cache:
        report = {
            "onnxruntime": ort.__version__,
            "available_providers": ort.get_available_providers(),
            "gpu": {"driver_loaded": gpu.driver_loaded, "driver_error": gpu.driver_error or None,
                    "driver_version": gpu.driver_version, "devices": gpu.devices,
                    "missing_libs": list(gpu.missing_libs)},
            "model": {"what": model, "n_features": n_features, "max_batch": MAX_BATCH},
            "configs": run_check(onnx_bytes, n_features, args.calls, trt_cache),
            "cpu_plain_vs_iobinding": plain_vs_bound(onnx_bytes, n_features, BATCHES, args.calls),
        }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
