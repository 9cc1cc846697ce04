"""Process scheduling for the latency-critical components (shell).

A monitor that is not given a CPU for a few milliseconds looks dead to the interlock's
liveness rule. On a factory PC the interlock and the monitor therefore run under SCHED_FIFO
at configured priorities (interlock highest), like the systemd units in ``deploy/`` set. Both
block in ``poll`` between messages, so they never hold a core while idle; the kernel's RT
throttling keeps a runaway from taking the whole machine. Where the process lacks the right
(no CAP_SYS_NICE), it carries on at normal priority and says so once.

Priority alone does not make a CPU available: a virtual machine's CPU can be taken away by
its host, and a kernel without full preemption can hold one for milliseconds. Pinned to the
same CPU (``cpus``), the monitor and the interlock lose it together, and the interlock, which
sees its own wake-up come late, does not take that lost time for the monitor's silence
(``interlock/watchdog.py``, rule 1). On separate CPUs a stall of the monitor's alone is
indistinguishable from a hang, and trips.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import structlog


# ZeroMQ names its I/O threads so. On their own CPU (``io_cpus``) they move messages while the
# process' loop computes; on the loop's CPU at the same SCHED_FIFO priority, a busy loop holds
# them off until it blocks (FIFO does not share a CPU between equals), and frames wait in the
# kernel meanwhile. Measured at plant load (README, "Configuration"): one step of priority
# above the loop instead moved frames sooner but preempted the loop at every verdict sent,
# which doubled its p99 from frame to verdict.
IO_THREAD_PREFIX = "ZMQbg/IO"
# A new thread carries its creator's name until it names itself, and ZeroMQ's I/O thread does
# that from inside, once the kernel first runs it: on a loaded machine that can be after the
# socket call that started it has returned. Until then it cannot be told from the loop's
# threads, so the call waits for it this long (and says so when it never comes).
IO_THREAD_WAIT_S = 2.0


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def apply(priority: int, component: str, cpus: Sequence[int] = (),
          io_cpus: Sequence[int] = ()) -> bool:
    """Pin this process to ``cpus`` (empty: leave it alone), ZeroMQ's I/O thread to
    ``io_cpus`` (empty: as the rest; create the context and a socket first), and
    switch it to SCHED_FIFO at ``priority`` (1..99; 0 leaves it alone). True when the priority
    was taken."""
    log = structlog.get_logger(component=component)
    io: list[int] = []
    if io_cpus:
        io = _io_threads(IO_THREAD_WAIT_S)
        if not io:
            log.warning("io_thread_missing", waited_s=IO_THREAD_WAIT_S)
    # Every thread of the process, not only the caller: ZeroMQ's I/O thread moves the bytes,
    # and a context created before this call would otherwise keep its old CPU and priority.
    tids = _threads()
    if cpus or io:
        try:
            for tid in tids:
                where = io_cpus if tid in io else cpus
                if where:
                    os.sched_setaffinity(tid, set(where))
        except (OSError, AttributeError) as e:
            log.warning("cpu_pinning_denied", cpus=list(cpus), io_cpus=list(io_cpus),
                        error=str(e))
        else:
            log.info("cpu_pinned", cpus=sorted(cpus), threads=len(tids),
                     io_cpus=sorted(io_cpus) if io else None)
    if priority <= 0:
        return False
    try:
        for tid in tids:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as e:
        log.warning("realtime_denied", priority=priority, error=str(e))
        return False
    log.info("realtime_scheduling", policy="fifo", priority=priority, threads=len(tids))
    return True


def _io_threads(within_s: float) -> list[int]:
    """ZeroMQ's I/O threads (a context has one unless told otherwise), once one has named
    itself or ``within_s`` has passed."""
    deadline = time.monotonic() + within_s
    while True:
        io = [tid for tid in _threads() if _name(tid).startswith(IO_THREAD_PREFIX)]
        if io or time.monotonic() >= deadline:
            return io
        time.sleep(0.001)


def _name(tid: int) -> str:
    try:
        with open(f"/proc/self/task/{tid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
