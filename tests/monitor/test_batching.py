"""Batching rules, the batch cost model and the batch buffer: pure logic, a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.batch import Batch
from monitor.batching import BatchGate, CloseReason, CostModel

US = 1_000
MS = 1_000_000
T0 = 1_000 * MS


def _reason(gate: BatchGate, *, now: int = T0, rows: int = 4, model_rows: int = 4,
            ready: int = T0, deadline: int | None = T0 + 6 * MS, predicted: int = 100 * US,
            drained: bool = False, idle: bool = False) -> CloseReason | None:
    return gate.close_reason(now_ns=now, rows=rows, model_rows=model_rows, oldest_ready_ns=ready,
                             next_deadline_ns=deadline, predicted_ns=predicted,
                             drained=drained, model_idle=idle)


def test_a_batch_waits_while_no_rule_holds() -> None:
    gate = BatchGate(max_rows=32, gate_ns=5 * MS)
    assert _reason(gate) is None
    assert _reason(gate, rows=0, drained=True, idle=True) is None  # nothing to send
    assert _reason(gate, drained=True) is None  # drained, but the model is busy
    assert _reason(gate, idle=True) is None  # the model is free, but frames are still queued


def test_each_rule_closes_the_batch() -> None:
    gate = BatchGate(max_rows=32, gate_ns=5 * MS)
    assert _reason(gate, rows=32, model_rows=32) == CloseReason.FULL
    # slack: 6 ms budget, acquired 5.95 ms ago, the call takes 100 µs
    assert _reason(gate, now=T0 + 5_950 * US) == CloseReason.SLACK
    assert _reason(gate, now=T0 + 4_900 * US, deadline=T0 + 20 * MS) is None
    assert _reason(gate, now=T0 + 5 * MS, deadline=T0 + 20 * MS) == CloseReason.GATE
    assert _reason(gate, model_rows=0) == CloseReason.NO_MODEL
    assert _reason(gate, drained=True, idle=True) == CloseReason.DRAINED


def test_the_slack_rule_uses_the_predicted_time_of_this_batch() -> None:
    gate = BatchGate(max_rows=32, gate_ns=5 * MS)
    now = T0 + 4 * MS  # 2 ms of slack left
    assert _reason(gate, now=now, predicted=1_900 * US) is None
    assert _reason(gate, now=now, predicted=2_100 * US) == CloseReason.SLACK
    # a row that can only just make it goes at once
    assert _reason(gate, now=T0 + 5_990 * US) == CloseReason.SLACK
    # rows already past their deadlines do not close batches early: the backlog fills them
    assert _reason(gate, now=T0 + 7 * MS, ready=T0 + 6 * MS, deadline=None) is None


def test_the_first_rule_that_holds_is_reported() -> None:
    gate = BatchGate(max_rows=8, gate_ns=5 * MS)
    late = T0 + 5_950 * US
    assert _reason(gate, rows=8, model_rows=0, now=late, drained=True, idle=True) == CloseReason.FULL
    assert _reason(gate, now=late, drained=True, idle=True) == CloseReason.SLACK


def test_wait_when_idle_holds_the_gate_for_fuller_batches() -> None:
    gate = BatchGate(max_rows=32, gate_ns=5 * MS, wait_when_idle=True)
    assert _reason(gate, drained=True, idle=True) is None
    assert _reason(gate, now=T0 + 5 * MS, deadline=T0 + 20 * MS, drained=True,
                   idle=True) == CloseReason.GATE


def test_wake_is_the_earlier_of_the_gate_and_the_last_safe_moment() -> None:
    gate = BatchGate(max_rows=32, gate_ns=5 * MS)
    assert gate.wake_ns(rows=0, oldest_ready_ns=T0, next_deadline_ns=T0, predicted_ns=0) is None
    assert gate.wake_ns(rows=3, oldest_ready_ns=T0, next_deadline_ns=T0 + 20 * MS,
                        predicted_ns=MS) == T0 + 5 * MS
    assert gate.wake_ns(rows=3, oldest_ready_ns=T0, next_deadline_ns=T0 + 4 * MS,
                        predicted_ns=MS) == T0 + 3 * MS
    assert gate.wake_ns(rows=3, oldest_ready_ns=T0, next_deadline_ns=None,
                        predicted_ns=MS) == T0 + 5 * MS


def test_cost_model_predicts_an_upper_bound_per_size() -> None:
    cost = CostModel(8, margin=4.0)
    assert cost.predict_ns(1) == 0 and cost.predict_ns(0) == 0  # nothing measured yet
    for _ in range(50):
        cost.observe(2, 100 * US)
    assert 100 * US <= cost.predict_ns(2) < 110 * US  # the deviation decays with steady calls
    for d in (100, 300) * 50:
        cost.observe(4, d * US)
    assert cost.predict_ns(4) > 300 * US  # a jittery size predicts above its slow calls
    # unmeasured sizes borrow from the nearest measured one, scaled up by rows
    assert cost.predict_ns(1) == cost.predict_ns(2)
    assert cost.predict_ns(8) == pytest.approx(2 * cost.predict_ns(4), rel=1e-6)
    assert cost.predict_ns(16) == pytest.approx(2 * cost.predict_ns(8), rel=1e-6)
    assert set(cost.table_us()) == {2, 4}


def test_cost_model_learns_after_warm_up_seeded_every_size() -> None:
    cost = CostModel(4)
    for m in range(1, 5):
        cost.observe(m, m * 50 * US)
    before = [cost.predict_ns(m) for m in range(1, 5)]
    for _ in range(40):
        cost.observe(3, 1_000 * US)  # size 3 turned slow
    after = [cost.predict_ns(m) for m in range(1, 5)]
    assert after[2] > 2 * before[2] and [after[i] for i in (0, 1, 3)] == [before[i] for i in (0, 1, 3)]
    with pytest.raises(ValueError):
        CostModel(0)


class _Rows:
    """Stands in for WindowFeatures: hands over prepared rows like pop_into."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def pop_into(self, out: np.ndarray, start: int = 0) -> int:
        k = int(self.rows.shape[0])
        out[start:start + k] = self.rows
        return k


