"""The bus alone: what moving the cell's messages costs, with no work done on them (shell).

The cell's pipeline has this shape: a frame message from the DAQ into the monitor's process,
a verdict message from there into the interlock's. Both processes pay for the transport
whatever they compute: ZeroMQ's I/O threads, the wake-ups, the receive and send calls.
``bus_floor`` measures that part alone at the bench load. The paced feeder (bench.feeder)
publishes the frames; ``python -m bench.relay relay`` receives each one whole (both parts,
decoded not at all) and publishes one verdict-sized message per frame; ``python -m
bench.relay sink`` receives those. Each is pinned and prioritised as the process it stands
for (bench.cell.placement, the cell's SCHED_FIFO priorities), and waits in a blocking
receive, the cheapest wait there is.

Their CPU per frame is a floor under the monitor's and the interlock's: a pipeline that keeps
this message structure spends at least this per frame on this machine. The plain pipeline's
CPU per frame divided by it bounds the per-CPU-second ratio such a pipeline can reach here
(bench.report: ``ceiling_samples_per_cpu_s_ratio``). CPU is read from ``/proc`` (bench.cpu)
over ``seconds`` once frames flow; frames are the paced load's, checked against what the
relay received; ``placement_seen`` reads back where each thread may run. It decides nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import zmq

from bench import cpu
from bench.child import Child
from bench.errors import BenchSetupError
from bench.feeder import Feeder, FeedPlan
from bench.signals import BenchLoad
from tripwire.bus import recv_parts

VERDICT_BYTES = 120  # about one encoded verdict
RECV_TIMEOUT_MS = 100  # a blocked receive wakes this often to look for the stop signal
READY_S = 60.0  # the feeder builds its signal bank before the first frame
POLL_S = 0.05
# SCHED_FIFO of the cell's processes (tripwire.stack.demo_table): the relay stands for the
# monitor, the sink for the interlock, the feeder for the DAQ.
PRIORITY = {"relay": 40, "sink": 50, "feeder": 30}


def bus_floor(load: BenchLoad, cpus: dict[str, list[int]], *, seconds: float = 4.0,
              warm_s: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """CPU per frame of the null relay (for the monitor) and sink (for the interlock) at
    ``load``, pinned as ``cpus`` places the monitor and the interlock."""
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp:
        frames, out = f"ipc://{tmp}/frames", f"ipc://{tmp}/out"
        reports = {role: Path(tmp) / f"{role}.json" for role in ("relay", "sink")}
        with contextlib.ExitStack() as stack:
            pids: dict[str, int] = {}
            children: list[Child] = []
            for role, sub, pub, where, io in (
                    ("sink", out, "", cpus["interlock"], []),
                    ("relay", frames, out, cpus["monitor"], cpus["monitor_io"])):
                argv = [sys.executable, "-m", "bench.relay", role, "--sub", sub, "--pub", pub,
                        "--cpus", ",".join(map(str, where)), "--io-cpus", ",".join(map(str, io)),
                        "--priority", str(PRIORITY[role]), "--report", str(reports[role])]
                child = stack.enter_context(Child(role, argv))
                children.append(child)
                pids[role] = child.pid
            plan = FeedPlan(load, frames, socket="pub", paced=True, seed=seed, hwm=1000,
                            priority=PRIORITY["feeder"])
            feeder = stack.enter_context(Feeder(plan))
            _wait_flowing(reports, [*children, feeder])
            time.sleep(warm_s)
            t0, before = time.monotonic_ns(), {r: cpu.ticks(pid) for r, pid in pids.items()}
            time.sleep(seconds)
            t1, after = time.monotonic_ns(), {r: cpu.ticks(pid) for r, pid in pids.items()}
            seen = {r: {t.name: t.cpus for t in cpu.read(pid).values()} for r, pid in pids.items()}
        received = {r: _received(path) for r, path in reports.items()}
    wall_s = (t1 - t0) / 1e9
    pct = cpu.percent(before, after, wall_s)
    per_frame = {r: round(1e4 * float(pct[r] or 0.0) / load.frames_per_s, 1) for r in pids}
    return {
        "measured_s": round(wall_s, 3),
        "frames_per_s": load.frames_per_s,
        "cpu_percent": {r: pct[r] for r in ("relay", "sink")},
        "relay_us_per_frame": per_frame["relay"],
        "sink_us_per_frame": per_frame["sink"],
        "total_us_per_frame": round(per_frame["relay"] + per_frame["sink"], 1),
        "received": received,
        "placement": {"relay": cpus["monitor"], "relay_io": cpus["monitor_io"],
                      "sink": cpus["interlock"]},
        "placement_seen": seen,  # by thread name, the CPUs each thread may run on
    }


def _wait_flowing(reports: dict[str, Path], children: list[Child]) -> None:
    """Until the sink has had a message, which means frames pass the relay."""
    deadline = time.monotonic() + READY_S
    while _received(reports["sink"]) <= 0:
        for child in children:
            why = child.failure()
            if why:
                raise BenchSetupError(f"bus floor: the {why}")
        if time.monotonic() > deadline:
            raise BenchSetupError(f"bus floor: no message through the relay in {READY_S:g} s")
        time.sleep(POLL_S)


def _received(path: Path) -> int:
    try:
        return int(json.loads(path.read_text())["received"])
    except (OSError, ValueError, KeyError):
        return 0


def _write(path: str, received: int) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps({"received": received}))
    os.replace(tmp, path)


def run(role: str, sub_ep: str, pub_ep: str, cpus: list[int], io_cpus: list[int], priority: int,
        report: str) -> int:
    """The child: receive until SIGTERM; the relay answers each message with one of its own.
    Writes ``{"received": n}`` to ``report`` on its first message and as it ends."""
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    ctx: zmq.Context[Any] = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, RECV_TIMEOUT_MS)
    pub = ctx.socket(zmq.PUB) if role == "relay" else None
    received = 0
    try:
        if pub is not None:
            pub.setsockopt(zmq.LINGER, 0)
            pub.bind(pub_ep)
            sub.bind(sub_ep)  # the feeder connects, as to the monitor
        else:
            sub.connect(sub_ep)
        from tripwire import realtime  # structlog only here, as the cell's processes do

        realtime.apply(priority, f"bench_{role}", cpus, io_cpus)  # the I/O thread too
        verdict = bytes(VERDICT_BYTES)
        while not stopping:
            try:
                recv_parts(sub, 0)  # the monitor's receive, blocking (RCVTIMEO wakes it)
            except zmq.Again:
                continue
            received += 1
            if pub is not None:
                pub.send(verdict, zmq.NOBLOCK)
            if received == 1:
                _write(report, received)
    except zmq.ZMQError as e:
        print(f"bench.relay {role}: {e}", file=sys.stderr)
        return 1
    finally:
        sub.close(0)
        if pub is not None:
            pub.close(0)
        ctx.term()
    _write(report, received)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.relay", description=__doc__.splitlines()[0])
    p.add_argument("role", choices=("relay", "sink"))
    p.add_argument("--sub", required=True, help="relay: bind here for frames; sink: connect")
    p.add_argument("--pub", default="", help="relay: bind here for its messages")
    p.add_argument("--cpus", default="", help="comma-separated CPUs to pin to (empty: none)")
    p.add_argument("--io-cpus", default="", help="CPUs for ZeroMQ's I/O thread (empty: as --cpus)")
    p.add_argument("--priority", type=int, default=0, help="SCHED_FIFO priority (0: none)")
    p.add_argument("--report", required=True)
    a = p.parse_args(argv)
    if a.role == "relay" and not a.pub:
        p.error("relay: --pub is required")
    cpus = [int(c) for c in a.cpus.split(",") if c]
    io_cpus = [int(c) for c in a.io_cpus.split(",") if c]
    return run(a.role, a.sub, a.pub, cpus, io_cpus, a.priority, a.report)


if __name__ == "__main__":
    sys.exit(main())
