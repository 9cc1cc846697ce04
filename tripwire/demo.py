"""``tripwire demo``: a simulated machine develops a fault and Tripwire stops it.

Wiring and presentation only. It builds (or reuses) the default model bundle, brings up the
cell with ``Stack``, starts the fault schedule once the interlock is ARMED, shows a live
view, then collects what the interlock, the monitor and the simulated PLC recorded and
writes the summary (``tripwire.summary``).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tripwire import config, messages
from tripwire.control import trip_count, trips_since
from tripwire.latency import Histogram
from tripwire.stack import Stack, demo_table
from tripwire.summary import expectations, summarize


@dataclass(frozen=True, slots=True)
class DemoOptions:
    target: str = "modbus"
    deadline_ms: float = 10.0
    duration_s: float = 20.0
    fault_at_s: float = 10.0
    fault: str | None = "bearing"
    seed: int = 0
    tui: bool = True
    json_path: Path | None = None
    run_dir: Path | None = None
    cache_dir: Path = Path(".tripwire/cache")
    scada: bool = True


@dataclass
class LiveState:
    """What the live view shows; updated from the monitor's stream and status polls."""

    names: dict[int, str]
    verdicts: dict[int, messages.Verdict] = field(default_factory=dict)
    heartbeat: messages.Heartbeat | None = None
    interlock: dict[str, Any] = field(default_factory=dict)
    sim: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    t_start: float = 0.0
    echo: Any = None  # prints each event as it happens when there is no live view

    def note(self, text: str) -> None:
        line = f"{time.monotonic() - self.t_start:6.2f}s  {text}"
        self.events.append(line)
        del self.events[:-8]
        if self.echo is not None:
            self.echo(line)


def _bundle(table: dict[str, Any], opts: DemoOptions, console: Console) -> Path:
    """The cached default model, verified; trained on simulated normal operation if absent."""
    from models.train import ensure_default_bundle

    last: dict[str, float] = {}

    def progress(stage: str, frac: float) -> None:
        if frac - last.get(stage, -1.0) >= 0.25 or frac >= 1.0:
            console.print(f"  training the demo model: {stage} {frac:4.0%}")
            last[stage] = frac

    return ensure_default_bundle(config.from_dict(table), opts.cache_dir, progress=progress)


def _render(st: LiveState, opts: DemoOptions) -> Group:
    il = st.interlock
    state = il.get("state", "?")
    colour = {"ARMED": "green", "TRIPPED": "bold red", "SAFE": "yellow"}.get(state, "white")
    head = Text.assemble(("Tripwire demo  ", "bold"), (f"interlock {state}", colour),
                         f"   target {opts.target}   deadline {opts.deadline_ms:g} ms   "
                         f"t={time.monotonic() - st.t_start:5.1f}s / {opts.duration_s:g}s")
    plc = st.sim.get("plc", {})
    if plc:
        running = plc.get("state") == 1
        head.append(Text.assemble("\nPLC  ", (f"permit {int(bool(plc.get('permit')))}", "bold"),
                                  "  machines ", ("running" if running else "stopping / stopped",
                                                  "green" if running else "bold red"),
                                  f"  heartbeat {plc.get('heartbeat', '-')}"))
    machines = Table(expand=True)
    for col in ("machine", "score", "threshold", "", "level", "top channels"):
        machines.add_column(col)
    for sid, name in st.names.items():
        v = st.verdicts.get(sid)
        if v is None:
            machines.add_row(name, "-", "-", "", "-", "")
            continue
        # An idle window is not scored and a stale trip has no score: both carry NaN.
        ratio = v.score / v.threshold if v.threshold > 0 and math.isfinite(v.score) else 0.0
        bar = "#" * min(30, int(ratio * 15))
        lvl = v.level.name
        style = {"OK": "green", "WARN": "yellow", "TRIP": "bold red"}[lvl]
        machines.add_row(name, f"{v.score:8.3f}", f"{v.threshold:8.3f}", Text(f"{bar:<30}", style=style),
                         Text(lvl, style=style), ", ".join(v.channels))
    lat = Histogram.from_sparse(il["latency"]).summary_ms() if il.get("latency") else None
    hb = st.heartbeat
    figures = Table.grid(padding=(0, 3))
    figures.add_row(
        f"frames {hb.frames_received if hb else 0}",
        f"rejected {hb.frames_rejected if hb else 0}",
        f"verdicts {il.get('counters', {}).get('verdicts', 0)}",
        f"deadline misses {il.get('counters', {}).get('deadline_misses', 0)}",
    )
    if lat:
        figures.add_row(f"decision latency p50 {lat['p50']:.2f} ms", f"p99 {lat['p99']:.2f} ms",
                        f"max {lat['max']:.2f} ms", "")
    for t in il.get("trips", []):
        ms = t.get("trip_latency_ms")
        figures.add_row(Text(f"TRIP {st.names.get(t.get('source_id') or 0, t.get('reason', ''))}", style="bold red"),
                        f"stop {'acked' if t.get('acked') else 'NOT acked'} via {t.get('target')}",
                        f"trip latency {ms:.2f} ms" if ms is not None else "trip latency -",
                        "channels " + ", ".join(t.get("channels") or []))
    return Group(head, machines, figures, Text("\n".join(st.events), style="dim"))