def _row(rms: float, tag: float) -> np.ndarray:
    r = np.full((1, 4), tag, dtype=np.float32)
    r[0, 1] = rms  # feature 1 plays the idle channel's RMS
    return r


def test_batch_keeps_arrival_order_and_moves_idle_rows_out_of_the_model_input() -> None:
    b = Batch(6, 4, idle_at=1, idle_below=0.05)
    assert b.append(_Rows(_row(0.5, 1.0)), 1, 10, T0 + 3, T0 + 10, 2, 0, 0, T0 + 10) == 0  # type: ignore[arg-type]
    assert b.append(_Rows(_row(0.01, 2.0)), 2, 20, T0 + 1, T0 + 11, 0, 0, 0, T0 + 11) == 1  # type: ignore[arg-type]
    two = np.concatenate([_row(0.01, 3.0), _row(0.7, 4.0)])
    assert b.append(_Rows(two), 1, 11, T0 + 5, T0 + 12, 2, 4, 0, T0 + 12) == 1  # type: ignore[arg-type]
    assert (b.rows, b.model_rows, b.idle_rows) == (4, 2, 2)
    assert b.source[:4].tolist() == [1, 2, 1, 1] and b.seq[:4].tolist() == [10, 20, 11, 11]
    assert b.flags[:4].tolist() == [2, 0, 2, 4]  # a frame's first window carries its GAP
    assert b.slot[:4].tolist() == [0, -1, -2, 1]
    assert [b.features(s)[0] for s in b.slot[:4].tolist()] == [1.0, 2.0, 3.0, 4.0]
    assert b.x[:2, 0].tolist() == [1.0, 4.0]  # the model's input, compacted
    assert b.earliest_acq_ns == T0 + 1 and b.oldest_ready_ns == T0 + 10
    assert b.room(2) and not b.room(3)
    budget = 6 * MS
    assert b.next_deadline_ns(T0, budget) == T0 + 1 + budget  # source 2's row is most urgent
    assert b.next_deadline_ns(T0 + 2 + budget, budget) == T0 + 3 + budget  # it is late now
    assert b.next_deadline_ns(T0 + 6 + budget, budget) is None  # every row is late
    b.reset()
    assert (b.rows, b.model_rows, b.idle_rows) == (0, 0, 0) and b.room(6)


def test_batch_without_an_idle_rule_sends_every_row_to_the_model() -> None:
    b = Batch(4, 4)
    assert b.append(_Rows(_row(0.0, 1.0)), 1, 1, T0, T0, 0, 0, 0, T0) == 0  # type: ignore[arg-type]
    assert (b.rows, b.model_rows) == (1, 1)


def test_windows_of_one_long_frame_each_carry_their_own_acquisition_time() -> None:
    b = Batch(6, 4)
    three = np.concatenate([_row(0.5, 1.0), _row(0.5, 2.0), _row(0.5, 3.0)])
    b.append(_Rows(three), 7, 40, T0, T0 + 9, 0, 0, hop_ns=5 * MS, t_recv_ns=T0 + 2)  # type: ignore[arg-type]
    # the newest window ended at T0; each earlier one a hop before it
    assert b.t_acq_ns[:3].tolist() == [T0 - 10 * MS, T0 - 5 * MS, T0]
    assert b.t_recv_ns[:3].tolist() == [T0 + 2] * 3  # one frame: one receive time
    assert b.earliest_acq_ns == T0 - 10 * MS
    assert b.next_deadline_ns(T0 - 5 * MS, 8 * MS) == T0 - 2 * MS  # the oldest one bounds it
    assert b.next_deadline_ns(T0, 8 * MS) == T0 + 3 * MS  # until it is late
