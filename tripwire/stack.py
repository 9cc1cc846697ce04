"""Brings up a whole Tripwire cell on one host: sim, monitor and interlock processes.

Wiring only: it writes the config the children load, starts them in the order their
dependencies need (the sim first, because its PLC ports are chosen by the kernel), and
waits on their control sockets rather than on sleeps. The demo and the hardware-in-the-loop
tests share it.
"""

from __future__ import annotations

import copy
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

from tripwire import config
from tripwire.control import ControlTimeout, command, sim_request
from tripwire.supervisor import Supervisor

DEMO_CHANNELS = ["vib_x", "vib_y", "current", "temp"]


def demo_table(*, bundle: str, target: str = "modbus", deadline_ms: float = 10.0, seed: int = 0,
               fault: str | None = "bearing", fault_at_s: float = 10.0, fault_source: int = 1,
               duration_s: float = 30.0, reset_token: str = "") -> dict[str, Any]:
    """The demo plant: two rotating machines, one PLC, one stop target."""
    faults = [] if fault is None else [{"kind": fault, "source": fault_source, "at_s": fault_at_s}]
    # The monitor and the interlock share one CPU (the last one this process may use): a
    # stall of that CPU then stops both, and the interlock sees its own late wake-up instead
    # of a silent monitor (tripwire/realtime.py). The sim and any other load go elsewhere.
    cell_cpus = [max(os.sched_getaffinity(0))]
    return {
        "sources": [
            {"id": 1, "name": "pump-1", "channels": list(DEMO_CHANNELS)},
            {"id": 2, "name": "fan-2", "channels": list(DEMO_CHANNELS)},
        ],
        # Priorities: interlock above monitor above the simulated PLC and DAQ, all above normal
        # load; all block when idle. The sim stands for devices outside the host: normal-
        # priority load must not delay the PLC's reply (it did by 1-4 ms while a killed RT
        # monitor's 10 ms teardown held the other core), yet its heavier work (status replies,
        # asyncua) must never preempt the cell. It takes its priority once its servers are up
        # (asyncua's start-up would use up the RT budget).
        "monitor": {"bundle": bundle, "realtime_priority": 40, "cpus": cell_cpus},
        "interlock": {
            "deadline_ms": deadline_ms,
            # D - liveness is what a silent monitor leaves for the wake-up and the stop write
            # (~0.2 + ~0.6 ms, up to ~1.7 ms measured): at 0.9 D about 2 % of monitor kills,
            # stops and stalls were stopped later than D.
            "liveness_ms": deadline_ms * 0.8,
            "verdict_budget_ms": deadline_ms * 0.6,
            "targets": [target],
            "reset_token": reset_token,
            "realtime_priority": 50,
            "cpus": cell_cpus,
        },
        "sim": {"seed": seed, "duration_s": duration_s, "faults": faults, "realtime_priority": 30},
    }


class Stack:
    """Owns the run directory, the endpoints and the child processes of one cell."""

    def __init__(self, table: dict[str, Any], run_dir: Path) -> None:
        self.run_dir = run_dir
        self.ipc_dir = Path(tempfile.mkdtemp(prefix="tw-"))  # short path: ipc names are limited
        self.table = copy.deepcopy(table)
        bus = self.table.setdefault("bus", {})
        for name in ("frames", "monitor_out", "interlock_cmd", "sim_ctl"):
            bus.setdefault(name, f"ipc://{self.ipc_dir}/{name}")
        self.table.setdefault("interlock", {}).setdefault("journal", str(run_dir / "journal.sqlite"))
        self.table.setdefault("log", {"format": "json"})
        self.sup = Supervisor(run_dir / "logs")
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.cfg = self._write()
        self.ports: dict[str, int] = {}

    # -- config -------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.run_dir / "tripwire.toml"

    def _write(self) -> config.Config:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg = config.from_dict(self.table)  # validates before any child sees it
        self.config_path.write_text(config.dumps_toml(config.to_dict(cfg)))
        return cfg

    # -- lifecycle ----------------------------------------------------------------------
    def start_sim(self, timeout_s: float = 30.0) -> dict[str, int]:
        self.sup.start("sim", "sim", self.config_path)
        status = self._wait("sim", lambda: self.sim("status", timeout_ms=300), timeout_s)
        self.ports = {k: int(v) for k, v in status["ports"].items()}
        il = self.table["interlock"]
        il.setdefault("modbus", {})["port"] = self.ports["modbus"]
        il.setdefault("opcua", {})["url"] = f"opc.tcp://127.0.0.1:{self.ports['opcua']}"
        self.cfg = self._write()
        return self.ports

    def start_monitor(self) -> None:
        self.sup.start("monitor", "monitor", self.config_path)

    def start_interlock(self) -> None:
        self.sup.start("interlock", "interlock", self.config_path)

    def start_scada(self) -> str:
        """The operators' OPC-UA gateway on a free loopback port; returns its endpoint."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        endpoint = f"opc.tcp://127.0.0.1:{port}"
        self.table.setdefault("scada", {})["endpoint"] = endpoint
        self.cfg = self._write()
        self.sup.start("scada", "scada", self.config_path)
        return endpoint

    def start_all(self, timeout_s: float = 120.0, scada: bool = False) -> None:
        self.start_sim()
        if scada:
            self.start_scada()
        self.start_interlock()
        self.start_monitor()
        self.wait_state("ARMED", timeout_s)

    def wait_state(self, state: str, timeout_s: float) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            st = self.interlock("status", timeout_ms=300)
            return st if st.get("state") == state else None
        return self._wait("interlock", probe, timeout_s, what=f"state {state}")

    def _wait(self, name: str, probe: Any, timeout_s: float, what: str = "ready") -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for child in self.sup.children.values():
                if not child.alive() and child.name in ("sim", "monitor", "interlock", "scada"):
                    raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}:\n{child.tail()}")
            try:
                got = probe()
                if got:
                    return dict(got)
            except ControlTimeout:
                pass
            time.sleep(0.05)
        waited = self.sup.children.get(name)
        raise TimeoutError(f"{name} not {what} after {timeout_s:.0f} s\n{waited.tail() if waited else ''}")

    # -- control ------------------------------------------------------------------------
    def interlock(self, cmd: str, timeout_ms: float = 1000.0, **kw: str) -> dict[str, Any]:
        return command(self.ctx, self.cfg.bus.interlock_cmd, cmd, timeout_ms=timeout_ms, **kw)

    def sim(self, cmd: str, timeout_ms: float = 1000.0, **kw: Any) -> dict[str, Any]:
        return sim_request(self.ctx, self.cfg.bus.sim_ctl, cmd, timeout_ms=timeout_ms, **kw)

    def close(self) -> dict[str, int | None]:
        try:
            if "interlock" in self.sup.children and self.sup.children["interlock"].alive():
                self.interlock("shutdown", timeout_ms=2000)
                self.sup.wait("interlock", 5.0)
        except ControlTimeout:
            pass
        try:
            if "sim" in self.sup.children and self.sup.children["sim"].alive():
                self.sim("stop", timeout_ms=1000)
                self.sup.wait("sim", 5.0)
        except ControlTimeout:
            pass
        codes = self.sup.close()
        self.ctx.destroy(linger=0)
        shutil.rmtree(self.ipc_dir, ignore_errors=True)
        return codes

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
