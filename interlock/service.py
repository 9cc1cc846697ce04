"""The interlock process: sockets, the poll loop, signals. Wiring only.

``serve(cfg, stop)`` opens the journal and the stop targets, connects a SUB socket to the
monitor's output (``bus.monitor_out``), binds a REP socket for commands
(``bus.interlock_cmd``) and runs one thread: poll (timeout from the controller's next
deadline, at most ``MAX_WAIT_NS``; a wake-up that comes late is the watchdog's evidence of a
stall of this process' CPU), answer at most one command, drain monitor messages (each stamped with the
monotonic clock on receipt), tick. Any unexpected exception in an iteration goes to
``Interlock.fail_safe`` (latch, stop, journal) and the loop keeps running.

It returns 0 after a ``shutdown`` command, ``stop`` being set, or SIGTERM/SIGINT (handlers
installed only in the main thread); 1 when it cannot start (journal or socket).
It must not hold any behaviour of its own: that lives in ``controller.Interlock``.
"""

from __future__ import annotations

import gc
import select
import signal
import sys
import threading
import time
from contextlib import ExitStack
from types import FrameType
from typing import Any

import structlog
import zmq

from interlock.controller import Interlock
from interlock.errors import JournalError
from interlock.journal import Journal
from interlock.latch import State, TripReason
from interlock.modbus_writer import ModbusStopWriter
from interlock.opcua_writer import OpcuaStopWriter
from interlock.sink import StopSink
from tripwire import bus
from tripwire.config import Config, InterlockConfig
from tripwire.messages import DecodeError, Link, decode_command, encode_reply

MAX_DRAIN = 256  # monitor message parts (verdicts, heartbeats) handled per wake-up before ticking
# The loop wakes at least this often, so that a stop request is seen promptly and a stall of
# its own CPU shows as a late wake-up (watchdog rule 1) to within this, not within a liveness.
MAX_WAIT_NS = 1_000_000
SUB_HWM = 10_000
GIL_SWITCH_S = 0.0005
MS = 1_000_000


def build_sinks(cfg: InterlockConfig) -> list[StopSink]:
    """One writer per configured target, in the configured (failover) order."""
    sinks: list[StopSink] = []
    for name in cfg.targets:
        if name == "modbus":
            sinks.append(ModbusStopWriter(cfg.modbus))
        else:
            sinks.append(OpcuaStopWriter(cfg.opcua))
    return sinks


