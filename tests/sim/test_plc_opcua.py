"""The OPC-UA face of the simulated PLC, driven by a real asyncua client on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient

from sim.plc_logic import PlcProgram, PlcState
from sim.plc_modbus import ModbusPlc
from sim.plc_opcua import OpcuaPlc
from sim.plc_runtime import PlcRuntime
from tripwire.config import ModbusTargetConfig, OpcuaTargetConfig

NS_URI = "urn:tripwire:plc"


async def _eventually(probe: Callable[[], Awaitable[Any]], timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = await probe()
        if got:
            return got
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def _dv(value: Any, vtype: ua.VariantType) -> ua.DataValue:
    return ua.DataValue(ua.Variant(value, vtype))


def test_variables_methods_and_writes() -> None:
    async def scenario() -> None:
        plc = PlcRuntime(PlcProgram(300))
        async with OpcuaPlc(plc, OpcuaTargetConfig()) as server:
            assert server.port > 0
            async with Client(server.url, timeout=5) as client:
                ns = await client.get_namespace_index(NS_URI)

                def node(name: str) -> Any:
                    return client.get_node(ua.NodeId(name, ns))

                values = [await node(n).read_value()
                          for n in ("Permit", "Heartbeat", "TripReason", "WatchdogMs", "State")]
                assert values == [False, 0, 0, 300, int(PlcState.STOPPED)]
                assert await node("Heartbeat").read_data_type_as_variant_type() == ua.VariantType.UInt16
                t0 = time.monotonic_ns()
                await node("Heartbeat").write_value(_dv(1, ua.VariantType.UInt16))
                await node("Permit").write_value(_dv(True, ua.VariantType.Boolean))
                await node("TripReason").write_value(_dv(3, ua.VariantType.UInt16))
                t1 = time.monotonic_ns()
                s = plc.snapshot()
                assert (s.permit, s.heartbeat, s.trip_reason, s.running, s.armed) == (True, 1, 3, True, True)
                await _eventually(lambda: _equals(node("State").read_value(), int(PlcState.RUNNING)))
                writes = plc.writes()
                assert [(w.target, w.name, w.value) for w in writes] == [
                    ("opcua", "heartbeat", 1), ("opcua", "permit", 1), ("opcua", "trip_reason", 3)]
                assert all(t0 <= w.t_ns <= t1 for w in writes)
                # Stop() is a stop command: the permit drops, and the node shows it
                await client.get_node(ua.NodeId("PLC", ns)).call_method(ua.NodeId("Stop", ns))
                assert not plc.snapshot().permit and plc.writes()[-1].name == "stop"
                await _eventually(lambda: _equals(node("Permit").read_value(), False))
                await _eventually(lambda: _equals(node("State").read_value(), int(PlcState.STOPPED)))

    asyncio.run(scenario())


async def _equals(value: Awaitable[Any], want: Any) -> bool:
    return bool(await value == want)


def test_wrong_variant_types_and_read_only_nodes_are_refused() -> None:
    async def scenario() -> None:
        plc = PlcRuntime(PlcProgram(300))
        async with OpcuaPlc(plc, OpcuaTargetConfig()) as server:
            async with Client(server.url, timeout=5) as client:
                ns = await client.get_namespace_index(NS_URI)

                def node(name: str) -> Any:
                    return client.get_node(ua.NodeId(name, ns))

                with pytest.raises(ua.UaStatusCodeError) as e1:
                    await node("Heartbeat").write_value(_dv(5, ua.VariantType.Int32))
                assert e1.value.code == ua.StatusCodes.BadTypeMismatch
                with pytest.raises(ua.UaStatusCodeError) as e2:
                    await node("Permit").write_value(_dv(1, ua.VariantType.UInt16))
                assert e2.value.code == ua.StatusCodes.BadTypeMismatch
                with pytest.raises(ua.UaStatusCodeError):
                    await node("State").write_value(_dv(1, ua.VariantType.UInt16))
                with pytest.raises(ua.UaStatusCodeError):
                    await node("WatchdogMs").write_value(_dv(1, ua.VariantType.UInt32))
                assert await node("Heartbeat").read_value() == 0
        assert plc.writes() == []
        assert plc.snapshot().heartbeat == 0

    asyncio.run(scenario())


def test_both_faces_share_one_program_and_the_watchdog_shows_on_opcua() -> None:
    async def scenario() -> None:
        plc = PlcRuntime(PlcProgram(100))
        async with (ModbusPlc(plc, ModbusTargetConfig()) as mb,
                    OpcuaPlc(plc, OpcuaTargetConfig()) as opc):
            scans = asyncio.create_task(plc.run_scans(5.0))
            modbus = AsyncModbusTcpClient("127.0.0.1", port=mb.port, timeout=2, retries=0)
            assert await modbus.connect()
            try:
                async with Client(opc.url, timeout=5) as client:
                    ns = await client.get_namespace_index(NS_URI)

                    def node(name: str) -> Any:
                        return client.get_node(ua.NodeId(name, ns))

                    await modbus.write_register(0, 9, device_id=1)
                    await modbus.write_coil(0, True, device_id=1)
                    await _eventually(lambda: _equals(node("Permit").read_value(), True))
                    assert await node("Heartbeat").read_value() == 9
                    # an OPC-UA heartbeat keeps it alive; then it stops and the watchdog trips
                    for hb in (10, 11, 12):
                        await node("Heartbeat").write_value(_dv(hb, ua.VariantType.UInt16))
                        await asyncio.sleep(0.02)
                    await _eventually(lambda: _equals(node("State").read_value(),
                                                      int(PlcState.WATCHDOG_TRIPPED)))
                    regs = (await modbus.read_holding_registers(3, count=1, device_id=1)).registers
                    assert regs == [int(PlcState.WATCHDOG_TRIPPED)]
                    assert [w.target for w in plc.writes()] == ["modbus"] * 2 + ["opcua"] * 3
            finally:
                modbus.close()
                scans.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await scans

    asyncio.run(scenario())
