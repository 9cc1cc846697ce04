"""The frame feeder: valid, addressed frames in order; pacing; a child process that ends."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from bench.feeder import Feeder, FeedPlan, feed, frame_links
from bench.signals import BenchLoad, SignalBank
from tests.bench.conftest import SMALL
from tripwire.messages import decode_frame


def _pull(ctx: zmq.Context[Any], endpoint: str) -> zmq.Socket[Any]:
    s = ctx.socket(zmq.PULL)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(endpoint)
    return s


def test_feed_sends_the_banks_frames_addressed_and_in_order(ipc_dir: Path) -> None:
    endpoint = f"ipc://{ipc_dir / 'feed'}"
    plan = FeedPlan(SMALL, endpoint, cell="c1", seed=3, stream_s=10.0)
    stop = threading.Event()
    ctx: zmq.Context[Any] = zmq.Context()
    pull = _pull(ctx, endpoint)
    sent: list[int] = []
    worker = threading.Thread(target=lambda: sent.append(feed(plan, stop)), name="feed")
    worker.start()
    try:
        links = frame_links(SMALL, "c1")
        bank = SignalBank(SMALL, seed=3)
        frames = []
        for _ in range(12):
            assert pull.poll(10_000), "no frame from the feeder"
            frames.append(decode_frame(*pull.recv_multipart(), links))
    finally:
        stop.set()
        worker.join(10)
        pull.close(0)
        ctx.term()
    assert not worker.is_alive() and sent and sent[0] >= 12
    assert [(f.source_id, f.seq) for f in frames[:4]] == [(1, 0), (2, 0), (1, 1), (2, 1)]
    for f in frames:
        assert f.sample_rate_hz == SMALL.rate_hz and f.t_acq_ns > 0
        assert np.array_equal(f.samples, bank.frame(f.source_id - 1, f.seq))


def test_paced_feed_takes_stream_time(ipc_dir: Path) -> None:
    endpoint = f"ipc://{ipc_dir / 'paced'}"
    plan = FeedPlan(SMALL, endpoint, paced=True, stream_s=0.3, hwm=1000)
    ctx: zmq.Context[Any] = zmq.Context()
    pull = _pull(ctx, endpoint)
    try:
        t0 = time.monotonic()
        sent = feed(plan)
        elapsed = time.monotonic() - t0
    finally:
        pull.close(0)
        ctx.term()
    steps = round(0.3 * SMALL.rate_hz / SMALL.frame_samples)
    assert sent == steps * SMALL.machines
    assert elapsed >= 0.9 * (steps - 1) * SMALL.frame_samples / SMALL.rate_hz


def test_feeder_process_delivers_and_ends_with_the_block(ipc_dir: Path) -> None:
    endpoint = f"ipc://{ipc_dir / 'child'}"
    ctx: zmq.Context[Any] = zmq.Context()
    pull = _pull(ctx, endpoint)
    try:
        with Feeder(FeedPlan(SMALL, endpoint, socket="push")) as feeder:
            assert pull.poll(30_000), f"no frame from the feeder process {feeder.failure()}"
            decode_frame(*pull.recv_multipart(), frame_links(SMALL, "bench"))
            assert feeder.failure() == ""
    finally:
        pull.close(0)
        ctx.term()


def test_feeder_process_reports_why_it_failed() -> None:
    bad = FeedPlan(BenchLoad(machines=1, channels=2, rate_hz=6400.0), "nowhere://x")
    with Feeder(bad) as feeder:
        deadline = time.monotonic() + 30
        while not feeder.failure() and time.monotonic() < deadline:
            time.sleep(0.05)
        why = feeder.failure()
    assert "exited with 1" in why and "nowhere" in why


def test_feeder_child_takes_a_schedule_and_reports_what_it_sent(ipc_dir: Path,
                                                                tmp_path: Path) -> None:
    from bench.schedule import FaultWindow
    from bench.signals import RMS_STEP, Fault

    endpoint = f"ipc://{ipc_dir / 'sched'}"
    window = FaultWindow(1, Fault(RMS_STEP, channel=2, size=3.0), on_s=0.0, off_s=0.05)
    report = tmp_path / "sent.json"
    plan = FeedPlan(SMALL, endpoint, seed=3, stream_s=0.2, schedule=(window,),
                    report_path=str(report))
    assert "--schedule" in plan.argv() and "--report" in plan.argv()
    ctx: zmq.Context[Any] = zmq.Context()
    pull = _pull(ctx, endpoint)
    got: list[Any] = []
    try:
        with Feeder(plan) as feeder:
            while len(got) < 4:
                assert pull.poll(30_000), f"no frame {feeder.failure()}"
                got.append(decode_frame(*pull.recv_multipart(), frame_links(SMALL, "bench")))
            deadline = time.monotonic() + 30
            while feeder.returncode() is None and time.monotonic() < deadline:
                if pull.poll(50):  # keep the lossless queue moving
                    pull.recv_multipart()
            assert feeder.returncode() == 0
    finally:
        pull.close(0)
        ctx.term()
    healthy = SignalBank(SMALL, seed=3)
    faulted = [f for f in got if f.source_id == 2 and f.seq == 0]
    assert faulted and np.allclose(faulted[0].samples[2], 3.0 * healthy.frame(1, 0)[2])
    steps = round(0.2 * SMALL.rate_hz / SMALL.frame_samples)
    assert json.loads(report.read_text()) == {"sent": steps * SMALL.machines}
