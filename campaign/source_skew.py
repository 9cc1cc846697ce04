"""The ``source_skew`` row: source clocks 10 s off the host's neither cause nor hide a trip.

Each trial brings up a whole cell with ``tripwire.stack.Stack`` (sim, monitor and interlock
processes on loopback, D = the campaign's deadline) whose simulated DAQ stamps one source on
a clock 10 s ahead of the host's and the other on one 10 s behind (``sim.clock_skew_ms``;
the signs swap from trial to trial). Then:

1. healthy, for ``HEALTHY_S`` once armed: no trip, and the monitor rejects nothing as
   ``future`` or ``stale`` (read over its status socket); it has learned each source's
   offset (within ``OFFSET_SLACK_MS`` of the skew);
2. a real fault on one source, started with the sim's fault schedule, alternating between
   - ``model``: a bearing fault in the signal, which must trip by verdict (the trip record's
     latency, t_ack - t_acq of the tripping window, must be that of a translated t_acq: not
     10 s off), and
   - ``delay``: that source's frames reach the bus 0.8 D after acquisition (beyond the
     interlock's verdict budget, 0.6 D, and inside the monitor's delay bound), which must
     trip by the timeliness rule (``late_verdicts``): with the skew taken at face value a
     source 10 s ahead would hide that delay, and one 10 s behind would have tripped from
     the start.
A trial's reaction time is the fault's start to the PLC's acknowledgement of the stop (for
``model`` it includes the model's detection delay).

Shell: processes and sockets through Stack; everything torn down at the end of each trial.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from campaign.case import CaseResult, Context, Trial, judge
from tripwire import config
from tripwire.control import ControlTimeout, command
from tripwire.stack import Stack, demo_table

SKEW_MS = 10_000.0
HEALTHY_S = 2.0
FAULT_AT_S = 0.2
DELAY_OF_D = 0.8  # the transport delay of a delay trial, as a fraction of D
FAULT_WAIT_S = 15.0
OFFSET_SLACK_MS = 50.0
TOKEN = "campaign-reset"


def cell_bundle(ctx: Context, kind: str = "pca") -> Path:
    """A model of the demo cell, trained once per campaign run on simulated normal operation
    and cached beside the cases' folders. The PCA baseline: these rows are about the black
    channel, not the model, and it trains in seconds (the autoencoder takes half a minute)
    while tripping on the bearing fault as promptly."""
    from models.train import ensure_default_bundle

    cfg = config.from_dict(demo_table(bundle="", fault=None))
    return ensure_default_bundle(cfg, ctx.work_dir.parent / "bundles", kind=kind)


def _plan(i: int) -> tuple[float, str, int]:
    """Trial i: source 1's skew (source 2 gets the opposite), the fault kind, its source."""
    skew = SKEW_MS if i % 4 in (0, 3) else -SKEW_MS
    return skew, ("model" if i % 2 == 0 else "delay"), 1 if (i // 4) % 2 == 0 else 2


def _table(bundle: Path, ctx: Context, ipc: Path, skew: float, kind: str, source: int) -> dict[str, Any]:
    # The plant is the one the bundle was trained for (sim seed 0): another seed is other
    # machines, an anomaly to that model. This row draws nothing at random.
    table = demo_table(bundle=str(bundle), deadline_ms=ctx.deadline_ms,
                       fault="bearing" if kind == "model" else None, fault_at_s=FAULT_AT_S,
                       fault_source=source, duration_s=3600.0, reset_token=TOKEN)
    table["bus"] = {"monitor_ctl": f"ipc://{ipc}/ctl"}
    table["sim"]["clock_skew_ms"] = [skew, -skew]
    if kind == "delay":
        delay_ms = _delay_ms(ctx.deadline_ms)
        table["sim"]["frame_delay_ms"] = [delay_ms if sid == source else 0.0 for sid in (1, 2)]
    return table


def _delay_ms(deadline_ms: float) -> float:
    """Late at the interlock (its budget is 0.6 D), yet inside the monitor's delay bound."""
    bound_ms = config.MonitorConfig().max_frame_age_ms
    return min(DELAY_OF_D * deadline_ms, DELAY_OF_D * bound_ms)


def _trips(stack: Stack) -> list[dict[str, Any]]:
    trips: list[dict[str, Any]] = stack.interlock("status", timeout_ms=2000)["trips"]
    return trips


def _monitor(stack: Stack) -> dict[str, Any]:
    return command(stack.ctx, stack.cfg.bus.monitor_ctl, "status", timeout_ms=2000)


def _healthy(stack: Stack, skew: float) -> str:
    """Empty when the armed cell stayed healthy; what went wrong otherwise."""
    end = time.monotonic() + HEALTHY_S
    while time.monotonic() < end:
        if trips := _trips(stack):
            return f"spurious trip before any fault: {trips[0]['reason']} {trips[0].get('detail', '')}"
        time.sleep(0.1)
    mon = _monitor(stack)
    bad = {r: n for r, n in mon["rejected"].items() if r in ("future", "stale")}
    if bad:
        return f"the monitor rejected healthy frames: {bad}"
    for sid, expected in (("1", -skew), ("2", skew)):
        got = mon["clock_offsets_ms"][sid]
        if abs(got - expected) > OFFSET_SLACK_MS:
            return f"source {sid}'s offset learned as {got} ms, its clock is {-expected} ms off"
    return ""


def _fault(stack: Stack, kind: str, source: int, deadline_ms: float) -> Trial:
    started_ns = int(stack.sim("schedule")["schedule_started_ns"])
    onset_ns = started_ns + (int(FAULT_AT_S * 1e9) if kind == "model" else 0)
    end = time.monotonic() + FAULT_WAIT_S
    trips: list[dict[str, Any]] = []
    while time.monotonic() < end and not trips:
        time.sleep(0.05)
        trips = _trips(stack)
    if not trips:
        return Trial(False, note=f"{kind} fault on source {source}: no trip in {FAULT_WAIT_S:g} s")
    trip = trips[0]
    want = "verdict" if kind == "model" else "late_verdicts"
    note = f"{kind} fault on source {source}: {trip['reason']} from source {trip.get('source_id')}"
    if trip["reason"] != want or trip.get("source_id") != source:
        return Trial(False, note=f"{note}, expected {want} from source {source}")
    if trip["t_decision_ns"] < onset_ns:
        return Trial(False, note=f"{note}, before the fault began")
    latency = trip.get("trip_latency_ms")
    if not trip.get("acked") or latency is None or not 0 < latency < 100 * deadline_ms:
        return Trial(False, note=f"{note}: trip latency {latency} ms (acked {trip.get('acked')})")
    return Trial(True, round((trip["t_ack_ns"] - onset_ns) / 1e6, 3), note)


def _trial(ctx: Context, i: int, bundle: Path) -> tuple[Trial, dict[str, Any]]:
    skew, kind, source = _plan(i)
    ipc = Path(tempfile.mkdtemp(prefix="tw-sk-"))
    run_dir = ctx.work_dir / f"trial{i}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a journal left by an earlier run would stay latched
    stack = Stack(_table(bundle, ctx, ipc, skew, kind, source), run_dir)
    facts: dict[str, Any] = {"skew_ms": [skew, -skew], "kind": kind, "source": source}
    try:
        stack.start_all(timeout_s=120.0)
        problem = _healthy(stack, skew)
        if problem:
            return Trial(False, note=problem), facts
        trial = _fault(stack, kind, source, ctx.deadline_ms)
        trips = _trips(stack)
        facts.update(offsets_ms=_monitor(stack)["clock_offsets_ms"],
                     trip_latency_ms=trips[0].get("trip_latency_ms") if trips else None)
        return trial, facts
    except (TimeoutError, ControlTimeout, RuntimeError) as e:
        return Trial(False, note=f"cell failed: {str(e).splitlines()[0]}"), facts
    finally:
        stack.close()
        shutil.rmtree(ipc, ignore_errors=True)


def source_skew(ctx: Context, trials: int) -> CaseResult:
    bundle = cell_bundle(ctx)  # the same bundle black_channel uses
    results: list[Trial] = []
    per_trial: list[dict[str, Any]] = []
    for i in range(trials):
        trial, facts = _trial(ctx, i, bundle)
        results.append(trial)
        per_trial.append(facts)
        ctx.progress(1)
    rule = (f"sources {SKEW_MS / 1e3:g} s ahead/behind: no trip and no time rejection while "
            f"healthy; a model fault trips by verdict, a {_delay_ms(ctx.deadline_ms):g} ms transport "
            f"delay by timeliness (D = {ctx.deadline_ms:g} ms)")
    return judge("source_skew", rule, results, details={"trials": per_trial})
