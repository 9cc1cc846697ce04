"""One running cell for many trials of the process-level cases (``campaign/process.py``).

Shell: it owns a ``tripwire.stack.Stack`` (sim, monitor and interlock processes on loopback
ipc and TCP), a SUB socket on the monitor's output, and optionally background load. Between
trials it brings the cell back to a known state: faults cleared, dead or stopped processes
restarted or resumed, the monitor heard again and its verdicts OK on every source, the latch
reset with the reset token, the PLC running. A trial starts only from that state, and a trip
the trial did not cause is a false trip that fails it.

The sim runs as a test bench (``sim.machines_follow_plc = false``): the machines keep turning
through a stop. A stopped machine is an anomaly to the model, so on a cell whose machines stop
a reset re-trips at once; on the bench the measured path (frame, monitor, interlock, PLC
write) is the same and the machine is back to normal as soon as the fault is cleared.

It never measures anything the cases judge while it talks to the cell: status requests go
to the interlock and the sim only outside the windows a trial times.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import zmq

from campaign.case import Context
from tripwire import config, messages
from tripwire.control import ControlTimeout, trip_count, trips_since
from tripwire.stack import Stack, demo_table

TOKEN = "campaign-reset"
CALM_VERDICTS = 10  # consecutive OK verdicts per source (200 ms of windows) before a reset
MS = 1_000_000
SOURCES = (1, 2)
T = TypeVar("T")


class TrialError(Exception):
    """A trial step that did not happen as it must (the message says which); fails the trial."""


def bundle_for(ctx: Context) -> Path:
    """The demo's default model, trained once per campaign run into a cache beside the cases."""
    from models.train import ensure_default_bundle

    cfg = config.from_dict(demo_table(bundle=""))
    return ensure_default_bundle(cfg, ctx.work_dir.parent / "bundle-cache")


