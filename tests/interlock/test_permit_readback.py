"""A PLC that comes back from a lost link without our permit (it restarted with its power-on
defaults) trips the interlock; one that comes back still holding it does not. Real pymodbus
and asyncua PLCs behind a proxy that can go silent; the controller driven by real time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from interlock.controller import Interlock
from interlock.journal import Journal
from interlock.latch import State
from interlock.modbus_writer import ModbusStopWriter
from interlock.opcua_writer import OpcuaStopWriter
from interlock.sink import PermitReadback, StopSink
from tests.interlock.conftest import PLC_NS, FreezableProxy, OpcuaPlc
from tripwire.config import InterlockConfig, ModbusTargetConfig, OpcuaTargetConfig
from tripwire.messages import Heartbeat, HeartbeatFlag, encode_heartbeat

HB_MS = 50.0


class Driver:
    """The service loop's part: monitor heartbeats in, ticks, until a condition holds."""

    def __init__(self, il: Interlock) -> None:
        self.il = il
        self.counter = 0

    def step(self) -> None:
        self.counter += 1
        now = time.monotonic_ns()
        self.il.on_message(encode_heartbeat(Heartbeat(1, self.counter, now, 0, 0, 0, 0, HeartbeatFlag.NONE)), now)
        self.il.tick(time.monotonic_ns())

    def until(self, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            self.step()
            time.sleep(0.005)

    def alarms(self) -> set[str]:
        return {a["name"] for a in self.il.status()["alarms"] if a["active"]}


@pytest.fixture(params=["modbus", "opcua"])
def rig(request: pytest.FixtureRequest, tmp_path: Path, opcua_server: OpcuaPlc) -> Iterator[tuple[Driver, Any, FreezableProxy]]:
    kind = str(request.param)
    plc: Any
    if kind == "modbus":
        plc = request.getfixturevalue("modbus_plc")
        address = ("127.0.0.1", plc.port)
    else:
        plc = request.getfixturevalue("opcua_plc")
        address = ("127.0.0.1", int(plc.url.split(":")[2].split("/")[0]))
    proxy = FreezableProxy(address)
    proxy.start()
    cfg = InterlockConfig(deadline_ms=1000, liveness_ms=400, verdict_budget_ms=600, plc_heartbeat_ms=HB_MS,
                          reset_token="tok", targets=[kind],  # type: ignore[list-item]
                          modbus=ModbusTargetConfig(port=proxy.port, timeout_ms=100),
                          opcua=OpcuaTargetConfig(url=f"opc.tcp://127.0.0.1:{proxy.port}/tripwire-plc",
                                                  namespace=PLC_NS, timeout_ms=200))
    sink: StopSink = (ModbusStopWriter(cfg.modbus) if kind == "modbus"
                      else OpcuaStopWriter(cfg.opcua, connect_timeout_ms=3000))
    try:
        with Journal(tmp_path / "j.sqlite") as journal, sink:
            assert isinstance(sink, PermitReadback)
            il = Interlock(cfg, [sink], journal, time.monotonic_ns)
            il.start(time.monotonic_ns())
            driver = Driver(il)
            driver.until(lambda: il.latch.state is State.ARMED, 10, "armed")
            yield driver, plc, proxy
    finally:
        proxy.stop()


def _set_permit(plc: Any, on: bool) -> None:
    if hasattr(plc, "set_coil"):  # the pymodbus PLC (conftest classes load under pytest's name)
        plc.set_coil(0, on)
    else:
        plc.set_value("Permit", on)


def _permit(plc: Any) -> bool:
    return bool(plc.coil(0)) if hasattr(plc, "set_coil") else bool(plc.value("Permit"))


def _lose_the_link(driver: Driver, proxy: FreezableProxy) -> str:
    name = driver.il.sinks[0].name
    proxy.freeze()
    driver.until(lambda: f"plc_heartbeat_failed:{name}" in driver.alarms(), 10, "the heartbeat alarm")
    return name


def test_plc_back_without_the_permit_trips(rig: tuple[Driver, Any, FreezableProxy]) -> None:
    driver, plc, proxy = rig
    name = _lose_the_link(driver, proxy)
    _set_permit(plc, False)  # what a restart at power-on defaults leaves
    proxy.unfreeze()
    driver.until(lambda: driver.il.latch.state is State.TRIPPED, 20, "the permit-lost trip")
    st = driver.il.status()
    (trip,) = st["trips"]
    assert trip["reason"] == "plc_permit_lost" and name in trip["detail"]
    assert f"plc_permit_lost:{name}" in driver.alarms()
    assert _permit(plc) is False
    reply = driver.il.reset("tok", time.monotonic_ns())  # the operator gives the permit back
    assert reply["ok"] is True and reply["state"] == "ARMED", reply
    assert _permit(plc) is True and f"plc_permit_lost:{name}" not in driver.alarms()


def test_plc_back_with_the_permit_stays_armed(rig: tuple[Driver, Any, FreezableProxy]) -> None:
    driver, plc, proxy = rig
    name = _lose_the_link(driver, proxy)
    proxy.unfreeze()
    driver.until(lambda: f"plc_heartbeat_failed:{name}" not in driver.alarms(), 20, "the link back")
    for _ in range(5):
        driver.step()
    assert driver.il.latch.state is State.ARMED and not driver.il.status()["trips"]
    assert _permit(plc) is True
