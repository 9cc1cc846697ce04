"""The bench's fault schedule and how its trips are told apart from false ones.

Pure core (no clock, no socket, no process): times are stream times (seconds of the feeder's
stream, frame ``k`` of every machine holding samples ``k * frame_samples`` onwards), so a
fault window and a trip record (which carries the tripping window's source and frame
sequence) are compared in frames, never across clocks.

- ``plan_trips``: ``trips`` faults over the measured span, one per equal slot, each on a
  seeded random machine and channel, starting at a random point of the slot's first part
  and lasting ``fault_s``; the rest of the slot leaves room for the trip, the fault's end, the
  calm after it and the reset.
- ``match_trips``: each trip record of the interlock is the catch of the fault whose machine
  it names and whose frames (from the onset to the end plus a window and the decision's n
  windows) contain the record's frame; every other trip is false.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchConfigError
from bench.signals import FAULT_KINDS, BenchLoad, Fault

MIN_SLOT_S = 0.6  # a fault, its trip, the calm after it and a reset take about this long


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """``fault`` on ``machine`` (0-based) from stream time ``on_s`` until ``off_s``."""

    machine: int
    fault: Fault
    on_s: float
    off_s: float

    def __post_init__(self) -> None:
        if self.machine < 0 or not (0 <= self.on_s < self.off_s and math.isfinite(self.off_s)):
            raise BenchConfigError(f"fault window: machine >= 0 and 0 <= on_s < off_s, got "
                                   f"{self.machine}, {self.on_s}, {self.off_s}")

    def frames(self, load: BenchLoad) -> tuple[int, int]:
        """(first frame holding a faulty sample, first frame after the last faulty one)."""
        per = load.frame_samples
        on, off = round(self.on_s * load.rate_hz), round(self.off_s * load.rate_hz)
        return on // per, -(-off // per)

    def to_dict(self) -> dict[str, Any]:
        f = self.fault
        return {"machine": self.machine, "kind": f.kind, "channel": f.channel, "size": f.size,
                "defect_hz": f.defect_hz, "resonance_hz": f.resonance_hz,
                "on_s": self.on_s, "off_s": self.off_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FaultWindow:
        try:
            kind = str(d["kind"])
            if kind not in FAULT_KINDS:
                raise BenchConfigError(f"fault window: kind one of {FAULT_KINDS}, got {kind!r}")
            fault = Fault(kind, int(d["channel"]), float(d["size"]), float(d["defect_hz"]),
                          float(d["resonance_hz"]))
            return cls(int(d["machine"]), fault, float(d["on_s"]), float(d["off_s"]))
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, BenchConfigError):
                raise
            raise BenchConfigError(f"fault window: {e!r} in {d!r}") from None


def schedule_to_json(windows: tuple[FaultWindow, ...]) -> str:
    return json.dumps([w.to_dict() for w in windows], separators=(",", ":"))


def schedule_from_json(text: str) -> tuple[FaultWindow, ...]:
    try:
        items = json.loads(text)
    except ValueError as e:
        raise BenchConfigError(f"schedule: not JSON ({e})") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BenchConfigError("schedule: a JSON list of fault windows")
    return tuple(FaultWindow.from_dict(i) for i in items)


def plan_trips(load: BenchLoad, trips: int, start_s: float, seconds: float, seed: int,
               make_fault: Any, fault_s: float | None = None) -> tuple[FaultWindow, ...]:
    """``trips`` fault windows spread over stream times [start_s, start_s + seconds).
    ``make_fault(channel)`` gives the fault; ``fault_s`` defaults to a fifth of a slot,
    between 0.15 and 0.5 s."""
    if trips < 0 or not seconds > 0 or start_s < 0:
        raise BenchConfigError(f"trips >= 0, seconds > 0, start_s >= 0: got {trips}, "
                               f"{seconds}, {start_s}")
    if trips == 0:
        return ()
    slot = seconds / trips
    if slot < MIN_SLOT_S:
        raise BenchConfigError(f"{trips} trips in {seconds:g} s leave {slot:.2f} s each; at "
                               f"least {MIN_SLOT_S} s per trip")
    length = fault_s if fault_s is not None else min(0.5, max(0.15, slot / 5))
    rng = random.Random(seed)
    out = []
    for i in range(trips):
        begin = start_s + i * slot
        on = begin + rng.uniform(0.05, 0.25) * slot
        machine = rng.randrange(load.running)  # a still machine has no fault to show
        channel = rng.randrange(load.channels)
        out.append(FaultWindow(machine, make_fault(channel), round(on, 4),
                               round(on + length, 4)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TripMatch:
    """The trips of one run, each either the catch of a fault or false."""

    caught: dict[int, dict[str, Any]]  # fault index -> its first trip record
    false: list[dict[str, Any]]
    repeats: list[dict[str, Any]]  # further trips on a fault already caught (not false)


def catch_frames(window: FaultWindow, load: BenchLoad, votes_n: int) -> tuple[int, int]:
    """Frames whose window can trip on this fault: from its first faulty frame until a full
    window and the decision's ``votes_n`` windows after its last one."""
    on, off = window.frames(load)
    blocks = load.window // load.frame_samples
    return on, off + blocks + votes_n


def match_trips(records: list[dict[str, Any]], windows: tuple[FaultWindow, ...],
                load: BenchLoad, votes_n: int) -> TripMatch:
    """Sort the interlock's trip records (``TripRecord.to_dict()``) against the faults."""
    caught: dict[int, dict[str, Any]] = {}
    false: list[dict[str, Any]] = []
    repeats: list[dict[str, Any]] = []
    spans = [catch_frames(w, load, votes_n) for w in windows]
    for rec in records:
        source, seq = rec.get("source_id"), rec.get("seq")
        hit = None
        if rec.get("reason") == "verdict" and isinstance(source, int) and isinstance(seq, int):
            for i, w in enumerate(windows):
                lo, hi = spans[i]
                if source == w.machine + 1 and lo <= seq < hi:
                    hit = i
                    break
        if hit is None:
            false.append(rec)
        elif hit in caught:
            repeats.append(rec)
        else:
            caught[hit] = rec
    return TripMatch(caught, false, repeats)
