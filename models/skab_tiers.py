"""The SKAB benchmark for the model tiers, scored through onnxruntime (shell).

Per file (the protocol of skab.py): compute the tiers' features on the first 400 rows, train
teacher, student and int8 (tiers_train.py), export each to ONNX (tiers.py), open each graph
as an ``OnnxScorer`` on the CPU with all graph optimizations, score the training rows to
calibrate a Hysteresis decision and the test rows to predict. All three tiers are evaluated in
the same run (the int8 tier needs the other two anyway), and a throughput benchmark at batch
32 runs the three sessions interleaved, so the figures are comparable.

Reads the monotonic clock only to time the throughput benchmark; prints and logs nothing.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models import export, iforest, pca, skab, tiers, tiers_train
from models.detectors import SKAB_ALLOWANCE, Hysteresis
from models.scorer import OnnxScorer, session_options
from models.tiers import TIERS

BENCH_BATCH = 32
BENCH_ROUNDS = 7
BENCH_ROUND_S = 0.15
# Chosen once for the whole benchmark from pooled results (as rolling-z's), never per file:
# margin 1.6: FAR ~10.6 %, MAR ~24.5 %, NAB ~33.6; 1.8: 8.7 %, 26 %, 33.3; 2.0: 7.4 %, 27 %, 33.5.
TIER_MARGIN = 1.6
# Per-feature drift allowance: rolling-z's, measured on the anomaly-free file only.
ALLOWANCE = np.tile(np.asarray(SKAB_ALLOWANCE), len(tiers.WINDOWS_ROWS))


def decision() -> Hysteresis:
    return Hysteresis(margin=TIER_MARGIN)


# The classical baselines in the bundle's graph form (export.pca_to_onnx, iforest.to_onnx), fed
# the tiers' features and decided by the same hysteresis rule, fixed up front: PCA's score is
# ~1 on normal data like the tiers'; the isolation score is bounded by 1, so its threshold is
# the training scores' 99.5 % quantile itself (margin 1.0).
BASELINES = ("pca", "iforest")
BASELINE_MARGIN = {"pca": TIER_MARGIN, "iforest": 1.0}


def open_cpu_scorer(onnx_bytes: bytes, n_features: int) -> OnnxScorer:
    """An OnnxScorer on the CPU provider, one thread, ORT_ENABLE_ALL (scorer.session_options).

    Built directly rather than through ``open_scorer`` so that a benchmark opening ~100
    sessions does not log a provider line for each.
    """
    session = ort.InferenceSession(
        onnx_bytes, session_options(1), providers=["CPUExecutionProvider"]
    )
    model_id = hashlib.sha256(onnx_bytes).digest()[:8]
    return OnnxScorer(session, model_id, n_features, tuple(session.get_providers()), False)


def _onnx_scores(scorer: OnnxScorer, features: np.ndarray) -> np.ndarray:
    return scorer.score(features.astype(np.float32))[0].astype(np.float64)


def predict_tiers(
    f: skab.SkabFile, cfg: tiers_train.TierTrainConfig = tiers_train.TierTrainConfig()
) -> tuple[dict[str, skab.FileResult], dict[str, bytes]]:
    """Train the tiers on the file's first rows; every tier's alarm on the rest, and its graph."""
    if f.anomaly is None or f.changepoint is None:
        raise skab.SkabDataError(f"{f.name}: cannot evaluate an unlabelled file")
    n = skab.TRAIN_ROWS
    train_rows, test_rows = f.values[:n], f.values[n:]
    train_feats = tiers.rolling_features(train_rows)[tiers.LOOKBACK_ROWS - 1:]
    test_feats = tiers.rolling_features(test_rows, train_rows)
    models = tiers_train.train_tiers(train_feats, cfg, ALLOWANCE)
    results: dict[str, skab.FileResult] = {}
    graphs: dict[str, bytes] = {}
    for name, model in models.items():
        graphs[name] = tiers.to_onnx(model)
        with open_cpu_scorer(graphs[name], model.n_features) as scorer:
            rule = decision()
            rule.fit(_onnx_scores(scorer, train_feats))
            alarm = rule.decide(_onnx_scores(scorer, test_feats))
        results[name] = skab.FileResult(
            f.name, f.t_ns[n:], alarm, f.anomaly[n:], f.changepoint[n:]
        )
    return results, graphs


def predict_baselines(f: skab.SkabFile) -> dict[str, skab.FileResult]:
    """PCA T2+Q and the isolation forest, fitted on the file's first rows, scored in ONNX."""
    n = skab.TRAIN_ROWS
    train_rows, test_rows = f.values[:n], f.values[n:]
    train_feats = tiers.rolling_features(train_rows)[tiers.LOOKBACK_ROWS - 1:]
    test_feats = tiers.rolling_features(test_rows, train_rows)
    graphs = {"pca": export.pca_to_onnx(pca.fit_pca(train_feats)),
              "iforest": iforest.to_onnx(iforest.fit_iforest(train_feats))}
    if f.anomaly is None or f.changepoint is None:
        raise skab.SkabDataError(f"{f.name}: cannot evaluate an unlabelled file")
    out: dict[str, skab.FileResult] = {}
    for name, graph in graphs.items():
        with open_cpu_scorer(graph, train_feats.shape[1]) as scorer:
            rule = Hysteresis(margin=BASELINE_MARGIN[name])
            rule.fit(_onnx_scores(scorer, train_feats))
            alarm = rule.decide(_onnx_scores(scorer, test_feats))
        out[name] = skab.FileResult(f.name, f.t_ns[n:], alarm, f.anomaly[n:], f.changepoint[n:])
    return out


