"""SKAB's pointwise and NAB metrics against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.metrics import PROFILES, alarm_edges, binary_metrics, detection_windows, nab_scores, ramp_score

STANDARD = PROFILES[0]
T_S = np.arange(200.0)  # one row per second, t = 0 .. 199 s


def one_file(detections: list[int], changepoints: list[int]) -> dict[str, float | int]:
    """NAB of one 200 s file, the detections given as predicted changepoint rows."""
    pred = np.zeros(200)
    pred[detections] = 1
    cp = np.zeros(200)
    cp[changepoints] = 1
    return nab_scores([(T_S, pred, cp)], from_alarm=False)


# ------------------------------------------------------------------ pointwise


def test_binary_metrics_hand_case() -> None:
    # rows:     0  1  2  3  4
    # pred:     1  1  0  0  1
    # label:    1  0  1  0  1     -> TP rows 0,4; FP row 1; FN row 2; TN row 3
    # F1 = 2*2 / (2*2 + 1 + 1) = 0.667 -> 0.67; FAR = 1/(1+1) = 50 %; MAR = 1/(1+2) = 33.33 %
    m = binary_metrics(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 1, 0, 1]))
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 1)
    assert (m["f1"], m["far"], m["mar"]) == (0.67, 50.0, 33.33)


def test_nan_and_non_one_predictions_are_negative() -> None:
    m = binary_metrics(np.array([np.nan, 0.5, 1.0]), np.array([1, 1, 1]))
    assert (m["tp"], m["fn"]) == (1, 2)


def test_perfect_and_null_detectors() -> None:
    label = np.array([0, 0, 1, 1, 1, 0])
    assert binary_metrics(label, label)["f1"] == 1.0
    assert binary_metrics(label, label)["far"] == 0.0
    null = binary_metrics(np.zeros(6), label)
    assert (null["f1"], null["far"], null["mar"]) == (0.0, 0.0, 100.0)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError):
        binary_metrics(np.zeros(3), np.zeros(4))


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=60))
def test_counts_partition_the_rows(pairs: list[tuple[int, int]]) -> None:
    pred, label = (np.array(col) for col in zip(*pairs))
    m = binary_metrics(pred, label)
    assert m["tp"] + m["fp"] + m["fn"] + m["tn"] == len(pairs)
    assert 0.0 <= m["f1"] <= 1.0 and 0.0 <= m["far"] <= 100.0 and 0.0 <= m["mar"] <= 100.0


# ------------------------------------------------------------------ NAB pieces


def test_alarm_edges_rising_and_falling() -> None:
    assert alarm_edges(np.array([0, 1, 1, 0, 1])).tolist() == [0, 1, 0, 1, 1]
    # An alarm already on at the first row counts as an edge there.
    assert alarm_edges(np.array([1, 1, 0])).tolist() == [1, 0, 1]


def test_ramp_runs_from_a_tp_to_a_fp() -> None:
    assert ramp_score(0, 60, STANDARD) == pytest.approx(1.0)
    # offset == width -> grid index 1000, clipped to 999 -> x = pi/2 -> A_fp
    assert ramp_score(60, 60, STANDARD) == pytest.approx(-0.11)
    # half-way: index 500, x = -pi/2 + pi*500/999 = 0.0015723; tanh(x)/tanh(pi/2) = 0.0017143;
    # score = 0.555 * (1 - 0.0017143) - 0.11 = 0.444049
    assert ramp_score(30, 60, STANDARD) == pytest.approx(0.444049, abs=1e-6)


def test_windows_are_cut_on_the_right() -> None:
    # changepoints at 50 s and 80 s: [50, 110] and [80, 140]; the second starts at 110 instead.
    w = detection_windows(np.array([0, 50, 80, 150]) * 10**9, np.array([0, 1, 1, 0]), 60 * 10**9)
    assert (w // 10**9).tolist() == [[50, 110], [110, 140]]


# ------------------------------------------------------------------ NAB scores


def test_detection_at_window_start_is_perfect() -> None:
    # S = A_tp = 1; null = -1 (standard), perfect = 1: 100 * (1 + 1) / 2 = 100 for every profile.
    r = one_file([50], [50])
    assert (r["standard"], r["low_fp"], r["low_fn"]) == (100.0, 100.0, 100.0)
    assert (r["hits"], r["missed"], r["fp"]) == (1, 0, 0)


def test_detection_at_window_end_scores_a_fp() -> None:
    # window [50, 110]; detection at 110 s scores A_fp.
    # standard: 100 * (-0.11 + 1) / 2 = 44.5; low_fp: 100 * (-0.22 + 1) / 2 = 39.0;
    # low_fn: null = -2, so 100 * (-0.11 + 2) / 3 = 63.0
    r = one_file([110], [50])
    assert (r["standard"], r["low_fp"], r["low_fn"]) == (44.5, 39.0, 63.0)
    assert r["mean_delay_s"] == 60.0


def test_false_positive_outside_windows() -> None:
    # detection at 10 s is outside [50, 110]: S = 1 - 0.11 = 0.89 -> 100 * 1.89 / 2 = 94.5;
    # low_fp: 1 - 0.22 -> 89.0; low_fn: 100 * (0.89 + 2) / 3 = 96.33
    r = one_file([10, 50], [50])
    assert (r["standard"], r["low_fp"], r["low_fn"], r["fp"]) == (94.5, 89.0, 96.33, 1)


def test_second_detection_in_a_window_is_ignored() -> None:
    r = one_file([50, 60], [50])
    assert (r["standard"], r["fp"], r["hits"]) == (100.0, 0, 1)


def test_null_detector_scores_zero() -> None:
    r = one_file([], [50])
    assert (r["standard"], r["low_fp"], r["low_fn"], r["missed"]) == (0.0, 0.0, 0.0, 1)


def test_cut_window_moves_a_detection_into_the_first() -> None:
    # windows [50, 110] and [110, 140] (cut). A detection at 100 s is in the first only, at
    # 50/60 of its width: index int(833.3) = 833, x = -pi/2 + pi*833/999 = 1.04877,
    # tanh(x)/tanh(pi/2) = 0.78133/0.91715 = 0.85191; score = 0.555*(1-0.85191) - 0.11 = -0.02781.
    # The second window is missed: S = -1.02781; null -2, perfect 2 -> 100 * 0.97219 / 4 = 24.30
    x = -math.pi / 2 + math.pi * 833 / 999
    assert 0.555 * (1 - math.tanh(x) / math.tanh(math.pi / 2)) - 0.11 == pytest.approx(-0.02781, abs=1e-5)
    r = one_file([100], [50, 80])
    assert (r["standard"], r["hits"], r["missed"]) == (24.3, 1, 1)


def test_detection_on_a_shared_edge_counts_in_both_windows() -> None:
    # Upstream keeps both ends inclusive, so 110 s is the end of the first window (A_fp) and the
    # start of the cut second one (A_tp): S = -0.11 + 1 = 0.89 -> 100 * 2.89 / 4 = 72.25
    r = one_file([110], [50, 80])
    assert (r["standard"], r["hits"]) == (72.25, 2)


def test_alarm_edges_are_the_predictions() -> None:
    # alarm on over 50..79 s: rising edge at 50 (hit at the window start), falling edge at 80
    # inside the same window (ignored).
    alarm = np.zeros(200)
    alarm[50:80] = 1
    cp = np.zeros(200)
    cp[50] = 1
    r = nab_scores([(T_S, alarm, cp)])
    assert (r["standard"], r["fp"]) == (100.0, 0)


def test_files_are_pooled_and_units_agree() -> None:
    # File A is perfect (+1), file B is missed (-1): S = 0; null -2, perfect 2 -> 50.
    cp = np.zeros(200)
    cp[50] = 1
    hit = np.zeros(200)
    hit[50] = 1
    files = [(T_S, hit, cp), (T_S, np.zeros(200), cp)]
    assert nab_scores(files, from_alarm=False)["standard"] == 50.0
    in_ns = [((t * 1e9).astype(np.int64), p, c) for t, p, c in files]
    assert nab_scores(in_ns, unit="ns", from_alarm=False)["standard"] == 50.0
    as_dt = [(np.datetime64("2020-01-01T00:00:00") + t.astype("timedelta64[s]"), p, c) for t, p, c in files]
    assert nab_scores(as_dt, from_alarm=False)["standard"] == 50.0


def test_file_without_changepoints_only_adds_false_positives() -> None:
    cp = np.zeros(200)
    cp[50] = 1
    hit = np.zeros(200)
    hit[50] = 1
    noisy = np.zeros(200)
    noisy[[5, 100]] = 1
    r = nab_scores([(T_S, hit, cp), (T_S, noisy, np.zeros(200))], from_alarm=False)
    # S = 1 - 2 * 0.11 = 0.78 -> 100 * 1.78 / 2 = 89.0
    assert (r["standard"], r["fp"], r["windows"]) == (89.0, 2, 1)
