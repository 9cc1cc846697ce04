"""Where the cell's CPU goes, per process and per thread, read from ``/proc`` (shell).

``ticks(pid)`` is a process' user + system time (every thread) in clock ticks, and
``percent(before, after, wall_s)`` turns two sets of those into % of one core. ``read(pid)``
takes one reading of every thread of a process; ``between(before, after, wall_s, frames)``
turns two readings into figures per thread (by thread id, named by the thread's ``comm``:
``python3.11`` for the main thread, ``ZMQbg/IO/0`` for a ZeroMQ I/O thread):
``user_percent`` and ``system_percent`` of one core over the span, ``wakeups_per_s``
(voluntary context switches: the thread slept and was woken, a wait on a socket, an event, a
lock), ``preempted_per_s`` (involuntary ones: the scheduler took the CPU away), CPU µs per
frame of the load, and ``cpus``: the CPUs the thread may run on at the span's end, as the
kernel lists them (``Cpus_allowed_list``: "1", "0-1"), which shows where pinning put it. Threads that started or ended inside the span are left out (their time
cannot be split); a reading of a process that is gone is empty. Decides nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SWITCHES = ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")  # in .../status
ALLOWED = "Cpus_allowed_list"  # in .../status


@dataclass(frozen=True, slots=True)
class ThreadReading:
    name: str
    user_ticks: int
    system_ticks: int
    voluntary: int  # context switches the thread asked for (it waited)
    involuntary: int  # context switches forced on it (preempted)
    cpus: str  # the CPUs it may run on ("0-1"; empty where the kernel does not say)


def _stat(text: str) -> tuple[str, int, int]:
    """A ``stat`` file's name (comm), user and system ticks (fields 2, 14 and 15)."""
    fields = text[text.rindex(")") + 2:].split()
    return text[text.index("(") + 1:text.rindex(")")], int(fields[11]), int(fields[12])


def ticks(pid: int) -> int | None:
    """User + system CPU time of a process (all its threads) in clock ticks."""
    try:
        _, user, system = _stat(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None
    return user + system


def percent(before: dict[str, int | None], after: dict[str, int | None],
            wall_s: float) -> dict[str, float | None]:
    """Per process CPU % of one core over ``wall_s``, from ``ticks`` at both ends."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float | None] = {}
    for name, t0 in before.items():
        t1 = after.get(name)
        out[name] = (None if t0 is None or t1 is None or wall_s <= 0
                     else round(100.0 * (t1 - t0) / tick / wall_s, 1))
    return out


def read(pid: int, proc: Path = Path("/proc")) -> dict[int, ThreadReading]:
    """One reading of every thread of ``pid`` (empty when the process is gone)."""
    out: dict[int, ThreadReading] = {}
    try:
        tids = [int(p.name) for p in (proc / str(pid) / "task").iterdir() if p.name.isdigit()]
    except OSError:
        return out
    for tid in tids:
        task = proc / str(pid) / "task" / str(tid)
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
        except OSError:
            continue  # the thread ended between the listing and the read
        name, user, system = _stat(stat)
        switches: dict[str, int] = {}
        allowed = ""
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in SWITCHES:
                switches[key] = int(value)
            elif key == ALLOWED:
                allowed = value.strip()
        out[tid] = ThreadReading(name, user, system,
                                 switches.get("voluntary_ctxt_switches", 0),
                                 switches.get("nonvoluntary_ctxt_switches", 0), allowed)
    return out


def between(before: dict[int, ThreadReading], after: dict[int, ThreadReading], wall_s: float,
            frames: int, tick_hz: int | None = None) -> list[dict[str, Any]]:
    """Per thread alive at both readings, busiest first; ``frames``: frames handled in the
    span (for CPU per frame; 0 leaves it out)."""
    hz = tick_hz or os.sysconf("SC_CLK_TCK")
    if wall_s <= 0:
        return []
    rows: list[dict[str, Any]] = []
    for tid, a in before.items():
        b = after.get(tid)
        if b is None or b.name != a.name:
            continue
        user_s = (b.user_ticks - a.user_ticks) / hz
        system_s = (b.system_ticks - a.system_ticks) / hz
        row: dict[str, Any] = {
            "thread": a.name, "tid": tid,
            "user_percent": round(100.0 * user_s / wall_s, 1),
            "system_percent": round(100.0 * system_s / wall_s, 1),
            "wakeups_per_s": round((b.voluntary - a.voluntary) / wall_s),
            "preempted_per_s": round((b.involuntary - a.involuntary) / wall_s),
            "cpus": b.cpus,
        }
        if frames > 0:
            row["cpu_us_per_frame"] = round(1e6 * (user_s + system_s) / frames, 1)
        rows.append(row)
    rows.sort(key=lambda r: -(r["user_percent"] + r["system_percent"]))
    return rows