def _drain(sub: zmq.Socket[Any], st: LiveState) -> None:
    while sub.poll(0, zmq.POLLIN):
        try:
            msg = messages.decode_monitor_message(sub.recv())
        except messages.DecodeError:
            continue
        if isinstance(msg, messages.Verdict):
            st.verdicts[msg.source_id] = msg
        else:
            st.heartbeat = msg


def _poll_status(stack: Stack, st: LiveState) -> None:
    before = trip_count(st.interlock)
    try:
        st.interlock = stack.interlock("status", timeout_ms=500)
    except TimeoutError:
        st.note("interlock status timed out")
    for t in trips_since(st.interlock, before):
        where = f" on {st.names[t['source_id']]}" if t.get("source_id") in st.names else ""
        st.note(f"TRIP{where} ({t.get('reason')}), channels {', '.join(t.get('channels') or []) or '-'}, "
                f"acked={t.get('acked')}")
    seen = len(st.sim.get("fault_onsets", []))
    try:
        st.sim = stack.sim("status", timeout_ms=500)
    except TimeoutError:
        st.note("sim status timed out")
    for o in st.sim.get("fault_onsets", [])[seen:]:
        st.note(f"fault '{o['kind']}' begins on {st.names.get(o['source'], '?')}")


def run(opts: DemoOptions, console: Console | None = None) -> tuple[int, dict[str, Any]]:
    console = console or Console()
    table = demo_table(bundle="", target=opts.target, deadline_ms=opts.deadline_ms, seed=opts.seed,
                       fault=opts.fault, fault_at_s=opts.fault_at_s,
                       duration_s=opts.duration_s + 60.0, reset_token="demo")
    table["monitor"]["bundle"] = str(_bundle(table, opts, console))
    run_dir = opts.run_dir or Path(tempfile.mkdtemp(prefix="tripwire-demo-"))
    names = {s["id"]: s["name"] for s in table["sources"]}
    st = LiveState(names, echo=None if opts.tui else console.print)
    with Stack(table, run_dir) as stack:
        console.print(f"starting sim, interlock and monitor (logs in {run_dir / 'logs'})")
        stack.start_all(scada=opts.scada)
        if opts.scada:
            console.print(f"SCADA gateway (OPC-UA): {stack.cfg.scada.endpoint}")
        sub = stack.ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.subscribe(b"")
        sub.connect(stack.cfg.bus.monitor_out)
        stack.sim("schedule")
        st.t_start = time.monotonic()
        st.note(f"interlock ARMED; fault '{opts.fault}' scheduled at {opts.fault_at_s:g}s" if opts.fault
                else "interlock ARMED; no fault scheduled")
        end = st.t_start + opts.duration_s
        next_status = 0.0
        live = Live(_render(st, opts), console=console, refresh_per_second=8, transient=False) if opts.tui else None
        try:
            if live:
                live.start()
            while time.monotonic() < end:
                if sub.poll(50, zmq.POLLIN):
                    _drain(sub, st)
                if time.monotonic() >= next_status:
                    _poll_status(stack, st)
                    next_status = time.monotonic() + 0.25
                if live:
                    live.update(_render(st, opts))
        finally:
            if live:
                live.stop()
        _drain(sub, st)
        _poll_status(stack, st)
        sub.close()
    hb = st.heartbeat
    monitor = {"frames_received": hb.frames_received, "frames_processed": hb.frames_processed,
               "frames_rejected": hb.frames_rejected} if hb else {}
    summary = summarize(deadline_ms=opts.deadline_ms, target=opts.target, interlock=st.interlock,
                        sim=st.sim, monitor=monitor, source_names=names, fault=opts.fault)
    summary["run_dir"] = str(run_dir)
    problems = expectations(summary)
    summary["expectations_met"] = not problems
    summary["problems"] = problems
    _print_summary(console, summary)
    if opts.json_path:
        opts.json_path.write_text(json.dumps(summary, indent=2) + "\n")
    return 0, summary


def _print_summary(console: Console, s: dict[str, Any]) -> None:
    t = Table(title="Tripwire demo summary", show_header=False)
    lat = s["latency_ms"]
    t.add_row("target / deadline", f"{s['target']} / {s['deadline_ms']:g} ms")
    t.add_row("frames (rejected)", f"{s['frames']} ({s['frames_rejected']})")
    t.add_row("decision latency t_acq -> interlock", f"p50 {lat['p50']} ms  p99 {lat['p99']} ms  "
              f"p99.9 {lat['p999']} ms  max {lat['max']} ms  over {lat['count']} windows")
    t.add_row("false trips / deadline misses", f"{s['false_trips']} / {s['deadline_misses']}")
    for trip in s["trips"]:
        t.add_row(f"trip on {trip['source']} ({trip['reason']})",
                  f"acked={trip['acked']} via {trip['target']}, trip latency {trip['trip_latency_ms']} ms, "
                  f"stop latency {trip['stop_latency_ms']} ms, detection delay {trip['detection_delay_ms']} ms, "
                  f"channels {', '.join(trip['channels'])}")
    if not s["trips"]:
        t.add_row("trips", "none")
    t.add_row("result", "as expected" if s["expectations_met"] else "; ".join(s["problems"]))
    console.print(t)
