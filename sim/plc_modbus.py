"""The simulated PLC's Modbus TCP face: a pymodbus 3 server over the shared PLC program.

Register map (device id ``ModbusTargetConfig.unit``; other ids are refused):

    coil    permit_coil (0)            permit, read/write
    holding heartbeat_register (0)     heartbeat counter, read/write
    holding trip_reason_register (1)   trip reason, read/write
    holding watchdog_register (2)      T_wd in ms, read-only (writes get ILLEGAL_ADDRESS)
    holding STATE_REGISTER (3)         0 stopped, 1 running, 2 watchdog tripped, read-only

Reads are served from the PLC program's state, so both protocol faces always agree. Every
accepted write is handed to ``PlcRuntime.write`` stamped with the time its PDU was decoded.
Binds 127.0.0.1; port 0 lets the kernel choose, and ``port`` reports the real one. Shell code:
it must hold no PLC rule of its own.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Self

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from sim.errors import PlcStartError, SimConfigError
from sim.plc_runtime import PlcRuntime
from tripwire.config import ModbusTargetConfig

STATE_REGISTER = 3
COIL_FUNCTIONS = frozenset({1, 5, 15})
REGISTER_FUNCTIONS = frozenset({3, 6, 16})


class ModbusPlc:
    """Async context manager: ``async with ModbusPlc(plc, target) as m: m.port``."""

    def __init__(self, plc: PlcRuntime, target: ModbusTargetConfig, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        self._plc = plc
        self._target = target
        self._host = host
        self._want_port = port
        regs = {
            target.heartbeat_register: "heartbeat",
            target.trip_reason_register: "trip_reason",
            target.watchdog_register: "watchdog_ms",
            STATE_REGISTER: "state",
        }
        if len(regs) != 4:
            raise SimConfigError(
                "interlock.modbus: heartbeat, trip_reason and watchdog registers must differ "
                f"from each other and from the state register ({STATE_REGISTER})")
        self._registers = regs
        self._server: ModbusTcpServer | None = None
        self._port = 0
        self._rx_ns = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the Modbus PLC is not serving")
        return self._port

    def _device(self) -> list[SimDevice]:
        t = self._target
        holding = [
            SimData(addr, values=0, datatype=DataType.UINT16, readonly=name in ("watchdog_ms", "state"))
            for addr, name in self._registers.items()
        ]
        plc = SimDevice(
            id=t.unit,
            simdata=(
                [SimData(t.permit_coil, values=False, datatype=DataType.BITS)],
                [SimData(0, values=False, datatype=DataType.BITS)],
                holding,
                [SimData(0, datatype=DataType.INVALID)],
            ),
            action=self._action,
        )
        if t.unit == 0:
            return [plc]
        # Device 0 answers every other unit id: it has no valid address, so all is refused.
        return [plc, SimDevice(id=0, simdata=[SimData(0, datatype=DataType.INVALID)])]

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self._rx_ns = time.monotonic_ns()  # the request arrived (decoded) now
        return pdu

    async def _action(self, function_code: int, start: int, address: int, count: int,
                      registers: list[int], values: list[int] | list[bool] | None) -> ExcCodes | None:
        t_ns = self._rx_ns or time.monotonic_ns()
        if function_code in COIL_FUNCTIONS:
            if values is not None:
                if address != self._target.permit_coil or len(values) != 1:
                    return ExcCodes.ILLEGAL_ADDRESS
                self._plc.write("modbus", "permit", int(bool(values[0])), t_ns)
            self._fill_coils(start, registers)
            return None
        if function_code not in REGISTER_FUNCTIONS:
            return ExcCodes.ILLEGAL_FUNCTION
        if values is not None:
            names = [self._registers.get(address + i) for i in range(len(values))]
            if any(n not in ("heartbeat", "trip_reason") for n in names):
                return ExcCodes.ILLEGAL_ADDRESS
            for name, value in zip(names, values):
                self._plc.write("modbus", str(name), int(value), t_ns)
        self._fill_registers(start, registers)
        return None

    def _fill_coils(self, start_register: int, registers: list[int]) -> None:
        coil = self._target.permit_coil
        i = coil // 16 - start_register
        if 0 <= i < len(registers):
            bit = 1 << (coil % 16)
            on = self._plc.snapshot().permit
            registers[i] = (registers[i] | bit) if on else (registers[i] & ~bit)

    def _fill_registers(self, start: int, registers: list[int]) -> None:
        s = self._plc.snapshot()
        now = {"heartbeat": s.heartbeat, "trip_reason": s.trip_reason,
               "watchdog_ms": min(s.watchdog_ms, 0xFFFF), "state": int(s.state)}
        for addr, name in self._registers.items():
            i = addr - start
            if 0 <= i < len(registers):
                registers[i] = now[name]

    async def __aenter__(self) -> Self:
        try:
            server = ModbusTcpServer(self._device(), address=(self._host, self._want_port),
                                     trace_pdu=self._trace_pdu)
            await server.serve_forever(background=True)
            listener: Any = server.transport
            self._port = int(listener.sockets[0].getsockname()[1])
        except (OSError, RuntimeError, TypeError) as e:
            raise PlcStartError("modbus", f"cannot serve on {self._host}:{self._want_port}: {e}") from None
        self._server = server
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        server, self._server = self._server, None
        self._port = 0
        if server is None:
            return
        listener: Any = server.transport
        await server.shutdown()  # type: ignore[no-untyped-call]
        if listener is not None:
            await listener.wait_closed()
