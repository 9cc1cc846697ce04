"""SKAB's evaluation metrics: pointwise F1/FAR/MAR and SKAB's variant of the NAB score.

Pure core: numpy arrays in, plain dicts of numbers out. The rules follow the SKAB
benchmark's own scoring (see ``../shared/data/skab/SOURCE.md``) so that our figures can be set
beside the published leaderboard:

* pointwise: a row counts as predicted positive only when its prediction equals 1 (NaN is
  negative); F1 = 2TP / (2TP + FP + FN), FAR % = 100 FP / (FP + TN), MAR % = 100 FN / (FN + TP),
  each rounded to two decimals with Python's ``round`` as upstream does;
* NAB: every true changepoint opens a window ``[t_cp, t_cp + window]`` (both ends inclusive);
  when a window's end reaches the next window's start, the later start moves to the earlier
  end ("cut right window"). The first predicted changepoint inside a window is a hit scored on a
  tanh ramp sampled on a 1000-point grid (A_tp at the start, A_fp at the end); later ones in the
  same window are ignored; a window without one is a miss (A_fn); every predicted changepoint
  outside all windows is a false positive (A_fp, flat). Scores are summed over files and
  normalised to 100 (perfect) and 0 (null detector).

Times are compared as int64 nanoseconds so that window edges are exact. This module reads no
files and no clock, logs nothing, and imports nothing but numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

GRID_POINTS = 1000
WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class NabProfile:
    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES = (
    NabProfile("standard", 1.0, -0.11, -1.0),
    NabProfile("low_fp", 1.0, -0.22, -1.0),
    NabProfile("low_fn", 1.0, -0.11, -2.0),
)


def _positive(values: np.ndarray) -> np.ndarray:
    """True where a 0/1 series equals 1 exactly (NaN and anything else are negative)."""
    positive: np.ndarray = np.asarray(values, dtype=np.float64) == 1.0
    return positive


def binary_metrics(pred: np.ndarray, label: np.ndarray) -> dict[str, float | int]:
    """Pointwise confusion counts and SKAB's F1, FAR % and MAR %.

    A ratio whose denominator is zero is reported as its best value (F1 1.0 when there is no
    positive at all in prediction and label, FAR/MAR 0.0 when there is nothing to miss).
    """
    p = _positive(pred)
    y = _positive(label)
    if p.shape != y.shape:
        raise ValueError(f"pred has shape {p.shape} but label has shape {y.shape}")
    tp = int(np.sum(p & y))
    fp = int(np.sum(p & ~y))
    fn = int(np.sum(~p & y))
    tn = int(np.sum(~p & ~y))
    f1 = tp / (tp + (fn + fp) / 2) if (tp + fp + fn) else 1.0
    far = fp / (fp + tn) * 100 if (fp + tn) else 0.0
    mar = fn / (fn + tp) * 100 if (fn + tp) else 0.0
    return {
        "f1": round(f1, 2),
        "far": round(far, 2),
        "mar": round(mar, 2),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def alarm_edges(alarm: np.ndarray) -> np.ndarray:
    """Predicted changepoints of a 0/1 alarm series: 1 on every rising and falling edge.

    The first row counts as an edge when the alarm is already on there, as upstream does.
    """
    on = _positive(alarm).astype(np.int8)
    edges = np.zeros(on.shape, dtype=np.int8)
    if on.size:
        edges[0] = on[0]
        edges[1:] = np.abs(np.diff(on))
    return edges


def _to_ns(timestamps: np.ndarray, unit: Literal["s", "ns"]) -> np.ndarray:
    t = np.asarray(timestamps)
    if np.issubdtype(t.dtype, np.datetime64):
        return t.astype("datetime64[ns]").astype(np.int64)
    if unit == "ns":
        return t.astype(np.int64)
    if unit == "s":
        return np.round(t.astype(np.float64) * 1e9).astype(np.int64)
    raise ValueError(f"unit must be 's' or 'ns', not {unit!r}")


def detection_windows(t_ns: np.ndarray, changepoint: np.ndarray, window_ns: int) -> np.ndarray:
    """(n, 2) int64 array of [start, end] per true changepoint, cut to the right."""
    starts = t_ns[_positive(changepoint)]
    windows = np.stack([starts, starts + window_ns], axis=1) if starts.size else np.zeros((0, 2), np.int64)
    for i in range(len(windows) - 1):
        if windows[i, 1] >= windows[i + 1, 0]:
            windows[i + 1, 0] = windows[i, 1]
    return windows


def ramp_score(offset_ns: int, width_ns: int, profile: NabProfile) -> float:
    """Score of a first detection ``offset_ns`` after its window start (window ``width_ns``)."""
    index = int(offset_ns / width_ns * GRID_POINTS) if width_ns > 0 else 0
    index = min(max(index, 0), GRID_POINTS - 1)
    x = -math.pi / 2 + math.pi * index / (GRID_POINTS - 1)
    half = (profile.a_tp - profile.a_fp) / 2
    return -half * math.tanh(x) / math.tanh(math.pi / 2) + half + profile.a_fp


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    """How one file's predicted changepoints fall against its windows."""

    windows: np.ndarray  # (n, 2) int64 ns
    first_hit_ns: np.ndarray  # (n,) int64 ns of the first detection per window, -1 when missed
    false_positives: int


