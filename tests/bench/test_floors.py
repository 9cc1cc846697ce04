"""Raw stage floors: every figure present and positive, every server and socket cleaned up."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

from bench import floors
from bench.errors import BenchSetupError
from bench.model import BenchModel
from bench.plc import BenchPlc
from bench.signals import SignalBank

LATENCY_KEYS = ("count", "p50_us", "p99_us", "p999_us", "max_us")


def _positive_latency(fig: dict[str, float], count: int) -> None:
    assert fig["count"] == count
    assert 0 < fig["p50_us"] <= fig["p99_us"] <= fig["p999_us"] <= fig["max_us"]


def _tw_dirs() -> set[str]:
    return {e for e in os.listdir(tempfile.gettempdir()) if e.startswith("tw-bench-")}


def test_bus_hop_all_four_layouts() -> None:
    before = _tw_dirs()
    fig = floors.bus_hop(channels=4, frame_samples=128, messages=150)
    assert fig["frame_bytes"] == 4 * 128 * 4
    assert fig["copy_threshold_bytes"] > 0
    assert set(fig["variants"]) == set(floors.HOP_VARIANTS)
    for v in fig["variants"].values():
        _positive_latency(v, 150)
    assert fig["best"] in fig["variants"]
    assert _tw_dirs() <= before  # the ipc folder went with the sockets


def test_model_call_at_batch_1_and_32(small_model: BenchModel) -> None:
    fig = floors.model_call(small_model, calls=60)
    assert fig["n_features"] == small_model.n_features
    for b in ("batch_1", "batch_32"):
        _positive_latency({k: fig[b][k] for k in LATENCY_KEYS}, 60)
        assert fig[b]["rows_per_s"] > 0
    assert fig["batch_32"]["rows_per_s"] > fig["batch_1"]["rows_per_s"]


def test_plc_write_ours_and_the_default_client_both_confirmed() -> None:
    fig = floors.plc_write(writes=30)
    for name in ("modbus_writer", "pymodbus_default"):
        assert fig[name]["failed"] == 0
        _positive_latency({k: fig[name][k] for k in LATENCY_KEYS}, 30)
    warm = floors.WARM_CALLS // 5
    assert fig["plc_accepted_writes"] == 2 * (30 + warm)  # every timed write reached the PLC
    assert fig["p99_ratio_default_over_ours"] > 0


def test_bench_plc_frees_its_port_and_cannot_be_used_after() -> None:
    with BenchPlc() as plc:
        port = plc.port
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(BenchSetupError):
        _ = plc.port


def test_generator_outruns_its_load(small_bank: SignalBank) -> None:
    fig = floors.generator_rate(small_bank, stream_s=0.5)
    assert fig["load_samples_per_s"] == small_bank.load.samples_per_s
    assert fig["samples_per_s"] > fig["load_samples_per_s"]
    assert fig["headroom"] > 1


def test_measure_gathers_every_floor(small_bank: SignalBank, small_model: BenchModel) -> None:
    fig = floors.measure(small_bank, small_model, messages=20, calls=20, writes=5)
    assert set(fig) == {"bus_hop", "model_call", "plc_write", "generator"}
