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
    ScorerOptions,
    options_from_config,
    placement_of,
    placement_problem,
    provider_options,
    requested_gpu_missing,
    select_providers,
)
from tripwire.config import from_dict

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


# --- provider options -------------------------------------------------------------------


def test_cpu_takes_no_options_and_cuda_graphs_only_when_asked() -> None:
    assert provider_options(CPU, 576, 32, ScorerOptions()) == {}
    assert provider_options(CUDA, 576, 32, ScorerOptions()) == {"device_id": "0"}
    graphs = provider_options(CUDA, 576, 32, ScorerOptions(cuda_graphs=True), cuda_graphs=True)
    assert graphs == {"device_id": "0", "enable_cuda_graph": "1"}


def test_tensorrt_profile_covers_every_batch_and_fp16_is_off_by_default() -> None:
    opts = provider_options(TENSORRT, 576, 32, ScorerOptions())
    assert opts["trt_profile_min_shapes"] == "features:1x576"
    assert opts["trt_profile_opt_shapes"] == "features:16x576"
    assert opts["trt_profile_max_shapes"] == "features:32x576"
    assert opts["trt_fp16_enable"] == "False"
    assert not any(k.startswith(("trt_engine_cache", "trt_timing_cache")) for k in opts)
    small = provider_options(TENSORRT, 18, 4, ScorerOptions())
    assert small["trt_profile_opt_shapes"] == "features:4x18"  # opt never beyond max


def test_tensorrt_caches_engines_and_timings_in_the_configured_directory() -> None:
    opts = provider_options(TENSORRT, 576, 32,
                            ScorerOptions(trt_cache_dir="/var/lib/tripwire/trt", trt_fp16=True))
    assert opts["trt_engine_cache_enable"] == opts["trt_timing_cache_enable"] == "True"
    assert opts["trt_engine_cache_path"] == opts["trt_timing_cache_path"] == \
        "/var/lib/tripwire/trt"
    assert opts["trt_fp16_enable"] == "True"
    assert all(isinstance(v, str) for v in opts.values())


@pytest.mark.parametrize("sizes", [(), (0, 1), (2, 2), (4, 2), (1, 5000)])
def test_scorer_options_refuse_bad_graph_sizes(sizes: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="graph_batch_sizes"):
        ScorerOptions(graph_batch_sizes=sizes)


def test_options_from_the_monitor_config() -> None:
    source = {"id": 1, "name": "p", "channels": ["a"], "sample_rate_hz": 6400.0,
              "frame_samples": 128}
    cfg = from_dict({"sources": [source], "monitor": {
        "cuda_graphs": True, "graph_batch_sizes": [1, 8, 32], "trt_cache_dir": "/srv/trt"}})
    opts = options_from_config(cfg.monitor)
    assert opts == ScorerOptions(cuda_graphs=True, graph_batch_sizes=(1, 8, 32),
                                 trt_cache_dir="/srv/trt", trt_fp16=False)
    defaults = options_from_config(from_dict({"sources": [source]}).monitor)
    assert not defaults.cuda_graphs and defaults.trt_cache_dir == "" and not defaults.trt_fp16


# --- where the nodes run ----------------------------------------------------------------


def test_a_gpu_session_with_every_node_on_the_cpu_has_fallen_back() -> None:
    nodes = [(CPU, "MatMul"), (CPU, "Add"), (CPU, "ReduceMean")]
    place = placement_of(nodes, (CUDA, CPU))
    assert place.nodes == {CPU: 3} and place.cpu_ops == ("Add", "MatMul", "ReduceMean")
    fallen, detail = placement_problem(place, (CUDA, CPU))
    assert fallen and "all 3 nodes" in detail


def test_some_compute_on_the_cpu_is_partial_but_copies_are_not() -> None:
    nodes = [(CUDA, "MatMul"), (CPU, "TreeEnsembleRegressor"), (CPU, "MemcpyToHost")]
    fallen, detail = placement_problem(placement_of(nodes, (CUDA, CPU)), (CUDA, CPU))
    assert not fallen and detail == "ops on the CPU: TreeEnsembleRegressor"
    copies = [(CUDA, "MatMul"), (CPU, "MemcpyFromHost"), (CPU, "Shape")]
    assert placement_problem(placement_of(copies, (CUDA, CPU)), (CUDA, CPU)) == (False, "")


def test_a_cpu_session_or_no_record_is_never_a_placement_problem() -> None:
    cpu = [(CPU, "MatMul")]
    assert placement_problem(placement_of(cpu, (CPU,)), (CPU,)) == (False, "")
    assert placement_of(cpu, (CPU,)).cpu_ops == ()
    assert placement_problem(placement_of([], (CUDA, CPU)), (CUDA, CPU)) == (False, "")
