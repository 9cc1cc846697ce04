"""Rig and single trial of the ``stop_write_errors`` row: wrong replies to the stop write.

``ErrorRig``: a PLC that answers the stop write wrongly on demand (the scripted Modbus peer,
or asyncua with injected statuses behind a fault proxy that can rewrite WriteResponses) and
an interlock process writing it. ``error_trial``: set one wrong reply, request a stop, and
judge on the interlock's reports that it is a failed delivery (then clear it, let the late
delivery through, re-arm).

Campaign shell: waits poll the interlock's status with deadlines.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from asyncua.ua.status_codes import StatusCodes

from campaign.case import Trial
from campaign.opcua_rewrite import ServiceResultRewrite
from campaign.plc_cell import PLC_NAMESPACE, InterlockCell, active_alarms
from campaign.plc_hosts import StatusOpcuaPlc
from campaign.plc_modbus_peer import ScriptedModbusPlc
from campaign.plc_proxy import FaultProxy
from campaign.plc_trials import HEAL_S, READY_S, TIMING, quiet, rearm, state_of, undelivered_problems
from tripwire.control import trip_count

LATE_REPLY_S = 0.2  # the "late" Modbus reply comes this long after the request


class ErrorRig:
    """A PLC whose stop replies are wrong on demand, and an interlock writing it."""

    def __init__(self, kind: str, work_dir: Path) -> None:
        self.kind = kind
        self.work_dir = work_dir
        self._stack = ExitStack()
        self.modbus: ScriptedModbusPlc | None = None
        self.opcua: StatusOpcuaPlc | None = None
        self.rewrite = ServiceResultRewrite()

    def __enter__(self) -> "ErrorRig":
        with ExitStack() as stack:
            if self.kind == "modbus":
                peer = stack.enter_context(ScriptedModbusPlc(watchdog_ms=TIMING.plc_watchdog_ms,
                                                             late_s=LATE_REPLY_S))
                self.modbus = peer
                cell = InterlockCell(self.work_dir, "modbus", targets=["modbus"], modbus_port=peer.port,
                                     timing=TIMING)
            else:
                server = stack.enter_context(StatusOpcuaPlc(PLC_NAMESPACE, TIMING.plc_watchdog_ms))
                self.opcua = server
                port = int(server.url.rsplit(":", 1)[1])
                proxy = stack.enter_context(FaultProxy(("127.0.0.1", port), reply_filter=self.rewrite.filter))
                cell = InterlockCell(self.work_dir, "opcua", targets=["opcua"],
                                     opcua_url=f"opc.tcp://127.0.0.1:{proxy.port}", timing=TIMING)
            self.cell = stack.enter_context(cell)
            ok, st = self.cell.wait(quiet(self.kind), READY_S * 2)
            if not ok:
                raise RuntimeError(f"{self.kind} rig did not arm: {st['selftest']}; {self.cell.log_tail(5)}")
            self._stack = stack.pop_all()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    def set_fault(self, level: str, name: str) -> None:
        if self.modbus is not None:
            self.modbus.fault = name
        elif self.opcua is not None:
            code = int(getattr(StatusCodes, name))
            if level == "opcua-header":
                self.rewrite.code = code
            else:
                self.opcua.fault = (code, level == "opcua-service")

    def clear_fault(self) -> None:
        if self.modbus is not None:
            self.modbus.fault = None
        if self.opcua is not None:
            self.opcua.fault = None
        self.rewrite.code = None

    def faults_served(self) -> int:
        if self.modbus is not None:
            return self.modbus.stop_writes
        return self.rewrite.rewritten + (self.opcua.stop_writes if self.opcua is not None else 0)


def error_trial(rig: ErrorRig, code: str) -> Trial:
    try:
        return _error_trial(rig, code)
    except Exception as e:  # noqa: BLE001 - a broken trial is a failed one, with the reason
        rig.clear_fault()
        return Trial(False, note=f"{code}: {type(e).__name__}: {e}")


def _error_trial(rig: ErrorRig, code: str) -> Trial:
    level, name = code.split(":", 1)
    cell = rig.cell
    ok, st = cell.wait(quiet(rig.kind), READY_S)
    if not ok:
        return Trial(False, note=f"{code}: not armed and quiet: {state_of(st)}, "
                                f"alarms {sorted(active_alarms(st))}")
    trips0, retries0 = trip_count(st), st["counters"]["stop_retries"]
    served0 = rig.faults_served()
    problems: list[str] = []
    rig.set_fault(level, name)
    try:
        reply = cell.trip(f"campaign stop_write_errors {code}")
        rec = reply.get("trip")
        if not reply.get("tripped") or not isinstance(rec, dict):
            problems.append(f"the trip command did not trip: {reply.get('state')}")
        elif rec["acked"]:
            problems.append(f"FALSE SUCCESS: stop reported delivered (via {rec['target']})")
        ok, st = cell.wait(lambda s: s["counters"]["stop_retries"] >= retries0 + 2, HEAL_S)
        problems += undelivered_problems(st, trips0, "while the PLC answers wrongly", pending=True)
        if rig.faults_served() <= served0:
            problems.append("the wrong reply was never served (the fault did not apply)")
    finally:
        rig.clear_fault()
    ok, st = cell.wait(lambda s: not s["stop_undelivered"], HEAL_S)
    if not ok:
        problems.append("the stop was not delivered once the PLC answered right")
    problems += undelivered_problems(st, trips0, "after the late delivery", pending=False)
    problem = rearm(cell)
    if problem is not None:
        problems.append(problem)
    return Trial(not problems, note=f"{code}: " + "; ".join(problems))
