"""The simulated PLC (a real pymodbus server, sim.plc_modbus) on a thread of its own.

Shell: runs an asyncio loop on one thread, serving the project's simulated PLC program on a
free loopback port; ``with BenchPlc() as plc: plc.port``. Leaving the block shuts the
server down, waits for its listener to close and joins the thread. Counts the writes the
PLC accepted, so a measurement can check that what it timed really arrived. It decides
nothing and measures nothing itself.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from bench.errors import BenchSetupError
from sim.errors import PlcStartError
from sim.plc_logic import PlcProgram
from sim.plc_modbus import ModbusPlc
from sim.plc_runtime import PlcRuntime
from tripwire.config import ModbusTargetConfig

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
WATCHDOG_MS = 300.0  # never arms: the bench writes the permit only, never the heartbeat


class BenchPlc:
    """A pymodbus server over a fresh ``PlcProgram``; unit 1, permit coil 0 (the defaults)."""

    def __init__(self, target: ModbusTargetConfig | None = None) -> None:
        self.target = target or ModbusTargetConfig()
        self._runtime = PlcRuntime(PlcProgram(WATCHDOG_MS))
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise BenchSetupError("the bench PLC is not serving")
        return self._port

    def client_target(self, timeout_ms: float) -> ModbusTargetConfig:
        """Where a client writes this PLC's permit."""
        t = self.target
        return ModbusTargetConfig(host="127.0.0.1", port=self.port, unit=t.unit,
                                  permit_coil=t.permit_coil, timeout_ms=timeout_ms)

    def writes_total(self) -> int:
        """Writes the PLC accepted so far (the bench writes the permit only)."""
        return self._runtime.snapshot().writes_total

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with ModbusPlc(self._runtime, self.target, port=0) as server:
                self._port = server.port
                self._ready.set()
                await self._stop.wait()
                # Let a client's last hang-up finish its accept/EOF callbacks before the
                # listener closes (a closing listener can leak a half-accepted socket).
                await asyncio.sleep(0.02)
        except PlcStartError as e:
            self._error = e
        finally:
            self._port = 0
            self._ready.set()

    def __enter__(self) -> BenchPlc:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),),
                                        name="bench-plc", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._error is not None or not self._port:
            self._shutdown()
            raise BenchSetupError(f"the bench PLC did not start: {self._error or 'timeout'}")
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop ended on its own (start failed)
                pass
        if thread is not None:
            thread.join(STOP_TIMEOUT_S)
        self._thread = None
