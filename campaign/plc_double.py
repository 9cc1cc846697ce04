"""A recording ``StopSink`` double for the latch property walks (campaign.latch_walk).

It stands for a PLC: every request is confirmed at once unless the walk made it "down"
(connect refused) or "refuse" (the PLC answers with a Modbus exception); it keeps the last
permit, heartbeat and trip reason written, and counts any permit 1 it confirmed while the
walk's guard said the latch was latched. No sockets, no clock; used in no cell.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType

from interlock.errors import TargetUnavailable, WriteRefused


class PlcDouble:
    """A recording ``StopSink``: confirms at once unless told to be down or to refuse.

    ``guard()`` says whether permit 1 would be a violation now (the latch is latched); a
    confirmed permit-1 write while it says so is counted in ``permit_on_while_latched``."""

    def __init__(self, name: str, guard: Callable[[], bool]) -> None:
        self.name = name
        self.timeout_ms = 5.0
        self.mode = "ok"  # "ok" | "down" | "refuse"
        self.watchdog_ms = 300
        self.permit = False
        self.heartbeat = 0
        self.trip_reason = 0
        self.permit_on_while_latched = 0
        self._connected = False
        self._guard = guard

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def healthy(self) -> bool:
        return self.mode == "ok"

    def drop(self) -> None:
        self._connected = False

    def _request(self) -> None:
        if self.mode == "down":
            self._connected = False
            raise TargetUnavailable(self.name, "connect refused (injected)")
        self._connected = True
        if self.mode == "refuse":
            raise WriteRefused(self.name, "exception 0x04 (injected)")

    def connect(self, timeout_ms: float | None = None) -> None:
        if self.mode == "down":
            raise TargetUnavailable(self.name, "connect refused (injected)")
        self._connected = True

    def close(self) -> None:
        self._connected = False

    def write_permit(self, on: bool, timeout_ms: float | None = None) -> None:
        self._request()
        if on and self._guard():
            self.permit_on_while_latched += 1
        self.permit = on

    def write_heartbeat(self, value: int, timeout_ms: float | None = None) -> None:
        self._request()
        self.heartbeat = value

    def write_trip_reason(self, code: int, timeout_ms: float | None = None) -> None:
        self._request()
        self.trip_reason = code

    def read_watchdog_ms(self, timeout_ms: float | None = None) -> int:
        self._request()
        return self.watchdog_ms

    def submit_heartbeat(self, value: int) -> Future[None]:
        fut: Future[None] = Future()
        try:
            self.write_heartbeat(value)
        except (TargetUnavailable, WriteRefused) as e:
            fut.set_exception(e)
        else:
            fut.set_result(None)
        return fut

    def __enter__(self) -> "PlcDouble":
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
