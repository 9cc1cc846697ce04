"""Where the bench puts the monitor and the interlock (bench.cell.placement): one CPU each,
apart, when there are two or more; unpinned on a single CPU."""

from __future__ import annotations

from bench.cell import placement


def test_two_cpus_one_each_interlock_on_the_lowest() -> None:
    assert placement({0, 1}) == {"monitor": [1], "interlock": [0]}


def test_more_cpus_use_the_outermost_of_those_allowed() -> None:
    # an affinity mask handed down by the caller (taskset) is respected, in any order
    assert placement([7, 3, 5, 4]) == {"monitor": [7], "interlock": [3]}


def test_a_single_cpu_pins_nothing() -> None:
    assert placement({2}) == {"monitor": [], "interlock": []}
    assert placement([2, 2]) == {"monitor": [], "interlock": []}
