"""Wall-clock jumps inside a running cell: no spurious trip, and a later fault still trips.

One trial brings up a real cell (sim, SCADA gateway, interlock and monitor processes,
``tripwire.stack``; the stop goes to the Modbus or the OPC-UA target)
with a movable wall clock in each process (``tripwire.testclock``, or libfaketime where it
is installed), waits until it is armed, starts the sim's schedule, jumps the cell's wall
clock by +1 h or -1 h (a control file named in the children's environment), watches the interlock stay ARMED until a scheduled bearing fault
begins, and requires the trip for that fault: reason "verdict", on the faulted source,
acknowledged, trip latency (t_ack - t_acq) within D.

The trial also checks that the jump really reached every process: the interlock's journal
stamps wall_ns (its "start" entry unshifted, its "trip" entry shifted by the jump), and the
last log line of each process, written after the jump, carries a shifted timestamp. A trial
whose jump cannot be seen fails: it would have proved nothing.

The machine's own clock is never touched. Campaign shell: processes, sockets on loopback
and files in the trial's folder; everything is torn down at the end of each trial.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from campaign.case import Trial
from interlock.journal import Journal
from tripwire import config, testclock
from tripwire.control import ControlTimeout
from tripwire.stack import Stack, demo_table

JUMP_AT_S = 1.0  # after the schedule starts
FAULT_AT_S = 3.0  # after the schedule starts: the cell runs >= 1 s on the jumped clock first
TRIP_TIMEOUT_S = 20.0
ARM_TIMEOUT_S = 120.0
SHIFT_TOLERANCE_S = 120.0  # a shifted stamp is within this of real time + jump
CACHE_DIR = Path(".tripwire/cache")  # the demo's model cache
LIBFAKETIME = (Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
               Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
               Path("/usr/lib/faketime/libfaketime.so.1"),
               Path("/usr/local/lib/faketime/libfaketime.so.1"))


def bundle() -> Path:
    """The demo's default model (trained on simulated normal operation when not cached)."""
    from models.train import ensure_default_bundle

    return ensure_default_bundle(config.from_dict(demo_table(bundle="")), CACHE_DIR)


def libfaketime() -> Path | None:
    """The libfaketime library when it is installed (Debian's ``faketime`` package)."""
    for path in LIBFAKETIME:
        if path.exists():
            return path
    return None


