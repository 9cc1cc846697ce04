"""Process scheduling for the latency-critical components (shell).

A monitor that is not given a CPU for a few milliseconds looks dead to the interlock's
liveness rule. On a factory PC the interlock and the monitor therefore run under SCHED_FIFO
at configured priorities (interlock highest), like the systemd units in ``deploy/`` set. Both
block in ``poll`` between messages, so they never hold a core while idle; the kernel's RT
throttling keeps a runaway from taking the whole machine. Where the process lacks the right
(no CAP_SYS_NICE), it carries on at normal priority and says so once.
"""

from __future__ import annotations

import os

import structlog


def apply(priority: int, component: str) -> bool:
    """Switch this process to SCHED_FIFO at ``priority`` (1..99); 0 leaves it alone."""
    log = structlog.get_logger(component=component)
    if priority <= 0:
        return False
    # Every thread of the process, not only the caller: ZeroMQ's I/O thread moves the bytes,
    # and a context created before this call would otherwise keep it at normal priority.
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    try:
        for tid in tids:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as e:
        log.warning("realtime_denied", priority=priority, error=str(e))
        return False
    log.info("realtime_scheduling", policy="fifo", priority=priority, threads=len(tids))
    return True