def _install_signals(stop: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def handle_command(il: Interlock, parts: list[bytes], now_ns: int) -> tuple[bytes, bool]:
    """One request -> one reply; True as the second item means: shut down after replying."""
    if len(parts) != 1:
        return encode_reply(False, error="bad_command", detail=f"{len(parts)} message parts"), False
    try:
        cmd = decode_command(parts[0])
    except DecodeError as e:
        return encode_reply(False, error=e.reason, detail=str(e)), False
    if cmd.cmd == "status":
        return encode_reply(True, **il.status()), False
    if cmd.cmd == "reset":
        result = il.reset(cmd.token, now_ns)
        ok = bool(result.pop("ok"))
        return encode_reply(ok, **result), False
    if cmd.cmd == "trip":
        rec = il.trip(TripReason.MANUAL, now_ns, detail=cmd.reason or "manual trip")
        return encode_reply(True, state=str(il.latch.state), tripped=rec is not None,
                            trip=None if rec is None else rec.to_dict()), False
    if cmd.cmd == "acknowledge":
        result = il.acknowledge(cmd.token, now_ns)
        ok = bool(result.pop("ok"))
        return encode_reply(ok, **result), False
    if cmd.cmd == "shutdown":
        errors = il.shutdown(now_ns, "shutdown command")  # permit 0 before the reply says so
        return encode_reply(True, state=str(il.latch.state), permit_errors=errors), True
    # A command the schema knows but this interlock does not perform is refused by name,
    # never mistaken for another one.
    return encode_reply(False, error="unsupported_command", detail=cmd.cmd), False


class _StallLog:
    """Tells the watchdog when this loop got its CPU back late; a log line at most a second
    (a machine without real-time scheduling may stall often)."""

    def __init__(self, il: Interlock) -> None:
        self.il = il
        self.log = structlog.get_logger(component="interlock")
        self.next_line_ns = 0

    def note(self, due_ns: int, now_ns: int) -> None:
        watch = self.il.watch
        if watch.woke(due_ns, now_ns) and now_ns >= self.next_line_ns:
            c = watch.counters
            self.log.info("interlock_stalled", late_ms=round((now_ns - due_ns) / 1e6, 2),
                          stalls=c.self_stalls, max_ms=round(c.self_stall_max_us / 1e3, 2))
            self.next_line_ns = now_ns + 1_000 * MS


class _Inputs:
    """Which of the two sockets may have input, read from select() on their descriptors.

    ``zmq_poll`` counts whole milliseconds, which made a silent monitor's trip up to 1 ms
    late; select() on the sockets' descriptors sleeps to the microsecond. Those descriptors
    signal edges: one fires when the socket's command mailbox gets something, and it fires
    again only after a call on the socket has emptied the mailbox. A socket drained until
    EAGAIN needs no check before the next wait: anything that arrives later fires its edge.
    Only a socket left with input, or one whose mailbox our own call may have emptied without
    looking (the reply we sent on REP), is looked at before sleeping. That keeps the wait to
    one select() and no ZMQ_EVENTS read per verdict message (each read costs a few µs, three
    of them a wake-up were a fifth of this loop's CPU at plant load)."""

    def __init__(self, sub: zmq.Socket[bytes], rep: zmq.Socket[bytes]) -> None:
        self.sub, self.rep = sub, rep
        self.sub_fd, self.rep_fd = int(sub.getsockopt(zmq.FD)), int(rep.getsockopt(zmq.FD))
        self.sub_left = True  # monitor input may be waiting (at start: look)
        self.rep_left = True  # a command may be waiting

    def wait(self, timeout_ns: int) -> tuple[bool, bool]:
        """Until input may be there or ``timeout_ns`` has passed: (monitor input may be
        waiting, a command is waiting)."""
        if timeout_ns > 0 and not (self.sub_left or self.rep_left):
            ready, _, _ = select.select((self.sub_fd, self.rep_fd), (), (), timeout_ns / 1e9)
            sub_in, rep_in = self.sub_fd in ready, self.rep_fd in ready
        else:  # input left over, or overdue: look at both without sleeping
            sub_in = rep_in = True
        command_in = rep_in and bus.readable(self.rep)
        self.rep_left = False
        return sub_in, command_in

    def replied(self) -> None:
        """After the reply: another request may have come while we held the socket."""
        self.rep_left = bus.readable(self.rep)

    def drained(self, all_of_it: bool) -> None:
        self.sub_left = not all_of_it


def _loop(il: Interlock, sub: zmq.Socket[bytes], rep: zmq.Socket[bytes], stop: threading.Event) -> str:
    clock, cpu_clock = time.monotonic_ns, time.thread_time_ns
    stalls = _StallLog(il)
    inputs = _Inputs(sub, rep)
    while not stop.is_set():
        try:
            now = clock()
            wait_ns = min(MAX_WAIT_NS, max(0, il.next_wakeup_ns(now) - now))
            sub_in, command_in = inputs.wait(wait_ns)
            woke, cpu_woke = clock(), cpu_clock()
            stalls.note(now + wait_ns, woke)  # a wait that returned late
            # Commands first: one may block on PLC requests and a journal commit, and the
            # monitor messages that arrive meanwhile must be drained before the liveness
            # check in tick(), or a busy interlock would take the monitor for silent.
            if command_in:
                try:
                    parts = rep.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    parts = None
                if parts is not None:
                    t_cmd = clock()
                    try:
                        reply, quit_after = handle_command(il, parts, t_cmd)
                    except Exception as e:  # noqa: BLE001 - the REP socket must always answer
                        rep.send(encode_reply(False, error="internal_error", detail=repr(e)[:200]))
                        raise
                    rep.send(reply)
                    inputs.replied()
                    t_done = clock()
                    il.watch.busy(t_cmd, t_done)
                    woke, cpu_woke = t_done, cpu_clock()
                    if quit_after:
                        return "shutdown command"
                    sub_in = True  # the command held the loop: whatever came meanwhile
            if sub_in:
                for _ in range(MAX_DRAIN):
                    try:
                        data = sub.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        inputs.drained(True)
                        break
                    il.on_message(data, clock())
                else:
                    inputs.drained(False)
            now = clock()
            if il.latch.state is State.ARMED:
                # Off the CPU since the poll returned, though armed draining never blocks (a
                # command's spell aside, a trip's writes excluded): a stall as well.
                stalls.note(woke + (cpu_clock() - cpu_woke), now)
            il.tick(now)
        except Exception as e:  # noqa: BLE001 - fail safe, never silently die
            inputs.sub_left = inputs.rep_left = True  # look at both again
            il.fail_safe(e, clock())
    return "stop requested"


def serve(cfg: Config, stop: threading.Event | None = None) -> int:
    stop = stop if stop is not None else threading.Event()
    log = structlog.get_logger(component="interlock")
    previous = _install_signals(stop)
    # The OPC-UA writer's loop thread must not hold the GIL for the default 5 ms while this
    # loop has a deadline to meet; the process does nothing else, so a short slice is cheap.
    switch_interval_s = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_S)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        with ExitStack() as stack:
            try:
                journal = stack.enter_context(Journal(cfg.interlock.journal))
            except JournalError as e:
                log.error("interlock_failed", error=str(e))
                return 1
            sinks = [stack.enter_context(s) for s in build_sinks(cfg.interlock)]
            sub = ctx.socket(zmq.SUB)
            stack.callback(sub.close, 0)
            rep = ctx.socket(zmq.REP)
            stack.callback(rep.close, 0)
            try:
                sub.setsockopt(zmq.LINGER, 0)
                sub.setsockopt(zmq.RCVHWM, SUB_HWM)
                sub.setsockopt(zmq.SUBSCRIBE, b"")
                sub.connect(cfg.bus.monitor_out)
                rep.setsockopt(zmq.LINGER, 0)
                bus.bind(rep, cfg.bus.interlock_cmd)
            except (zmq.ZMQError, OSError) as e:
                log.error("interlock_failed", error=f"socket setup: {e}")
                return 1
            il = Interlock(cfg.interlock, sinks, journal, time.monotonic_ns,
                           link=Link.monitor(cfg.bus.cell, cfg.monitor.monitor_id))
            try:
                il.start(time.monotonic_ns())
            except JournalError as e:
                log.error("interlock_failed", error=str(e))
                return 1
            # Everything imported and built is old from here on: a full collection would
            # otherwise walk it all (tens of ms) at a moment the loop may have a deadline.
            gc.collect()
            gc.freeze()
            why = _loop(il, sub, rep, stop)
            il.shutdown(time.monotonic_ns(), why)
            return 0
    finally:
        ctx.destroy(linger=0)
        sys.setswitchinterval(switch_interval_s)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
