"""deploy/gpu_check.py completes on any machine and says plainly what is unavailable; the
IO-binding benchmark reports both ways of calling the model (models/scorer_bench.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort

from models.providers import CUDA, ScorerOptions
from models.scorer_bench import check_provider, plain_vs_bound
from tests.models.common import F

ROOT = Path(__file__).resolve().parents[2]
STATS = {"p50_us", "p99_us", "max_us", "calls"}


def test_plain_run_and_io_binding_are_both_measured(ae_onnx: bytes) -> None:
    out = plain_vs_bound(ae_onnx, F, batches=(1, 4), calls=40, rounds=2)
    assert set(out) == {"1", "4"}
    for modes in out.values():
        assert set(modes) == {"plain_run", "io_binding"}
        for stats in modes.values():
            assert set(stats) == STATS and stats["calls"] == 40
            assert 0 < stats["p50_us"] <= stats["p99_us"] <= stats["max_us"]


def test_check_provider_on_the_cpu(ae_onnx: bytes) -> None:
    got = check_provider(ae_onnx, F, "cpu", ScorerOptions(), batches=(1, 8), calls=20,
                         max_batch=8)
    assert got["available"] and got["providers"] == ["CPUExecutionProvider"]
    assert got["session_ms"] >= 0 and got["warm_ms"] >= 0
    assert set(got["batches"]) == {"1", "8"} and set(got["batches"]["8"]) == STATS


def test_gpu_check_script_runs_to_completion() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "deploy" / "gpu_check.py"), "--calls", "30"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["model"]["n_features"] == 576
    assert report["available_providers"] == ort.get_available_providers()
    configs = report["configs"]
    assert set(configs) == {"cpu", "cuda_iobinding", "cuda_device_buffers", "cuda_graphs",
                            "tensorrt"}
    cpu = configs["cpu"]
    assert cpu["available"] and cpu["providers"] == ["CPUExecutionProvider"]
    assert set(cpu["batches"]) == {"1", "8", "32"} and "warm_ms" in cpu
    for name in ("cuda_iobinding", "cuda_device_buffers", "cuda_graphs", "tensorrt"):
        entry = configs[name]
        if not entry["available"]:  # on this machine: say so, in the JSON and on stderr
            assert entry["reason"]
            assert f"gpu_check: {name}: unavailable: " in proc.stderr
        else:
            assert entry["providers"][0] != "CPUExecutionProvider"
    if CUDA not in ort.get_available_providers():
        assert not configs["cuda_iobinding"]["available"]
    for modes in report["cpu_plain_vs_iobinding"].values():
        assert set(modes) == {"plain_run", "io_binding"}
