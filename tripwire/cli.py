"""The ``tripwire`` command. Parses arguments, loads the config once, and hands each
component its section. The only place that reads the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

FAULTS = ("bearing", "imbalance", "spike", "freeze", "none")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tripwire", description="Anomaly monitor with a machine interlock.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="simulated plant, fault, trip: the whole loop on this host")
    d.add_argument("--target", choices=("modbus", "opcua"), default="modbus")
    d.add_argument("--deadline-ms", type=float, default=10.0)
    d.add_argument("--duration", type=float, default=20.0, help="seconds after the interlock arms")
    d.add_argument("--fault-at", type=float, default=10.0, help="seconds after the interlock arms")
    d.add_argument("--fault", choices=FAULTS, default="bearing")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-tui", action="store_true", help="plain event lines instead of the live view")
    d.add_argument("--json", type=Path, dest="json_path", help="write the summary here")
    d.add_argument("--run-dir", type=Path, help="keep config, logs and journal here")
    d.add_argument("--no-scada", action="store_true", help="do not start the operators' OPC-UA gateway")

    r = sub.add_parser("run", help="run one component as a service")
    r.add_argument("component", choices=("sim", "monitor", "interlock", "scada"))
    r.add_argument("--config", type=Path, required=True)

    t = sub.add_parser("train", help="train a signed model bundle from normal data (files or the simulator)")
    t.add_argument("--config", type=Path, required=True, help="the feature spec comes from here")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--data", type=Path, nargs="+", help="CSV, NPY or Parquet files of normal operation; "
                   "without it, the simulator's normal operation")
    t.add_argument("--sep", help="CSV separator (default: detected)")
    t.add_argument("--time-col", help="CSV time column, checked against the configured sample rate")
    t.add_argument("--channels", help="comma-separated file columns mapped, in order, to the config's channels")
    t.add_argument("--kind", choices=("tiers", "autoencoder", "pca", "iforest"), default=None,
                   help="tiers: teacher, distilled student and int8 student in one bundle "
                   "(default for --data); autoencoder (default for the simulator); pca; iforest")
    t.add_argument("--default-tier", choices=("int8", "student", "teacher"), default="int8")
    t.add_argument("--seconds", type=float, default=600.0, help="simulated normal operation per source")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--key-file", type=Path, help="site signing key (default: the development key)")

    e = sub.add_parser("eval", help="evaluate detection on a labelled benchmark")
    esub = e.add_subparsers(dest="benchmark", required=True)
    sk = esub.add_parser("skab", help="Skoltech Anomaly Benchmark, its protocol and metric rules")
    sk.add_argument("--data", type=Path, required=True, help="folder with SKAB's CSV sub-folders")
    sk.add_argument("--json", type=Path, dest="json_path")
    sk.add_argument("--tier", "--detector", dest="detector", default="default",
                    help="model tier (default = int8, teacher, student) or numpy detector (rolling-z, pca-t2q, pca-t2q-hysteresis, iforest)")

    cv = esub.add_parser("csv", help="any site's CSV files: fit on the first part, predict the rest")
    cv.add_argument("files", nargs="+", type=Path)
    cv.add_argument("--sep", default=",")
    cv.add_argument("--time-col", default="")
    cv.add_argument("--label-col", default="")
    part = cv.add_mutually_exclusive_group()
    part.add_argument("--train-rows", type=int)
    part.add_argument("--train-fraction", type=float)
    cv.add_argument("--predictions", type=Path, required=True, help="folder for <stem>.csv predictions")
    cv.add_argument("--json", type=Path, dest="json_path")
    cv.add_argument("--detector", default="default")
    sm = esub.add_parser("sim", help="detection study on the simulator: false trips and delay per fault")
    sm.add_argument("--hours", type=float, default=1.0, help="simulated hours of normal operation")
    sm.add_argument("--trials", type=int, default=10, help="trials per fault kind")
    sm.add_argument("--seed", type=int, default=0)
    sm.add_argument("--json", type=Path, dest="json_path")

    f = sub.add_parser("faults", help="fault-injection campaign: every failure case, one row each")
    f.add_argument("--json", type=Path, dest="json_path", help="write the rows here")
    f.add_argument("--case", action="append", dest="cases", help="run only this case (repeatable)")
    f.add_argument("--reduced", action="store_true", help="the few trials per row that make test runs")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--work-dir", type=Path,
                   help="keep run folders, logs and journals here (each case's folder is "
                        "emptied when the case starts; trained bundles are kept)")
    f.add_argument("--list", action="store_true", dest="list_cases", help="list the cases and exit")

    b = sub.add_parser("bench", help="the cell at plant load: throughput, deadlines, trips, floors, baselines")
    b.add_argument("--machines", type=int, default=16)
    b.add_argument("--channels", type=int, default=64)
    b.add_argument("--rate", type=float, default=25600.0, help="samples per second per channel")
    b.add_argument("--seconds", type=float, default=30.0, help="length of the measured span")
    b.add_argument("--deadline-ms", type=float, default=10.0)
    b.add_argument("--trips", type=int, default=10, help="faults injected over the span")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--target", choices=("modbus",), default="modbus")
    b.add_argument("--json", type=Path, dest="json_path", help="write the report here")
    b.add_argument("--work-dir", type=Path, help="keep the cell's config, logs and journal here (in cell/)")
    b.add_argument("--skip-baselines", action="store_true", help="no numpy, River or plain baselines")
    b.add_argument("--aligned", action="store_true",
                   help="every machine's frames at the same instants (default: each DAQ on its own clock)")
    b.add_argument("--idle", type=int, default=0,
                   help="this many machines stand still (their windows skip the model: the idle short-cut)")

    c = sub.add_parser("check-config", help="validate a config file without starting anything")
    c.add_argument("path", type=Path)

    for name, helptext in (("status", "ask the interlock for its state"),
                           ("reset", "reset a tripped interlock (authenticated)"),
                           ("trip", "trip the interlock by hand")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--config", type=Path, required=True)
        if name == "reset":
            s.add_argument("--token", default=os.environ.get("TRIPWIRE_RESET_TOKEN", ""))
        if name == "trip":
            s.add_argument("--reason", default="manual")
    return p


def _install_test_clock() -> None:
    """The fault campaign's wall-clock jumps (tripwire.testclock): only when asked for."""
    from tripwire import testclock

    path = os.environ.get(testclock.ENV, "")
    if path:
        testclock.install(Path(path))
        print(f"tripwire: TEST CLOCK installed: wall clock offset read from {path}", file=sys.stderr)


