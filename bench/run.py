"""``tripwire bench``: the whole cell at the bench load, its trips, then floors and baselines.

Shell. ``run_bench(options, show)``:

1. the bundle (bench.bundle, cached) and the fault schedule (bench.schedule: ``trips``
   faults over the measured span, seeded);
2. the cell (bench.cell: PLC, monitor, paced feeder, interlock, all real processes); the
   measured span is stream frames [lead, lead + seconds) of every source: it starts once the
   monitor has passed the lead-in (the interlock armed before it) and ends when it has passed
   the span's last frame; counters, CPU ticks and the bench's clock are read at both ends;
3. during the span, every ``POLL_S`` the bench reads where the stream is (the monitor's
   status) and the PLC's permit (the bench PLC's status); a permit of 0 means a trip: the
   interlock's new trip records are read, and once no fault is in the frames that can still
   trip on it, the latch is reset with the token. Which trips caught a fault and which were
   false is decided afterwards from the records (bench.schedule.match_trips);
4. after the cell has stopped (the monitor's ``monitor_stopped`` line carries its stage
   latencies), the raw floors (bench.floors) and, unless skipped, the baselines
   (bench.baselines); never while the cell runs.

The figures go to bench.report, which assembles the JSON the command writes.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench import baselines, cpu, floors, relay
from bench.bundle import bench_fault, ensure_bundle, normal_rows
from bench.cell import RESET_TOKEN, BenchCell, CellPlan
from bench.cpu import ThreadReading
from bench.errors import BenchConfigError, BenchSetupError
from bench.model import BenchModel
from bench.schedule import MIN_SLOT_S, FaultWindow, catch_frames, plan_trips
from bench.signals import BenchLoad, SignalBank
from models.bundle import DEV_KEY, load_bundle
from tripwire.control import ControlTimeout, trip_count, trips_since

LEAD_S = 6.0  # stream time before the span: the interlock starts and arms meanwhile
TAIL_S = 3.0  # stream time after it, so the feeder outlives the last snapshot
POLL_S = 0.1
RESET_SETTLE_S = 0.05
PLAIN_S = 10.0  # the plain pipeline's counted span
DRAIN_TIMEOUT_S = 5.0
SPAN_STALL_S = 10.0  # the stream did not move for this long: the cell is stuck
THREADS_OF = ("monitor", "interlock")  # the processes whose threads the report breaks down


class Show(Protocol):
    """Where the run reports progress (bench.display)."""

    def phase(self, name: str, total: float) -> None: ...

    def update(self, done: float, detail: str = "") -> None: ...

    def note(self, text: str) -> None: ...


@dataclass(frozen=True, slots=True)
class BenchOptions:
    load: BenchLoad
    seconds: float = 30.0
    deadline_ms: float = 10.0
    trips: int = 10
    seed: int = 0
    work_dir: Path | None = None
    cache_dir: Path = Path(".tripwire/cache")
    skip_baselines: bool = False
    target: str = "modbus"

    def __post_init__(self) -> None:
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise BenchConfigError(f"--seconds: must be > 0, got {self.seconds}")
        if not (self.deadline_ms > 0 and math.isfinite(self.deadline_ms)):
            raise BenchConfigError(f"--deadline-ms: must be > 0, got {self.deadline_ms}")
        if self.trips < 0:
            raise BenchConfigError(f"--trips: must be >= 0, got {self.trips}")
        if self.trips and self.seconds / self.trips < MIN_SLOT_S:
            raise BenchConfigError(f"--trips: {self.trips} in {self.seconds:g} s leave under "
                                   f"{MIN_SLOT_S} s each for a fault, its trip and the reset")
        if self.target != "modbus":
            raise BenchConfigError(f"--target: only modbus, got {self.target!r}")


@dataclass(slots=True)
class Snapshot:
    t_ns: int
    monitor: dict[str, Any]
    interlock: dict[str, Any]
    cpu: dict[str, int | None]
    threads: dict[str, dict[int, ThreadReading]] = field(default_factory=dict)


@dataclass(slots=True)
class SpanResult:
    start: Snapshot
    end: Snapshot
    records: list[dict[str, Any]] = field(default_factory=list)
    resets: int = 0
    reset_refusals: list[str] = field(default_factory=list)
    misses_around_resets: int = 0  # deadline misses from a reset's status to 50 ms after it


def _misses(interlock_status: dict[str, Any]) -> int:
    return int(interlock_status.get("counters", {}).get("deadline_misses", 0))


def _positions(status: dict[str, Any]) -> dict[int, int]:
    return {int(k): int(v) for k, v in status.get("last_seq", {}).items()}


def _snapshot(cell: BenchCell) -> Snapshot:
    monitor = cell.monitor()
    t = time.monotonic_ns()  # the span's ends are the monitor's replies (frames accepted)
    interlock = cell.interlock("status")
    pids = {**cell.pids, "bench": os.getpid()}
    return Snapshot(t, monitor, interlock, {name: cpu.ticks(pid) for name, pid in pids.items()},
                    {name: cpu.read(cell.pids[name]) for name in THREADS_OF
                     if name in cell.pids})


def _calm(schedule: tuple[FaultWindow, ...], load: BenchLoad, pos: dict[int, int],
          votes_n: int) -> bool:
    """No fault is where its frames can still trip the interlock (``pos`` read after the
    trip was seen, so a fault that tripped it has begun in ``pos``)."""
    for w in schedule:
        lo, hi = catch_frames(w, load, votes_n)
        if lo <= pos.get(w.machine + 1, -1) + 1 < hi:
            return False
    return True


def measure_span(cell: BenchCell, schedule: tuple[FaultWindow, ...], first: int, last: int,
                 votes_n: int, show: Show) -> SpanResult:
    """Run through stream frames [first, last) of every source, tripping and resetting."""
    load = cell.plan.load
    show.phase("pipeline", float(last - first))
    while min(_positions(cell.monitor()).values()) < first:
        cell.check_alive()
        time.sleep(POLL_S / 2)
    start = _snapshot(cell)
    result = SpanResult(start, start)
    seen = trip_count(result.start.interlock)
    writes = int(cell.plc_status(0).get("writes_total", 0))
    moved_ns, low = time.monotonic_ns(), -1
    while True:
        time.sleep(POLL_S)
        cell.check_alive()
        plc = cell.plc_status(writes)  # first: a trip it shows happened before pos is read
        writes = int(plc.get("writes_total", writes))
        pos = _positions(cell.monitor())
        now = min(pos.values())
        if now >= last:
            break
        if now > low:
            moved_ns, low = time.monotonic_ns(), now
        elif time.monotonic_ns() - moved_ns > SPAN_STALL_S * 1e9:
            raise BenchSetupError(f"the stream stopped at frame {now} (span ends at {last})")
        if not plc["plc"]["permit"]:
            status = cell.interlock("status")
            result.records += trips_since(status, seen)
            seen = trip_count(status)
            if status.get("state") == "TRIPPED" and _calm(schedule, load, pos, votes_n):
                reply = cell.interlock("reset", token=RESET_TOKEN)
                if reply.get("ok") and reply.get("armed"):
                    result.resets += 1
                else:
                    result.reset_refusals.append(str(reply.get("selftest") or reply.get("error")))
                # The reset held the interlock's loop (PLC requests, a journal commit): the
                # deadline misses it caused show up within the next few tens of ms.
                time.sleep(RESET_SETTLE_S)
                after = cell.interlock("status")
                result.misses_around_resets += (_misses(after) - _misses(status))
                result.records += trips_since(after, seen)
                seen = trip_count(after)
        show.update(float(now - first), f"{len(result.records)} trips")
    result.end = _snapshot(cell)
    result.records += trips_since(result.end.interlock, seen)
    return result


def _drain(cell: BenchCell) -> dict[str, Any]:
    """Stop the feeder and wait until the monitor has taken every frame still queued."""
    cell.stop_feeder()
    last, deadline = -1, time.monotonic() + DRAIN_TIMEOUT_S
    status = cell.monitor()
    while time.monotonic() < deadline:
        got = int(status.get("frames_received", 0))
        if got == last:
            break
        last = got
        time.sleep(POLL_S)
        status = cell.monitor()
    return status


def bench_model(bundle_dir: Path, bank: SignalBank, tier: str | None = None) -> BenchModel:
    """A tier of the bench bundle as the floors and baselines take a model."""
    bundle = load_bundle(bundle_dir, DEV_KEY)
    if tier is not None:
        bundle = bundle.with_tier(tier)
    return BenchModel(bundle.onnx_bytes, bundle.n_features, bundle.threshold, normal_rows(bank))


def _baselines(bank: SignalBank, model: BenchModel, cpus: dict[str, list[int]],
               show: Show) -> dict[str, Any]:
    """bench.baselines one after the other (the plain pipeline runs in this process), then
    the bus floor (bench.relay) with the cell's placement."""
    out: dict[str, Any] = {"features": baselines.features_baseline(bank)}
    show.update(1.0, "numba vs numpy")
    out["river"] = baselines.river_baseline(model, bank.load)
    show.update(2.0, "River")
    out["plain_pipeline"] = baselines.plain_pipeline(bank.load, PLAIN_S, seed=bank.seed)
    show.update(3.0, "plain pipeline")
    out["bus_floor"] = relay.bus_floor(bank.load, cpus, seed=bank.seed)
    show.update(4.0, "bus floor")
    return out


