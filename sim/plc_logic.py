"""The simulated PLC's program: permit, heartbeat watchdog and the record of every write.

Pure core: a state machine driven by ``on_write(target, name, value, now_ns)`` and
``scan(now_ns)``; time is always an argument, never read here. The Modbus and OPC-UA servers
are two views of one ``PlcProgram`` (DESIGN.md section 5, de-energize to trip):

- the machine runs iff ``permit`` is 1 and the watchdog has not tripped;
- the watchdog arms once permit=1 has been seen together with a heartbeat write, and then
  trips (latched, state 2) when the heartbeat value has not changed for ``watchdog_ms``.
  The heartbeat is judged by change only: any new 16-bit value counts (65535 -> 0 is a
  change like any other, so the wrap needs no rule), and a value written again unchanged
  (a frozen counter still being written) does not;
- after a trip the machine runs again only after a fresh permit 0->1 edge followed by a
  heartbeat change.

Must not import the shell's libraries (asyncio, pymodbus, asyncua, zmq, structlog).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import IntEnum

WRITABLE = ("permit", "heartbeat", "trip_reason", "stop")
MAX_RECORDS = 100_000


class PlcState(IntEnum):
    STOPPED = 0
    RUNNING = 1
    WATCHDOG_TRIPPED = 2


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One accepted write as it arrived at the PLC (``t_ns``: monotonic arrival time)."""

    t_ns: int
    target: str  # "modbus" or "opcua"
    name: str  # "permit", "heartbeat", "trip_reason" or "stop" (OPC-UA Stop() method)
    value: int


@dataclass(frozen=True, slots=True)
class PermitChanged:
    permit: bool
    target: str
    t_ns: int


@dataclass(frozen=True, slots=True)
class RunningChanged:
    running: bool
    t_ns: int


@dataclass(frozen=True, slots=True)
class WatchdogTripped:
    t_ns: int
    heartbeat_age_ns: int


@dataclass(frozen=True, slots=True)
class Relatched:
    t_ns: int


PlcEvent = PermitChanged | RunningChanged | WatchdogTripped | Relatched


@dataclass(frozen=True, slots=True)
class PlcSnapshot:
    permit: bool
    heartbeat: int
    trip_reason: int
    watchdog_ms: int
    state: PlcState
    running: bool
    armed: bool
    watchdog_tripped: bool
    t_watchdog_trip_ns: int | None
    writes_total: int


class WriteLog:
    """The last ``capacity`` writes; indices are absolute, so ``since(i)`` pages reliably."""

    def __init__(self, capacity: int = MAX_RECORDS) -> None:
        self._records: deque[WriteRecord] = deque(maxlen=capacity)
        self.total = 0

    def append(self, rec: WriteRecord) -> None:
        self._records.append(rec)
        self.total += 1

    def since(self, index: int = 0) -> list[WriteRecord]:
        first = self.total - len(self._records)  # absolute index of the oldest kept record
        return list(self._records)[max(0, index - first):]


class PlcProgram:
    """One PLC scan program; every method returns the events it caused (possibly none)."""

    def __init__(self, watchdog_ms: float, capacity: int = MAX_RECORDS) -> None:
        self.watchdog_ns = int(watchdog_ms * 1_000_000)
        self.log = WriteLog(capacity)
        self._permit = False
        self._heartbeat = 0
        self._trip_reason = 0
        self._hb_seen = False
        self._hb_changed_ns = 0
        self._armed = False
        self._armed_ns = 0
        self._tripped = False
        self._t_trip_ns: int | None = None
        self._edge_after_trip = False

    @property
    def running(self) -> bool:
        return self._permit and not self._tripped

    def snapshot(self) -> PlcSnapshot:
        if self._tripped:
            state = PlcState.WATCHDOG_TRIPPED
        else:
            state = PlcState.RUNNING if self._permit else PlcState.STOPPED
        return PlcSnapshot(
            permit=self._permit, heartbeat=self._heartbeat, trip_reason=self._trip_reason,
            watchdog_ms=self.watchdog_ns // 1_000_000, state=state, running=self.running,
            armed=self._armed, watchdog_tripped=self._tripped, t_watchdog_trip_ns=self._t_trip_ns,
            writes_total=self.log.total,
        )

    def on_write(self, target: str, name: str, value: int, now_ns: int) -> list[PlcEvent]:
        """An accepted write from a client. Unknown names are a programmer error."""
        if name not in WRITABLE:
            raise ValueError(f"not a writable PLC variable: {name!r}")
        self.log.append(WriteRecord(now_ns, target, name, int(value)))
        was_running = self.running
        events: list[PlcEvent] = []
        if name in ("permit", "stop"):
            on = bool(value) if name == "permit" else False
            if on != self._permit:
                events.append(PermitChanged(on, target, now_ns))
            if on and not self._permit and self._tripped:
                self._edge_after_trip = True
            if not on:
                self._edge_after_trip = False  # the relatch edge must be fresh
            self._permit = on
        elif name == "heartbeat":
            v = int(value) & 0xFFFF
            if v != self._heartbeat or not self._hb_seen:
                self._heartbeat = v
                self._hb_seen = True
                self._hb_changed_ns = now_ns
                if self._tripped and self._edge_after_trip and self._permit:
                    self._tripped = False
                    self._edge_after_trip = False
                    self._armed = False
                    events.append(Relatched(now_ns))
        else:  # trip_reason
            self._trip_reason = int(value) & 0xFFFF
        self._arm(now_ns)
        if self.running != was_running:
            events.append(RunningChanged(self.running, now_ns))
        return events

    def _arm(self, now_ns: int) -> None:
        if not self._armed and not self._tripped and self._permit and self._hb_seen:
            self._armed = True
            self._armed_ns = now_ns

    def scan(self, now_ns: int) -> list[PlcEvent]:
        """One PLC scan: the watchdog checks the heartbeat's age."""
        if not self._armed or self._tripped:
            return []
        age = now_ns - max(self._hb_changed_ns, self._armed_ns)
        if age < self.watchdog_ns:
            return []
        was_running = self.running
        self._tripped = True
        self._armed = False
        self._edge_after_trip = False
        self._t_trip_ns = now_ns
        events: list[PlcEvent] = [WatchdogTripped(now_ns, age)]
        if was_running:
            events.append(RunningChanged(False, now_ns))
        return events