@dataclass(frozen=True, slots=True)
class Jumper:
    """How the cell's wall clock is moved: the children's environment and the control file.

    ``hook``: tripwire.testclock in each Python process. ``faketime``: libfaketime preloaded
    into each process, so C code's own CLOCK_REALTIME reads jump too; monotonic stays real.
    libfaketime re-reads its file once a second (the jump lands within 1 s): re-reading it on
    every call (FAKETIME_NO_CACHE) added up to 600 ms of delay to the OPC-UA path and tripped
    the cell whether the clock jumped or not."""

    backend: str
    file: Path
    env: dict[str, str]

    @classmethod
    def make(cls, backend: str, run_dir: Path) -> "Jumper":
        file = run_dir / f"wall_clock_{backend}"
        if backend == "hook":
            return cls(backend, file, {testclock.ENV: str(file)})
        lib = libfaketime()
        if lib is None:
            raise RuntimeError("libfaketime is not installed")
        return cls(backend, file, {"LD_PRELOAD": str(lib), "FAKETIME_TIMESTAMP_FILE": str(file),
                                   "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})

    def set(self, offset_s: float) -> None:
        if self.backend == "hook":
            testclock.write_offset(self.file, offset_s)
            return
        tmp = self.file.with_name(f".{self.file.name}.tmp")
        tmp.write_text(f"{offset_s:+.0f}\n")  # libfaketime: a relative offset in seconds
        os.replace(tmp, self.file)


@contextmanager
def child_environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` added to the environment the supervisor hands the children it starts now."""
    os.environ.update(env)
    try:
        yield
    finally:
        for name in env:
            os.environ.pop(name, None)


def _last_stamp_s(log: Path) -> float | None:
    """The wall time (s) of the last JSON log line that has a timestamp."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "timestamp" in obj:
            return datetime.fromisoformat(str(obj["timestamp"]).replace("Z", "+00:00")).timestamp()
    return None


def _shift_problems(run_dir: Path, jump_s: float, wall_minus_mono_ns: int, t_jump_s: float,
                    t_end_s: float) -> list[str]:
    """What shows that a process did not see the jump (empty when every one did)."""
    problems: list[str] = []
    for name in ("sim", "monitor", "interlock", "scada"):
        stamp = _last_stamp_s(run_dir / "logs" / f"{name}.log")
        if stamp is None:
            problems.append(f"{name}: no timestamped log line")
            continue
        real = stamp - jump_s
        if not t_jump_s - SHIFT_TOLERANCE_S <= real <= t_end_s + SHIFT_TOLERANCE_S:
            problems.append(f"{name}: last log stamp off by {stamp - t_end_s:+.0f} s, want {jump_s:+.0f} s")
    with Journal(run_dir / "journal.sqlite") as j:
        entries = {e.kind: e for e in j.entries()}  # the last entry of each kind
    for kind, want_s in (("start", 0.0), ("trip", jump_s)):
        e = entries.get(kind)
        if e is None:
            problems.append(f"journal: no {kind} entry")
            continue
        shift_s = (e.wall_ns - (e.mono_ns + wall_minus_mono_ns)) / 1e9
        if abs(shift_s - want_s) > SHIFT_TOLERANCE_S:
            problems.append(f"journal {kind}: wall clock shifted {shift_s:+.0f} s, want {want_s:+.0f} s")
    return problems


def trial(run_dir: Path, model: Path, jump_s: float, deadline_ms: float, target: str,
          backend: str = "hook") -> Trial:
    run_dir.mkdir(parents=True, exist_ok=True)
    jumper = Jumper.make(backend, run_dir)
    jumper.set(0.0)
    # The plant's seed stays the demo's: the default model is trained on that plant, and
    # another seed's machines score far above its threshold from the first windows on.
    table = demo_table(bundle=str(model), deadline_ms=deadline_ms, target=target, fault="bearing",
                       fault_at_s=FAULT_AT_S, fault_source=1, duration_s=60.0)
    wall_minus_mono_ns = time.time_ns() - time.monotonic_ns()
    stack = Stack(table, run_dir)
    try:
        with child_environment(jumper.env):
            stack.start_sim()
            stack.start_scada()
            stack.start_interlock()
            stack.start_monitor()
        problem = _await_armed(stack)
        if problem:
            return Trial(False, None, f"while arming: {problem}")
        t_sched = time.monotonic()
        stack.sim("schedule")
        problem = _watch_armed(stack, t_sched + JUMP_AT_S)
        if problem:
            return Trial(False, None, f"before the jump: {problem}")
        jumper.set(jump_s)
        t_jump_s = time.time()
        problem = _watch_armed(stack, t_sched + FAULT_AT_S)
        if problem:
            return Trial(False, None, f"after a {jump_s:+.0f} s jump: {problem}")
        outcome = _await_trip(stack)
        dead = [c.name for c in stack.sup.children.values() if not c.alive()]
        if dead and not isinstance(outcome, str):
            outcome = f"exited during the trial: {', '.join(dead)}"
    except (RuntimeError, TimeoutError) as e:  # a child that died or stopped answering
        return Trial(False, None, f"{type(e).__name__}: {str(e)[:300]}")
    finally:
        stack.close()
    if isinstance(outcome, str):
        return Trial(False, None, outcome)
    problems = _shift_problems(run_dir, jump_s, wall_minus_mono_ns, t_jump_s, time.time())
    if problems:
        return Trial(False, outcome.get("trip_latency_ms"), "; ".join(problems))
    return Trial(True, outcome.get("trip_latency_ms"), f"jump {jump_s:+.0f} s, {target}, {backend}")


def _await_armed(stack: Stack) -> str:
    """Wait until the interlock is ARMED; a trip or a dead process on the way is the problem."""
    deadline = time.monotonic() + ARM_TIMEOUT_S
    while time.monotonic() < deadline:
        dead = [c.name for c in stack.sup.children.values() if not c.alive()]
        if dead:
            return f"exited: {', '.join(dead)}"
        try:
            st = stack.interlock("status", timeout_ms=300)
        except ControlTimeout:
            continue
        if st.get("state") == "ARMED":
            return ""
        if st.get("state") == "TRIPPED":
            return f"tripped ({[t.get('reason') for t in st.get('trips', [])]})"
        time.sleep(0.02)  # pacing the poll
    return f"not armed after {ARM_TIMEOUT_S:.0f} s"


def _watch_armed(stack: Stack, until_s: float) -> str:
    """Poll the interlock until ``until_s`` (monotonic); a non-ARMED state is the problem."""
    while True:
        st = stack.interlock("status", timeout_ms=2000)
        if st.get("state") != "ARMED":
            trips = [(t.get("reason"), t.get("detail")) for t in st.get("trips", [])]
            return f"state {st.get('state')} (trips {trips})"
        left = until_s - time.monotonic()
        if left <= 0:
            return ""
        time.sleep(min(0.05, left))  # pacing the watch, not synchronising on it


def _await_trip(stack: Stack) -> dict[str, Any] | str:
    """The trip record of the scheduled fault, or why there is none that counts."""
    deadline = time.monotonic() + TRIP_TIMEOUT_S
    while True:
        st = stack.interlock("status", timeout_ms=2000)
        if st.get("state") == "TRIPPED" and st.get("trips"):
            break
        if time.monotonic() > deadline:
            return f"no trip {TRIP_TIMEOUT_S:.0f} s after the fault was due (state {st.get('state')})"
        time.sleep(0.05)
    trips = st["trips"]
    trip: dict[str, Any] = trips[0]
    onsets = [o for o in stack.sim("status").get("fault_onsets", []) if o["source"] == 1]
    if len(trips) != 1:
        return f"{len(trips)} trips"
    if trip.get("reason") != "verdict" or trip.get("source_id") != 1:
        return f"tripped for {trip.get('reason')} on source {trip.get('source_id')}: {trip.get('detail')}"
    if not onsets or trip.get("t_acq_ns") is None or trip["t_acq_ns"] < onsets[0]["t_onset_ns"]:
        return "spurious trip: its window ends before the fault began"
    if not trip.get("acked"):
        return "stop not acknowledged"
    return trip
