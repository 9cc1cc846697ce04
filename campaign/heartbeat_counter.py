"""The ``heartbeat_counter`` row: heartbeats are counters judged by change, across wrap-around.

Two heartbeats guard the cell, and both are driven here through the classes the processes run,
on injected time (a real-time freeze takes a watchdog period; a thousand of them would take
minutes and prove nothing more):

- the PLC's: ``interlock.stop.HeartbeatPump`` advances the 16-bit counter every T_hb and
  writes it, through a sink wired straight to the simulated PLC's program
  (``sim.plc_logic.PlcProgram``, scanned every ``sim.scan_ms``), which trips when the value
  has not changed for T_wd;
- the monitor's: heartbeats as the monitor sends them (u64 counter, sealed with the cell's
  identity by ``tripwire.messages``) every ``monitor.heartbeat_ms``, decoded and judged by
  the interlock's ``interlock.watchdog.MonitorWatch``, whose liveness expires when the
  counter has not changed for ``liveness_ms``.

Trials 1..n-1 freeze both counters at a random value (the first few at the wrap's edges)
after a random number of advances, while the frozen value keeps being written and sent:
each must expire, on time, and never before the freeze. The last trial advances both
counters 10^6 times (the PLC's wraps 15 times; the monitor's starts near 2^64 and wraps
once): no expiry at any point, the PLC scanned at the worst moment (just before each write).
A reduced row (100 trials or fewer, ``make test``) makes its wrap run 3 x 2^16 increments.
A trial's reaction time is the PLC's: last change to its watchdog trip.

Pure logic plus one sink double that turns heartbeat writes into PLC writes; no sockets.
"""

from __future__ import annotations

import random
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from campaign.case import CaseResult, Context, Trial, judge
from interlock.stop import HeartbeatPump
from interlock.watchdog import HEARTBEAT_MODULUS, Limits, MonitorWatch
from sim.plc_logic import PlcProgram, WatchdogTripped
from tripwire import config
from tripwire.config import Config
from tripwire.messages import (
    COUNTER_MODULUS,
    Heartbeat,
    HeartbeatFlag,
    Link,
    decode_monitor_message,
    encode_heartbeat,
)
from tripwire.stack import demo_table

MS = 1_000_000
WRAP_INCREMENTS = 1_000_000  # the full row's wrap run
REDUCED_WRAP_INCREMENTS = 3 * HEARTBEAT_MODULUS  # a reduced row (make test): three 16-bit wraps
EDGES = (0, HEARTBEAT_MODULUS - 1, 1, HEARTBEAT_MODULUS - 2)
MONITOR_EDGES = (0, COUNTER_MODULUS - 1, 1, COUNTER_MODULUS - 2)


class _Clock:
    def __init__(self) -> None:
        self.now_ns = 1_000_000_000


