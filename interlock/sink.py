"""The ``StopSink`` seam: what the interlock needs from a PLC connection.

Every method returns only once the PLC confirmed (Modbus reply with the right echo, OPC-UA
Good status) or raises a ``StopWriteFailed`` subclass; there is no third outcome. Every
call takes an optional ``timeout_ms`` that bounds it end to end (reconnect included);
``None`` means the target's configured timeout.

``submit_heartbeat`` starts a heartbeat write and returns a future the caller checks later,
so that a slow heartbeat never delays a stop write by more than that one in-flight write.

Implementations: ``ModbusStopWriter`` (plain socket) and ``OpcuaStopWriter`` (asyncua on
a private loop). Both pass the same conformance suite (tests/interlock/test_sink_conformance).
This module holds only the Protocol; it must not import either implementation.
"""

from __future__ import annotations

from concurrent.futures import Future
from types import TracebackType
from typing import Protocol


class StopSink(Protocol):
    name: str
    timeout_ms: float

    @property
    def connected(self) -> bool: ...

    def connect(self, timeout_ms: float | None = None) -> None: ...

    def close(self) -> None: ...

    def write_permit(self, on: bool, timeout_ms: float | None = None) -> None: ...

    def write_heartbeat(self, value: int, timeout_ms: float | None = None) -> None: ...

    def write_trip_reason(self, code: int, timeout_ms: float | None = None) -> None: ...

    def read_watchdog_ms(self, timeout_ms: float | None = None) -> int: ...

    def submit_heartbeat(self, value: int) -> Future[None]: ...

    def __enter__(self) -> "StopSink": ...

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None: ...
