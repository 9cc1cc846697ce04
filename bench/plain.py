"""The plain pipeline: what the monitor and interlock replace, built the obvious way, measured.

Shell, one process, one thread: frames arrive over a real ZeroMQ socket from the bench
feeder (its own process), are decoded and checked (crc, addressing, sequence), a plain numpy
window per source recomputes every feature over the whole window at each hop
(``bench.numpy_features``), one onnxruntime call scores each window, the score is compared
with the model's threshold, and every flagged window writes a stop (permit 0) with
pymodbus' default ``ModbusTcpClient``. No batching, no numba, no separate interlock.

Frames are offered as fast as the pipeline takes them (a PUSH feeder blocks when the
pipeline is behind), so ``samples_per_s`` is what it sustains; ``decision_us`` is frame-in
(the receive returned) to decision (the score compared), per window; ``cpu_percent`` is this
process' CPU time over the counted span (% of one core), so the pipelines also compare per
CPU-second, and ``cpu_threads`` splits it by thread (bench.cpu): the loop thread, its ZeroMQ
I/O thread, the lead's own. The lead runs the real
pipeline at the same load and compares. Reads ``time.monotonic_ns()``; decides nothing
beyond the one comparison it is the plain version of.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from bench import cpu
from bench.errors import BenchSetupError
from bench.feeder import Feeder, FeedPlan, frame_links
from bench.figures import latency_us, rate_per_s
from bench.floors import open_session
from bench.model import BenchModel, build_model, feature_spec
from bench.numpy_features import NumpyWindow
from bench.plc import BenchPlc
from bench.signals import BenchLoad, Fault, SignalBank
from models.manifest import INPUT_NAME
from tripwire.config import ModbusTargetConfig
from tripwire.latency import Histogram
from tripwire.messages import DecodeError, decode_frame

FIRST_FRAME_TIMEOUT_S = 60.0  # the feeder builds its bank before the first frame
POLL_MS = 100
RCV_HWM = 64


def plain_pipeline(
    load: BenchLoad,
    seconds: float = 5.0,
    *,
    warm_s: float = 1.0,
    seed: int = 0,
    fault: Fault | None = None,
    fault_machine: int = 0,
    fault_at_s: float = 0.0,
    model: BenchModel | None = None,
    plc: ModbusTargetConfig | None = None,
) -> dict[str, Any]:
    """Run the plain pipeline for ``warm_s`` (not counted) then ``seconds`` (counted).

    ``fault`` is injected by the feeder at stream time ``fault_at_s`` on ``fault_machine``.
    ``model``: fitted on numpy features (``build_model(bank, plain=True)``); by default one
    is fitted on the feeder's bank. ``plc``: where to write stops; None starts the bench's
    own simulated PLC."""
    model = model or build_model(SignalBank(load, seed), plain=True)
    session = open_session(model)
    session.run(None, {INPUT_NAME: model.rows[:1]})  # first-call set-up is not the pipeline's
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp:
        plan = FeedPlan(load, f"ipc://{Path(tmp) / 'plain'}", socket="push", seed=seed,
                        fault=fault, fault_machine=fault_machine, fault_at_s=fault_at_s)
        if plc is not None:
            return _run(plan, seconds, warm_s, model, session, plc, None)
        with BenchPlc() as own:
            return _run(plan, seconds, warm_s, model, session, own.client_target(3000.0), own)


def _run(plan: FeedPlan, seconds: float, warm_s: float, model: BenchModel, session: Any,
         target: ModbusTargetConfig, own: BenchPlc | None) -> dict[str, Any]:
    load, endpoint = plan.load, plan.endpoint
    spec = feature_spec(load)
    links = frame_links(load, plan.cell)
    windows = {m + 1: NumpyWindow(spec) for m in range(load.machines)}
    last_seq: dict[int, int] = {}
    hists = {k: Histogram.new() for k in ("decision", "decode", "features", "model", "stop_write")}
    counts = dict.fromkeys(("frames", "windows", "flagged", "stops_written", "stop_failures",
                            "decode_errors", "gaps"), 0)
    ctx: zmq.Context[Any] = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVHWM, RCV_HWM)
    client = ModbusTcpClient(target.host, port=target.port)
    cpu_start, t_cpu_start = -1, 0
    threads_start: dict[int, cpu.ThreadReading] = {}
    try:
        pull.bind(endpoint)
        if not client.connect():  # type: ignore[no-untyped-call]
            raise BenchSetupError(f"pymodbus client cannot connect to port {target.port}")
        with Feeder(plan) as feeder:
            t_first = _first_frame(pull, feeder)
            t_start = t_first + int(warm_s * 1e9)
            t_end = t_start + int(seconds * 1e9)
            t_last = t_start
            while True:
                if not pull.poll(POLL_MS):
                    why = feeder.failure()
                    if why:
                        raise BenchSetupError(why)
                    if time.monotonic_ns() >= t_end:
                        break
                    continue
                header, payload = pull.recv_multipart()
                t_in = time.monotonic_ns()
                if t_in >= t_end:
                    break
                counting = t_in >= t_start
                if counting and cpu_start < 0:
                    cpu_start, t_cpu_start = time.process_time_ns(), t_in
                    threads_start = cpu.read(os.getpid())
                t_last = t_in
                try:
                    frame = decode_frame(header, payload, links)
                except DecodeError:
                    counts["decode_errors"] += 1
                    continue
                prev = last_seq.get(frame.source_id)
                if prev is not None and frame.seq != prev + 1:
                    counts["gaps"] += 1
                last_seq[frame.source_id] = frame.seq
                window = windows.get(frame.source_id)
                if window is None:
                    counts["decode_errors"] += 1
                    continue
                t_dec = time.monotonic_ns()
                rows = window.push(frame.samples)
                t_feat = time.monotonic_ns()
                if counting:
                    counts["frames"] += 1
                    hists["decode"].record(t_dec - t_in)
                    hists["features"].record(t_feat - t_dec)
                for row in rows:
                    t0 = time.monotonic_ns()
                    score = float(session.run(None, {INPUT_NAME: row[None, :]})[0][0])
                    flagged = score > model.threshold
                    t_decided = time.monotonic_ns()
                    if counting:
                        counts["windows"] += 1
                        counts["flagged"] += flagged
                        hists["model"].record(t_decided - t0)
                        hists["decision"].record(t_decided - t_in)
                    if flagged:
                        _stop(client, target, hists["stop_write"], counts)
    except zmq.ZMQError as e:
        raise BenchSetupError(f"plain pipeline on {endpoint}: {e}") from None
    finally:
        client.close()  # type: ignore[no-untyped-call]
        pull.close(0)
        ctx.term()
    cpu_end = time.process_time_ns()
    threads_end = cpu.read(os.getpid())
    elapsed = max(0, t_last - t_start)
    cpu_wall = t_last - t_cpu_start if cpu_start >= 0 else 0
    samples = counts["frames"] * load.channels * load.frame_samples
    made = rate_per_s(samples, elapsed)
    return {
        "measured_s": round(elapsed / 1e9, 3),
        **counts,
        "plc_accepted_writes": own.writes_total() if own is not None else None,
        "samples_per_s": made,
        "load_samples_per_s": load.samples_per_s,
        "keeps_up": made >= load.samples_per_s,
        # this process' CPU (every thread) over the counted span, % of one core
        "cpu_percent": round(100.0 * (cpu_end - cpu_start) / cpu_wall, 1) if cpu_wall > 0 else None,
        # by thread: this one, its ZeroMQ I/O thread, and the lead's own (progress display)
        "cpu_threads": cpu.between(threads_start, threads_end, cpu_wall / 1e9, counts["frames"]),
        "decision_us": latency_us(hists["decision"]),
        "stages": {f"{k}_us": latency_us(h) for k, h in hists.items() if k != "decision"},
    }


def _first_frame(pull: zmq.Socket[Any], feeder: Feeder) -> int:
    deadline = time.monotonic_ns() + int(FIRST_FRAME_TIMEOUT_S * 1e9)
    while not pull.poll(POLL_MS, zmq.POLLIN):
        why = feeder.failure()
        if why:
            raise BenchSetupError(why)
        if time.monotonic_ns() > deadline:
            raise BenchSetupError("plain pipeline: no frame from the feeder")
    return time.monotonic_ns()


def _stop(client: ModbusTcpClient, target: ModbusTargetConfig, hist: Histogram,
          counts: dict[str, int]) -> None:
    t0 = time.monotonic_ns()
    try:
        ok = not client.write_coil(target.permit_coil, False, device_id=target.unit).isError()
    except ModbusException:
        ok = False
    if ok:
        hist.record(time.monotonic_ns() - t0)
        counts["stops_written"] += 1
    else:
        counts["stop_failures"] += 1
