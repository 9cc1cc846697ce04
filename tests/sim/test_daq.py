"""The simulated DAQ over a real ZeroMQ pair: identity on every frame, skewed clocks, and a
late transport once the fault schedule starts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog
import zmq
import zmq.asyncio

from sim.daq import Daq
from sim.plant import Plant
from tripwire.config import SimConfig, SourceConfig
from tripwire.messages import Frame, FrameLinks, decode_frame

CHANNELS = ["vib_x", "vib_y", "current", "temp"]
SOURCES = [SourceConfig(1, "pump-1", CHANNELS), SourceConfig(2, "fan-2", CHANNELS)]
LINKS = FrameLinks.for_cell("bench", [(1, "pump-1"), (2, "fan-2")])


async def _collect(ipc_dir: Path, *, skew_ms: list[float], delay_ms: list[float],
                   schedule_after: int) -> list[tuple[int, Frame]]:
    """(receive time, frame) of the first 30 frames of source 1; the schedule starts after
    ``schedule_after`` of them."""
    ctx = zmq.asyncio.Context()
    sub = ctx.socket(zmq.SUB)
    pub = ctx.socket(zmq.PUB)
    sub.linger = pub.linger = 0
    sub.subscribe(b"")
    endpoint = f"ipc://{ipc_dir}/frames"
    sub.bind(endpoint)
    pub.connect(endpoint)
    plant = Plant(SOURCES, SimConfig())
    daq = Daq(plant, SOURCES, pub, True, structlog.get_logger(), cell="bench",
              clock_skew_ms=skew_ms, frame_delay_ms=delay_ms)
    task = asyncio.create_task(daq.run())
    got: list[tuple[int, Frame]] = []
    try:
        while len(got) < 30:
            parts = await asyncio.wait_for(sub.recv_multipart(), 5.0)
            frame = decode_frame(parts[0], parts[1], LINKS)  # the cell's identity, or it raises
            if frame.source_id == 1:
                got.append((time.monotonic_ns(), frame))
                if len(got) == schedule_after:
                    plant.start_schedule()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sub.close(0)
        pub.close(0)
        ctx.term()
    return got


def test_skewed_clocks_and_a_late_transport(ipc_dir: Path) -> None:
    got = asyncio.run(_collect(ipc_dir, skew_ms=[10_000.0, -10_000.0], delay_ms=[40.0, 0.0],
                               schedule_after=10))
    ahead = [f.t_acq_ns - t for t, f in got]  # the source's clock minus ours, plus delay
    assert all(9_900e6 < a < 10_000e6 for a in ahead[:10])  # 10 s ahead, delivered at once
    late = [10_000e6 - a for a in ahead[12:]]  # how long after acquisition they arrived
    assert all(38e6 < d < 1_000e6 for d in late), late  # held 40 ms (more under load)
    assert [f.seq for _, f in got] == list(range(30))  # in order, none lost
