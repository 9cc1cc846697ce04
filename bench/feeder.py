"""The frame feeder: the bench load as real Frames on a real ZeroMQ socket, from its own process.

Shell. ``feed(plan)`` builds the plan's signal bank and sends every machine's frames in turn
(frame ``k`` of machine 0, 1, ..., then frame ``k + 1``), each a two-part Frame with a valid
header (source id ``machine + 1``, sequence ``k``, ``t_acq_ns = t_pub_ns`` = the send time,
crc, the cell's addressing), its socket CONNECTED to ``plan.endpoint``:

- ``socket="push"``: lossless; a full queue blocks the feeder, so frames are offered exactly
  as fast as the receiver takes them (throughput runs);
- ``socket="pub"``: the topology of the real pipeline (sim PUB -> monitor SUB); a slow
  receiver loses frames at the high-water mark, and the receiver counts the gaps;
- ``paced``: one frame per machine every ``frame_samples / rate_hz`` on the monotonic clock
  (the load as a plant offers it) instead of as fast as possible.

Faults: the plan's one ``fault`` (from ``fault_at_s`` on), and a ``schedule`` of fault
windows (bench.schedule.FaultWindow: a machine, a fault, from ``on_s`` to ``off_s`` of
stream time), all drawn into the frames by the signal bank.

``Feeder`` runs ``python -m bench.feeder`` as a child process, so the source does not share
the receiver's GIL, and ends it (SIGTERM, which the child turns into a clean stop; kill if it
lingers) when the block is left. The child takes ``priority`` (SCHED_FIFO, as the cell's
DAQ would) once its bank is built, and with ``report_path`` writes ``{"sent": n}`` there as
it ends. It measures nothing and decides nothing; a receiver recognises its sources with
``frame_links``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import zmq

from bench.child import Child
from bench.errors import BenchConfigError, BenchSetupError
from bench.schedule import FaultWindow, schedule_from_json, schedule_to_json
from bench.signals import FAULT_KINDS, BenchLoad, Fault, SignalBank
from tripwire.messages import FrameLinks, Link, encode_frame_header

SOCKETS = ("push", "pub")
SEND_TIMEOUT_MS = 100  # a blocked send wakes this often to look at ``stop``
FLUSH_MS = 2000  # at the stream's end, queued frames get this long to leave


def source_name(machine: int) -> str:
    return f"m{machine:02d}"


def frame_links(load: BenchLoad, cell: str) -> FrameLinks:
    """What a receiver of the feeder's frames expects: source ``m + 1`` named ``m{m:02d}``."""
    return FrameLinks.for_cell(cell, [(m + 1, source_name(m)) for m in range(load.machines)])


@dataclass(frozen=True, slots=True)
class FeedPlan:
    load: BenchLoad
    endpoint: str
    cell: str = "bench"
    socket: str = "push"
    paced: bool = False
    seed: int = 0
    hwm: int = 64  # frames queued per socket before push blocks or pub drops
    stream_s: float = 3600.0  # the stream ends after this much stream time
    fault: Fault | None = None
    fault_machine: int = 0
    fault_at_s: float = 0.0  # stream time
    schedule: tuple[FaultWindow, ...] = ()
    priority: int = 0  # SCHED_FIFO priority of the feeder process (0: normal scheduling)
    report_path: str = ""  # the child writes {"sent": n} here as it ends

    def __post_init__(self) -> None:
        if self.socket not in SOCKETS:
            raise BenchConfigError(f"socket: one of {SOCKETS}, got {self.socket!r}")
        if self.hwm <= 0 or not self.stream_s > 0:
            raise BenchConfigError("hwm and stream_s: must be > 0")

    def argv(self) -> list[str]:
        """The command line that runs this plan in a child process."""
        ld = self.load
        args = [sys.executable, "-m", "bench.feeder", "--endpoint", self.endpoint,
                "--cell", self.cell, "--socket", self.socket, "--seed", str(self.seed),
                "--hwm", str(self.hwm), "--stream-s", repr(self.stream_s), *ld.argv()]
        if self.paced:
            args.append("--paced")
        if self.fault is not None:
            f = self.fault
            args += ["--fault", f.kind, "--fault-channel", str(f.channel), "--fault-size",
                     repr(f.size), "--fault-defect-hz", repr(f.defect_hz),
                     "--fault-resonance-hz", repr(f.resonance_hz),
                     "--fault-machine", str(self.fault_machine), "--fault-at", repr(self.fault_at_s)]
        if self.schedule:
            args += ["--schedule", schedule_to_json(self.schedule)]
        if self.priority:
            args += ["--priority", str(self.priority)]
        if self.report_path:
            args += ["--report", self.report_path]
        return args