def throughput(graphs: dict[str, bytes], rows: np.ndarray) -> dict[str, float]:
    """Rows per second at batch 32 for each graph: interleaved rounds, median round."""
    batch = np.ascontiguousarray(np.resize(rows, (BENCH_BATCH, rows.shape[1])), dtype=np.float32)
    scorers = {name: open_cpu_scorer(g, rows.shape[1]) for name, g in graphs.items()}
    rates: dict[str, list[float]] = {name: [] for name in graphs}
    try:
        for s in scorers.values():
            s.warm(BENCH_BATCH)
        for _ in range(BENCH_ROUNDS):
            for name, s in scorers.items():
                calls, start = 0, time.perf_counter_ns()
                deadline = start + int(BENCH_ROUND_S * 1e9)
                while True:
                    s.score(batch)
                    calls += 1
                    now = time.perf_counter_ns()
                    if now >= deadline:
                        break
                rates[name].append(calls * BENCH_BATCH / ((now - start) / 1e9))
    finally:
        for s in scorers.values():
            s.close()
    return {name: round(float(np.median(r)), 1) for name, r in rates.items()}


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in ("f1", "far", "mar", "nab", "changepoints")}


def evaluate(
    data_dir: Path, tier: str, names: Sequence[str] | None = None,
    cfg: tiers_train.TierTrainConfig = tiers_train.TierTrainConfig(),
) -> dict[str, Any]:
    """Run every tier under the SKAB protocol; the top-level figures are ``tier``'s."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
    files = skab.load_benchmark(Path(data_dir), names)
    if not files:
        raise skab.SkabDataError("no SKAB file selected")
    per_tier: dict[str, list[skab.FileResult]] = {name: [] for name in TIERS}
    per_baseline: dict[str, list[skab.FileResult]] = {name: [] for name in BASELINES}
    first_graphs: dict[str, bytes] = {}
    for f in files:
        results, graphs = predict_tiers(f, cfg)
        first_graphs = first_graphs or graphs
        for name in TIERS:
            per_tier[name].append(results[name])
        for name, result in predict_baselines(f).items():
            per_baseline[name].append(result)
    reports = {name: skab.score_results(per_tier[name]) for name in TIERS}
    bench_rows = tiers.rolling_features(files[0].values)[tiers.LOOKBACK_ROWS - 1:]
    rates = throughput(first_graphs, bench_rows)
    report = reports[tier]
    report["detector"] = tier
    report["tiers"] = {name: _summary(r) for name, r in reports.items()}
    report["baselines"] = {
        name: {**_summary(skab.score_results(rs)), "decision": {"rule": "hysteresis",
                                                               "margin": BASELINE_MARGIN[name]}}
        for name, rs in per_baseline.items()
    }
    report["throughput"] = {
        "batch": BENCH_BATCH, "unit": "rows/s", "provider": "CPUExecutionProvider",
        "intra_op_threads": 1, **rates,
        "int8_vs_teacher": round(rates["int8"] / rates["teacher"], 2),
    }
    report["model"] = {
        "features": f"rolling mean over {list(tiers.WINDOWS_ROWS)} rows of SKAB columns "
                    f"{[skab.SENSOR_COLUMNS[c] for c in tiers.CHANNELS]}",
        "params": _param_counts(cfg),
        "decision": {"rule": "hysteresis", "margin": TIER_MARGIN},
        "trainer": "numpy",
    }
    report["protocol"] = {"train_rows": skab.TRAIN_ROWS, "nab_window_s": skab.WINDOW_S,
                          "files": len(files)}
    report["leaderboard"] = copy.deepcopy(list(skab.LEADERBOARD))
    return report


def _param_counts(cfg: tiers_train.TierTrainConfig) -> dict[str, int]:
    n = len(tiers.CHANNELS) * len(tiers.WINDOWS_ROWS)
    teacher = [n, *cfg.teacher_hidden, n]
    student = [n, *cfg.student_hidden, n]

    def count(sizes: list[int]) -> int:
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    return {"teacher": count(teacher), "student": count(student), "int8": count(student)}


__all__ = ["TIERS", "evaluate", "open_cpu_scorer", "predict_tiers", "throughput"]
