"""The fault-injection campaign's vocabulary: a case, its trials, and one result row.

A case is a function ``run(ctx, trials) -> CaseResult`` that injects one kind of failure
``trials`` times against real processes and sockets on loopback, and judges each trial by the
case's pass rule. This module only holds the data and the arithmetic of a row; it starts
nothing, reads no clock and prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_FAILURES_KEPT = 10


@dataclass(frozen=True, slots=True)
class Trial:
    """One injection and its judgement. ``reaction_ms``: fault to safe reaction, when timed."""

    ok: bool
    reaction_ms: float | None = None
    note: str = ""  # why it failed (or what it was, for a pass worth recording)


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    rule: str  # the pass figure, in words: "all acked, max <= D (10 ms)"
    trials: int
    passed: int
    max_reaction_ms: float | None
    failures: tuple[str, ...] = ()  # the first few failed trials' notes
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.trials > 0 and self.passed == self.trials

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "rule": self.rule, "trials": self.trials, "passed": self.passed,
            "ok": self.ok, "max_reaction_ms": self.max_reaction_ms,
            "failures": list(self.failures), "details": self.details,
        }


def judge(name: str, rule: str, trials: Sequence[Trial], *, limit_ms: float | None = None,
          details: dict[str, Any] | None = None) -> CaseResult:
    """A row from trials. With ``limit_ms``, a trial also fails when it reacted later than that
    (or was not timed at all)."""
    passed = 0
    failures: list[str] = []
    for i, t in enumerate(trials):
        ok = t.ok
        note = t.note
        if ok and limit_ms is not None:
            if t.reaction_ms is None:
                ok, note = False, "reaction not timed"
            elif t.reaction_ms > limit_ms:
                ok, note = False, f"reacted in {t.reaction_ms:.2f} ms > {limit_ms:g} ms"
        if ok:
            passed += 1
        elif len(failures) < MAX_FAILURES_KEPT:
            failures.append(f"trial {i}: {note or 'failed'}")
    timed = [t.reaction_ms for t in trials if t.reaction_ms is not None]
    return CaseResult(name, rule, len(trials), passed, round(max(timed), 3) if timed else None,
                      tuple(failures), dict(details or {}))


@dataclass(frozen=True, slots=True)
class Context:
    """What every case gets: a private folder, a seed, the cell's deadline, and a progress
    callback that advances the bar by a number of finished trials."""

    work_dir: Path
    seed: int = 0
    deadline_ms: float = 10.0
    progress: Callable[[int], None] = lambda n: None


CaseFn = Callable[[Context, int], CaseResult]


@dataclass(frozen=True, slots=True)
class CaseSpec:
    name: str
    full: int  # trials in ``make faults``
    reduced: int  # trials in ``make test``
    run: CaseFn