def run_bench(opts: BenchOptions, show: Show) -> dict[str, Any]:
    """Everything the report needs, raw; bench.report shapes it."""
    load = opts.load
    period_s = load.frame_samples / load.rate_hz
    first = math.ceil(LEAD_S / period_s)
    last = first + max(1, round(opts.seconds / period_s))
    show.phase("model", 1.0)
    bundle_dir = ensure_bundle(load, opts.seed, opts.cache_dir)
    show.update(1.0, bundle_dir.name)
    schedule = plan_trips(load, opts.trips, first * period_s, opts.seconds, opts.seed, bench_fault)
    own_dir = None if opts.work_dir is not None else Path(tempfile.mkdtemp(prefix="tw-bench-run-"))
    # The cell's own folder, cleared as it starts: never a folder the user named.
    run_dir = (opts.work_dir / "cell") if opts.work_dir is not None else (own_dir or Path("."))
    plan = CellPlan(load, bundle_dir, opts.deadline_ms, schedule,
                    LEAD_S + opts.seconds + TAIL_S, opts.seed, run_dir)
    out: dict[str, Any] = {"schedule": schedule, "first_frame": first, "last_frame": last,
                           "bundle": str(bundle_dir)}
    try:
        show.phase("start", 4.0)
        steps = iter(range(4))
        with BenchCell(plan, note=lambda s: show.update(float(next(steps, 3)), s)) as cell:
            if min(_positions(cell.monitor()).values()) >= first:
                raise BenchSetupError(f"the interlock armed after the span's start (stream "
                                      f"{LEAD_S:g} s); the machine is too slow to start the cell")
            votes_n = cell.cfg.decision.n if cell.cfg is not None else 5
            span = measure_span(cell, schedule, first, last, votes_n, show)
            out["span"] = span
            out["votes_n"] = votes_n
            out["drained"] = _drain(cell)
            out["feeder_sent"] = cell.feeder_sent()
            out["placement"] = cell.cpus
        out["monitor_stopped"] = cell.log_event("monitor", "monitor_stopped")
        wall_s = (span.end.t_ns - span.start.t_ns) / 1e9
        out["cpu"] = cpu.percent(span.start.cpu, span.end.cpu, wall_s)
        frames = (int(span.end.monitor.get("frames_accepted", 0))
                  - int(span.start.monitor.get("frames_accepted", 0)))
        out["cpu_threads"] = {name: cpu.between(span.start.threads.get(name, {}),
                                                    span.end.threads.get(name, {}), wall_s, frames)
                              for name in THREADS_OF}
        bank = SignalBank(load, opts.seed)
        show.phase("floors", 1.0)
        model = bench_model(bundle_dir, bank)
        out["floors"] = floors.measure(bank, model)
        out["floors"]["model_call_tiers"] = {
            t: floors.model_call(bench_model(bundle_dir, bank, t))
            for t in load_bundle(bundle_dir, DEV_KEY).tiers}
        show.update(1.0)
        if not opts.skip_baselines:
            show.phase("baselines", 4.0)
            out["baselines"] = _baselines(bank, model, out["placement"], show)
    except ControlTimeout as e:
        raise BenchSetupError(f"a process of the cell stopped answering: {e}") from None
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
    return out
