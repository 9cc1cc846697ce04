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

    r = sub.add_parser("run", help="run one component as a service")
    r.add_argument("component", choices=("sim", "monitor", "interlock"))
    r.add_argument("--config", type=Path, required=True)

    t = sub.add_parser("train", help="train the default model bundle on simulated normal data")
    t.add_argument("--config", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--seconds", type=float, default=120.0)
    t.add_argument("--seed", type=int, default=0)

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
    from tripwire import logs

    if args.command == "demo":
        from tripwire.demo import DemoOptions, run

        logs.configure("warning", "console", stream=sys.stderr)
        opts = DemoOptions(
            target=args.target, deadline_ms=args.deadline_ms, duration_s=args.duration,
            fault_at_s=args.fault_at, fault=None if args.fault == "none" else args.fault,
            seed=args.seed, tui=not args.no_tui and sys.stdout.isatty(), json_path=args.json_path,
            run_dir=args.run_dir, cache_dir=_cache_dir(),
        )
        code, _ = run(opts)
        return code

    if args.command == "check-config":
        cfg = _load(args.path)
        print(f"{args.path}: ok ({len(cfg.sources)} sources, targets {', '.join(cfg.interlock.targets)})")
        return 0

    cfg = _load(args.config)
    logs.configure(cfg.log.level, cfg.log.format)

    if args.command == "run":
        if args.component == "sim":
            from sim.service import serve
        elif args.component == "monitor":
            from monitor.service import serve
        else:
            from interlock.service import serve
        return int(serve(cfg))

    if args.command == "train":
        from models.train import build_default_bundle

        path = build_default_bundle(cfg, args.out, seconds=args.seconds, seed=args.seed,
                                    progress=lambda stage, frac: print(f"{stage}: {frac:4.0%}", file=sys.stderr))
        print(path)
        return 0

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


if __name__ == "__main__":
    sys.exit(main())
