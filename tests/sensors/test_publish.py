"""publish() over real ZeroMQ sockets: the PUB connects, a SUB binds, frames arrive intact."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from sensors.errors import PublishError
from sensors.replay import ReplaySource
from sensors.source import publish
from tripwire.messages import Frame, decode_frame

CHANNELS = ["vib_x", "current"]
TIMEOUT_S = 10.0


@pytest.fixture
def ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def recording(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(3).normal(size=(2, 160)).astype(np.float32)
    np.save(tmp_path / "r.npy", data)
    return tmp_path / "r.npy", data


def _sub(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.bind(endpoint)
    return sub


def _receive(sub: zmq.Socket[bytes], until: threading.Event, want: int) -> list[Frame]:
    """Receive until ``want`` frames or until the publisher is done and the queue is empty."""
    frames: list[Frame] = []
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    deadline_polls = int(TIMEOUT_S / 0.05)
    for _ in range(deadline_polls):
        if len(frames) >= want:
            break
        if not poller.poll(50):
            if until.is_set():
                break
            continue
        parts = sub.recv_multipart(copy=False)
        assert len(parts) == 2
        frames.append(decode_frame(parts[0].buffer, parts[1].buffer))
    return frames


def test_publishes_every_frame_of_a_paced_replay(ctx, recording, tmp_path: Path) -> None:
    path, data = recording
    endpoint = f"ipc://{tmp_path}/frames"
    sub = _sub(ctx, endpoint)
    done, stop = threading.Event(), threading.Event()
    sent: list[int] = []
    # 40 frames of 4 samples at 400 Hz: one every 10 ms, time enough for the subscription.
    src = ReplaySource(path, source_id=5, channels=CHANNELS, sample_rate_hz=400.0,
                       frame_samples=4, paced=True)

    def run() -> None:
        with src:
            sent.append(publish(src, endpoint, stop, context=ctx))
        done.set()

    worker = threading.Thread(target=run, name="publisher")
    worker.start()
    try:
        frames = _receive(sub, done, want=40)
    finally:
        stop.set()
        worker.join(TIMEOUT_S)
        sub.close(linger=0)
    assert not worker.is_alive() and sent == [40]
    # PUB/SUB may drop frames sent before the subscription arrived; the rest arrive in order.
    assert len(frames) >= 30
    seqs = [f.seq for f in frames]
    assert seqs == list(range(seqs[0], 40))
    for f in frames:
        assert f.source_id == 5 and f.t_pub_ns >= f.t_acq_ns > 0
        np.testing.assert_array_equal(f.samples, data[:, 4 * f.seq : 4 * f.seq + 4])


def test_stop_ends_an_endless_source(ctx, recording, tmp_path: Path) -> None:
    path, _ = recording
    endpoint = f"ipc://{tmp_path}/frames"
    sub = _sub(ctx, endpoint)
    stop, done = threading.Event(), threading.Event()
    src = ReplaySource(path, source_id=1, channels=CHANNELS, sample_rate_hz=4000.0,
                       frame_samples=4, paced=True, loop=True)

    def run() -> None:
        with src:
            publish(src, endpoint, stop, context=ctx)
        done.set()

    worker = threading.Thread(target=run, name="publisher")
    worker.start()
    try:
        frames = _receive(sub, done, want=100)  # more than one pass: the loop goes on
        assert len(frames) == 100 and not done.is_set()
    finally:
        stop.set()
        worker.join(TIMEOUT_S)
        sub.close(linger=0)
    assert not worker.is_alive() and done.is_set()


def test_bad_endpoint_is_a_publish_error(ctx, recording) -> None:
    path, _ = recording
    with ReplaySource(path, source_id=1, channels=CHANNELS, sample_rate_hz=400.0,
                      frame_samples=4, paced=False) as src:
        with pytest.raises(PublishError, match="cannot connect"):
            publish(src, "nonsense://nowhere", threading.Event(), context=ctx)