def feed(plan: FeedPlan, stop: threading.Event | None = None,
         ready: Callable[[], None] | None = None) -> int:
    """Send the plan's stream; returns the frames sent. Ends at ``stream_s`` or on ``stop``.
    ``ready()`` is called once the bank is built, before the first frame."""
    ld = plan.load
    bank = SignalBank(ld, plan.seed)
    if plan.fault is not None:
        bank.inject(plan.fault_machine, plan.fault, plan.fault_at_s)
    for w in plan.schedule:
        bank.inject(w.machine, w.fault, w.on_s, w.off_s)
    if ready is not None:
        ready()
    links: list[Link] = [frame_links(ld, plan.cell).link(m + 1) for m in range(ld.machines)]
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.PUSH if plan.socket == "push" else zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, plan.hwm)
    sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
    sent = 0
    linger_ms = 0  # stopped: drop what is queued
    try:
        sock.connect(plan.endpoint)
        period_ns = round(ld.frame_samples / ld.rate_hz * 1e9)
        steps = round(plan.stream_s * ld.rate_hz / ld.frame_samples)
        # Paced: machine m's frame k leaves at t0 + k * period + its DAQ's phase.
        phases = ld.phases_ns(plan.seed)
        order = sorted(range(ld.machines), key=lambda m: phases[m])
        t0 = time.monotonic_ns()
        for k in range(steps):
            for m in order:
                if plan.paced:
                    wait_ns = t0 + k * period_ns + phases[m] - time.monotonic_ns()
                    if wait_ns > 0:
                        time.sleep(wait_ns / 1e9)
                payload = bank.frame(m, k).data.cast("B")
                while True:
                    if stop is not None and stop.is_set():
                        return sent
                    now = time.monotonic_ns()
                    header = encode_frame_header(
                        source_id=m + 1, seq=k, t_acq_ns=now, t_pub_ns=now, sample_rate_hz=ld.rate_hz,
                        channels=ld.channels, samples=ld.frame_samples, payload=payload, link=links[m])
                    try:
                        sock.send_multipart((header, payload), copy=False)
                        break
                    except zmq.Again:
                        continue  # the receiver is behind (push): look at stop, then offer again
                sent += 1
        linger_ms = FLUSH_MS  # the stream ended: what is still queued goes out first
        return sent
    except zmq.ZMQError as e:
        raise BenchSetupError(f"feeder on {plan.endpoint}: {e}") from None
    finally:
        sock.close(linger_ms)
        ctx.term()


class Feeder(Child):
    """``with Feeder(plan):`` the plan runs in a child process until the block is left."""

    def __init__(self, plan: FeedPlan) -> None:
        super().__init__("feeder", plan.argv())
        self.plan = plan


def _plan(argv: list[str] | None) -> FeedPlan:
    p = argparse.ArgumentParser(prog="python -m bench.feeder", description=__doc__)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--cell", default="bench")
    p.add_argument("--socket", choices=SOCKETS, default="push")
    p.add_argument("--paced", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hwm", type=int, default=64)
    p.add_argument("--stream-s", type=float, default=3600.0)
    BenchLoad.add_arguments(p)
    p.add_argument("--fault", choices=FAULT_KINDS)
    p.add_argument("--fault-channel", type=int, default=0)
    p.add_argument("--fault-size", type=float, default=Fault().size)
    p.add_argument("--fault-defect-hz", type=float, default=Fault().defect_hz)
    p.add_argument("--fault-resonance-hz", type=float, default=Fault().resonance_hz)
    p.add_argument("--fault-machine", type=int, default=0)
    p.add_argument("--fault-at", type=float, default=0.0)
    p.add_argument("--schedule", default="", help="JSON list of fault windows")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--report", default="")
    a = p.parse_args(argv)
    load = BenchLoad.from_arguments(a)
    fault = (Fault(a.fault, a.fault_channel, a.fault_size, a.fault_defect_hz, a.fault_resonance_hz)
             if a.fault else None)
    schedule = schedule_from_json(a.schedule) if a.schedule else ()
    return FeedPlan(load, a.endpoint, a.cell, a.socket, a.paced, a.seed, a.hwm, a.stream_s,
                    fault, a.fault_machine, a.fault_at, schedule, a.priority, a.report)


def _write_report(path: str, sent: int) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps({"sent": sent}))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        plan = _plan(argv)

        def ready() -> None:
            if plan.priority:
                from tripwire import realtime  # only when asked: structlog

                realtime.apply(plan.priority, "feeder")

        sent = feed(plan, stop, ready)
        if plan.report_path:
            _write_report(plan.report_path, sent)
    except BenchConfigError as e:
        print(f"bench.feeder: {e}", file=sys.stderr)
        return 2
    except (BenchSetupError, OSError) as e:
        print(f"bench.feeder: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
