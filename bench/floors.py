"""Raw stage floors, measured in the same run as the pipeline: bus hop, model call, PLC write.

Shell: real ZeroMQ sockets, a real onnxruntime session, a real pymodbus server on a free
loopback port; reads ``time.monotonic_ns()`` around each operation. Each function sets up
what it measures, measures, and tears it all down (sockets closed with linger 0, server
stopped, thread joined) before it returns plain dicts of figures (percentiles in µs from
``tripwire.latency.Histogram``). It decides nothing about the pipeline.

- ``bus_hop``: one bench-size frame (header with the send time + channels x frame_samples
  float32) from PUB to SUB over ``ipc://``, one message in flight at a time, in four ways:
  one part (header and payload joined) or two parts (header, payload), each with
  ``copy=True`` and ``copy=False`` on both ends. pyzmq copies a part under
  ``zmq.COPY_THRESHOLD`` (64 KiB) whatever ``copy`` says, so at 32 KiB the modes should tie;
  the figures say which wins here, measured rather than assumed.
- ``model_call``: one CPU session of the bench model (one intra-op thread, as the monitor
  runs it) at batch 1 and batch 32.
- ``plc_write``: a permit write round trip with the interlock's ``ModbusStopWriter`` and with
  pymodbus' default ``ModbusTcpClient.write_coil``, against the same simulated PLC.
- ``generator_rate``: how fast the signal bank hands out frames (the bench's own floor).
- ``measure``: all of them at a bank's load, as ``tripwire bench`` reports them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import zmq
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from bench.errors import BenchSetupError
from bench.figures import latency_us, rate_per_s, ratio
from bench.model import BenchModel
from bench.plc import BenchPlc
from bench.signals import SignalBank
from interlock.errors import StopWriteFailed
from interlock.modbus_writer import ModbusStopWriter
from models.manifest import INPUT_NAME
from models.scorer import session_options
from tripwire.latency import Histogram
from tripwire.messages import FRAME_HEADER, FRAME_MAGIC, VERSION

HOP_VARIANTS: dict[str, tuple[int, bool]] = {  # name: (parts, copy)
    "one_part_copy": (1, True),
    "one_part_nocopy": (1, False),
    "two_part_copy": (2, True),
    "two_part_nocopy": (2, False),
}
WARM_CALLS = 50
HOP_ROUND = 100  # messages per layout per round
JOIN_TIMEOUT_MS = 5000
WRITE_TIMEOUT_MS = 1000.0  # generous: the floor measures latency, a timeout is a failure


def _header(channels: int, samples: int, seq: int, t_pub_ns: int) -> bytes:
    # A frame header as the wire carries it; crc left 0: the hop floor times transport only
    # (the monitor's crc and validation are a stage of their own).
    return FRAME_HEADER.pack(FRAME_MAGIC, VERSION, 1, 0, channels, 0, samples, 1, seq,
                             t_pub_ns, t_pub_ns, 1.0, 0, 0, 0)


class _HopPair:
    """One PUB->SUB pair over ipc, in one message layout."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, parts: int, copy: bool) -> None:
        self.parts, self.copy = parts, copy
        self.hist = Histogram.new()
        self.pub = ctx.socket(zmq.PUB)
        self.sub = ctx.socket(zmq.SUB)
        for s in (self.pub, self.sub):
            s.setsockopt(zmq.LINGER, 0)
        self.pub.bind(endpoint)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint)

    def join(self, endpoint: str) -> None:
        """Slow joiner: wait until the subscription has reached the publisher."""
        deadline = time.monotonic_ns() + JOIN_TIMEOUT_MS * 1_000_000
        while not self.sub.poll(10):
            if time.monotonic_ns() > deadline:
                raise BenchSetupError(f"bus hop: no subscription on {endpoint}")
            self.pub.send(b"probe")
        while self.sub.poll(0):
            self.sub.recv()

    def send_one(self, payload: np.ndarray, seq: int, record: bool) -> None:
        """One message in flight: stamp, send, receive, read the stamp and the samples."""
        channels, samples = payload.shape
        view = payload.data.cast("B")
        t_pub = time.monotonic_ns()
        head = _header(channels, samples, seq, t_pub)
        if self.parts == 1:
            self.pub.send(b"".join((head, view)), copy=self.copy)
            msg = self.sub.recv(copy=self.copy)
            buf = memoryview(msg if isinstance(msg, bytes) else msg.buffer)
            head_in, body = buf[: FRAME_HEADER.size], buf[FRAME_HEADER.size :]
        else:
            self.pub.send_multipart((head, view), copy=self.copy)
            got = self.sub.recv_multipart(copy=self.copy)
            head_in, body = (memoryview(p if isinstance(p, bytes) else p.buffer) for p in got)
        t_sent = FRAME_HEADER.unpack_from(head_in)[9]
        np.frombuffer(body, dtype="<f4").reshape(channels, samples)
        t_in = time.monotonic_ns()
        if record:
            self.hist.record(t_in - t_sent)

    def close(self) -> None:
        self.sub.close(0)
        self.pub.close(0)


