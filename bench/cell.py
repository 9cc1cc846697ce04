"""The cell under test: simulated PLC, monitor, frame feeder and interlock, each a real process.

Shell, wiring only. ``BenchCell`` writes the cell's config (the bench load's sources named
as the feeder names them, the bench bundle, the interlock with a Modbus target at the bench
PLC's port and D = ``deadline_ms``, a reset token, ``bus.monitor_ctl`` for the monitor's
counters, the real-time priorities of ``tripwire.stack.demo_table``, the CPUs of
``placement``: one for the monitor's loop, another for its I/O thread and the interlock),
then brings the
processes up in the order their dependencies need, waiting on control sockets, never on
sleeps:

1. the PLC (bench.plc_host): its control socket reports the Modbus port, written into the
   config;
2. ``tripwire run monitor``: ready when its status socket answers (warm and looping);
3. the feeder (bench.feeder, PUB, paced, with the fault schedule): ready when the monitor
   has accepted frames from every source;
4. ``tripwire run interlock``: ready when it reports ARMED.

Priorities are demo_table's: interlock 50, monitor 40, and the sim's 30 for both the feeder
and the PLC (one process in the demo, two here; a PLC one step above the feeder measured no
faster stop writes).

Leaving the block (also on an exception or Ctrl-C) stops everything that was started: the
feeder, the interlock (its ``shutdown`` command, then SIGTERM), the monitor (SIGTERM: it logs
``monitor_stopped`` with its latency summaries), the PLC; the ipc folder is removed. It
decides nothing about the measurement (bench.run does).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from bench.errors import BenchSetupError
from bench.feeder import Feeder, FeedPlan, source_name
from bench.plc_host import PlcProcess
from bench.schedule import FaultWindow
from bench.signals import IDLE_RMS_BELOW, BenchLoad
from tripwire import config
from tripwire.control import ControlTimeout, command
from tripwire.stack import demo_table
from tripwire.supervisor import Supervisor

CELL = "bench"
RESET_TOKEN = "bench-reset"
POLL_S = 0.05
MONITOR_READY_S = 180.0  # numba compiles its kernels on a cold cache
FRAMES_READY_S = 60.0
ARMED_S = 60.0
FEEDER_HWM = 1000
PLC_PRIORITY = 45  # SCHED_FIFO: monitor 40 < PLC < interlock 50 (see start)


@dataclass(frozen=True, slots=True)
class CellPlan:
    load: BenchLoad
    bundle: Path
    deadline_ms: float
    schedule: tuple[FaultWindow, ...]
    stream_s: float
    seed: int
    run_dir: Path


def placement(available: Iterable[int]) -> dict[str, list[int]]:
    """The CPUs of the monitor's loop, of its ZeroMQ I/O thread and of the interlock: with two
    or more of ``available``, the monitor's loop alone on the highest, the interlock and the
    monitor's I/O thread on the lowest; with one, nothing is pinned.

    Apart, where the demo's light cell shares one CPU: at plant load the two wake each other
    thousands of times a second, and on a shared CPU each verdict message preempts the
    monitor. The monitor's I/O thread goes with the interlock: beside the loop, at the same
    SCHED_FIFO priority, it waits while the loop computes and frames queue in the kernel; on
    the other CPU it moves them meanwhile. On the 2-core VM at 16 x 64 x 25.6 kHz this took
    the least CPU of the placements tried and missed the fewest deadlines (closing note of
    issue 4, session 6)."""
    cpus = sorted(set(available))
    if len(cpus) < 2:
        return {"monitor": [], "monitor_io": [], "interlock": []}
    return {"monitor": [cpus[-1]], "monitor_io": [cpus[0]], "interlock": [cpus[0]]}


def cell_table(plan: CellPlan, endpoints: dict[str, str], plc_port: int,
               cpus: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """The config the monitor and interlock load; ``cpus``: their placement (default:
    unpinned)."""
    cpus = cpus or placement(())
    load = plan.load
    demo = demo_table(bundle=str(plan.bundle), deadline_ms=plan.deadline_ms,
                      reset_token=RESET_TOKEN)
    il = demo["interlock"]
    return {
        "bus": {**endpoints, "cell": CELL},
        "sources": [{"id": m + 1, "name": source_name(m), "channels": list(load.channel_names()),
                     "sample_rate_hz": load.rate_hz, "frame_samples": load.frame_samples}
                    for m in range(load.machines)],
        "monitor": {**demo["monitor"], "window": load.window, "hop": load.hop,
                    "cpus": cpus["monitor"], "io_cpus": cpus["monitor_io"]},
        "interlock": {**il, "cpus": cpus["interlock"], "journal": str(plan.run_dir / "journal.sqlite"),
                      "modbus": {"port": plc_port}},
        "log": {"format": "json", "level": "info"},
        # With still machines, the monitor reads which ones from their first channel's level
        # and skips the model for their windows (monitor.idle_skip).
        **({"decision": {"idle_channel": load.channel_names()[0],
                         "idle_rms_below": IDLE_RMS_BELOW}} if load.idle else {}),
    }


class BenchCell:
    """``with BenchCell(plan) as cell:`` every process of the cell runs inside the block."""

    def __init__(self, plan: CellPlan, note: Callable[[str], None] = lambda s: None) -> None:
        self.plan = plan
        self.note = note
        self.ipc_dir = Path(tempfile.mkdtemp(prefix="tw-bench-"))  # ipc paths are short
        self.endpoints = {name: f"ipc://{self.ipc_dir}/{name}" for name in
                          ("frames", "monitor_out", "interlock_cmd", "monitor_ctl", "sim_ctl")}
        self.config_path = plan.run_dir / "tripwire.toml"
        self.feeder_report = plan.run_dir / "feeder.json"
        self.sup = Supervisor(plan.run_dir / "logs")
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.cfg: config.Config | None = None
        self.cpus = placement(os.sched_getaffinity(0))
        self._stack = contextlib.ExitStack()
        self.plc: PlcProcess | None = None
        self.feeder: Feeder | None = None
        self.pids: dict[str, int] = {}

    # -- control --------------------------------------------------------------------------
    def monitor(self, timeout_ms: float = 2000.0) -> dict[str, Any]:
        return command(self.ctx, self.endpoints["monitor_ctl"], "status", timeout_ms=timeout_ms)

    def interlock(self, cmd: str, timeout_ms: float = 2000.0, **kw: str) -> dict[str, Any]:
        return command(self.ctx, self.endpoints["interlock_cmd"], cmd, timeout_ms=timeout_ms, **kw)

    def plc_status(self, since: int = 0) -> dict[str, Any]:
        """The PLC's state and its write records from index ``since`` on."""
        if self.plc is None:
            raise BenchSetupError("the bench PLC is not running")
        return self.plc.status(since)

    def check_alive(self) -> None:
        """Raise if a process of the cell has ended."""
        for child in self.sup.children.values():
            if not child.alive():
                raise BenchSetupError(f"{child.name} exited with code {child.proc.returncode}:\n"
                                      f"{child.tail()}")
        if self.feeder is not None and self.feeder.returncode() not in (None, 0):
            raise BenchSetupError(self.feeder.failure())
        if self.plc is not None and self.plc.proc is not None and self.plc.proc.poll() is not None:
            raise BenchSetupError(f"the bench PLC exited with {self.plc.proc.returncode}")

    def _wait(self, what: str, probe: Callable[[], bool], timeout_s: float,
              seen: Callable[[], str] = lambda: "") -> None:
        """Until ``probe`` holds; past ``timeout_s`` a setup error names ``what`` and what
        ``seen`` says was last observed."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            with contextlib.suppress(ControlTimeout):
                if probe():
                    return
            if time.monotonic() > deadline:
                last = seen()
                raise BenchSetupError(f"{what}: not after {timeout_s:.0f} s"
                                      + (f" ({last})" if last else ""))
            time.sleep(POLL_S)

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> BenchCell:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        plan, load = self.plan, self.plan.load
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        # A kept work dir may hold an earlier run's journal (its latch would be restored) and
        # logs (whose last lines would be read as this run's): start clean.
        for old in (self.feeder_report, *(plan.run_dir / f"journal.sqlite{x}"
                                          for x in ("", "-wal", "-shm"))):
            old.unlink(missing_ok=True)
        shutil.rmtree(plan.run_dir / "logs", ignore_errors=True)
        demo = demo_table(bundle="")
        self.note("starting the PLC")
        # The PLC stands for hardware outside this host, which answers within its own scan
        # whatever this host's load: above the monitor, below the interlock (its work is a
        # few requests a second). The demo's sim, which also makes the plant's frames, stays
        # below the monitor.
        self.plc = self._stack.enter_context(PlcProcess(
            self.endpoints["sim_ctl"], plan.run_dir / "logs" / "plc.log",
            priority=PLC_PRIORITY))
        if self.plc.proc is not None:
            self.pids["plc"] = self.plc.proc.pid
        table = cell_table(plan, self.endpoints, self.plc.port, self.cpus)
        try:
            self.cfg = config.from_dict(table)
        except config.ConfigError as e:
            raise BenchSetupError(f"bench config refused: {e}") from None
        self.config_path.write_text(config.dumps_toml(config.to_dict(self.cfg)))
        self.note("starting the monitor")
        self.pids["monitor"] = self.sup.start("monitor", "monitor", self.config_path).pid
        self._wait("monitor ready", lambda: bool(self.monitor(timeout_ms=500).get("ok")),
                   MONITOR_READY_S)
        self.note("starting the feeder")
        feed = FeedPlan(load, self.endpoints["frames"], cell=CELL, socket="pub", paced=True,
                        seed=plan.seed, hwm=FEEDER_HWM, stream_s=plan.stream_s,
                        schedule=plan.schedule, priority=demo["sim"]["realtime_priority"],
                        report_path=str(self.feeder_report))
        self.feeder = self._stack.enter_context(Feeder(feed))
        self.pids["feeder"] = self.feeder.pid
        ids = {str(m + 1) for m in range(load.machines)}
        self._wait("frames from every source", lambda: ids <= {
            k for k, v in self.monitor(timeout_ms=500).get("last_seq", {}).items() if v >= 0},
            FRAMES_READY_S)
        self.note("starting the interlock")
        self.pids["interlock"] = self.sup.start("interlock", "interlock", self.config_path).pid
        last: dict[str, Any] = {}

        def armed() -> bool:
            last.clear()
            last.update(self.interlock("status", timeout_ms=500))
            return last.get("state") == "ARMED"

        self._wait("interlock ARMED", armed, ARMED_S, lambda: _not_armed(last))

    def feeder_sent(self) -> int | None:
        """Frames the feeder reported sending (None before it has ended)."""
        try:
            return int(json.loads(self.feeder_report.read_text())["sent"])
        except (OSError, ValueError, KeyError):
            return None

    def stop_feeder(self) -> int | None:
        feeder, self.feeder = self.feeder, None
        if feeder is not None:
            feeder.__exit__(None, None, None)
        return self.feeder_sent()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.stop_feeder()
            il = self.sup.children.get("interlock")
            if il is not None and il.alive():
                with contextlib.suppress(ControlTimeout, zmq.ZMQError):
                    self.interlock("shutdown", timeout_ms=2000)
                self.sup.wait("interlock", 5.0)
            self.sup.close()
        finally:
            self._stack.close()
            self.ctx.destroy(linger=0)
            shutil.rmtree(self.ipc_dir, ignore_errors=True)

    def log_event(self, name: str, event: str) -> dict[str, Any] | None:
        """The last ``event`` line a child (``monitor``, ``interlock``) logged, parsed."""
        path = self.plan.run_dir / "logs" / f"{name}.log"
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            if f'"{event}"' in line:
                with contextlib.suppress(ValueError):
                    got = json.loads(line)
                    if isinstance(got, dict) and got.get("event") == event:
                        return got
        return None


def _not_armed(status: dict[str, Any]) -> str:
    """What an interlock's last status says about why it is not ARMED."""
    if not status:
        return "its status socket did not answer"
    counters = status.get("counters") or {}
    facts = [f"state {status.get('state')}"]
    if status.get("trip_reason"):
        facts.append(f"trip reason {status['trip_reason']}")
    if status.get("selftest"):
        facts.append(f"self-test: {status['selftest']}")
    if counters.get("deadline_misses"):
        facts.append(f"{counters['deadline_misses']} deadline misses: the cell may not keep up "
                     "with this load")
    return "; ".join(facts)
