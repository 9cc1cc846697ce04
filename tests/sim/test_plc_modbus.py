"""The Modbus face of the simulated PLC, driven by a real pymodbus client on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from sim.errors import PlcStartError, SimConfigError
from sim.plc_logic import PlcProgram, PlcState
from sim.plc_modbus import STATE_REGISTER, ModbusPlc
from sim.plc_runtime import PlcRuntime
from tripwire.config import ModbusTargetConfig

MS = 1_000_000
UNIT = 1


async def _eventually(probe: Callable[[], Awaitable[Any]], timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = await probe()
        if got:
            return got
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def _client(port: int) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    return client


def test_port_zero_serves_and_writes_reach_the_plc() -> None:
    async def scenario() -> None:
        plc = PlcRuntime(PlcProgram(300))
        async with ModbusPlc(plc, ModbusTargetConfig()) as server:
            assert server.port > 0
            client = await _client(server.port)
            try:
                t0 = time.monotonic_ns()
                assert not (await client.write_coil(0, True, device_id=UNIT)).isError()
                assert not (await client.write_register(0, 41, device_id=UNIT)).isError()
                assert not (await client.write_registers(0, [42, 7], device_id=UNIT)).isError()
                t1 = time.monotonic_ns()
                assert (await client.read_coils(0, count=1, device_id=UNIT)).bits[0] is True
                regs = (await client.read_holding_registers(0, count=4, device_id=UNIT)).registers
                assert regs == [42, 7, 300, int(PlcState.RUNNING)]
                s = plc.snapshot()
                assert (s.permit, s.heartbeat, s.trip_reason, s.running) == (True, 42, 7, True)
                writes = plc.writes()
                assert [(w.target, w.name, w.value) for w in writes] == [
                    ("modbus", "permit", 1), ("modbus", "heartbeat", 41),
                    ("modbus", "heartbeat", 42), ("modbus", "trip_reason", 7)]
                assert all(t0 <= w.t_ns <= t1 for w in writes)
                assert not (await client.write_coil(0, False, device_id=UNIT)).isError()
                assert (await client.read_coils(0, count=1, device_id=UNIT)).bits[0] is False
                assert plc.writes(4)[0].value == 0 and not plc.snapshot().running
            finally:
                client.close()

    asyncio.run(scenario())


def test_read_only_registers_unknown_addresses_and_units_are_refused() -> None:
    async def scenario() -> None:
        plc = PlcRuntime(PlcProgram(300))
        async with ModbusPlc(plc, ModbusTargetConfig()) as server:
            client = await _client(server.port)
            try:
                assert (await client.write_register(2, 5, device_id=UNIT)).isError()  # T_wd
                assert (await client.write_register(STATE_REGISTER, 1, device_id=UNIT)).isError()
                assert (await client.write_registers(1, [1, 2], device_id=UNIT)).isError()
                assert (await client.write_register(9, 1, device_id=UNIT)).isError()
                assert (await client.write_coil(5, True, device_id=UNIT)).isError()
                assert (await client.write_coil(0, True, device_id=UNIT + 1)).isError()
                assert (await client.read_holding_registers(0, count=1, device_id=9)).isError()
                regs = (await client.read_holding_registers(0, count=4, device_id=UNIT)).registers
                assert regs == [0, 0, 300, int(PlcState.STOPPED)]
            finally:
                client.close()
        assert plc.writes() == []  # refused writes are not records

    asyncio.run(scenario())


def test_watchdog_trips_when_the_heartbeat_stops_and_relatches() -> None:
    async def scenario() -> None:
        plc = PlcRuntime(PlcProgram(100))
        async with ModbusPlc(plc, ModbusTargetConfig()) as server:
            scans = asyncio.create_task(plc.run_scans(5.0))
            client = await _client(server.port)

            async def state() -> int:
                return int((await client.read_holding_registers(STATE_REGISTER, count=1,
                                                                device_id=UNIT)).registers[0])

            try:
                await client.write_coil(0, True, device_id=UNIT)
                for hb in range(1, 6):  # alive while it changes (every 20 ms << 100 ms)
                    await client.write_register(0, hb, device_id=UNIT)
                    await asyncio.sleep(0.02)
                    assert await state() == PlcState.RUNNING
                last_hb_ns = plc.writes()[-1].t_ns
                await _eventually(lambda: _is(state(), PlcState.WATCHDOG_TRIPPED))
                s = plc.snapshot()
                assert s.watchdog_tripped and s.t_watchdog_trip_ns is not None
                reaction_ms = (s.t_watchdog_trip_ns - last_hb_ns) / MS
                assert 100 <= reaction_ms < 100 + 500, reaction_ms  # T_wd plus generous scan slack
                # relatch: permit 0 -> 1 edge, then a changing heartbeat
                await client.write_coil(0, False, device_id=UNIT)
                await client.write_coil(0, True, device_id=UNIT)
                assert await state() == PlcState.WATCHDOG_TRIPPED
                await client.write_register(0, 6, device_id=UNIT)
                assert await state() == PlcState.RUNNING
            finally:
                client.close()
                scans.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await scans

    asyncio.run(scenario())


async def _is(value: Awaitable[int], want: int) -> bool:
    return await value == want


def test_taken_port_and_colliding_register_map_are_refused() -> None:
    async def scenario() -> None:
        plc = PlcRuntime(PlcProgram(300))
        async with ModbusPlc(plc, ModbusTargetConfig()) as first:
            with pytest.raises(PlcStartError):
                async with ModbusPlc(plc, ModbusTargetConfig(), port=first.port):
                    pass

    asyncio.run(scenario())
    with pytest.raises(SimConfigError):
        ModbusPlc(PlcRuntime(PlcProgram(300)), ModbusTargetConfig(trip_reason_register=3))
