"""PlantView and parse_status: pure, no sockets, times handed in."""

from __future__ import annotations

from typing import Any

import pytest

from scada.view import INTERLOCK_NODES, MONITOR_NODES, SOURCE_NODES, PlantView, Reading, parse_status
from tests.scada.conftest import latency_sparse, verdict
from tripwire.messages import Heartbeat, HeartbeatFlag, Level, VerdictFlag

MS = 1_000_000


def status(**over: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "v": 1, "ok": True, "state": "ARMED", "trip_reason": None, "trips": [],
        "counters": {"deadline_misses": 0}, "latency": latency_sparse([2.0] * 10), "alarms": [],
    }
    reply.update(over)
    return reply


def view() -> PlantView:
    return PlantView([(1, "pump-1"), (2, "fan-2")])


def test_every_declared_node_has_a_reading_in_every_state() -> None:
    v = view()
    paths = {p for p, _ in v.nodes()}
    assert len(paths) == len(INTERLOCK_NODES) + len(MONITOR_NODES) + 2 * len(SOURCE_NODES)
    assert set(v.snapshot(0)) == paths
    v.on_status(status(), 0)
    v.on_message(verdict(1, 1.0, Level.OK), 0)
    v.on_message(Heartbeat(1, 1, 0, 1, 1, 0, 0, HeartbeatFlag.NONE), 0)
    assert set(v.snapshot(1)) == paths
    v.on_status_missing("gone")
    assert set(v.snapshot(2)) == paths


def test_nothing_received_is_no_data_and_unreachable() -> None:
    snap = view().snapshot(5 * MS)
    assert snap["Interlock/Reachable"] == Reading(False)
    assert snap["Interlock/State"] == Reading("UNREACHABLE")
    assert snap["Interlock/LastAlarm"].value.startswith("interlock unreachable")
    assert snap["Interlock/Trips"].quality == "no_data"
    assert snap["Sources/pump-1/Score"].quality == "no_data"
    assert snap["Monitor/HeartbeatAgeMs"].quality == "no_data"
    assert snap["Monitor/DecodeErrors"] == Reading(0)


def test_status_figures_and_staleness_after_loss() -> None:
    v = view()
    alarms = [{"name": "a", "detail": "old", "active": False},
              {"name": "b", "detail": "now", "active": True}]
    reply = status(state="TRIPPED", trip_reason="liveness", trips=[{}, {}, {}],
                   counters={"deadline_misses": 4}, alarms=alarms,
                   latency=latency_sparse([1.0] * 99 + [9.0]))
    assert v.on_status(reply, 10 * MS)
    snap = v.snapshot(60 * MS)
    assert snap["Interlock/State"] == Reading("TRIPPED")
    assert snap["Interlock/TripReason"] == Reading("liveness")
    assert snap["Interlock/Trips"] == Reading(3)
    assert snap["Interlock/DeadlineMisses"] == Reading(4)
    assert snap["Interlock/Alarms"] == Reading(["b: now"])
    assert snap["Interlock/ActiveAlarms"] == Reading(1)
    assert snap["Interlock/LastAlarm"] == Reading("b: now")
    assert snap["Interlock/StatusAgeMs"] == Reading(50.0)
    assert snap["Latency/P50Ms"].value == pytest.approx(1.0, rel=0.01)
    assert snap["Latency/MaxMs"] == Reading(9.0)
    assert snap["Latency/Count"] == Reading(100)

    v.on_status_missing("no reply within 200 ms")
    snap = v.snapshot(70 * MS)
    assert snap["Interlock/Reachable"] == Reading(False)
    assert snap["Interlock/State"] == Reading("UNREACHABLE")
    assert snap["Interlock/Trips"] == Reading(3, "stale")
    assert snap["Latency/MaxMs"] == Reading(9.0, "stale")
    assert snap["Interlock/LastAlarm"] == Reading("interlock unreachable: no reply within 200 ms")


@pytest.mark.parametrize("reply", [
    {"ok": True},
    {"ok": True, "state": "ARMED", "latency": "nope"},
    {"ok": True, "state": "ARMED", "latency": {"idx": [1]}},
    {"ok": False, "error": "unknown_command"},
    {"ok": True, "state": "ARMED", "latency": latency_sparse([]), "alarms": [{"name": "x"}]},
])
def test_malformed_status_counts_as_unreachable(reply: dict[str, Any]) -> None:
    v = view()
    assert not v.on_status(reply, 0)
    assert not v.reachable
    assert v.snapshot(0)["Interlock/LastAlarm"].value.startswith("interlock unreachable: bad status")


def test_parse_status_ignores_extra_fields() -> None:
    figures = parse_status(status(extra={"x": 1}))
    assert figures is not None and figures.state == "ARMED"


def test_verdicts_heartbeats_and_unknown_sources() -> None:
    v = view()
    v.on_message(verdict(2, 3.5, Level.WARN, ("current",), VerdictFlag.GAP | VerdictFlag.STALE), 10 * MS)
    v.on_message(verdict(9, 1.0, Level.OK), 10 * MS)
    v.on_message(Heartbeat(1, 7, 0, 500, 498, 2, 3, HeartbeatFlag.NONE), 12 * MS)
    v.on_decode_error()
    snap = v.snapshot(20 * MS)
    assert snap["Sources/fan-2/Score"] == Reading(3.5)
    assert snap["Sources/fan-2/Level"] == Reading("WARN")
    assert snap["Sources/fan-2/TopChannels"] == Reading("current")
    assert snap["Sources/fan-2/Flags"] == Reading("stale,gap")
    assert snap["Sources/fan-2/LastVerdictAgeMs"] == Reading(10.0)
    assert snap["Sources/pump-1/Level"].quality == "no_data"
    assert snap["Monitor/FramesReceived"] == Reading(500)
    assert snap["Monitor/FramesRejected"] == Reading(2)
    assert snap["Monitor/Tier"] == Reading(3)
    assert snap["Monitor/HeartbeatAgeMs"] == Reading(8.0)
    assert snap["Monitor/DecodeErrors"] == Reading(1)
    assert v.unknown_sources == 1
