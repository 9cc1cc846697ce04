"""Shell around the PLC program: reads the monotonic clock, runs the scan, fans out events.

The Modbus and OPC-UA servers hand every accepted write to ``PlcRuntime.write``; the sim
process and the OPC-UA view listen for what changed. Everything runs on one asyncio loop, so
no locking. This module only wires: the rules live in ``sim.plc_logic``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sim.plc_logic import PlcEvent, PlcProgram, PlcSnapshot, WriteRecord

Listener = Callable[[list[PlcEvent]], None]


class PlcRuntime:
    """One PLC shared by both protocol servers."""

    def __init__(self, program: PlcProgram) -> None:
        self.program = program
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """Called after every write and every scan that changed something (events may be [])."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, events: list[PlcEvent]) -> None:
        for listener in self._listeners:
            listener(events)

    def write(self, target: str, name: str, value: int, t_ns: int | None = None) -> None:
        """An accepted client write; ``t_ns`` is when the request arrived (default: now)."""
        now = time.monotonic_ns() if t_ns is None else t_ns
        self._notify(self.program.on_write(target, name, value, now))

    def scan(self) -> None:
        events = self.program.scan(time.monotonic_ns())
        if events:
            self._notify(events)

    def snapshot(self) -> PlcSnapshot:
        return self.program.snapshot()

    def writes(self, since: int = 0) -> list[WriteRecord]:
        return self.program.log.since(since)

    async def run_scans(self, scan_ms: float) -> None:
        """Scan every ``scan_ms`` on the monotonic clock, without drift, until cancelled."""
        period_ns = max(1, int(scan_ms * 1_000_000))
        next_ns = time.monotonic_ns()
        while True:
            self.scan()
            next_ns += period_ns
            now = time.monotonic_ns()
            if next_ns < now - 10 * period_ns:
                next_ns = now  # fell far behind (process stopped): do not burst-scan
            await asyncio.sleep(max(0, next_ns - now) / 1e9)
