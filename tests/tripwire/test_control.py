"""Reading the interlock's status: trip counts and the trips since a count."""

from __future__ import annotations

from tripwire.control import trip_count, trips_since


def _status(total: int, listed: int) -> dict[str, object]:
    return {"trips_total": total, "trips": [{"n": i} for i in range(total - listed, total)]}


def test_new_trips_come_from_the_tail_of_a_truncated_list() -> None:
    st = _status(45, 20)
    assert trip_count(st) == 45
    assert trips_since(st, 43) == [{"n": 43}, {"n": 44}]
    assert trips_since(st, 45) == []
    assert len(trips_since(st, 0)) == 20  # only what is still listed


def test_an_old_status_without_a_total_counts_its_list() -> None:
    st = {"trips": [{"n": 0}, {"n": 1}]}
    assert trip_count(st) == 2 and trips_since(st, 1) == [{"n": 1}]
