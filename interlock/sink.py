"""The ``StopSink`` seam: what the interlock needs from a PLC connection.

Every method returns only once the PLC confirmed (Modbus reply with the right echo, OPC-UA
Good status) or raises a ``StopWriteFailed`` subclass; there is no third outcome. Every
call takes an optional ``timeout_ms`` that bounds it end to end (reconnect included);
``None`` means the target's configured timeout.

``submit_heartbeat`` starts a heartbeat write and returns a future the caller checks later,
so that a slow heartbeat never delays a stop write by more than that one in-flight write.

Implementations: ``ModbusStopWriter`` (plain socket) and ``OpcuaStopWriter`` (asyncua on
a private loop). Both pass the same conformance suite (tests/interlock/test_sink_conformance).

``PermitReadback`` is the optional second seam: a sink that can read the PLC's permit back
(both writers can). The interlock uses it after a target's link came back, to find a PLC
that restarted with its power-on defaults (permit 0) while the interlock was armed.
This module holds only the Protocols; it must not import either implementation.
"""

from __future__ import annotations

from concurrent.futures import Future
from types import TracebackType
from typing import Protocol, runtime_checkable


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


@runtime_checkable
class PermitReadback(Protocol):
    def read_permit(self, timeout_ms: float | None = None) -> bool: ...
