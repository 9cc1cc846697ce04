"""Runs the campaign's cases in order, shows progress, and writes the table and the JSON.

Shell: it owns the work folder, the progress bar and the output. A case that raises is a
failed row (its error named), never an aborted campaign: the other rows still run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
)
from rich.table import Table

from campaign.case import CaseResult, CaseSpec, Context


@dataclass(frozen=True, slots=True)
class Options:
    reduced: bool = False  # the trial counts of ``make test`` instead of ``make faults``
    seed: int = 0
    deadline_ms: float = 10.0
    work_dir: Path | None = None  # kept when given; a temporary folder otherwise
    progress: bool = True


def run_case(spec: CaseSpec, ctx: Context, trials: int) -> CaseResult:
    try:
        return spec.run(ctx, trials)
    except Exception as e:  # noqa: BLE001 - a broken case is a failed row, named
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        return CaseResult(spec.name, "case raised", trials, 0, None, (detail,),
                          {"traceback": traceback.format_exc()})


def _advance(bar: Progress, task: TaskID) -> Callable[[int], None]:
    def advance(n: int) -> None:
        bar.advance(task, n)
    return advance


def run(specs: Sequence[CaseSpec], opts: Options, console: Console,
        partial: Path | None = None) -> tuple[list[CaseResult], float]:
    """Every case in order; with ``partial``, the rows so far are rewritten there after each
    case, so a campaign cut short still leaves what it measured."""
    root = opts.work_dir or Path(tempfile.mkdtemp(prefix="tripwire-faults-"))
    results: list[CaseResult] = []
    t0 = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not opts.progress, transient=True) as bar:
        for spec in specs:
            trials = spec.reduced if opts.reduced else spec.full
            task = bar.add_task(spec.name, total=trials)
            case_dir = root / spec.name
            # A kept work dir holds the last run's folders: its journals would restore their
            # latches (a cell that never arms) and its logs would be read as this run's. The
            # caches beside the case folders (trained bundles) stay.
            shutil.rmtree(case_dir, ignore_errors=True)
            case_dir.mkdir(parents=True, exist_ok=True)
            ctx = Context(case_dir, opts.seed, opts.deadline_ms, _advance(bar, task))
            started = time.monotonic()
            result = run_case(spec, ctx, trials)
            results.append(result)
            bar.remove_task(task)
            if partial is not None:
                write_json(partial, report(results, time.monotonic() - t0, opts))
            mark = "[green]pass[/]" if result.ok else "[red]FAIL[/]"
            console.print(f"{mark} {spec.name}: {result.passed}/{result.trials} "
                          f"({time.monotonic() - started:.1f} s)")
    return results, time.monotonic() - t0


def table(results: Sequence[CaseResult]) -> Table:
    t = Table(title="Fault-injection campaign")
    for col in ("case", "trials", "passed", "max reaction (ms)", "pass figure", "result"):
        t.add_column(col, justify="right" if col in ("trials", "passed", "max reaction (ms)") else "left")
    for r in results:
        react = "-" if r.max_reaction_ms is None else f"{r.max_reaction_ms:.2f}"
        t.add_row(r.name, str(r.trials), str(r.passed), react, r.rule,
                  "[green]pass[/]" if r.ok else "[red]FAIL[/]")
    return t


def report(results: Sequence[CaseResult], elapsed_s: float, opts: Options) -> dict[str, Any]:
    return {
        "ok": bool(results) and all(r.ok for r in results),
        "reduced": opts.reduced, "seed": opts.seed, "deadline_ms": opts.deadline_ms,
        "elapsed_s": round(elapsed_s, 1),
        "cases": [r.to_dict() for r in results],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
