"""Link rigs and single trials of the PLC rows (``campaign.plc`` holds the rows themselves).

- ``LinkRig``: the simulated PLC with one face, a fault proxy in front of it, and an
  interlock process whose only stop target is that proxy. ``inject``/``heal`` a link fault.
- ``link_trial``, ``soak_cycle``: one injection each, judged on the interlock's own
  reports; every problem seen is named in the trial's note. The helpers here (waits,
  probes, the re-arm) serve ``plc_errors`` too.

Campaign shell: waits poll the interlock's status with deadlines, never bare sleeps for
synchronisation; the only sleeps place an injection at a chosen moment.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

from campaign.case import Trial
from campaign.plc_cell import PLC_NAMESPACE, CellTiming, InterlockCell, ProcStats, active_alarms
from campaign.plc_hosts import SimPlcHost
from campaign.plc_proxy import FaultProxy, Mode
from tripwire.config import ModbusTargetConfig, OpcuaTargetConfig
from tripwire.control import trip_count, trips_since

TIMING = CellTiming()
READY_S = 20.0  # armed, quiet and the PLC heartbeat moving (OPC-UA reconnects take a while)
DETECT_WAIT_S = 3.0
HOLD_MS = 2.5 * TIMING.plc_heartbeat_ms + 150.0  # the fault lasts at least this long
HEAL_S = 20.0
RECOVER_S = 20.0
RSS_LIMIT_KB = 5 * 1024
WARM_UP_CYCLES = 3
SETTLE_SAMPLES = 5
FREEZE_EVERY = 10  # one soak cycle in this many (per target) is a silent link, not a drop
FREEZE_S = 2.5  # longer than asyncua's health probe (1 s interval + up to 1 s read)
SETTLE_S = 0.1
Probe = Callable[[dict[str, Any]], bool]


def cell_details() -> dict[str, Any]:
    return {"interlock": "tripwire run interlock (own process)", **asdict(TIMING)}


def sleep_until(t_ns: int) -> None:
    left = (t_ns - time.monotonic_ns()) / 1e9
    if left > 0:
        time.sleep(left)


def wait_for(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def quiet(kind: str) -> Probe:
    """Armed, connected, the PLC heartbeat running and no alarm active."""
    def probe(st: dict[str, Any]) -> bool:
        return (st["state"] == "ARMED" and bool(st["plc_heartbeat_running"])
                and st["targets"].get(kind) is True and not active_alarms(st))
    return probe


def state_of(st: dict[str, Any]) -> str:
    reason = st.get("trip_reason")
    return f"state {st['state']}" + (f" ({reason}: {st['trips'][-1]['detail']})" if reason and st["trips"] else "")


def detected_ns(st: dict[str, Any], kind: str, since_ns: int) -> int | None:
    """The first alarm naming a PLC fault raised at or after ``since_ns``."""
    names = (f"plc_heartbeat_failed:{kind}", "stop_undelivered")
    times = [a["t_ns"] for a in st["alarms"] if a["name"] in names and a["t_ns"] >= since_ns]
    return min(times) if times else None


def undelivered_problems(st: dict[str, Any], trips_before: int, when: str, *, pending: bool) -> list[str]:
    """What contradicts "this stop was never reported delivered" in one status."""
    recs = trips_since(st, trips_before)
    if len(recs) != 1:
        return [f"{when}: {len(recs)} new trip records, expected 1"]
    rec, out = recs[0], []
    if rec["acked"] or rec["t_ack_ns"] is not None or rec["target"] is not None:
        out.append(f"{when}: trip record says delivered (target {rec['target']})")
    if pending:
        if not st["stop_undelivered"]:
            out.append(f"{when}: status does not report the stop undelivered")
        if "stop_undelivered" not in active_alarms(st):
            out.append(f"{when}: no active stop_undelivered alarm")
        if st["plc_heartbeat_running"]:
            out.append(f"{when}: the PLC heartbeat still advances with the stop undelivered")
    return out


def rearm(cell: InterlockCell) -> str | None:
    """Reset with the token once the cause is gone, and wait until ARMED again."""
    deadline = time.monotonic() + HEAL_S
    reply: dict[str, Any] = {}
    while time.monotonic() < deadline:
        reply = cell.reset()
        if reply.get("ok") or reply.get("error") == "not_tripped":
            ok, st = cell.wait(lambda s: s["state"] == "ARMED", max(0.1, deadline - time.monotonic()))
            return None if ok else f"not re-armed after reset: {st['selftest']}"
        time.sleep(0.05)
    return f"reset refused: {reply.get('error')}: {reply.get('detail')}"


class LinkRig:
    """Simulated PLC (one face) <- fault proxy <- interlock process."""

    def __init__(self, kind: str, work_dir: Path) -> None:
        self.kind = kind
        self.work_dir = work_dir
        self._stack = ExitStack()
        self.baseline: ProcStats | None = None

    def __enter__(self) -> "LinkRig":
        with ExitStack() as stack:
            self.plc = stack.enter_context(SimPlcHost(
                self.kind, modbus=ModbusTargetConfig(), opcua=OpcuaTargetConfig(namespace=PLC_NAMESPACE),
                watchdog_ms=TIMING.plc_watchdog_ms))
            self.proxy = stack.enter_context(FaultProxy(("127.0.0.1", self.plc.port)))
            url = f"opc.tcp://127.0.0.1:{self.proxy.port}" if self.kind == "opcua" else ""
            port = self.proxy.port if self.kind == "modbus" else 0
            self.cell = stack.enter_context(InterlockCell(self.work_dir, self.kind, targets=[self.kind],
                                                          modbus_port=port, opcua_url=url, timing=TIMING))
            ok, st = self.cell.wait(quiet(self.kind), READY_S * 2)
            if not ok:
                raise RuntimeError(f"{self.kind} rig did not arm: {st['selftest']}; {self.cell.log_tail(5)}")
            self._stack = stack.pop_all()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    def inject(self, fault: str) -> None:
        if fault == "reboot":
            self.plc.down()
        else:
            self.proxy.set_mode({"unreachable": Mode.REFUSE, "rst": Mode.RESET, "frozen": Mode.FREEZE}[fault])

    def heal(self, fault: str) -> None:
        if fault == "reboot":
            self.proxy.set_upstream(("127.0.0.1", self.plc.up()))
        else:
            self.proxy.set_mode(Mode.PASS)

    def ready(self) -> str | None:
        ok, st = self.cell.wait(quiet(self.kind), READY_S)
        if not ok:
            return (f"not armed and quiet before the fault: {state_of(st)}, "
                    f"alarms {sorted(active_alarms(st))}, targets {st['targets']}")
        first = self.plc.snapshot()
        if not first.permit:
            return "PLC permit is 0 while the interlock is armed"
        if not wait_for(lambda: self.plc.snapshot().heartbeat != first.heartbeat,
                        10 * TIMING.plc_heartbeat_ms / 1e3, poll_s=0.01):
            return "the PLC heartbeat does not advance"
        return None

    def warm_up(self, rng: random.Random) -> None:
        for _ in range(WARM_UP_CYCLES):
            soak_cycle(self, rng)
        self.baseline = self.settled_stats()

    def settled_stats(self) -> ProcStats:
        """The process at rest: connected and quiet, no command in flight (each status
        request is a new connection on the interlock's command socket, closed a moment
        after the reply), lowest of a few samples."""
        self.cell.wait(quiet(self.kind), READY_S)
        samples = []
        for _ in range(SETTLE_SAMPLES):
            time.sleep(SETTLE_S)  # nothing to wait on: the interlock only needs quiet time
            samples.append(self.cell.stats())
        return ProcStats(min(x.fds for x in samples), min(x.threads for x in samples),
                         min(x.rss_kb for x in samples))

    def growth(self) -> tuple[dict[str, int], str]:
        """Growth since warm-up, and what of it is a leak ("" when none)."""
        base = self.baseline
        if base is None:
            return {}, "no baseline taken"
        now = self.settled_stats()
        growth = {"fds": now.fds - base.fds, "threads": now.threads - base.threads,
                  "rss_kb": now.rss_kb - base.rss_kb}
        leaks = []
        if growth["fds"] > 0:
            leaks.append(f"{growth['fds']} more file descriptors ({base.fds} -> {now.fds})")
        if growth["threads"] > 0:
            leaks.append(f"{growth['threads']} more threads ({base.threads} -> {now.threads})")
        if growth["rss_kb"] >= RSS_LIMIT_KB:
            leaks.append(f"RSS grew {growth['rss_kb']} kB")
        return growth, "; ".join(leaks)


def link_trial(rig: LinkRig, fault: str, rng: random.Random, name: str) -> Trial:
    try:
        return _link_trial(rig, fault, rng, name)
    except Exception as e:  # noqa: BLE001 - a broken trial is a failed one, with the reason
        rearm(rig.cell)  # leave the rig armed for the next trial if it can be
        return Trial(False, note=f"{rig.kind}: {type(e).__name__}: {e}")


def _link_trial(rig: LinkRig, fault: str, rng: random.Random, name: str) -> Trial:
    kind, cell = rig.kind, rig.cell
    problem = rig.ready()
    if problem is not None:
        return Trial(False, note=f"{kind}: {problem}")
    st = cell.status()
    trips0, retries0 = trip_count(st), st["counters"]["stop_retries"]
    trip_at_ns = int(rng.uniform(0.0, 2.5 * TIMING.plc_heartbeat_ms) * 1e6)
    problems: list[str] = []
    t_detect: int | None = None
    t_fault = time.monotonic_ns()
    rig.inject(fault)
    try:
        sleep_until(t_fault + trip_at_ns)
        reply = cell.trip(f"campaign {name}")
        rec = reply.get("trip")
        if not reply.get("tripped") or not isinstance(rec, dict):
            problems.append(f"the trip command did not trip: {reply.get('state')}")
        elif rec["acked"]:
            problems.append(f"stop reported delivered in the trip reply (via {rec['target']})")
        _ok, st = cell.wait(lambda s: detected_ns(s, kind, t_fault) is not None, DETECT_WAIT_S)
        t_detect = detected_ns(st, kind, t_fault)
        if t_detect is None:
            problems.append("no alarm naming the fault")
        cell.wait(lambda s: s["counters"]["stop_retries"] >= retries0 + 2, HEAL_S)
        sleep_until(t_fault + int(HOLD_MS * 1e6))
        problems += undelivered_problems(cell.status(), trips0, "during the fault", pending=True)
        if fault != "reboot" and not rig.plc.snapshot().permit:
            problems.append("the stop reached the PLC through the fault")
    finally:
        rig.heal(fault)
    ok, st = cell.wait(lambda s: not s["stop_undelivered"], HEAL_S)
    if not ok:
        problems.append("the stop was not delivered after the fault cleared")
    problems += undelivered_problems(st, trips0, "after the late delivery", pending=False)
    if ok and rig.plc.snapshot().permit:
        problems.append("PLC permit still 1 after the late delivery")
    problem = rearm(cell)
    if problem is not None:
        problems.append(problem)
    reaction_ms = None if t_detect is None else round((t_detect - t_fault) / 1e6, 3)
    note = "; ".join(problems) + f" (stop requested {trip_at_ns / 1e6:.0f} ms into the fault)"
    return Trial(not problems, reaction_ms, f"{kind}: {note}")


def soak_cycle(rig: LinkRig, rng: random.Random, *, freeze: bool = False) -> Trial:
    """One disconnect and the wait for the heartbeat to be confirmed again: every
    connection dropped (RST or FIN, at random), or with ``freeze`` a silent link held long
    enough for asyncua's own health probe to give up on the session first."""
    kind, cell, proxy = rig.kind, rig.cell, rig.proxy
    try:
        ok, st = cell.wait(quiet(kind), READY_S)
        if not ok:
            return Trial(False, note=f"{kind}: not quiet before the cycle: {state_of(st)}, "
                                    f"alarms {sorted(active_alarms(st))}")
        trips0, pid = trip_count(st), cell.pid
        how = "freeze" if freeze else "RST" if rng.random() < 0.5 else "FIN"
        if how == "freeze":
            proxy.set_mode(Mode.FREEZE)
            time.sleep(FREEZE_S)  # the fault's duration
            accepted0 = proxy.accepted
            t0 = time.monotonic_ns()
            proxy.set_mode(Mode.PASS)
        else:
            accepted0 = proxy.accepted
            t0 = time.monotonic_ns()
            proxy.drop(rst=how == "RST")
            if not wait_for(lambda: proxy.accepted > accepted0 and proxy.open_connections > 0, RECOVER_S):
                return Trial(False, note=f"{kind} {how}: no reconnect within {RECOVER_S} s")
        hb = rig.plc.snapshot().heartbeat
        if not wait_for(lambda: rig.plc.snapshot().heartbeat != hb, RECOVER_S, poll_s=0.01):
            return Trial(False, note=f"{kind} {how}: the PLC heartbeat did not resume")
        t_back = time.monotonic_ns()
        ok, st = cell.wait(quiet(kind), RECOVER_S)
        problems = []
        if not ok:
            problems.append(f"alarms stay active: {sorted(active_alarms(st))}")
        if trip_count(st) != trips0 or st["state"] != "ARMED":
            problems.append(f"state {st['state']} with {trip_count(st) - trips0} new trips")
        if not cell.alive() or cell.pid != pid:
            problems.append("the interlock process did not survive")
        return Trial(not problems, round((t_back - t0) / 1e6, 3), f"{kind} {how}: " + "; ".join(problems))
    except Exception as e:  # noqa: BLE001 - a broken cycle is a failed one, with the reason
        return Trial(False, note=f"{kind}: {type(e).__name__}: {e}")
