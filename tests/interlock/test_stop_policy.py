"""``interlock.stop_policy`` end to end in the controller, against a real pymodbus PLC (behind
a proxy that can go silent) and a real asyncua PLC: "any" ends the stop at the first
confirmation, "all" only once every target confirmed, retrying the missing one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlock.controller import Interlock
from interlock.journal import Journal
from interlock.latch import State, TripReason
from interlock.modbus_writer import ModbusStopWriter
from interlock.opcua_writer import OpcuaStopWriter
from tests.interlock.conftest import PLC_NS, FreezableProxy, ModbusPlc, OpcuaPlc
from tests.waiting import wait_until
from tripwire import config
from tripwire.config import InterlockConfig, ModbusTargetConfig, OpcuaTargetConfig
from tripwire.messages import Heartbeat, HeartbeatFlag, encode_heartbeat

MS = 1_000_000


class Rig:
    def __init__(self, il: Interlock, modbus: ModbusPlc, opcua: OpcuaPlc, proxy: FreezableProxy,
                 journal: Journal) -> None:
        self.il, self.modbus, self.opcua, self.proxy, self.journal = il, modbus, opcua, proxy, journal

    def arm(self) -> None:
        now = time.monotonic_ns()
        self.il.on_message(encode_heartbeat(Heartbeat(1, 1, now, 0, 0, 0, 0, HeartbeatFlag.NONE)), now)
        self.il.tick(now)
        assert self.il.latch.state is State.ARMED, self.il.selftest_note
        assert self.modbus.coil(0) is True and self.opcua.value("Permit") is True

    def trip(self) -> dict[str, Any]:
        rec = self.il.trip(TripReason.MANUAL, time.monotonic_ns(), detail="policy test")
        assert rec is not None
        return rec.to_dict()


@pytest.fixture
def rig_for(tmp_path: Path, modbus_plc: ModbusPlc, opcua_plc: OpcuaPlc) -> Iterator[Any]:
    made: list[Any] = []

    def make(policy: str) -> Rig:
        proxy = FreezableProxy(("127.0.0.1", modbus_plc.port))
        proxy.start()
        made.append(proxy.stop)
        cfg = InterlockConfig(deadline_ms=1000, liveness_ms=400, verdict_budget_ms=600,
                              plc_heartbeat_ms=50, reset_token="tok", targets=["modbus", "opcua"],
                              stop_policy=policy,  # type: ignore[arg-type]
                              modbus=ModbusTargetConfig(port=proxy.port, timeout_ms=100),
                              opcua=OpcuaTargetConfig(url=opcua_plc.url, namespace=PLC_NS, timeout_ms=300))
        journal = Journal(tmp_path / f"{policy}.sqlite").open()
        made.append(journal.close)
        sinks = [ModbusStopWriter(cfg.modbus), OpcuaStopWriter(cfg.opcua, connect_timeout_ms=3000)]
        for sink in sinks:
            made.append(sink.close)
        il = Interlock(cfg, sinks, journal, time.monotonic_ns)
        il.start(time.monotonic_ns())
        return Rig(il, modbus_plc, opcua_plc, proxy, journal)

    yield make
    for close in reversed(made):
        close()


def test_any_healthy_stops_at_the_first_target_then_writes_the_other(rig_for: Any) -> None:
    rig: Rig = rig_for("any")
    rig.arm()
    trip = rig.trip()
    assert trip["acked"] is True and trip["target"] == "modbus"
    assert [a["target"] for a in trip["attempts"]] == ["modbus"]
    assert rig.modbus.coil(0) is False
    assert rig.opcua.value("Permit") is False  # written after the stop, off the critical path
    assert rig.opcua.value("TripReason") == int(TripReason.MANUAL)
    assert rig.il.status()["stop_policy"] == "any"


def test_any_fails_over_when_the_first_target_is_silent(rig_for: Any) -> None:
    rig: Rig = rig_for("any")
    rig.arm()
    rig.proxy.freeze()
    trip = rig.trip()
    assert trip["acked"] is True and trip["target"] == "opcua"
    assert [(a["target"], a["acked"]) for a in trip["attempts"]] == [("modbus", False), ("opcua", True)]
    st = rig.il.status()
    assert st["stop_undelivered"] is False and st["stop_confirmed"] == ["opcua"]
    assert rig.modbus.coil(0) is True  # the silent PLC never got it; delivered is still true


def test_all_healthy_needs_both_and_acks_at_the_last(rig_for: Any) -> None:
    rig: Rig = rig_for("all")
    rig.arm()
    trip = rig.trip()
    assert trip["acked"] is True and trip["target"] == "modbus+opcua"
    acks = [a["t_ack_ns"] for a in trip["attempts"]]
    assert all(a["acked"] for a in trip["attempts"]) and trip["t_ack_ns"] == max(acks)
    assert rig.modbus.coil(0) is False and rig.opcua.value("Permit") is False
    assert rig.il.status()["stop_confirmed"] == ["modbus", "opcua"]
    stop_acked = [e.data for e in rig.journal.entries("stop_acked")]
    assert sorted(e["target"] for e in stop_acked) == ["modbus", "opcua"]
    assert sorted(e["t_ack_ns"] for e in stop_acked) == sorted(acks)  # each at its own time


def test_all_with_a_silent_target_is_undelivered_until_it_confirms(rig_for: Any) -> None:
    rig: Rig = rig_for("all")
    rig.arm()
    rig.proxy.freeze()
    trip = rig.trip()
    assert trip["acked"] is False and trip["target"] is None and trip["t_ack_ns"] is None
    # the silent one, the other, then the silent one again within what was left of D
    assert [(a["target"], a["acked"]) for a in trip["attempts"]] == [
        ("modbus", False), ("opcua", True), ("modbus", False)]
    assert rig.opcua.value("Permit") is False and rig.modbus.coil(0) is True
    st = rig.il.status()
    assert st["stop_undelivered"] is True and st["stop_confirmed"] == ["opcua"]
    assert st["plc_heartbeat_running"] is False
    alarm = {a["name"]: a for a in st["alarms"]}["stop_undelivered"]
    assert alarm["active"] and "modbus" in alarm["detail"] and "opcua" not in alarm["detail"]
    assert rig.il._reset_cause(time.monotonic_ns()) == "the stop write is still undelivered"

    rig.proxy.unfreeze()

    def delivered() -> bool:
        rig.il.tick(time.monotonic_ns())  # retries come from the loop's ticks
        return not rig.il.status()["stop_undelivered"]
    wait_until(delivered, 10, "the late delivery to the missing target")
    assert rig.modbus.coil(0) is False
    st = rig.il.status()
    assert st["stop_confirmed"] == ["opcua", "modbus"]
    assert st["trips"][0]["acked"] is False  # the trip itself stays reported undelivered
    assert not {a["name"]: a for a in st["alarms"]}["stop_undelivered"]["active"]
    late = [e.data for e in rig.journal.entries("stop_acked") if e.data["late"]]
    assert [e["target"] for e in late] == ["modbus"]


def test_config_names_the_bad_policy_and_duplicate_targets() -> None:
    base: dict[str, Any] = {"sources": [{"id": 1, "name": "a", "channels": ["x"]}]}
    with pytest.raises(config.ConfigError, match=r"interlock\.stop_policy"):
        config.from_dict({**base, "interlock": {"stop_policy": "most"}})
    with pytest.raises(config.ConfigError, match=r"interlock\.stop_policy"):
        InterlockConfig(stop_policy="most").check("interlock")  # type: ignore[arg-type]
    with pytest.raises(config.ConfigError, match=r"interlock\.targets"):
        config.from_dict({**base, "interlock": {"targets": ["modbus", "modbus"]}})
    cfg = config.from_dict({**base, "interlock": {"stop_policy": "all", "targets": ["opcua", "modbus"]}})
    assert cfg.interlock.stop_policy == "all"
    assert InterlockConfig().stop_policy == "any"