class _WiredPlc:
    """A ``StopSink`` whose writes land in a ``PlcProgram`` at the injected time."""

    name = "wired"
    timeout_ms = 1.0
    connected = True

    def __init__(self, program: PlcProgram, clock: _Clock) -> None:
        self.program = program
        self.clock = clock
        self.trips: list[WatchdogTripped] = []

    def _write(self, name: str, value: int) -> None:
        self.program.on_write("modbus", name, value, self.clock.now_ns)

    def connect(self, timeout_ms: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def write_permit(self, on: bool, timeout_ms: float | None = None) -> None:
        self._write("permit", int(on))

    def write_heartbeat(self, value: int, timeout_ms: float | None = None) -> None:
        self._write("heartbeat", value)

    def write_trip_reason(self, code: int, timeout_ms: float | None = None) -> None:
        self._write("trip_reason", code)

    def read_watchdog_ms(self, timeout_ms: float | None = None) -> int:
        return self.program.watchdog_ns // MS

    def submit_heartbeat(self, value: int) -> Future[None]:
        fut: Future[None] = Future()
        self._write("heartbeat", value)
        fut.set_result(None)
        return fut

    def scan(self) -> bool:
        """One PLC scan now; True when the watchdog tripped."""
        events = self.program.scan(self.clock.now_ns)
        self.trips += [e for e in events if isinstance(e, WatchdogTripped)]
        return bool(self.trips)

    def __enter__(self) -> _WiredPlc:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        pass


class _Cell:
    """The figures both checks run with: the demo cell at the campaign's D."""

    def __init__(self, deadline_ms: float) -> None:
        cfg: Config = config.from_dict(demo_table(bundle="", fault=None, deadline_ms=deadline_ms))
        self.hb_ns = int(cfg.interlock.plc_heartbeat_ms * MS)
        self.watchdog_ms = cfg.sim.watchdog_ms
        self.scan_ns = int(cfg.sim.scan_ms * MS)
        self.monitor_hb_ns = int(cfg.monitor.heartbeat_ms * MS)
        self.limits = Limits.from_config(cfg.interlock)
        self.link = Link.monitor(cfg.bus.cell, cfg.monitor.monitor_id)


def _armed_plc(cell: _Cell, start: int) -> tuple[_Clock, _WiredPlc, HeartbeatPump]:
    clock = _Clock()
    plc = _WiredPlc(PlcProgram(cell.watchdog_ms), clock)
    pump = HeartbeatPump([plc], cell.hb_ns)
    pump.counter = start
    plc.write_heartbeat(pump.counter)  # as the interlock's self-test arms the PLC
    plc.write_permit(True)
    pump.start(clock.now_ns + cell.hb_ns)
    return clock, plc, pump


def _plc_advance(clock: _Clock, plc: _WiredPlc, pump: HeartbeatPump) -> bool:
    """One heartbeat period: scan just before the write (the oldest the value gets), write,
    scan again. True when the PLC tripped (a false trip while the counter advances)."""
    due = pump.next_due_ns if pump.next_due_ns is not None else clock.now_ns
    clock.now_ns = due - 1
    if plc.scan():
        return True
    clock.now_ns = due
    pump.pump(clock.now_ns)
    pump.collect()
    return plc.scan()


def _plc_freeze(cell: _Cell, start: int, advances: int) -> tuple[str, float | None]:
    clock, plc, pump = _armed_plc(cell, start)
    for _ in range(advances):
        if _plc_advance(clock, plc, pump):
            return f"PLC tripped before the freeze (counter {pump.counter})", None
    frozen, changed_ns = pump.counter, clock.now_ns
    next_write = clock.now_ns + cell.hb_ns
    limit_ns = changed_ns + int(cell.watchdog_ms * MS) + cell.scan_ns
    while clock.now_ns <= limit_ns:  # scans every scan_ms; the frozen value keeps being written
        clock.now_ns += cell.scan_ns
        if clock.now_ns >= next_write:
            plc.submit_heartbeat(frozen)
            next_write += cell.hb_ns
        if plc.scan():
            age_ms = (clock.now_ns - changed_ns) / MS
            if age_ms < cell.watchdog_ms:
                return f"PLC tripped {age_ms:.1f} ms after the last change (< T_wd)", age_ms
            return "", age_ms
    return f"PLC never tripped on a counter frozen at {frozen}", None


def _monitor_freeze(cell: _Cell, start: int, advances: int) -> tuple[str, float | None]:
    watch = MonitorWatch(cell.limits)
    now, counter = 1_000_000_000, start

    def send(c: int, t: int) -> None:
        data = encode_heartbeat(Heartbeat(1, c, t, 0, 0, 0, 0, HeartbeatFlag.NONE), cell.link)
        msg = decode_monitor_message(data, cell.link)
        if isinstance(msg, Heartbeat):
            watch.on_heartbeat(msg, t)

    for _ in range(advances + 1):
        send(counter, now)
        if watch.silent(now + cell.monitor_hb_ns):
            return f"liveness expired before the freeze (counter {counter})", None
        counter = (counter + 1) % COUNTER_MODULUS
        now += cell.monitor_hb_ns
    frozen = (counter - 1) % COUNTER_MODULUS
    changed_ns = now - cell.monitor_hb_ns
    expiry = changed_ns + cell.limits.liveness_ns
    while now <= expiry + cell.monitor_hb_ns:
        send(frozen, now)
        if watch.silent(now) != (now > expiry):
            return f"liveness wrong at {(now - changed_ns) / MS:.1f} ms into the freeze", None
        now += cell.monitor_hb_ns // 2
    return "", (expiry + 1 - changed_ns) / MS


def _freeze_trial(cell: _Cell, rng: random.Random, i: int) -> Trial:
    start = EDGES[i] if i < len(EDGES) else rng.randrange(HEARTBEAT_MODULUS)
    advances = rng.randint(0, 40)
    problem, plc_ms = _plc_freeze(cell, (start - advances) % HEARTBEAT_MODULUS, advances)
    if problem:
        return Trial(False, plc_ms, problem)
    m_start = MONITOR_EDGES[i] if i < len(MONITOR_EDGES) else rng.randrange(COUNTER_MODULUS)
    problem, _ = _monitor_freeze(cell, (m_start - advances) % COUNTER_MODULUS, advances)
    return Trial(not problem, plc_ms, problem or f"frozen at {start} / {m_start}")


def _wrap_trial(cell: _Cell, rng: random.Random, increments: int) -> tuple[Trial, dict[str, Any]]:
    clock, plc, pump = _armed_plc(cell, rng.randrange(HEARTBEAT_MODULUS))
    wraps = 0
    for _ in range(increments):
        before = pump.counter
        if _plc_advance(clock, plc, pump):
            return Trial(False, note=f"PLC tripped at counter {pump.counter}"), {}
        wraps += pump.counter < before
    watch = MonitorWatch(cell.limits)
    counter = COUNTER_MODULUS - rng.randint(1, increments // 2)
    now, monitor_wraps = 0, 0
    for _ in range(increments):
        watch.on_heartbeat(Heartbeat(1, counter, now, 0, 0, 0, 0, HeartbeatFlag.NONE), now)
        now += cell.monitor_hb_ns
        if watch.silent(now):
            return Trial(False, note=f"monitor liveness expired at counter {counter}"), {}
        counter = (counter + 1) % COUNTER_MODULUS
        monitor_wraps += counter == 0
    c = watch.counters
    if c.seq_gaps or c.seq_restarts or c.seq_reorders or c.seq_repeats:
        return Trial(False, note=f"the wrap was taken for a sequence fault: {c.to_dict()}"), {}
    return Trial(True, note="wrap run"), {"plc_wraps": wraps, "monitor_wraps": monitor_wraps,
                                          "increments": increments}


def heartbeat_counter(ctx: Context, trials: int) -> CaseResult:
    rng = random.Random(ctx.seed)
    cell = _Cell(ctx.deadline_ms)
    results: list[Trial] = []
    for i in range(max(0, trials - 1)):
        results.append(_freeze_trial(cell, rng, i))
        ctx.progress(1)
    wrap, facts = _wrap_trial(cell, rng, WRAP_INCREMENTS if trials > 100 else REDUCED_WRAP_INCREMENTS)
    results.append(wrap)
    ctx.progress(1)
    rule = (f"every freeze trips the PLC within T_wd + a scan ({cell.watchdog_ms:g} + "
            f"{cell.scan_ns / MS:g} ms) and expires the monitor's liveness "
            f"({cell.limits.liveness_ns / MS:g} ms); 10^6 increments through wrap: no false trip")
    return judge("heartbeat_counter", rule, results, details={"freezes": len(results) - 1, **facts})
