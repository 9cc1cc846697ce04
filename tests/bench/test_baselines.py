"""Baselines side by side: numba vs numpy features, River vs our model, the plain pipeline."""

from __future__ import annotations

import threading

import pytest

from bench import baselines
from bench.model import BenchModel
from bench.signals import Fault, SignalBank
from monitor.features import DEFAULT_BANDS_HZ, STATS
from tests.bench.conftest import SMALL


def test_features_baseline_same_windows(small_bank: SignalBank) -> None:
    fig = baselines.features_baseline(small_bank, hops=60)
    assert fig["rows"] == 60 and fig["channels"] == SMALL.channels
    for side in ("numba", "numpy"):
        assert fig[side]["count"] == 60
        assert 0 < fig[side]["p50_us"] <= fig[side]["max_us"]
        assert fig[side]["rows_per_s"] > 0
    assert fig["numba_over_numpy"] > 0
    assert isinstance(fig["numba_at_least_10x"], bool)
    agree = fig["agreement"]
    assert set(agree["stats_max_rel_diff"]) == set(STATS)
    assert max(agree["stats_max_rel_diff"].values()) < 1e-4
    assert len(agree["band_energy_rel_diff_median"]) == len(DEFAULT_BANDS_HZ)
    assert all(0 <= d < 1.0 for d in agree["band_energy_rel_diff_median"])


def test_river_against_our_model_on_the_same_rows(small_model: BenchModel) -> None:
    fig = baselines.river_baseline(small_model, SMALL, rows=300)
    assert fig["samples_per_row"] == SMALL.hop * SMALL.channels
    for key in ("river_hst_samples_per_s", "onnx_batch_1_samples_per_s",
                "onnx_batch_32_samples_per_s", "onnx_batch_1_over_river",
                "onnx_batch_32_over_river"):
        assert fig[key] > 0, key


def test_plain_pipeline_runs_and_stops_on_a_fault(small_bank: SignalBank) -> None:
    fig = baselines.plain_pipeline(SMALL, seconds=1.0, warm_s=0.3, seed=small_bank.seed,
                                   fault=Fault(channel=1, size=6.0), fault_machine=1,
                                   fault_at_s=0.2)
    assert fig["frames"] > 0 and fig["windows"] > 0
    assert fig["decode_errors"] == 0 and fig["gaps"] == 0  # push: lossless, all addressed
    assert fig["samples_per_s"] > 0 and fig["measured_s"] > 0.5
    assert fig["load_samples_per_s"] == SMALL.samples_per_s
    assert 0 < fig["decision_us"]["p50_us"] <= fig["decision_us"]["p99_us"]
    assert set(fig["stages"]) == {"decode_us", "features_us", "model_us", "stop_write_us"}
    # Machine 1 is faulted from 0.2 s of stream, machine 0 never: about half the windows.
    assert 0 < fig["flagged"] < fig["windows"]
    assert fig["stops_written"] > 0 and fig["stop_failures"] == 0
    assert fig["plc_accepted_writes"] >= fig["stops_written"]
    # CPU by thread: the pipeline's own loop (this thread) is among them, costed per frame
    me = threading.get_native_id()
    (loop,) = [r for r in fig["cpu_threads"] if r["tid"] == me]
    assert loop["cpu_us_per_frame"] > 0 and loop["user_percent"] + loop["system_percent"] > 0


def test_plain_pipeline_without_a_fault_flags_nothing(small_bank: SignalBank) -> None:
    fig = baselines.plain_pipeline(SMALL, seconds=0.5, warm_s=0.3, seed=small_bank.seed)
    assert fig["windows"] > 0 and fig["flagged"] == 0 and fig["stops_written"] == 0
    assert fig["plc_accepted_writes"] == 0


def test_compare_to_plain() -> None:
    plain = {"samples_per_s": 1e6, "decision_us": {"p99_us": 500.0}}
    good = baselines.compare_to_plain(6e6, 400.0, plain)
    assert good["samples_per_s_ratio"] == pytest.approx(6.0)
    assert good["at_least_5x_at_equal_or_better_p99"] is True
    assert baselines.compare_to_plain(6e6, 600.0, plain)["at_least_5x_at_equal_or_better_p99"] is False
    assert baselines.compare_to_plain(4e6, 100.0, plain)["at_least_5x_at_equal_or_better_p99"] is False
