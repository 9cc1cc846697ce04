"""Side-by-side baselines: numba vs numpy features, River vs our ONNX model, plain pipeline.

Shell: reads ``time.monotonic_ns()`` around the work it compares, on the same inputs, in the
same run, interleaved where both sides can take turns (so a change in the machine's load
falls on both alike). Returns plain dicts (percentiles in µs, rates per second, ratios).

- ``features_baseline``: the monitor's incremental numba ``WindowFeatures`` against the
  plain numpy implementation (``bench.numpy_features``) on the same frames of one machine,
  hop by hop; rows/s each and the ratio, and how closely the two agree (stats to rounding;
  band energies, computed differently, by their relative difference).
- ``river_baseline``: River's ``HalfSpaceTrees`` learning and scoring the same feature rows
  one at a time, against our ONNX model scoring them (batch 1 and batch 32); a row stands
  for ``hop x channels`` samples. The rows are handed to River as prebuilt dicts, so the
  dict conversion River's API needs is not charged to it.
- ``plain_pipeline`` (bench.plain): the whole plain pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.errors import BenchConfigError, BenchSetupError
from bench.figures import latency_us, rate_per_s, ratio
from bench.floors import open_session
from bench.model import BenchModel, feature_spec
from bench.numpy_features import NumpyWindow
from bench.plain import plain_pipeline
from bench.signals import BenchLoad, SignalBank
from models.manifest import INPUT_NAME
from monitor.features import STATS, WindowFeatures, warm
from tripwire.latency import Histogram

__all__ = ["compare_to_plain", "features_baseline", "measure", "plain_pipeline",
           "river_baseline"]

F32 = npt.NDArray[np.float32]

WARM_HOPS = 20
FEATURES_TARGET = 10.0  # issue 4: numba features at least 10x numpy on the same windows
PIPELINE_TARGET = 5.0  # issue 4: the whole pipeline at least 5x the plain one, p99 no worse
HST_TREES = 10  # River's defaults
HST_HEIGHT = 8
HST_WINDOW = 250
ROW_CHUNK = 32  # rows per turn when River and ONNX take turns; ONNX's batch size


def _agreement(numba_rows: F32, numpy_rows: F32, per: int) -> dict[str, Any]:
    a = numba_rows.astype(np.float64).reshape(numba_rows.shape[0], -1, per)
    b = numpy_rows.astype(np.float64).reshape(numpy_rows.shape[0], -1, per)
    stats: dict[str, float] = {}
    for j, name in enumerate(STATS):
        scale = np.maximum(np.maximum(np.abs(a[..., j]), np.abs(b[..., j])), 1e-6)
        stats[name] = float(np.max(np.abs(a[..., j] - b[..., j]) / scale))
    energy = np.abs(10.0 ** (b[..., len(STATS):] - a[..., len(STATS):]) - 1.0)
    return {
        "stats_max_rel_diff": stats,
        "band_energy_rel_diff_median": [round(float(v), 4) for v in np.median(energy, axis=(0, 1))],
        "band_energy_rel_diff_p95": [round(float(v), 4)
                                     for v in np.percentile(energy, 95, axis=(0, 1))],
    }


def features_baseline(bank: SignalBank, hops: int = 2000, machine: int = 0) -> dict[str, Any]:
    """Both implementations fed the same frames, one hop (= one frame) at a time, taking
    turns; timing covers the push and taking the row out."""
    load = bank.load
    if load.hop != load.frame_samples:
        raise BenchConfigError(f"features baseline: needs hop = frame_samples, got {load.hop}, "
                               f"{load.frame_samples}")
    spec = feature_spec(load)
    warm(spec)
    numba = WindowFeatures(spec)
    plain = NumpyWindow(spec)
    out = np.zeros((4, spec.n_features), np.float32)
    fill = load.window // load.frame_samples
    hists = {"numba": Histogram.new(), "numpy": Histogram.new()}
    busy = {"numba": 0, "numpy": 0}
    got: dict[str, list[F32]] = {"numba": [], "numpy": []}
    for k in range(fill + WARM_HOPS + hops):
        frame = bank.frame(machine, k)
        t0 = time.monotonic_ns()
        numba.push(frame)
        n = numba.pop_into(out)
        t1 = time.monotonic_ns()
        rows = plain.push(frame)
        t2 = time.monotonic_ns()
        if k >= fill + WARM_HOPS and n:
            hists["numba"].record(t1 - t0)
            hists["numpy"].record(t2 - t1)
            busy["numba"] += t1 - t0
            busy["numpy"] += t2 - t1
            got["numba"].append(out[:n].copy())
            got["numpy"].append(rows)
    a, b = np.concatenate(got["numba"]), np.concatenate(got["numpy"])
    rates = {k: rate_per_s(len(a), busy[k]) for k in busy}
    return {
        "channels": load.channels,
        "rows": int(a.shape[0]),
        "numba": {**latency_us(hists["numba"]), "rows_per_s": rates["numba"]},
        "numpy": {**latency_us(hists["numpy"]), "rows_per_s": rates["numpy"]},
        "numba_over_numpy": ratio(rates["numba"], rates["numpy"]),
        "numba_at_least_10x": rates["numba"] >= FEATURES_TARGET * rates["numpy"],
        "agreement": _agreement(a, b, spec.per_channel),
    }


def river_baseline(model: BenchModel, load: BenchLoad, rows: int = 2000) -> dict[str, Any]:
    """HalfSpaceTrees ``learn_one`` + ``score_one`` per row vs our model on the same rows
    (the model's normal rows, cycled); a row stands for ``load.hop x load.channels`` samples."""
    try:
        from river.anomaly import HalfSpaceTrees  # noqa: PLC0415 - optional: the bench extra
    except ImportError as e:
        raise BenchSetupError(f"River is not installed (pip install '.[bench]'): {e}") from None
    load_rows = model.rows[np.arange(rows) % model.rows.shape[0]]
    names = [f"f{j}" for j in range(model.n_features)]
    lo, hi = model.rows.min(axis=0), model.rows.max(axis=0)
    limits: dict[Hashable, tuple[float, float]] = {
        n: (float(a), float(b) if b > a else float(a) + 1.0) for n, a, b in zip(names, lo, hi)}
    hst = HalfSpaceTrees(n_trees=HST_TREES, height=HST_HEIGHT, window_size=HST_WINDOW,
                         limits=limits, seed=0)
    dicts = [dict(zip(names, map(float, r))) for r in load_rows]
    session = open_session(model)
    for r in load_rows[:WARM_HOPS]:
        session.run(None, {INPUT_NAME: r[None, :]})
        session.run(None, {INPUT_NAME: load_rows[:ROW_CHUNK]})
    spent = {"river": 0, "onnx_1": 0, "onnx_32": 0}
    for i in range(0, rows, ROW_CHUNK):  # the three take turns chunk by chunk
        t0 = time.monotonic_ns()
        for d in dicts[i : i + ROW_CHUNK]:
            hst.learn_one(d)  # type: ignore[no-untyped-call]
            hst.score_one(d)  # type: ignore[no-untyped-call]
        t1 = time.monotonic_ns()
        for j in range(i, min(i + ROW_CHUNK, rows)):
            session.run(None, {INPUT_NAME: load_rows[j : j + 1]})
        t2 = time.monotonic_ns()
        session.run(None, {INPUT_NAME: load_rows[i : i + ROW_CHUNK]})
        t3 = time.monotonic_ns()
        spent["river"] += t1 - t0
        spent["onnx_1"] += t2 - t1
        spent["onnx_32"] += t3 - t2
    per_row = load.hop * load.channels
    river, ort1, ort32 = (rate_per_s(rows * per_row, spent[k]) for k in ("river", "onnx_1", "onnx_32"))
    return {
        "rows": rows,
        "samples_per_row": per_row,
        "river_hst_samples_per_s": river,
        "onnx_batch_1_samples_per_s": ort1,
        "onnx_batch_32_samples_per_s": ort32,
        "onnx_batch_1_over_river": ratio(ort1, river),
        "onnx_batch_32_over_river": ratio(ort32, river),
    }


def compare_to_plain(samples_per_s: float, service_p99_us: float,
                     plain: dict[str, Any]) -> dict[str, Any]:
    """The whole pipeline's figures beside ``plain_pipeline``'s, measured at the same load;
    ``service_p99_us``: the monitor's frame received -> verdict published, beside the plain
    one's receive returned -> decision."""
    plain_p99 = float(plain["decision_us"]["p99_us"])
    throughput = ratio(samples_per_s, float(plain["samples_per_s"]))
    return {
        "samples_per_s_ratio": throughput,
        "p99_us": {"pipeline": service_p99_us, "plain": plain_p99},
        "at_least_5x_at_equal_or_better_p99": (throughput >= PIPELINE_TARGET
                                                and service_p99_us <= plain_p99),
    }


def measure(bank: SignalBank, model: BenchModel, *, hops: int = 2000, river_rows: int = 2000,
            plain_s: float = 10.0, **plain_options: Any) -> dict[str, Any]:
    """Features and River side by side, and the plain pipeline at the bank's load (its
    ``plain_options`` go to ``plain_pipeline``); the lead adds the whole pipeline's ratio
    with ``compare_to_plain``."""
    load = bank.load
    return {
        "features": features_baseline(bank, hops),
        "river": river_baseline(model, load, river_rows),
        "plain_pipeline": plain_pipeline(load, plain_s, seed=bank.seed, **plain_options),
    }
