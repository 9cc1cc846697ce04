"""CPU pinning and priority of a process (tripwire.realtime), in a child process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = """
import json, os, sys, threading
from tripwire import realtime
gate = threading.Event()
t = threading.Thread(target=gate.wait)  # a thread that exists before the call
t.start()
realtime.apply(0, "test", [int(sys.argv[1])])
tid = t.native_id
mine, theirs = sorted(os.sched_getaffinity(0)), sorted(os.sched_getaffinity(tid))
gate.set(); t.join()
print(json.dumps({"main": mine, "thread": theirs, "policy": os.sched_getscheduler(0)}))
"""


def test_apply_pins_every_thread_and_leaves_the_priority_at_zero() -> None:
    cpu = max(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", CHILD, str(cpu)], capture_output=True,
                         text=True, timeout=60, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"main": [cpu], "thread": [cpu], "policy": os.SCHED_OTHER}


IO_CHILD = """
import json, os, sys
import zmq
from tripwire import realtime
ctx = zmq.Context()
ctx.socket(zmq.PUB).close(0)  # starts the I/O thread, which names itself later: apply waits
loop_cpu, io_cpu = int(sys.argv[1]), int(sys.argv[2])
realtime.apply(0, "test", [loop_cpu], [io_cpu])
where = {}
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/comm") as f:
        name = f.read().strip()
    where.setdefault("io" if name.startswith("ZMQbg/IO") else "rest", set()).update(
        os.sched_getaffinity(int(tid)))
ctx.term()
print(json.dumps({k: sorted(v) for k, v in where.items()}))
"""


def test_io_cpus_take_zeromqs_io_thread_apart_from_the_loop() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    loop_cpu, io_cpu = cpus[-1], cpus[0]  # the same CPU on a one-CPU machine: still checked
    out = subprocess.run([sys.executable, "-c", IO_CHILD, str(loop_cpu), str(io_cpu)],
                         capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"io": [io_cpu], "rest": [loop_cpu]}


NO_IO_CHILD = """
import json, os, sys
from tripwire import realtime
realtime.IO_THREAD_WAIT_S = 0.2
realtime.apply(0, "test", [int(sys.argv[1])], [int(sys.argv[2])])
print(json.dumps(sorted({c for t in os.listdir("/proc/self/task")
                         for c in os.sched_getaffinity(int(t))})))
"""


def test_io_cpus_without_a_context_pin_everything_to_the_loops_cpus_and_say_so() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    loop_cpu, io_cpu = cpus[-1], cpus[0]
    out = subprocess.run([sys.executable, "-c", NO_IO_CHILD, str(loop_cpu), str(io_cpu)],
                         capture_output=True, text=True, timeout=60, check=True)
    assert "io_thread_missing" in out.stdout + out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [loop_cpu]
