"""Helpers for the monitor tests: a plant-like signal, a config table, and a loopback rig.

The rig is the test's side of the bus (a frame publisher and a verdict/heartbeat subscriber,
real ZeroMQ sockets); ``start_in_thread`` runs the monitor in a thread with a stop event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from monitor.features import FeatureSpec
from tripwire import config, messages
from tripwire.messages import Heartbeat, Verdict

CHANNELS = ("vib_x", "vib_y", "current", "temp")
RATE = 6400.0
FRAME = 128
SPEC = FeatureSpec(CHANNELS, RATE, 1024, 128)


def plant_signal(n: int, seed: int, *, start: int = 0) -> np.ndarray:
    """A healthy machine: shaft tone, broadband vibration, motor current, warm bearing."""
    rng = np.random.default_rng(seed)
    t = (start + np.arange(n)) / RATE
    return np.stack([
        0.8 * np.sin(2 * np.pi * 50 * t) + rng.normal(0, 0.2, n),
        0.6 * np.sin(2 * np.pi * 50 * t + 1.0) + rng.normal(0, 0.2, n),
        12.0 + 2.0 * np.sin(2 * np.pi * 50 * t) + rng.normal(0, 0.05, n),
        55.0 + rng.normal(0, 0.02, n),
    ]).astype(np.float32)


def monitor_table(ipc_dir: Path, bundle: Path, **monitor: Any) -> dict[str, Any]:
    sources = [{"id": sid, "name": name, "channels": list(CHANNELS), "min_value": -1000.0,
                "max_value": 1000.0} for sid, name in ((1, "pump-1"), (2, "fan-2"))]
    return {
        "bus": {"frames": f"ipc://{ipc_dir}/frames", "monitor_out": f"ipc://{ipc_dir}/out",
                "interlock_cmd": f"ipc://{ipc_dir}/il", "sim_ctl": f"ipc://{ipc_dir}/sim"},
        "sources": sources,
        "monitor": {"bundle": str(bundle), "providers": "cpu", "max_frame_age_ms": 5000.0,
                    "stale_after_ms": 300.0, "heartbeat_ms": 5.0, **monitor},
        "decision": {"k": 3, "n": 5, "warn_ratio": 0.7, "bad_input_trip_ms": 1500.0},
    }


@dataclass
class Rig:
    """The test's side of the bus: a frame publisher and a verdict/heartbeat subscriber."""

    cfg: config.Config
    ctx: zmq.Context[Any] = field(default_factory=zmq.Context)
    verdicts: list[Verdict] = field(default_factory=list)
    heartbeats: list[Heartbeat] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The cell's identity, as a configured source stamps it (an unconfigured id gets the
        # cell's address and no key: the monitor's validator names it unknown_source).
        self.links = messages.FrameLinks.for_cell(self.cfg.bus.cell,
                                                  [(s.id, s.name) for s in self.cfg.sources])
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.linger = 0
        self.pub.connect(self.cfg.bus.frames)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.subscribe(b"")
        self.sub.connect(self.cfg.bus.monitor_out)

    def close(self) -> None:
        self.pub.close(0)
        self.sub.close(0)
        self.ctx.term()

    def send_frame(self, source_id: int, seq: int, samples: np.ndarray) -> None:
        now = time.monotonic_ns()
        frame = messages.Frame(source_id, seq, now, now, RATE, np.ascontiguousarray(samples))
        link = messages.Link(self.links.dest, self.links.origins.get(source_id, 0))
        self.pub.send_multipart(list(messages.encode_frame(frame, link)))

    def send_raw(self, parts: list[bytes]) -> None:
        self.pub.send_multipart(parts)

    def pump(self, timeout_ms: int = 20) -> None:
        if self.sub.poll(timeout_ms, zmq.POLLIN):
            while True:
                try:
                    msg = messages.decode_monitor_message(self.sub.recv(zmq.NOBLOCK))
                except zmq.Again:
                    return
                if isinstance(msg, Verdict):
                    self.verdicts.append(msg)
                else:
                    self.heartbeats.append(msg)

    def wait(self, probe: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = probe()
            if got:
                return got
            self.pump()
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")

    def connect(self, timeout_s: float = 90.0) -> None:
        """Wait for the monitor's heartbeat, then until it sees what we publish."""
        self.wait(lambda: self.heartbeats, "the first heartbeat", timeout_s)
        deadline = time.monotonic() + 20.0
        while not self.heartbeats[-1].frames_received:
            assert time.monotonic() < deadline, "the monitor never received a probe"
            self.send_raw([b"probe"])  # dropped until the subscription reaches us; then rejected
            self.pump(20)

    def verdict(self, source_id: int, seq: int) -> Verdict | None:
        for v in self.verdicts:
            if v.source_id == source_id and v.seq == seq and not v.flags & messages.VerdictFlag.STALE:
                return v
        return None


@dataclass
class Running:
    thread: threading.Thread
    stop: threading.Event
    result: list[int]

    def finish(self, timeout_s: float = 30.0) -> int:
        self.stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "monitor did not stop"
        return self.result[0]


def start_in_thread(target: Callable[[threading.Event], int]) -> Running:
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(target(stop)), name="monitor-under-test")
    thread.start()
    return Running(thread, stop, result)
