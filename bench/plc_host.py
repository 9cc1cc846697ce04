"""The bench's simulated PLC in a process of its own: the sim's PLC program, Modbus face, scans.

Shell. ``tripwire bench`` needs the interlock to write a real PLC that judges its heartbeat
(sim.plc_logic's watchdog), without the sim process' plant and DAQ (the bench feeder is the
cell's DAQ). ``python -m bench.plc_host --control ENDPOINT`` runs, on one asyncio loop: the
PLC program (``PlcRuntime`` over ``PlcProgram``, scanned every ``--scan-ms``), its Modbus TCP
server (sim.plc_modbus, 127.0.0.1, a port the kernel picks) and a REP control socket speaking
the sim's control protocol (sim.control): ``status`` (ports, the PLC's state, its write
records) and ``stop``; ``schedule``, ``inject`` and ``clear`` are refused (there is no plant).
It takes ``--priority`` (SCHED_FIFO, as the demo's sim does) once its server is up.

``PlcProcess`` starts it as a child, waits on its control socket (never on a sleep) for the
port, and stops it (the ``stop`` request, then SIGTERM, then SIGKILL) when its block is left.
It holds no PLC rule of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import zmq
import zmq.asyncio

from bench.errors import BenchSetupError
from sim import control
from sim.errors import BadControlRequest, PlcStartError
from sim.plc_logic import PlcProgram
from sim.plc_modbus import ModbusPlc
from sim.plc_runtime import PlcRuntime
from tripwire import bus
from tripwire.config import FaultConfig, ModbusTargetConfig
from tripwire.control import ControlTimeout, sim_request
from tripwire.supervisor import end_process

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
POLL_S = 0.05


class PlcHost:
    """The sim's control handlers over a PLC without a plant."""

    def __init__(self, runtime: PlcRuntime) -> None:
        self.runtime = runtime
        self.port = 0
        self.done = asyncio.Event()

    def status(self, since: int) -> dict[str, Any]:
        s = self.runtime.snapshot()
        return {
            "ports": {"modbus": self.port},
            "plc": {"permit": s.permit, "heartbeat": s.heartbeat, "trip_reason": s.trip_reason,
                    "watchdog_ms": s.watchdog_ms, "state": int(s.state), "running": s.running,
                    "armed": s.armed, "watchdog_tripped": s.watchdog_tripped},
            "writes": [asdict(w) for w in self.runtime.writes(since)],
            "writes_total": s.writes_total,
        }

    def schedule(self) -> dict[str, Any]:
        raise BadControlRequest("unsupported_command: the bench PLC has no plant")

    def inject(self, fault: FaultConfig) -> dict[str, Any]:
        raise BadControlRequest("unsupported_command: the bench PLC has no plant")

    def clear(self, source: int) -> dict[str, Any]:
        raise BadControlRequest("unsupported_command: the bench PLC has no plant")

    def stop(self) -> None:
        self.done.set()


async def _control(rep: zmq.asyncio.Socket, host: PlcHost) -> None:
    while True:
        parts = await rep.recv_multipart()
        reply = control.handle(list(parts), host)
        await rep.send(reply.payload)
        if reply.stop:
            host.stop()


async def serve(endpoint: str, target: ModbusTargetConfig, watchdog_ms: float, scan_ms: float,
                priority: int) -> int:
    runtime = PlcRuntime(PlcProgram(watchdog_ms))
    host = PlcHost(runtime)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, host.stop)
    ctx = zmq.asyncio.Context()
    rep = ctx.socket(zmq.REP)
    rep.linger = 200  # the reply to "stop" may still be on its way out
    try:
        bus.bind(rep, endpoint)
        async with ModbusPlc(runtime, target, port=0) as server:
            host.port = server.port
            if priority:
                from tripwire import realtime  # structlog only when asked

                realtime.apply(priority, "bench_plc")
            gc.collect()
            gc.freeze()
            tasks = [asyncio.create_task(_control(rep, host)),
                     asyncio.create_task(runtime.run_scans(scan_ms))]
            await host.done.wait()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    except (zmq.ZMQError, OSError, PlcStartError) as e:
        print(f"bench.plc_host: {e}", file=sys.stderr)
        return 1
    finally:
        rep.close()
        ctx.term()
    return 0


class PlcProcess:
    """``with PlcProcess(endpoint, log_path) as plc: plc.port`` (the PLC's Modbus port)."""

    def __init__(self, endpoint: str, log_path: Path, *, target: ModbusTargetConfig | None = None,
                 watchdog_ms: float = 300.0, scan_ms: float = 5.0, priority: int = 0) -> None:
        self.endpoint = endpoint
        self.log_path = log_path
        self.target = target or ModbusTargetConfig()
        self.argv = [sys.executable, "-m", "bench.plc_host", "--control", endpoint,
                     "--unit", str(self.target.unit), "--permit-coil", str(self.target.permit_coil),
                     "--watchdog-ms", repr(watchdog_ms), "--scan-ms", repr(scan_ms),
                     "--priority", str(priority)]
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._ctx: zmq.Context[Any] | None = None

    def status(self, since: int = 0, timeout_ms: float = 1000.0) -> dict[str, Any]:
        """The PLC's state and its write records from index ``since`` on."""
        if self._ctx is None:
            raise BenchSetupError("the bench PLC is not running")
        return sim_request(self._ctx, self.endpoint, "status", timeout_ms=timeout_ms, since=since)

    def __enter__(self) -> PlcProcess:
        self._ctx = zmq.Context()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # closed in __exit__
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT)
            deadline = time.monotonic() + START_TIMEOUT_S
            while not self.port:
                if self.proc.poll() is not None:
                    raise BenchSetupError(f"the bench PLC exited with {self.proc.returncode}: "
                                          f"{self._tail()}")
                if time.monotonic() > deadline:
                    raise BenchSetupError(f"the bench PLC did not answer in {START_TIMEOUT_S:.0f} s")
                with contextlib.suppress(ControlTimeout):
                    self.port = int(self.status(timeout_ms=POLL_S * 4000)["ports"]["modbus"])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-500:].strip()
        except OSError:
            return ""

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ControlTimeout, zmq.ZMQError):
                if self._ctx is not None:
                    sim_request(self._ctx, self.endpoint, "stop", timeout_ms=1000)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                end_process(proc, STOP_TIMEOUT_S)
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
            self._ctx = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.port = 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.plc_host", description=__doc__)
    p.add_argument("--control", required=True)
    p.add_argument("--unit", type=int, default=1)
    p.add_argument("--permit-coil", type=int, default=0)
    p.add_argument("--watchdog-ms", type=float, default=300.0)
    p.add_argument("--scan-ms", type=float, default=5.0)
    p.add_argument("--priority", type=int, default=0)
    a = p.parse_args(argv)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    target = ModbusTargetConfig(unit=a.unit, permit_coil=a.permit_coil)
    return asyncio.run(serve(a.control, target, a.watchdog_ms, a.scan_ms, a.priority))


if __name__ == "__main__":
    sys.exit(main())