class BusyLoad:
    """``n`` normal-priority busy-loop processes (the "loaded" condition), stopped on exit."""

    def __init__(self, n: int = 2) -> None:
        self.n = n
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> BusyLoad:
        for _ in range(self.n):
            self._procs.append(subprocess.Popen(
                [sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self._procs:
            p.kill()
        for p in self._procs:
            p.wait(timeout=10)
        self._procs.clear()


@dataclass
class Stream:
    """What the cell has heard from the monitor: per source, the OK run since ``since_ns``."""

    since_ns: int = 0
    ok_run: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    trip_verdicts: dict[int, messages.Verdict] = field(default_factory=dict)
    last_hb: messages.Heartbeat | None = None
    sent_ns: deque[int] = field(default_factory=lambda: deque(maxlen=4096))  # the monitor's stamps

    def mark(self, since_ns: int) -> None:
        self.since_ns = since_ns
        self.ok_run = dict.fromkeys(SOURCES, 0)
        self.trip_verdicts.clear()

    def take(self, msg: messages.Verdict | messages.Heartbeat) -> None:
        if isinstance(msg, messages.Heartbeat):
            self.last_hb = msg
            self.sent_ns.append(msg.t_ns)
            return
        self.sent_ns.append(msg.t_verdict_ns)
        if msg.t_acq_ns < self.since_ns or msg.source_id not in self.ok_run:
            return
        if msg.level is messages.Level.OK:
            self.ok_run[msg.source_id] += 1
        else:
            self.ok_run[msg.source_id] = 0
            if msg.level is messages.Level.TRIP:
                self.trip_verdicts.setdefault(msg.source_id, msg)

    def last_sent_before(self, t_ns: int) -> int | None:
        """The monitor's newest message sent at or before ``t_ns`` (its own stamp)."""
        return max((s for s in self.sent_ns if s <= t_ns), default=None)

    @property
    def calm(self) -> bool:
        return all(n >= CALM_VERDICTS for n in self.ok_run.values())


class Cell:
    """A cell of the demo plant at the context's D, with ``target`` as its one stop target."""

    def __init__(self, ctx: Context, label: str, *, target: str = "modbus",
                 stall_ms: float | None = None) -> None:
        # The plant is the demo's (sim seed 0, which the model was trained on); the context's
        # seed drives the trials' randomness, not the machines.
        table = demo_table(bundle=str(bundle_for(ctx)), target=target, deadline_ms=ctx.deadline_ms,
                           fault=None, duration_s=3600.0, reset_token=TOKEN)
        table["sim"]["machines_follow_plc"] = False
        if stall_ms is not None:
            table["monitor"].update(fault_hooks=True, fault_stall_ms=stall_ms)
        self.target = target
        run_dir, n = ctx.work_dir / label, 1
        while run_dir.exists():  # a journal left by an earlier run would restore its latch
            n += 1
            run_dir = ctx.work_dir / f"{label}-{n}"
        self.stack = Stack(table, run_dir)
        self.stream = Stream()
        self.known_trips = 0  # trips in the interlock's record that a trial has accounted for
        self.false_trips: list[dict[str, Any]] = []  # seen while re-arming, for the next trial
        self._reset_sent = False
        self.stopped_monitor = False
        self._sub: zmq.Socket[Any] | None = None
        self._log_offset = 0

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> Cell:
        try:
            self.stack.start_all()
            sub = self._sub = self.stack.ctx.socket(zmq.SUB)
            sub.linger = 0
            sub.rcvhwm = 100_000
            sub.subscribe(b"")
            sub.connect(self.stack.cfg.bus.monitor_out)
            self.stream.mark(time.monotonic_ns())
            self.known_trips = trip_count(self.status())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.stopped_monitor:
            self.stack.sup.children["monitor"].signal(signal.SIGCONT)
        if self._sub is not None:
            self._sub.close(linger=0)
            self._sub = None
        self.stack.close()

    @property
    def cfg(self) -> config.Config:
        return self.stack.cfg

    # -- the monitor's stream -----------------------------------------------------------
    def pump(self, seconds: float) -> None:
        """Take in the monitor's messages for ``seconds`` (at least one drain)."""
        deadline = time.monotonic() + seconds
        while True:
            self._drain(deadline - time.monotonic())
            if time.monotonic() >= deadline:
                return

    def _drain(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` (at most 20 ms) for messages, then take in all that are queued."""
        sub = self._sub
        if sub is None:
            raise RuntimeError("the cell is not open")
        if not sub.poll(max(0, int(min(wait_s, 0.02) * 1000)), zmq.POLLIN):
            return
        while True:
            try:
                data = sub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self.stream.take(messages.decode_monitor_message(data))
            except messages.DecodeError:
                continue

    def wait_for(self, probe: Callable[[], T | None], timeout_s: float, what: str, *,
                 every_s: float = 0.0) -> T:
        """Drain the stream and ask ``probe`` (at most every ``every_s``) until it returns
        something truthy, and return that; TrialError naming ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        next_probe = time.monotonic() + every_s
        got = probe()
        while not got:
            now = time.monotonic()
            if now >= deadline:
                raise TrialError(f"{what}: not within {timeout_s:g} s")
            self._drain(deadline - now)
            if time.monotonic() >= next_probe:
                next_probe = time.monotonic() + every_s
                got = probe()
        return got

    def wait_calm(self, since_ns: int, timeout_s: float = 10.0) -> None:
        """Every source has said OK ``CALM_VERDICTS`` times in a row for windows after
        ``since_ns``."""
        self.stream.mark(since_ns)
        self.wait_for(lambda: self.stream.calm, timeout_s, f"OK verdicts on every source ({self.stream.ok_run})")

    def wait_heard(self, after_ns: int, timeout_s: float = 60.0) -> None:
        """A monitor heartbeat stamped after ``after_ns`` (a restarted or resumed monitor)."""
        self.wait_for(lambda: self.stream.last_hb is not None and self.stream.last_hb.t_ns > after_ns,
                      timeout_s, "monitor heard again")

    # -- control ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self.stack.interlock("status", timeout_ms=2000)

    def sim_status(self) -> dict[str, Any]:
        return self.stack.sim("status", timeout_ms=2000, since=1 << 40)

    def new_trips(self) -> list[dict[str, Any]]:
        return trips_since(self.status(), self.known_trips)

    def inject(self, source: int, kind: str, *, severity: float = 1.0, ramp_s: float = 0.0) -> int:
        reply = self.stack.sim("inject", kind=kind, source=source, severity=severity, ramp_s=ramp_s)
        if not reply.get("ok"):
            raise TrialError(f"inject refused: {reply}")
        return int(reply["sample_index"])

    def onset_ns(self, source: int, sample_index: int) -> int:
        """The monotonic time of an injected fault's first sample, as the sim's DAQ stamped it."""
        def find() -> int | None:
            for o in self.sim_status()["fault_onsets"]:
                if o["source"] == source and o["sample_index"] == sample_index:
                    return int(o["t_onset_ns"])
            return None
        return self.wait_for(find, 5.0, "fault onset stamped", every_s=0.05)

    def signal(self, name: str, sig: int) -> int:
        """Send ``sig`` to a component; the monotonic time just before the kill call."""
        pid = self.stack.sup.children[name].pid
        t_ns = time.monotonic_ns()
        os.kill(pid, sig)
        if sig == signal.SIGSTOP and name == "monitor":
            self.stopped_monitor = True
        elif sig == signal.SIGCONT and name == "monitor":
            self.stopped_monitor = False
        return t_ns

    def restart(self, name: str) -> int:
        """Wait for a killed component to be gone and start it again; when it was started."""
        child = self.stack.sup.children[name]
        child.proc.wait(timeout=10)
        child.log.close()
        t_ns = time.monotonic_ns()
        getattr(self.stack, f"start_{name}")()
        return t_ns

    def monitor_events(self, event: str) -> list[dict[str, Any]]:
        """Lines the monitor has logged with this event name since the last call."""
        path = self.stack.sup.children["monitor"].log_path
        with open(path, "rb") as f:
            f.seek(self._log_offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._log_offset += end
        return _events(data[:end], event)

    def heartbeat_gaps_ms(self) -> list[float]:
        """The longest gap between two heartbeats of each monitor process that stopped cleanly
        (from its ``monitor_stopped`` line): a monitor's own stalls, as it saw them."""
        path = self.stack.run_dir / "logs" / "monitor.log"
        try:
            data = path.read_bytes()
        except OSError:
            return []
        return [float(e["latency_ms"]["heartbeat_gap"]["max"]) for e in _events(data, "monitor_stopped")
                if e.get("latency_ms", {}).get("heartbeat_gap", {}).get("max") is not None]

    # -- between trials -----------------------------------------------------------------
    def recover(self) -> None:
        """Back to a known, armed, calm state whatever the last trial left behind. A trip
        after the reset sent here is a false trip: kept for the next ``ready()`` to fail on."""
        sup = self.stack.sup.children
        if self.stopped_monitor:
            self.signal("monitor", signal.SIGCONT)
        for name in ("interlock", "monitor"):
            if not sup[name].alive():
                self.restart(name)
        for source in SOURCES:
            self.stack.sim("clear", source=source)
        self.wait_heard(time.monotonic_ns())
        self.wait_calm(time.monotonic_ns())
        self._reset_sent = False
        self.wait_for(self._rearmed, 30.0, "interlock ARMED and PLC running again", every_s=0.1)

    def _rearmed(self) -> bool:
        """One probe of the re-arming: reset when latched; ARMED with the PLC running is done.
        Few and cheap requests: the interlock's status grows with its trip history, and while
        it builds the reply the verdicts queue up and age."""
        try:
            st = self.status()
        except ControlTimeout:
            return False
        new = trips_since(st, self.known_trips)
        if new:
            if self._reset_sent:  # the last trial's own trips are its business, not these
                self.false_trips.extend(new)
            self.known_trips = trip_count(st)
        if st["state"] == "TRIPPED" or (st["state"] == "SAFE" and st["latched"]):
            try:
                self.stack.interlock("reset", token=TOKEN, timeout_ms=2000)
                self._reset_sent = True
            except ControlTimeout:
                pass
            return False
        return bool(st["state"] == "ARMED" and self.sim_status()["plc"]["state"] == 1)

    def ready(self) -> None:
        """Check the cell is where a trial starts: ARMED, calm, no trip since the last count."""
        st = self.status()
        extra = self.false_trips + trips_since(st, self.known_trips)
        self.false_trips = []
        self.known_trips = trip_count(st)
        if extra:
            t = extra[0]
            raise TrialError(f"false trip before the injection: {t['reason']} "
                             f"(source {t.get('source_id')}, {t.get('detail') or 'no detail'})")
        if st["state"] != "ARMED":
            raise TrialError(f"interlock {st['state']} at the start of the trial ({st['selftest']})")
        self.wait_for(lambda: self.stream.calm, 10.0, f"OK verdicts on every source ({self.stream.ok_run})")


def _events(data: bytes, event: str) -> list[dict[str, Any]]:
    """The JSON log lines in ``data`` with this event name."""
    out: list[dict[str, Any]] = []
    for line in data.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("event") == event:
            out.append(rec)
    return out
