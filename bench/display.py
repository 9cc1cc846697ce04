"""What ``tripwire bench`` shows while it runs and at the end (shell: writes to a console).

``BarShow``: a rich progress bar per phase (model, start, pipeline, floors, baselines) on
stderr when it is a terminal; ``LineShow``: one plain line per phase and per change of detail
otherwise (a pipe, a log file, a CI job). ``table(report)`` is the rich table printed at the
end: each must-show figure with its bar and whether it was met, then where the time goes
(stage percentiles, floors, CPU). It measures and decides nothing.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

THREAD_ROWS = 3  # the busiest threads of a process the table shows (the JSON has them all)


class BarShow:
    """``with BarShow(console) as show:`` a bar per phase."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(TextColumn("{task.description:<10}"), BarColumn(),
                                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                  console=console, transient=False)
        self._task: TaskID | None = None

    def __enter__(self) -> BarShow:
        self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._finish()
        self._progress.stop()

    def _finish(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total)

    def phase(self, name: str, total: float) -> None:
        self._finish()
        self._task = self._progress.add_task(name, total=total, detail="")

    def update(self, done: float, detail: str = "") -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=done, detail=detail)

    def note(self, text: str) -> None:
        self._progress.console.print(text)


class LineShow:
    """One line per phase and per new detail; the pipeline's progress every few seconds."""

    EVERY_S = 5.0

    def __init__(self, console: Console) -> None:
        self._console = console
        self._name = ""
        self._total = 0.0
        self._detail = ""
        self._last = 0.0

    def __enter__(self) -> LineShow:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        pass

    def phase(self, name: str, total: float) -> None:
        self._name, self._total, self._detail = name, total, ""
        self._last = time.monotonic()
        self._console.print(f"bench: {name}")

    def update(self, done: float, detail: str = "") -> None:
        now = time.monotonic()
        if detail != self._detail or now - self._last >= self.EVERY_S:
            share = f" {100 * done / self._total:.0f} %" if self._total else ""
            self._console.print(f"bench: {self._name}{share} {detail}".rstrip())
            self._detail, self._last = detail, now

    def note(self, text: str) -> None:
        self._console.print(text)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def table(rep: dict[str, Any]) -> Table:
    ld = rep["load"]
    t = Table(title=f"tripwire bench: {ld['machines']} machines x {ld['channels']} ch x "
                    f"{ld['rate_hz']:g} Hz, {ld['seconds']:g} s, D = {ld['deadline_ms']:g} ms",
              show_lines=False)
    for col in ("figure", "value", "bar", "ok"):
        t.add_column(col, overflow="fold")
    t.add_row("offered samples/s", _fmt(rep["offered_samples_per_s"]), "", "")
    t.add_row("accepted samples/s", _fmt(rep["samples_per_s"]), "", "")
    for name, c in rep["checks"].items():
        ok = "skipped" if c["ok"] is None else ("yes" if c["ok"] else "NO")
        t.add_row(name, _fmt(c["value"]), c["bar"], ok, style=None if c["ok"] is not False else "red")
    tl = rep["trip_latency_ms"]
    t.add_row("trip latency ms", _fmt({k: tl[k] for k in ("p50", "p99", "max", "count")}), "", "")
    for name, s in rep["stages"].items():
        t.add_row(f"stage {name} µs", _fmt({k: s[k] for k in ("p50_us", "p99_us", "max_us")}),
                  "", "")
    floors = rep.get("floors") or {}
    hop = floors.get("bus_hop", {})
    if hop:
        best = hop["best"]
        t.add_row("floor bus hop p99 µs", _fmt({k: v["p99_us"] for k, v in hop["variants"].items()}),
                  f"best {best}", "")
    call = floors.get("model_call_tiers") or {}
    for tier, fig in call.items():
        t.add_row(f"floor model {tier} p99 µs", _fmt({"batch 1": fig["batch_1"]["p99_us"],
                                                       "batch 32": fig["batch_32"]["p99_us"]}), "", "")
    plc = floors.get("plc_write", {})
    if plc:
        t.add_row("floor PLC write p99 µs", _fmt({"ours": plc["modbus_writer"]["p99_us"],
                                                  "pymodbus": plc["pymodbus_default"]["p99_us"]}),
                  "", "")
    river = (rep.get("baselines") or {}).get("river")
    if river:
        t.add_row("ours vs River HST", _fmt({"batch 1": river["onnx_batch_1_over_river"],
                                             "batch 32": river["onnx_batch_32_over_river"]}),
                  "x samples/s", "")
    vs = (rep.get("baselines") or {}).get("pipeline_vs_plain") or {}
    if vs.get("cpu_us_per_frame"):
        t.add_row("CPU µs per frame", _fmt(vs["cpu_us_per_frame"]),
                  "bus floor: relay and sink, no work", "")
    if vs.get("ceiling_samples_per_cpu_s_ratio"):
        t.add_row("ceiling vs plain", _fmt(vs["ceiling_samples_per_cpu_s_ratio"]),
                  "x per CPU-second: plain's CPU per frame / the bus floor's", "")
    t.add_row("cpu %", _fmt({k: v for k, v in rep["cpu"].items() if k != "unit"}), "one core", "")
    if rep.get("placement"):
        t.add_row("pinned to CPUs", _fmt({k: v or "any" for k, v in rep["placement"].items()}),
                  "", "")
    for proc, all_rows in (rep.get("cpu_threads") or {}).items():
        rows = [r for r in all_rows if r["user_percent"] + r["system_percent"] > 0]
        if rows:
            t.add_row(f"{proc} threads % (user+sys)",
                      _fmt({_thread(r): f"{r['user_percent']}+{r['system_percent']}"
                            for r in rows[:THREAD_ROWS]}), "one core; @ the CPUs it may run on", "")
    t.add_row("ok", "yes" if rep["ok"] else "NO", "", "")
    return t


def _thread(row: dict[str, Any]) -> str:
    where = f" @{row['cpus']}" if row.get("cpus") else ""
    return f"{row['thread']} ({row['tid']}){where}"
