"""Where the bench puts the monitor and the interlock (bench.cell.placement): the monitor's
loop alone on one CPU, the interlock and the monitor's I/O thread on another, when there are
two or more; nothing pinned on a single CPU."""

from __future__ import annotations

from bench.cell import placement


def test_two_cpus_the_monitor_loop_alone_on_the_highest() -> None:
    assert placement({0, 1}) == {"monitor": [1], "monitor_io": [0], "interlock": [0]}


def test_more_cpus_use_the_outermost_of_those_allowed() -> None:
    # an affinity mask handed down by the caller (taskset) is respected, in any order
    assert placement([7, 3, 5, 4]) == {"monitor": [7], "monitor_io": [3], "interlock": [3]}


def test_a_single_cpu_pins_nothing() -> None:
    unpinned = {"monitor": [], "monitor_io": [], "interlock": []}
    assert placement({2}) == unpinned
    assert placement([2, 2]) == unpinned