def _cache_dir() -> Path:
    return Path(os.environ.get("TRIPWIRE_CACHE", ".tripwire/cache"))


def _load(path: Path) -> Any:
    from tripwire import config

    try:
        return config.load(path)
    except config.ConfigError as e:
        print(f"tripwire: config refused: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        _install_test_clock()  # before any component binds the clock functions by name
    from tripwire import logs

    if args.command == "demo":
        from tripwire.demo import DemoOptions, run

        logs.configure("warning", "console", stream=sys.stderr)
        opts = DemoOptions(
            target=args.target, deadline_ms=args.deadline_ms, duration_s=args.duration,
            fault_at_s=args.fault_at, fault=None if args.fault == "none" else args.fault,
            seed=args.seed, tui=not args.no_tui and sys.stdout.isatty(), json_path=args.json_path,
            run_dir=args.run_dir, cache_dir=_cache_dir(), scada=not args.no_scada,
        )
        code, _ = run(opts)
        return code

    if args.command == "eval":
        if args.benchmark == "skab":
            return _eval_skab(args)
        if args.benchmark == "csv":
            return _eval_csv(args)
        return _eval_sim(args)

    if args.command == "faults":
        return _faults(args)

    if args.command == "bench":
        return _bench(args)

    if args.command == "check-config":
        cfg = _load(args.path)
        print(f"{args.path}: ok ({len(cfg.sources)} sources, targets {', '.join(cfg.interlock.targets)})")
        return 0

    cfg = _load(args.config)
    logs.configure(cfg.log.level, cfg.log.format)

    if args.command == "run":
        from tripwire import realtime

        if args.component == "sim":
            from sim.service import serve  # applies its priority itself, once its servers are up
        elif args.component == "monitor":
            from monitor.service import serve  # applies its priority itself, once warm
        elif args.component == "scada":
            from scada.service import serve  # normal priority: it only shows and forwards
        else:
            from interlock.service import serve

            realtime.apply(cfg.interlock.realtime_priority, "interlock", cfg.interlock.cpus)
        return int(serve(cfg))

    if args.command == "train":
        return _train(args, cfg)

    import zmq

    from tripwire.control import ControlTimeout, command

    ctx: zmq.Context[Any] = zmq.Context()
    try:
        if args.command == "status":
            reply = command(ctx, cfg.bus.interlock_cmd, "status")
        elif args.command == "reset":
            reply = command(ctx, cfg.bus.interlock_cmd, "reset", token=args.token)
        else:
            reply = command(ctx, cfg.bus.interlock_cmd, "trip", reason=args.reason)
    except ControlTimeout as e:
        print(f"tripwire: interlock did not answer: {e}", file=sys.stderr)
        return 3
    finally:
        ctx.destroy(linger=0)
    reply.pop("latency", None)
    print(json.dumps(reply, indent=2))
    return 0 if reply.get("ok") else 1


def _faults(args: argparse.Namespace) -> int:
    from rich.console import Console

    from campaign import cases, runner
    from tripwire import logs

    logs.configure("error", "console", stream=sys.stderr)
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # a pipe or a log file: keep one line per row
    try:
        specs = cases.select(args.cases)
    except KeyError as e:
        print(f"tripwire: {e.args[0]}", file=sys.stderr)
        return 2
    if args.list_cases:
        for s in specs:
            console.print(f"{s.name:24} full {s.full:>6}  reduced {s.reduced:>4}")
        return 0
    opts = runner.Options(reduced=args.reduced, seed=args.seed, work_dir=args.work_dir,
                          progress=console.is_terminal)
    results, elapsed_s = runner.run(specs, opts, console, partial=args.json_path)
    console.print(runner.table(results))
    data = runner.report(results, elapsed_s, opts)
    console.print(f"{'all rows pass' if data['ok'] else 'FAILED rows'} in {elapsed_s:.0f} s")
    if args.json_path:
        runner.write_json(args.json_path, data)
    return 0 if data["ok"] else 1


def _bench(args: argparse.Namespace) -> int:
    import signal

    from rich.console import Console

    from bench import display, report
    from bench.baselines import compare_to_plain
    from bench.errors import BenchConfigError, BenchError
    from bench.run import BenchOptions, run_bench
    from bench.signals import BenchLoad
    from tripwire import logs

    try:
        load = BenchLoad(machines=args.machines, channels=args.channels, rate_hz=args.rate,
                         aligned=args.aligned, idle=args.idle)
        opts = BenchOptions(load, seconds=args.seconds, deadline_ms=args.deadline_ms,
                            trips=args.trips, seed=args.seed, work_dir=args.work_dir,
                            cache_dir=_cache_dir(), skip_baselines=args.skip_baselines,
                            target=args.target)
    except BenchConfigError as e:
        print(f"tripwire bench: {e}", file=sys.stderr)
        return 2
    logs.configure("error", "console", stream=sys.stderr)
    err = Console(stderr=True)
    out = Console()
    if not out.is_terminal:
        out = Console(width=140)  # a pipe or a log file: keep one line per row

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # leave every block: children and servers stop on the way out

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        show = display.BarShow(err) if err.is_terminal else display.LineShow(err)
        with show:
            raw = run_bench(opts, show)
        data = report.build(raw, load, opts.seconds, opts.deadline_ms, opts.seed, compare_to_plain)
    except BenchConfigError as e:
        print(f"tripwire bench: {e}", file=sys.stderr)
        return 2
    except BenchError as e:
        print(f"tripwire bench: setup failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tripwire bench: interrupted; every process stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    out.print(display.table(data))
    if args.json_path:
        args.json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


def _train(args: argparse.Namespace, cfg: Any) -> int:
    from rich.progress import Progress

    from models.bundle import DEV_KEY, read_key_file
    from models.errors import ModelError
    from models.train import build_default_bundle, spec_for, train_from_files

    key = read_key_file(args.key_file) if args.key_file else DEV_KEY
    with Progress(transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=frac)

        try:
            if args.data:
                path = train_from_files(
                    list(args.data), spec_for(cfg), args.out, sep=args.sep, time_col=args.time_col,
                    channels=args.channels.split(",") if args.channels else None,
                    kind=args.kind or "tiers", default_tier=args.default_tier, seed=args.seed,
                    key=key, progress=progress)
            else:
                path = build_default_bundle(cfg, args.out, seconds=args.seconds, seed=args.seed, key=key,
                                            progress=progress, kind=args.kind or "autoencoder")
        except (ModelError, ValueError, OSError) as e:
            print(f"tripwire: training refused: {e}", file=sys.stderr)
            return 2
    print(path)
    return 0


def _eval_skab(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from models.skab import run as run_skab
    from models.skab import SkabDataError

    try:
        report = run_skab(args.data, args.detector)
    except SkabDataError as e:
        print(f"tripwire: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"tripwire: {e}", file=sys.stderr)
        return 2
    table = Table(title=f"SKAB ({len(report['files'])} files, fit on first 400 rows, pooled test rows)")
    for col in ("algorithm", "F1", "FAR %", "MAR %", "NAB standard", "NAB low FP", "NAB low FN"):
        table.add_column(col, no_wrap=col == "algorithm")
    nab = report["nab"]
    table.add_row(f"Tripwire {report.get('detector', args.detector)}", f"{report['f1']:.2f}", f"{report['far']:.2f}",
                  f"{report['mar']:.2f}", f"{nab['standard']:.2f}", f"{nab['low_fp']:.2f}", f"{nab['low_fn']:.2f}",
                  style="bold")
    for name, r in report.get("baselines", {}).items():
        bn = r["nab"]
        table.add_row(f"Tripwire {name} (ONNX)", f"{r['f1']:.2f}", f"{r['far']:.2f}", f"{r['mar']:.2f}",
                      f"{bn['standard']:.2f}", f"{bn['low_fp']:.2f}", f"{bn['low_fn']:.2f}")
    for row in report.get("leaderboard", []):
        pub = row.get("nab") or {}
        cells = [row.get(k) for k in ("f1", "far", "mar")] + [pub.get(k) for k in ("standard", "low_fp", "low_fn")]
        table.add_row(str(row["algorithm"]), *("" if c is None else str(c) for c in cells))
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a pipe or a CI log: do not squeeze the figures to 80
    console.print(table)
    if args.json_path:
        args.json_path.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _eval_csv(args: argparse.Namespace) -> int:
    from models.csv_eval import CsvDataError
    from models.csv_eval import run as run_csv

    try:
        report = run_csv(args.files, sep=args.sep, time_col=args.time_col, label_col=args.label_col,
                         train_rows=args.train_rows, train_fraction=args.train_fraction,
                         predictions_dir=args.predictions, detector=args.detector)
    except (CsvDataError, ValueError) as e:
        print(f"tripwire: {e}", file=sys.stderr)
        return 2
    summary = {k: v for k, v in report.items() if k != "files"}
    print(json.dumps(summary, indent=2))
    if args.json_path:
        args.json_path.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _eval_sim(args: argparse.Namespace) -> int:
    from rich.console import Console

    from models.sim_eval import run as run_sim
    from models.train import ensure_default_bundle
    from tripwire import config
    from tripwire.stack import demo_table

    table = demo_table(bundle="", fault=None)
    bundle = ensure_default_bundle(config.from_dict(table), _cache_dir())
    console = Console(stderr=True)
    report = run_sim(table, bundle, hours=args.hours, trials_per_fault=args.trials, seed=args.seed,
                     progress=lambda stage, frac: None)
    n = report["normal"]
    console.print(f"normal operation: {n['hours']:g} h, {n['windows']} windows, {n['false_trips']} false trips")
    for kind, f in report["faults"].items():
        console.print(f"  {kind:18s} detected {f['detected']}/{f['trials']}  median delay "
                      f"{f['median_delay_ms']} ms  p90 {f['p90_delay_ms']} ms")
    if args.json_path:
        args.json_path.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
