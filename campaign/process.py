"""Process-level rows of the fault-injection campaign: anomalies, and a monitor or an
interlock that dies, freezes or stalls, each against a real cell (sim, monitor and interlock
processes on loopback) at the context's deadline D.

| row | one trial | reaction, judged on the PLC's confirmation |
| ``anomaly`` | a bearing fault injected on a random source (Modbus / OPC-UA target, idle or
  loaded: two busy loops at normal priority) | trip latency from the interlock's trip record
  (t_acq of the deciding window to the stop acked), <= D |
| ``kill_monitor`` | SIGKILL of the monitor | kill to stop acked, <= D |
| ``stop_monitor`` | SIGSTOP of the monitor (its sockets stay open) | stop to stop acked, <= D |
| ``stall_2d``, ``stall_10d`` | one model call sleeps 2 D / 10 D (the monitor's test-only
  hook, SIGUSR1) | the stall's own start, as the monitor logged it, to stop acked, <= D |
| ``kill_interlock`` | SIGKILL of the interlock | kill to the simulated PLC's watchdog trip,
  <= T_wd + one PLC scan |

Each row runs on fresh cells, one per ``CELL_TRIALS`` trials. Each trial starts from an
armed, calm cell (``process_cell.Cell.ready``), injects at a random moment drawn from
``random.Random(ctx.seed)``, lets the cell react without a single
request to it for ``QUIET_S``, then reads what the interlock (or the PLC) recorded. A trip
the trial did not cause, before or after its injection, fails it. The cell is then brought
back (fault cleared, process restarted or resumed, latch reset) for the next trial.
``details`` gives the distribution and where the time went (for the monitor cases: silence
from the monitor's last message to the interlock's decision, and decision to ack).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import numpy as np

from campaign.case import CaseResult, CaseSpec, Context, Trial, judge
from campaign.process_cell import MS, SOURCES, BusyLoad, Cell, TrialError

QUIET_S = 0.1  # after an injection, no request to the cell for this long
ANOMALY_CONDITIONS = (("modbus", False), ("modbus", True), ("opcua", False), ("opcua", True))
MAX_RECOVERY_FAILURES = 2  # in a row: the cell is broken, its remaining trials fail at once
# Trials per cell. The interlock's status reply carries its whole trip history; past ~100
# trips building it takes the interlock several ms, long enough for queued verdicts to age
# past their budget. A fresh cell keeps the history (and the campaign's polling) short.
CELL_TRIALS = 50


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"n": len(values), "min": round(float(a.min()), 3), "p50": round(float(np.percentile(a, 50)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "max": round(float(a.max()), 3)}


class Recorder:
    """The trials of one row, their figures by name, and the time each took."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.trials: list[Trial] = []
        self.figures: dict[str, list[float]] = {}
        self.seconds: list[float] = []
        self.false_trips = 0

    def figure(self, name: str, value: float) -> None:
        self.figures.setdefault(name, []).append(round(value, 4))

    def run(self, n: int, open_cell: Callable[[], Cell], one: Callable[[Cell], Trial]) -> dict[str, Any]:
        """``n`` trials, on a fresh cell every ``CELL_TRIALS``: ready, ``one(cell)``, recover;
        a failed step fails its trial. Returns the last cell's configuration facts."""
        facts: dict[str, Any] = {}
        left = n
        while left > 0:
            chunk = min(CELL_TRIALS, left)
            left -= chunk
            with open_cell() as cell:
                self._trials(cell, chunk, one)
                facts = {"liveness_ms": cell.cfg.interlock.liveness_ms,
                         "watchdog_ms": cell.cfg.sim.watchdog_ms, "scan_ms": cell.cfg.sim.scan_ms}
            for gap in cell.heartbeat_gaps_ms():  # the monitors' own stalls, once they stopped
                self.figure("monitor_heartbeat_gap_max_ms", gap)
        return facts

    def _trials(self, cell: Cell, n: int, one: Callable[[Cell], Trial]) -> None:
        failures_in_a_row = 0
        for _ in range(n):
            t0 = time.monotonic()
            if failures_in_a_row >= MAX_RECOVERY_FAILURES:
                self._done(Trial(False, None, "cell could not be recovered"), t0)
                continue
            try:
                cell.ready()
                trial = one(cell)
            except TrialError as e:
                trial = Trial(False, None, str(e))
            if "false trip" in trial.note:
                self.false_trips += 1
            try:
                cell.recover()
                failures_in_a_row = 0
            except TrialError as e:
                failures_in_a_row += 1
                if trial.ok:
                    trial = Trial(False, trial.reaction_ms, f"no recovery after the trial: {e}")
            self._done(trial, t0)

    def _done(self, trial: Trial, t0: float) -> None:
        self.trials.append(trial)
        self.seconds.append(time.monotonic() - t0)
        self.ctx.progress(1)

    def details(self, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {name: _stats(v) for name, v in self.figures.items()}
        out["false_trips"] = self.false_trips
        out["seconds_per_trial"] = _stats(self.seconds)
        out.update(extra)
        return out


def _one_trip(cell: Cell, reason: str) -> dict[str, Any]:
    """The single trip this trial caused, acked on the cell's target; else TrialError."""
    trips = cell.new_trips()
    cell.known_trips += len(trips)
    if not trips:
        raise TrialError("no trip recorded")
    first = trips[0]
    if first["reason"] != reason:
        raise TrialError(f"false trip: {first['reason']} ({first.get('detail') or 'no detail'}), "
                         f"expected {reason}")
    if len(trips) > 1:
        raise TrialError(f"false trip after the expected one: {trips[1]['reason']}")
    if not first["acked"] or first["t_ack_ns"] is None:
        raise TrialError(f"stop not acked (attempts {first['attempts']})")
    if first["target"] != cell.target:
        raise TrialError(f"acked by {first['target']}, expected {cell.target}")
    return first


# --- anomaly -----------------------------------------------------------------------------


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_anomaly(ctx: Context, trials: int) -> CaseResult:
    rng = random.Random(ctx.seed)
    rec = Recorder(ctx)
    counts = dict(zip(ANOMALY_CONDITIONS, _split(trials, len(ANOMALY_CONDITIONS))))
    by_condition: dict[str, list[float]] = {}

    def one(cell: Cell, label: str) -> Trial:
        source = rng.choice(SOURCES)
        cell.pump(rng.uniform(0.0, 0.1))
        cell.stream.trip_verdicts.clear()
        index = cell.inject(source, "bearing")
        cell.wait_for(lambda: cell.stream.trip_verdicts.get(source), 5.0, "a TRIP verdict")
        cell.pump(QUIET_S)
        trip = _one_trip(cell, "verdict")
        if trip["source_id"] != source:
            raise TrialError(f"false trip: source {trip['source_id']}, fault on {source}")
        onset_ns = cell.onset_ns(source, index)
        if trip["t_acq_ns"] < onset_ns:
            raise TrialError("false trip: the deciding window ended before the fault began")
        latency = float(trip["trip_latency_ms"])
        rec.figure("trip_latency_ms", latency)
        rec.figure("decision_ms", (trip["t_decision_ns"] - trip["t_acq_ns"]) / MS)
        rec.figure("stop_write_ms", (trip["t_ack_ns"] - trip["t_decision_ns"]) / MS)
        rec.figure("detection_delay_ms", (trip["t_decision_ns"] - onset_ns) / MS)
        by_condition.setdefault(label, []).append(latency)
        return Trial(True, latency)

    for target in ("modbus", "opcua"):
        idle, loaded = counts[(target, False)], counts[(target, True)]
        first = len(rec.trials)
        load_on: list[bool] = []
        with ExitStack() as load:
            def trial(cell: Cell) -> Trial:
                """The target's idle trials, then (two busy loops from the first on) loaded."""
                if len(rec.trials) - first < idle:
                    return one(cell, f"{target}_idle")
                if not load_on:
                    load.enter_context(BusyLoad(2))
                    load_on.append(True)
                return one(cell, f"{target}_loaded")

            rec.run(idle + loaded, lambda: Cell(ctx, f"anomaly-{target}", target=target), trial)
    details = rec.details(by_condition={k: _stats(v) for k, v in by_condition.items()})
    return judge("anomaly", f"all acked, max trip latency <= D ({ctx.deadline_ms:g} ms), no false trip",
                 rec.trials, limit_ms=ctx.deadline_ms, details=details)


# --- the monitor dies, freezes or stalls --------------------------------------------------


def _monitor_trip(cell: Cell, rec: Recorder, t_inject_ns: int) -> Trial:
    """Judge the liveness trip that follows a monitor fault injected at ``t_inject_ns``."""
    trip = _one_trip(cell, "monitor_silent")
    if trip["t_decision_ns"] < t_inject_ns:
        raise TrialError(f"false trip: the monitor fell silent on its own, "
                         f"{(t_inject_ns - trip['t_decision_ns']) / MS:.1f} ms before the injection")
    reaction = (trip["t_ack_ns"] - t_inject_ns) / MS
    rec.figure("reaction_ms", reaction)
    rec.figure("inject_to_decision_ms", (trip["t_decision_ns"] - t_inject_ns) / MS)
    rec.figure("stop_write_ms", (trip["t_ack_ns"] - trip["t_decision_ns"]) / MS)
    last_sent_ns = cell.stream.last_sent_before(t_inject_ns)
    if last_sent_ns is not None:  # where the time went: the monitor's silence, then the wake-up
        silence = (trip["t_decision_ns"] - last_sent_ns) / MS
        rec.figure("silence_to_decision_ms", silence)
        rec.figure("decision_after_liveness_ms", silence - cell.cfg.interlock.liveness_ms)
        rec.figure("last_message_before_inject_ms", (t_inject_ns - last_sent_ns) / MS)
    return Trial(True, reaction)


def _signal_case(name: str, sig: signal.Signals, what: str) -> Callable[[Context, int], CaseResult]:
    def run(ctx: Context, trials: int) -> CaseResult:
        rng = random.Random(ctx.seed)
        rec = Recorder(ctx)

        def one(cell: Cell) -> Trial:
            cell.pump(rng.uniform(0.0, 0.1))
            t_ns = cell.signal("monitor", sig)
            cell.pump(QUIET_S)
            return _monitor_trip(cell, rec, t_ns)

        facts = rec.run(trials, lambda: Cell(ctx, name), one)
        return judge(name, f"{what}: interlock trips, stop acked, max <= D ({ctx.deadline_ms:g} ms) "
                     f"from the {sig.name}", rec.trials, limit_ms=ctx.deadline_ms,
                     details=rec.details(liveness_ms=facts.get("liveness_ms")))
    return run


def _stall_case(name: str, multiple: float) -> Callable[[Context, int], CaseResult]:
    def run(ctx: Context, trials: int) -> CaseResult:
        rng = random.Random(ctx.seed)
        rec = Recorder(ctx)
        stall_ms = multiple * ctx.deadline_ms

        def one(cell: Cell) -> Trial:
            cell.monitor_events("inference_stalled")  # skip older lines
            cell.pump(rng.uniform(0.0, 0.1))
            t_sig = cell.signal("monitor", signal.SIGUSR1)
            events = cell.wait_for(lambda: cell.monitor_events("inference_stalled"),
                                   stall_ms / 1000 + 5.0, "the monitor's stall", every_s=0.02)
            t_start = int(events[0]["t_start_ns"])
            cell.pump(QUIET_S)
            rec.figure("signal_to_stall_ms", (t_start - t_sig) / MS)
            return _monitor_trip(cell, rec, t_start)

        facts = rec.run(trials, lambda: Cell(ctx, name, stall_ms=stall_ms), one)
        return judge(name, f"inference stalls {stall_ms:g} ms: trips, max <= D ({ctx.deadline_ms:g} ms) "
                     f"from the stall's start", rec.trials, limit_ms=ctx.deadline_ms,
                     details=rec.details(stall_ms=stall_ms, liveness_ms=facts.get("liveness_ms")))
    return run


# --- the interlock dies ------------------------------------------------------------------


def run_kill_interlock(ctx: Context, trials: int) -> CaseResult:
    rng = random.Random(ctx.seed)
    rec = Recorder(ctx)

    def one(cell: Cell) -> Trial:
        sim = cell.stack.sim("status", since=1 << 40)
        if sim["plc"]["state"] != 1:
            raise TrialError(f"PLC not running before the kill (state {sim['plc']['state']})")
        before = int(sim["writes_total"])
        cell.pump(rng.uniform(0.0, 0.2))
        t_kill = cell.signal("interlock", signal.SIGKILL)
        cell.pump((cell.cfg.sim.watchdog_ms + 3 * cell.cfg.sim.scan_ms) / 1000 + QUIET_S)

        def tripped() -> dict[str, Any] | None:
            st = cell.stack.sim("status", since=before)
            t = st["plc"]["t_watchdog_trip_ns"]
            return st if st["plc"]["watchdog_tripped"] and t is not None and t > t_kill else None

        st: dict[str, Any] = cell.wait_for(tripped, 5.0, "the PLC's watchdog trip", every_s=0.05)
        plc = st["plc"]
        if plc["state"] != 2 or plc["running"]:
            raise TrialError(f"PLC still running after its watchdog tripped: {plc}")
        stops = [w for w in st["writes"] if w["name"] in ("permit", "stop") and not w["value"]]
        if stops:
            raise TrialError(f"false trip: a stop write reached the PLC ({stops[0]})")
        beats = [w["t_ns"] for w in st["writes"] if w["name"] == "heartbeat"]
        reaction = (plc["t_watchdog_trip_ns"] - t_kill) / MS
        rec.figure("reaction_ms", reaction)
        if beats:  # the last heartbeat that arrived (none after the kill, normally)
            last = max(beats)
            rec.figure("trip_after_last_heartbeat_ms", (plc["t_watchdog_trip_ns"] - last) / MS)
        return Trial(True, reaction)

    facts = rec.run(trials, lambda: Cell(ctx, "kill_interlock"), one)
    watchdog_ms, scan_ms = facts.get("watchdog_ms"), facts.get("scan_ms")
    limit_ms = None if watchdog_ms is None or scan_ms is None else watchdog_ms + scan_ms
    return judge("kill_interlock", f"SIGKILL of the interlock: the PLC's watchdog stops the machine, "
                 f"max <= T_wd + one scan ({limit_ms:g} ms)" if limit_ms else "no cell ran",
                 rec.trials, limit_ms=limit_ms, details=rec.details(watchdog_ms=watchdog_ms, scan_ms=scan_ms))


CASES: list[CaseSpec] = [
    CaseSpec("anomaly", 1000, 4, run_anomaly),
    CaseSpec("kill_monitor", 50, 2, _signal_case("kill_monitor", signal.SIGKILL, "SIGKILL of the monitor")),
    CaseSpec("stop_monitor", 50, 2, _signal_case("stop_monitor", signal.SIGSTOP, "SIGSTOP of the monitor")),
    CaseSpec("stall_2d", 20, 1, _stall_case("stall_2d", 2.0)),
    CaseSpec("stall_10d", 20, 1, _stall_case("stall_10d", 10.0)),
    CaseSpec("kill_interlock", 50, 2, run_kill_interlock),
]
