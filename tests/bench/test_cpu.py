"""CPU figures from /proc: real readings of this process and its threads, and the differences."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from bench import cpu
from bench.cpu import ThreadReading

HZ = 100


def test_a_busy_named_thread_shows_its_cpu_and_its_waits() -> None:
    started, go, finished, release = (threading.Event() for _ in range(4))
    tid: list[int] = []

    def spin() -> None:
        tid.append(threading.get_native_id())
        Path(f"/proc/self/task/{tid[0]}/comm").write_text("tw-spin")
        started.set()
        go.wait(10)
        cpu0 = time.thread_time_ns()
        while time.thread_time_ns() - cpu0 < 60_000_000:  # 60 ms of CPU, however long it takes
            pass
        for _ in range(5):  # five waits, each ended by its timeout: five wake-ups
            release.wait(0.002)
        finished.set()
        release.wait(10)

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        assert started.wait(10)
        os.sched_setaffinity(tid[0], {max(os.sched_getaffinity(0))})  # where it may run shows
        before, t0 = cpu.read(os.getpid()), time.monotonic()
        go.set()
        assert finished.wait(30)
        after, wall_s = cpu.read(os.getpid()), time.monotonic() - t0
    finally:
        release.set()
        worker.join(10)
    a, b = before[tid[0]], after[tid[0]]
    assert a.name == b.name == "tw-spin"
    assert b.voluntary - a.voluntary >= 5
    (row,) = [r for r in cpu.between(before, after, wall_s, frames=1) if r["tid"] == tid[0]]
    assert row["thread"] == "tw-spin" and row["cpu_us_per_frame"] >= 40_000  # ticks round
    assert row["cpus"] == str(max(os.sched_getaffinity(0)))
    assert cpu.read(os.getpid()).get(tid[0]) is None  # ended: no row


def test_figures_between_two_readings() -> None:
    before = {1: ThreadReading("python3.11", 100, 10, 50, 5, ""),
              2: ThreadReading("ZMQbg/IO/0", 0, 20, 10, 0, ""),
              3: ThreadReading("gone", 0, 0, 0, 0, ""),
              4: ThreadReading("renamed", 0, 0, 0, 0, "")}
    after = {1: ThreadReading("python3.11", 140, 15, 250, 25, ""),
             2: ThreadReading("ZMQbg/IO/0", 1, 29, 410, 2, "0"),
             4: ThreadReading("tw-other", 5, 0, 0, 0, ""),
             5: ThreadReading("new", 9, 9, 9, 9, "")}
    rows = cpu.between(before, after, wall_s=2.0, frames=400, tick_hz=HZ)
    assert [r["thread"] for r in rows] == ["python3.11", "ZMQbg/IO/0"]  # busiest first
    main, io = rows
    assert (main["user_percent"], main["system_percent"]) == (20.0, 2.5)
    assert (main["wakeups_per_s"], main["preempted_per_s"]) == (100, 10)
    assert main["cpu_us_per_frame"] == 1125.0  # 0.45 s of CPU over 400 frames
    assert (io["user_percent"], io["system_percent"], io["wakeups_per_s"]) == (0.5, 4.5, 200)
    assert (main["cpus"], io["cpus"]) == ("", "0")  # as read at the span's end
    assert cpu.between(before, after, wall_s=0.0, frames=1) == []
    assert "cpu_us_per_frame" not in cpu.between(before, after, 1.0, frames=0)[0]


def test_a_process_that_is_gone_reads_empty(tmp_path: Path) -> None:
    assert cpu.read(4242, proc=tmp_path) == {}


def test_process_ticks_grow_with_work_and_turn_into_percent() -> None:
    t0 = cpu.ticks(os.getpid())
    cpu0 = time.process_time_ns()
    while time.process_time_ns() - cpu0 < 50_000_000:  # 50 ms of CPU
        pass
    t1 = cpu.ticks(os.getpid())
    assert t0 is not None and t1 is not None and t1 > t0
    tick_hz = os.sysconf("SC_CLK_TCK")
    got = cpu.percent({"me": 0, "gone": 5}, {"me": tick_hz, "gone": None}, wall_s=2.0)
    assert got == {"me": 50.0, "gone": None}  # one second of CPU over two: half a core
    assert cpu.ticks(2**22 + 12345) is None  # no such process
