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