def match_windows(t_ns: np.ndarray, detections: np.ndarray, windows: np.ndarray) -> WindowOutcome:
    """Find each window's first detection and count detections outside every window."""
    times = np.sort(t_ns[_positive(detections)])
    first = np.full(len(windows), -1, dtype=np.int64)
    outside = np.ones(times.shape, dtype=bool)
    for i, (start, end) in enumerate(windows):
        inside = (times >= start) & (times <= end)
        outside &= ~inside
        if inside.any():
            first[i] = times[inside][0]
    return WindowOutcome(windows, first, int(outside.sum()))


def nab_scores(
    files: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    window_s: float = WINDOW_S,
    unit: Literal["s", "ns"] = "s",
    from_alarm: bool = True,
) -> dict[str, float | int]:
    """SKAB's NAB scores over several files, pooled.

    ``files`` holds ``(timestamps, pred, changepoint)`` per file: timestamps as datetime64, or
    numbers in ``unit``; ``pred`` the 0/1 alarm series (its edges are the predicted
    changepoints) or, with ``from_alarm=False``, the predicted changepoints themselves;
    ``changepoint`` the 0/1 true changepoints. Returns the three profile scores (rounded to two
    decimals), the counts of windows, hits, misses and false positives, and the mean delay of
    the hits in seconds.
    """
    window_ns = int(round(window_s * 1e9))
    raw = {p.name: 0.0 for p in PROFILES}
    n_windows = hits = fps = 0
    delays_ns: list[int] = []
    for timestamps, pred, changepoint in files:
        t_ns = _to_ns(timestamps, unit)
        if not (len(t_ns) == len(pred) == len(changepoint)):
            raise ValueError("timestamps, pred and changepoint differ in length")
        detections = alarm_edges(pred) if from_alarm else _positive(pred)
        windows = detection_windows(t_ns, changepoint, window_ns)
        outcome = match_windows(t_ns, detections, windows)
        n_windows += len(windows)
        fps += outcome.false_positives
        for (start, end), hit in zip(windows, outcome.first_hit_ns):
            if hit < 0:
                continue
            hits += 1
            delays_ns.append(int(hit - start))
            for p in PROFILES:
                raw[p.name] += ramp_score(int(hit - start), int(end - start), p)
    misses = n_windows - hits
    result: dict[str, float | int] = {}
    for p in PROFILES:
        score = raw[p.name] + p.a_fp * fps + p.a_fn * misses
        null, perfect = p.a_fn * n_windows, p.a_tp * n_windows
        result[p.name] = round(100 * (score - null) / (perfect - null), 2) if n_windows else 0.0
    result.update(
        windows=n_windows,
        hits=hits,
        missed=misses,
        fp=fps,
        mean_delay_s=round(float(np.mean(delays_ns)) / 1e9, 2) if delays_ns else 0.0,
    )
    return result
