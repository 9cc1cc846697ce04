"""The latch property as random walks over the real interlock logic and a real journal.

One walk builds ``interlock.controller.Interlock`` (its real ``Latch``, watchdog rules and
stop path) on a real SQLite ``Journal`` in a file, over ``PlcDouble`` stop sinks and a clock
the walk owns, then takes random steps: time passing with or without monitor heartbeats,
verdicts (ok, trip, late), monitor silence and reconnects (counters jump), PLC faults (down,
refusing, dropped connection, watchdog off), manual trips through the command bytes that
the CLI and the SCADA gateway send, internal errors, restarts (clean, or a crash: a new
controller restored from the same journal file), resets, acknowledgements and inhibits by
each role (right token, wrong token, empty token, through the gateway's command path), and
status requests; the PLCs are ``campaign.plc_double.PlcDouble``. After every step
``Walk.check`` tests the properties:

- no automatic clear: a latched interlock stops being latched only by an authorised reset
  with the cause cleared; a restart keeps the latch;
- every unauthorised reset (wrong, empty or disabled token, by any path) is refused and
  changes nothing; an authorised one is refused while a cause is present and succeeds
  (and re-arms when arming can pass) once it is gone; acknowledgements clear nothing;
- the journal's last state agrees with the latch (TRIPPED exactly when latched, ARMED
  when armed); no PLC ever confirms permit 1 while the latch is latched; a trip leaves
  permit 0 on every healthy PLC; the status reply tells the latch's state;
- safety the other way round: an armed interlock trips on a trip verdict, on a late
  streak, on a manual trip, on an internal error and on monitor silence past liveness,
  and does not trip while the monitor is fresh and nothing asks it to.

The gateway's own authorisation (an OPC-UA session must log in to call methods) lives in
asyncua's session layer and is tested in tests/scada; here the gateway path is its command
bytes (``scada.commands``) through the interlock's ``handle_command``.

Campaign shell: files in its folder only, no sockets, no real clock (time is the walk's).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campaign.plc_double import PlcDouble
from interlock.controller import Interlock
from interlock.journal import Journal
from interlock.latch import State
from interlock.service import handle_command
from scada import commands
from tripwire.config import InterlockConfig
from tripwire.messages import (
    Heartbeat, HeartbeatFlag, Level, Verdict, VerdictFlag, decode_reply, encode_heartbeat,
    encode_verdict,
)

MS = 1_000_000
TOKEN = "walk-token"
WRONG_TOKENS = ("walk-token ", "walk-toke", "WALK-TOKEN", "guess", "walk-token\x00")
ROLES = ("operator", "wrong", "empty", "gateway", "gateway_wrong", "gateway_empty")
STEPS: dict[str, int] = {  # step -> weight
    "pass": 30, "gap": 4, "silence": 3, "revive": 5, "model_error": 2, "verdict_ok": 8,
    "verdict_trip": 5, "late_burst": 2, "manual_trip": 3, "internal_error": 2, "plc_down": 3,
    "plc_refuse": 2, "plc_up": 6, "plc_drop": 3, "watchdog_off": 1, "watchdog_on": 3,
    "restart": 4, "reset": 12, "acknowledge": 4, "inhibit": 1, "status": 2,
}
LATE_AGE_NS = 8 * MS  # a late burst's verdicts: past the walk's verdict budget
QUIET_STEPS = frozenset({"pass", "gap", "verdict_ok", "revive", "silence", "model_error", "plc_down",
                         "plc_refuse", "plc_up", "plc_drop", "watchdog_off", "watchdog_on",
                         "acknowledge", "inhibit", "status"})


@dataclass(frozen=True, slots=True)
class Before:
    latched: bool
    state: State
    trips: int
    undelivered: bool
    since_ns: int = 0  # when the latch entered ``state`` (for ARMED: when it armed)


class Violation(Exception):
    """A property did not hold (the walk's note says which, where)."""


class Walk:
    """One random walk; ``run()`` returns None when every property held, else a note."""

    def __init__(self, path: Path, rng: random.Random, stats: dict[str, int]) -> None:
        self.path = path
        self.rng = rng
        self.stats = stats
        token = "" if rng.random() < 0.05 else TOKEN  # some cells have resets disabled
        self.cfg = InterlockConfig(deadline_ms=10.0, liveness_ms=9.0, verdict_budget_ms=6.0,
                                   plc_heartbeat_ms=100.0, reset_token=token)
        self.now_ns = 10**12 + rng.randrange(10**9)
        self.alive = rng.random() < 0.9
        self.model_error = False  # what the monitor will flag from its next heartbeat on
        self.flagged_error = False  # what the current controller last heard
        self.hb_counter = rng.randrange(1, 1000)
        self.verdict_seq = rng.randrange(1, 1000)
        self.frame_seq = 0
        self.heard_ns: int | None = None  # the last heartbeat with a new counter
        self.hb_seen = False
        self.il: Interlock | None = None
        self.journal: Journal | None = None
        names = ["modbus", "opcua"][: rng.choice((1, 2))]
        self.plcs = [PlcDouble(n, self._latched) for n in names]

    # -- plumbing -------------------------------------------------------------------------
    def _latched(self) -> bool:
        return self.il is not None and self.il.latch.latched

    def _clock(self) -> int:
        return self.now_ns

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def _start(self) -> None:
        self.journal = Journal(self.path).open()
        for p in self.plcs:
            p.drop()  # a new process has new connections
        self.heard_ns = None
        self.hb_seen = False  # liveness counts only once the controller heard a heartbeat
        self.flagged_error = False
        self.il = Interlock(self.cfg, self.plcs, self.journal, self._clock)
        self.il.start(self.now_ns)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def _ctl(self) -> Interlock:
        if self.il is None:
            raise RuntimeError("walk not started")
        return self.il

    def _fresh(self) -> bool:
        return (self.hb_seen and self.heard_ns is not None
                and self.now_ns - self.heard_ns <= int(self.cfg.liveness_ms * MS))

    def _heartbeat(self) -> None:
        self.hb_counter += 1
        flags = HeartbeatFlag.MODEL_ERROR if self.model_error else HeartbeatFlag.NONE
        hb = Heartbeat(1, self.hb_counter, self.now_ns, self.hb_counter, self.hb_counter, 0, 0, flags)
        self._ctl().on_message(encode_heartbeat(hb), self.now_ns)
        self.heard_ns = self.now_ns
        self.hb_seen = True
        self.flagged_error = self.model_error

    def _verdict(self, level: Level, age_ns: int) -> None:
        self.verdict_seq += 1
        self.frame_seq += 1
        v = Verdict(1, self.frame_seq, self.verdict_seq, self.now_ns - age_ns, self.now_ns,
                    3.0 if level is Level.TRIP else 0.5, 1.0, level, VerdictFlag.NONE, 0, b"walk",
                    ("vib_x",))
        self._ctl().on_message(encode_verdict(v), self.now_ns)  # liveness is the heartbeat's alone

    def _advance(self, dt_ns: int) -> None:
        self.now_ns += dt_ns
        if self.alive:
            self._heartbeat()
        self._ctl().tick(self.now_ns)

    def _command(self, payload: bytes) -> dict[str, Any]:
        reply, _quit = handle_command(self._ctl(), [payload], self.now_ns)
        return decode_reply(reply)

    def _token(self, role: str) -> str:
        if role.endswith("wrong"):
            return self.rng.choice(WRONG_TOKENS)
        if role.endswith("empty"):
            return ""
        return self.cfg.reset_token

    def _authorised(self, token: str) -> bool:
        return bool(self.cfg.reset_token) and token == self.cfg.reset_token

    def _operator(self, cmd: str, role: str, token: str) -> tuple[bool, str]:
        """(ok, error) of reset/acknowledge/inhibit by ``role``, directly or via the gateway."""
        il = self._ctl()
        if role.startswith("gateway"):
            out = commands.outcome(self._command(commands.request(cmd, token=token)))
            return out.ok, out.detail
        if cmd == "reset":
            r = il.reset(token, self.now_ns)
        elif cmd == "acknowledge":
            r = il.acknowledge(token, self.now_ns)
        else:
            r = self._command(commands.request(cmd, token=token))
        return bool(r["ok"]), str(r.get("error", ""))

    # -- the walk -------------------------------------------------------------------------
    def run(self, n_steps: int) -> str | None:
        self._start()
        names, weights = list(STEPS), list(STEPS.values())
        step = "start"
        try:
            self.check("start", None, None)
            for i in range(n_steps):
                step = self.rng.choices(names, weights)[0]
                il = self._ctl()
                before = Before(il.latch.latched, il.latch.state, len(il.trips),
                                bool(il.status()["stop_undelivered"]) if step == "reset" else False,
                                il.latch.since_ns)
                fresh_before = self._fresh()
                result = self.apply(step)
                self.check(step, before, result, fresh_before=fresh_before, index=i)
            return None
        except Violation as e:
            return f"step {step}: {e}"
        finally:
            self.close()

    def apply(self, step: str) -> Any:
        rng, il = self.rng, self._ctl()
        self._count(f"step_{step}")
        if step == "pass":
            self._advance(rng.randrange(1 * MS, 4 * MS))
        elif step == "gap":
            self._advance(rng.randrange(10 * MS, 400 * MS))
        elif step == "silence":
            self.alive = False
        elif step == "revive":
            self.alive = True
            self.hb_counter += rng.randrange(0, 20)  # a reconnect: messages were lost meanwhile
            self._advance(MS)
        elif step == "model_error":
            self.model_error = not self.model_error
        elif step in ("verdict_ok", "verdict_trip", "late_burst"):
            self.now_ns += MS
            if self.alive:
                if step == "late_burst":
                    for _ in range(self.cfg.late_trip_after):
                        self._verdict(Level.OK, LATE_AGE_NS)
                else:
                    self._verdict(Level.TRIP if step == "verdict_trip" else Level.OK, 2 * MS)
            il.tick(self.now_ns)
        elif step == "manual_trip":
            return self._command(commands.request("trip", reason="walk"))
        elif step == "internal_error":
            il.fail_safe(RuntimeError("injected"), self.now_ns)
        elif step in ("plc_down", "plc_refuse", "plc_up", "plc_drop", "watchdog_off", "watchdog_on"):
            plc = rng.choice(self.plcs)
            if step == "plc_drop":
                plc.drop()
            elif step.startswith("watchdog"):
                plc.watchdog_ms = 0 if step == "watchdog_off" else 300
            else:
                plc.mode = {"plc_down": "down", "plc_refuse": "refuse", "plc_up": "ok"}[step]
        elif step == "restart":
            if rng.random() < 0.5:
                il.shutdown(self.now_ns, "walk restart")
                self._count("restarts_clean")
            else:
                self._count("restarts_crash")
            self.close()
            self.now_ns += rng.randrange(MS, 50 * MS)
            self._start()
        elif step in ("reset", "acknowledge", "inhibit"):
            role = rng.choice(ROLES)
            token = self._token(role)
            ok, error = self._operator(step, role, token)
            return (role, token, ok, error)
        elif step == "status":
            return self._command(commands.request("status"))
        return None

    # -- the properties -------------------------------------------------------------------
    def check(self, step: str, before: Before | None, result: Any, *, fresh_before: bool = False,
              index: int = -1) -> None:
        il = self._ctl()
        latch = il.latch
        where = f"(#{index}, state {latch.state}, latched {latch.latched})"

        def need(cond: bool, what: str) -> None:
            if not cond:
                raise Violation(f"{what} {where}")

        if self.journal is None:
            raise Violation(f"journal closed {where}")
        last = self.journal.last_state()
        need((last == "TRIPPED") == latch.latched, f"journal last state {last} disagrees with the latch")
        need(latch.state is not State.ARMED or last == "ARMED", f"armed but the journal says {last}")
        for plc in self.plcs:
            need(plc.permit_on_while_latched == 0, f"{plc.name} confirmed permit 1 while latched")
        if before is None:
            return
        if len(il.trips) > before.trips:
            self._count("trips")
            need(latch.state is State.TRIPPED, "a new trip record but not TRIPPED")
            for plc in self.plcs:
                need(not plc.healthy or not plc.permit, f"trip left permit 1 on healthy {plc.name}")
        if before.latched and not latch.latched:
            ok_reset = step == "reset" and result[2] and self._authorised(result[1])
            need(ok_reset, "the latch cleared without an authorised reset")
        if step == "restart":
            need(latch.latched == before.latched, "a restart changed the latch")
            self._count("restarts_latched" if latch.latched else "restarts_unlatched")
        elif step == "reset":
            self._check_reset(before, result, need)
        elif step in ("acknowledge", "inhibit"):
            role, token, ok, _error = result
            need(latch.latched == before.latched and latch.state is before.state,
                 f"{step} by {role} changed the latch")
            need(ok == (step == "acknowledge" and self._authorised(token)),
                 f"{step} by {role} answered ok={ok}")
            self._count(f"{step}_{'ok' if ok else 'refused'}")
        elif step == "status":
            need(result.get("ok") is True and result.get("state") == str(latch.state)
                 and result.get("latched") == latch.latched, "status disagrees with the latch")
        armed_before = before.state is State.ARMED
        # A late burst trips when its verdicts were acquired after the latch armed; one from
        # before (drained just after arming) is counted as misses and builds no streak.
        of_armed_period = step != "late_burst" or self.now_ns - LATE_AGE_NS >= before.since_ns
        if armed_before and step in ("verdict_trip", "late_burst") and self.alive:
            if of_armed_period:
                need(latch.state is State.TRIPPED, f"armed, {step}, no trip")
            else:
                self._count("late_burst_from_before_arming")
        if step in ("manual_trip", "internal_error"):
            need(latch.state is State.TRIPPED, f"{step} did not trip")
        if armed_before and step in ("pass", "gap") and not self._fresh():
            need(latch.state is State.TRIPPED, "armed, monitor silent past liveness, no trip")
            self._count("liveness_trips")
        if armed_before and step in QUIET_STEPS and fresh_before and self._fresh():
            need(latch.state is State.ARMED, "a trip while the monitor was fresh and nothing asked")

    def _check_reset(self, before: Before, result: Any, need: Callable[[bool, str], None]) -> None:
        role, token, ok, error = result
        latch = self._ctl().latch
        if not self._authorised(token):
            need(not ok, f"unauthorised reset by {role} accepted")
            need(latch.latched == before.latched and latch.state is before.state,
                 f"refused reset by {role} changed the latch")
            self._count("resets_unauthorised_refused")
            return
        if not before.latched:
            need(not ok and latch.state is before.state, f"reset while not latched answered ok={ok}")
            self._count("resets_not_latched_refused")
            return
        cause = (not self._fresh() or any(not p.healthy for p in self.plcs) or before.undelivered)
        if cause:
            need(not ok and latch.latched, f"reset by {role} accepted with the cause present")
            self._count("resets_cause_refused")
            return
        need(ok and not latch.latched, f"authorised reset by {role} with the cause gone refused: {error}")
        self._count("resets_ok")
        can_arm = (not self.flagged_error and all(p.healthy and p.watchdog_ms > self.cfg.plc_heartbeat_ms
                                                for p in self.plcs))
        need((latch.state is State.ARMED) == can_arm,
             f"after reset: state {latch.state}, arming possible: {can_arm}")


def remove_journal(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
