"""Where the bench puts the monitor and the interlock (bench.cell.placement): the monitor's
loop alone on one CPU, the interlock and the monitor's I/O thread on another, when there are
two or more; nothing pinned on a single CPU."""

from __future__ import annotations

from bench.cell import _not_armed, placement


def test_two_cpus_the_monitor_loop_alone_on_the_highest() -> None:
    assert placement({0, 1}) == {"monitor": [1], "monitor_io": [0], "interlock": [0]}


def test_more_cpus_use_the_outermost_of_those_allowed() -> None:
    # an affinity mask handed down by the caller (taskset) is respected, in any order
    assert placement([7, 3, 5, 4]) == {"monitor": [7], "monitor_io": [3], "interlock": [3]}


def test_a_single_cpu_pins_nothing() -> None:
    unpinned = {"monitor": [], "monitor_io": [], "interlock": []}
    assert placement({2}) == unpinned
    assert placement([2, 2]) == unpinned


def test_a_cell_that_never_arms_says_what_the_interlock_last_reported() -> None:
    assert _not_armed({}) == "its status socket did not answer"
    late = {"state": "TRIPPED", "trip_reason": "late_verdicts", "selftest": "passed",
            "counters": {"deadline_misses": 865}}
    assert _not_armed(late) == ("state TRIPPED; trip reason late_verdicts; self-test: passed; "
                                "865 deadline misses: the cell may not keep up with this load")
    assert _not_armed({"state": "SAFE", "counters": {"deadline_misses": 0}}) == "state SAFE"