def bus_hop(channels: int = 64, frame_samples: int = 128, messages: int = 2000) -> dict[str, Any]:
    """All four message layouts at one frame size, interleaved in rounds so that a change in
    the machine's load falls on every layout alike; ``best`` is the lowest p99 (then p50)."""
    payload = np.random.default_rng(0).standard_normal((channels, frame_samples)).astype(np.float32)
    ctx: zmq.Context[Any] = zmq.Context()
    pairs: dict[str, _HopPair] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp:
            for name, (parts, copy) in HOP_VARIANTS.items():
                endpoint = f"ipc://{Path(tmp) / name}"
                pairs[name] = _HopPair(ctx, endpoint, parts, copy)
                pairs[name].join(endpoint)
            for pair in pairs.values():
                for i in range(WARM_CALLS):
                    pair.send_one(payload, i, record=False)
            seq = 0
            while seq < messages:
                chunk = min(HOP_ROUND, messages - seq)
                for pair in pairs.values():
                    for i in range(chunk):
                        pair.send_one(payload, seq + i, record=True)
                seq += chunk
    except zmq.ZMQError as e:
        raise BenchSetupError(f"bus hop: {e}") from None
    finally:
        for pair in pairs.values():
            pair.close()
        ctx.destroy(linger=0)
    variants = {name: latency_us(pair.hist) for name, pair in pairs.items()}
    best = min(variants, key=lambda k: (variants[k]["p99_us"], variants[k]["p50_us"]))
    return {
        "frame_bytes": payload.nbytes,
        "copy_threshold_bytes": int(zmq.COPY_THRESHOLD),
        "variants": variants,
        "best": best,
    }


def open_session(model: BenchModel) -> ort.InferenceSession:
    """A CPU session of the bench model, configured as the monitor's scorer configures one."""
    try:
        return ort.InferenceSession(model.onnx_bytes, session_options(1),
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises bare Exception subclasses
        raise BenchSetupError(f"cannot open the bench model: {e}") from None


def model_call(model: BenchModel, calls: int = 2000, batches: tuple[int, ...] = (1, 32)) -> dict[str, Any]:
    """Latency per ``session.run`` at each batch size, and the rows per second it implies."""
    session = open_session(model)
    out: dict[str, Any] = {"n_features": model.n_features}
    rows = model.rows
    for b in batches:
        picks = [rows[np.arange(i, i + b) % rows.shape[0]] for i in range(0, 16 * b, b)]
        hist = Histogram.new()
        busy_ns = 0
        for i in range(calls + WARM_CALLS):
            x = picks[i % len(picks)]
            t0 = time.monotonic_ns()
            session.run(None, {INPUT_NAME: x})
            dt = time.monotonic_ns() - t0
            if i >= WARM_CALLS:
                hist.record(dt)
                busy_ns += dt
        out[f"batch_{b}"] = {**latency_us(hist), "rows_per_s": rate_per_s(calls * b, busy_ns)}
    return out


def _timed(write: Callable[[bool], bool], on: bool, hist: Histogram, record: bool) -> bool:
    t0 = time.monotonic_ns()
    ok = write(on)
    if ok and record:
        hist.record(time.monotonic_ns() - t0)
    return ok


def plc_write(writes: int = 500) -> dict[str, Any]:
    """Permit write round trips, ours vs pymodbus' default client, on one simulated PLC.
    The two clients take turns write by write, so both see the same machine load."""
    with BenchPlc() as plc:
        target = plc.client_target(WRITE_TIMEOUT_MS)
        client = ModbusTcpClient(target.host, port=target.port)
        try:
            with ModbusStopWriter(target) as ours:
                if not client.connect():  # type: ignore[no-untyped-call]
                    raise BenchSetupError(f"pymodbus client cannot connect to port {target.port}")
                ours.connect()

                def ours_write(on: bool) -> bool:
                    try:
                        ours.write_permit(on)
                    except StopWriteFailed:
                        return False
                    return True

                def default_write(on: bool) -> bool:
                    try:
                        return not client.write_coil(target.permit_coil, on,
                                                     device_id=target.unit).isError()
                    except ModbusException:
                        return False

                hists = {"modbus_writer": Histogram.new(), "pymodbus_default": Histogram.new()}
                failed = dict.fromkeys(hists, 0)
                warm = WARM_CALLS // 5
                for i in range(writes + warm):
                    for name, write in (("modbus_writer", ours_write),
                                        ("pymodbus_default", default_write)):
                        if not _timed(write, i % 2 == 0, hists[name], i >= warm):
                            failed[name] += 1
        finally:
            client.close()  # type: ignore[no-untyped-call]
        accepted = plc.writes_total()
    figs = {name: {**latency_us(h), "failed": failed[name]} for name, h in hists.items()}
    return {
        **figs,
        "plc_accepted_writes": accepted,
        "p99_ratio_default_over_ours": ratio(figs["pymodbus_default"]["p99_us"],
                                             figs["modbus_writer"]["p99_us"]),
    }


def generator_rate(bank: SignalBank, stream_s: float = 1.0) -> dict[str, Any]:
    """Frames of every machine for ``stream_s`` seconds of stream, as fast as the bank gives."""
    load = bank.load
    steps = max(1, round(stream_s * load.rate_hz / load.frame_samples))
    t0 = time.monotonic_ns()
    n = 0
    for k in range(steps):
        for m in range(load.machines):
            n += bank.frame(m, k).size
    elapsed = time.monotonic_ns() - t0
    made = rate_per_s(n, elapsed)
    return {"samples_per_s": made, "load_samples_per_s": load.samples_per_s,
            "headroom": ratio(made, load.samples_per_s)}


def measure(bank: SignalBank, model: BenchModel, *, messages: int = 2000, calls: int = 2000,
            writes: int = 500) -> dict[str, Any]:
    """Every floor at the bank's load: what ``tripwire bench`` reports under ``floors``."""
    load = bank.load
    return {
        "bus_hop": bus_hop(load.channels, load.frame_samples, messages),
        "model_call": model_call(model, calls),
        "plc_write": plc_write(writes),
        "generator": generator_rate(bank),
    }
