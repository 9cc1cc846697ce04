"""A real interlock process for the PLC rows, and the monitor heartbeats it needs to arm.

``InterlockCell`` writes a config, starts ``tripwire run interlock --config F`` through the
``Supervisor`` with a ``MonitorStandIn`` (``campaign.plc_monitor``: a process whose real
ZeroMQ PUB socket sends monitor heartbeats, nothing else) and talks to the interlock over
its command socket. The PLC rows
judge what the interlock itself reports (trip records, alarms, status) and read the
process's file descriptors, threads and memory from ``/proc/<pid>``.

Cell timing: the PLC rows are about the stop path and the PLC heartbeat, not the monitor's
deadline, so the cell's liveness is generous (a loaded 2-core machine has stalled the
stand-in's heartbeats for more than 150 ms), and D with it (liveness must stay below D);
what is left of D for the stop is kept short, as in a real cell. T_hb is the interlock's
default, 100 ms. The fault detection bound 2 x T_hb has to hold T_hb (the next heartbeat
write) + a target timeout + a stop write that may be blocking the loop meanwhile.

Campaign shell: it starts and stops processes and sockets; endpoints live in a short
private temp dir (ipc paths are limited to ~100 bytes), the journal and logs in the case's
work dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from tripwire import config
from tripwire.control import ControlTimeout, command
from tripwire.supervisor import Supervisor

RESET_TOKEN = "campaign-plc"
REPO_ROOT = Path(__file__).resolve().parents[1]  # where ``campaign`` imports from
PLC_NAMESPACE = "urn:tripwire:plc"
START_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_MS = 5000.0
POLL_S = 0.005


@dataclass(frozen=True, slots=True)
class CellTiming:
    deadline_ms: float = 2000.0
    liveness_ms: float = 1000.0
    # No verdicts flow here; the budget only sets what is left of D for the stop (D minus
    # it): 10 ms, near a real cell's 4 ms, so that a retry within D stays as short as there.
    verdict_budget_ms: float = 1990.0
    plc_heartbeat_ms: float = 100.0  # T_hb
    plc_watchdog_ms: int = 300  # T_wd = 3 T_hb
    # Above the 3 / 5 ms defaults: the PLC servers are Python, in the campaign's process.
    modbus_timeout_ms: float = 20.0
    opcua_timeout_ms: float = 30.0
    monitor_heartbeat_ms: float = 10.0


@dataclass(frozen=True, slots=True)
class ProcStats:
    fds: int
    threads: int
    rss_kb: int


def proc_stats(pid: int) -> ProcStats:
    """Open file descriptors, threads and resident memory of a live process."""
    proc = Path(f"/proc/{pid}")
    fds = len(os.listdir(proc / "fd"))
    threads = len(os.listdir(proc / "task"))
    rss_kb = 0
    for line in (proc / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return ProcStats(fds, threads, rss_kb)


class MonitorStandIn:
    """``campaign.plc_monitor`` in its own process: monitor heartbeats every ``period_ms``,
    stamped with the monitor's connection identity."""

    def __init__(self, endpoint: str, period_ms: float, cell: str, monitor_id: int, log_path: Path) -> None:
        self._args = [endpoint, f"{period_ms:g}", cell, str(monitor_id)]
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "MonitorStandIn":
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "campaign.plc_monitor", *self._args], cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class InterlockCell:
    """One interlock process with its targets, policy and a monitor stand-in."""

    def __init__(self, work_dir: Path, name: str, *, targets: list[str], modbus_port: int = 0,
                 opcua_url: str = "", stop_policy: str = "any", timing: CellTiming = CellTiming()) -> None:
        self.work_dir = work_dir
        self.name = name
        self.timing = timing
        self._ipc_dir = Path(tempfile.mkdtemp(prefix="twplc-"))
        t = timing
        self.cfg = config.from_dict({
            "sources": [{"id": 1, "name": "pump-1", "channels": ["vib_x", "vib_y", "current", "temp"]}],
            "bus": {name: f"ipc://{self._ipc_dir}/{name}"
                    for name in ("frames", "monitor_out", "interlock_cmd", "sim_ctl")},
            "interlock": {
                "deadline_ms": t.deadline_ms, "liveness_ms": t.liveness_ms,
                "verdict_budget_ms": t.verdict_budget_ms, "plc_heartbeat_ms": t.plc_heartbeat_ms,
                "targets": targets, "stop_policy": stop_policy,
                "journal": str(work_dir / f"{name}-journal.sqlite"), "reset_token": RESET_TOKEN,
                "modbus": {"port": modbus_port or 1, "timeout_ms": t.modbus_timeout_ms},
                "opcua": {"url": opcua_url or "opc.tcp://127.0.0.1:4840", "namespace": PLC_NAMESPACE,
                          "timeout_ms": t.opcua_timeout_ms},
            },
            "log": {"format": "json"},
        })
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._sup = Supervisor(work_dir / "logs")
        self._monitor = MonitorStandIn(self.cfg.bus.monitor_out, t.monitor_heartbeat_ms, self.cfg.bus.cell,
                                       self.cfg.monitor.monitor_id, work_dir / "logs" / f"{name}-monitor.log")
        self.pid = 0

    # -- lifecycle --
    def __enter__(self) -> "InterlockCell":
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            path = self.work_dir / f"{self.name}.toml"
            path.write_text(config.dumps_toml(config.to_dict(self.cfg)))
            self._monitor.__enter__()
            child = self._sup.start(self.name, "interlock", path)
            self.pid = child.pid
            deadline = time.monotonic() + START_TIMEOUT_S
            while not self._answers():
                if not child.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"interlock {self.name} did not start: {child.tail()}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._sup.close(timeout_s=10.0)
        finally:
            self._monitor.__exit__(None, None, None)
            self._ctx.destroy(linger=0)
            shutil.rmtree(self._ipc_dir, ignore_errors=True)

    def alive(self) -> bool:
        child = self._sup.children.get(self.name)
        return child is not None and child.alive()

    def log_tail(self, lines: int = 20) -> str:
        child = self._sup.children.get(self.name)
        return "" if child is None else child.tail(lines)

    def _answers(self) -> bool:
        try:
            command(self._ctx, self.cfg.bus.interlock_cmd, "status", timeout_ms=500)
        except ControlTimeout:
            return False
        return True

    # -- commands --
    def cmd(self, name: str, **kw: str) -> dict[str, Any]:
        return command(self._ctx, self.cfg.bus.interlock_cmd, name, timeout_ms=COMMAND_TIMEOUT_MS, **kw)

    def status(self) -> dict[str, Any]:
        return self.cmd("status")

    def trip(self, reason: str) -> dict[str, Any]:
        return self.cmd("trip", reason=reason)

    def reset(self) -> dict[str, Any]:
        return self.cmd("reset", token=RESET_TOKEN)

    def wait(self, probe: Callable[[dict[str, Any]], bool], timeout_s: float,
             poll_s: float = POLL_S) -> tuple[bool, dict[str, Any]]:
        """Poll the status until ``probe`` holds; (held, last status)."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.status()
            if probe(st):
                return True, st
            if time.monotonic() > deadline:
                return False, st
            time.sleep(poll_s)

    def stats(self) -> ProcStats:
        return proc_stats(self.pid)


def active_alarms(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in st["alarms"] if a["active"]}
