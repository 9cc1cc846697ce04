"""The model bundle ``tripwire bench`` runs in its monitor: tiers trained on the bank's load.

Shell (writes files). The bench's monitor loads a real, signed, tiered bundle (teacher,
distilled student, int8 student: models.tiers_train, models.tiers) whose feature spec is the
bench load's (``BenchLoad.channel_names()``, its rate, window and hop), so the monitor's tier
governor has tiers to step through. It is trained on the signal bank's normal windows as the
monitor's numba kernels compute them: per machine, two loops of the bank from frame 0 (the
first rows carry the band filters' start-up, which the monitor meets at start and after a
gap; the rest are the steady loop, which the live stream repeats exactly).

The bank's loop is short (64 frames a machine), so a few of its windows are outliers in
their per-window statistics (mean, crest, kurtosis of white noise); the teacher's residual
scale gets an allowance of 2 on those features (``train_teacher``'s ``allowance``), which
halves the normal score's peak and leaves the band energies, where the bench fault shows,
at full sensitivity.

Thresholds: the bench measures cost and latency, not detection, and its normal stream is the
bank's loop, so each tier's threshold sits between the highest score of any normal window
and the lowest score that the bench fault (``bench_fault``: bearing impulses 30 x the
channel's RMS) reaches, at their geometric mean. The fault floor is taken over every machine
and channel: for each, the third-highest score of six windows wholly inside the fault (the
monitor's rule trips on 3 of 5). A bundle whose fault floor is not ``MIN_SEPARATION`` times
its normal peak is refused. Scores come from onnxruntime on the CPU (what the monitor runs).

Bundles are cached under ``cache_dir`` keyed by the load, the seed, this recipe and the
source of the modules that shape the rows and the model; a cached bundle is verified before
it is reused and rebuilt when refused. Training runs in a child process
(``python -m bench.bundle``) with one BLAS thread: numpy's threaded BLAS slowed it down
fourteen-fold on a busy 2-core machine, and the child's memory goes with it.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import signals
from bench.errors import BenchSetupError
from bench.model import feature_spec
from bench.signals import BEARING, BenchLoad, Fault, SignalBank
from models import calibrate, tier_bundle, tiers, tiers_train
from models.bundle import DEV_KEY, load_bundle, write_tiered_bundle
from models.errors import BundleError, ModelError
from models.manifest import canonical_json
from monitor import bands, features
from monitor.features import STATS, offline_features

F32 = npt.NDArray[np.float32]

RECIPE_VERSION = 1
DEFAULT_TIER = "teacher"  # the governor steps down from the best tier under pressure
FAULT_SIZE = 30.0
ALLOWANCE = {"mean": 2.0, "crest": 2.0, "kurt": 2.0}
MIN_SEPARATION = 1.3
FAULT_LEAD_FRAMES = 10  # frames of normal signal before the onset in a fault probe
FAULT_ROWS = 6  # windows after the onset a probe scores; the 3rd highest counts
TRIP_VOTES = 3
TRAIN_TIMEOUT_S = 900.0


def bench_fault(channel: int) -> Fault:
    """The fault ``tripwire bench`` injects: a strong bearing fault on one channel."""
    return Fault(BEARING, channel=channel, size=FAULT_SIZE)


def normal_rows(bank: SignalBank) -> F32:
    """Every machine's windows over two loops from frame 0 (start-up, then the steady loop)."""
    load = bank.load
    spec = feature_spec(load)
    frames = 2 * bank.loop_frames + load.window // load.frame_samples - 1
    return np.concatenate([offline_features(bank.block(m, 0, frames), spec)
                           for m in range(load.machines)], axis=0)


def fault_rows(load: BenchLoad, seed: int) -> F32:
    """``FAULT_ROWS`` windows wholly inside a bench fault, for every machine and channel in
    turn: (machines * channels * FAULT_ROWS, features)."""
    spec = feature_spec(load)
    blocks = load.window // load.frame_samples
    onset = FAULT_LEAD_FRAMES + blocks  # the probe block starts FAULT_LEAD_FRAMES frames early
    bank = SignalBank(load, seed)
    out: list[F32] = []
    for m in range(load.machines):
        for ch in range(load.channels):
            bank.inject(m, bench_fault(ch), onset * load.frame_samples / load.rate_hz)
            r = offline_features(bank.block(m, blocks, FAULT_LEAD_FRAMES + blocks + FAULT_ROWS), spec)
            out.append(r[FAULT_LEAD_FRAMES + 1 : FAULT_LEAD_FRAMES + 1 + FAULT_ROWS])
            bank.clear(m)
    return np.concatenate(out, axis=0)


def _allowance(load: BenchLoad) -> npt.NDArray[np.float64]:
    per = feature_spec(load).per_channel
    allow = np.ones(load.channels * per)
    for name, factor in ALLOWANCE.items():
        allow[STATS.index(name)::per] = factor
    return allow


def _code_digest(modules: list[ModuleType]) -> str:
    h = hashlib.sha256()
    for mod in modules:
        try:
            h.update(inspect.getsource(mod).encode())
        except (OSError, TypeError):  # no source shipped: the module's name stands in
            h.update(mod.__name__.encode())
    return h.hexdigest()


def _running(load: BenchLoad) -> BenchLoad:
    """The model is the running plant's: it never learns a still machine as normal (that is
    what the idle rule is for), so idle machines change neither the bundle nor its key."""
    return replace(load, idle=0)


def bundle_path(load: BenchLoad, seed: int, cache_dir: Path) -> Path:
    """Where the bundle for this load and seed is cached (a name that changes with the code)."""
    key = {
        "recipe": RECIPE_VERSION,
        "load": asdict(_running(load)),
        "seed": seed,
        "tier_config": asdict(tier_bundle.MONITOR_TIER_CONFIG),
        "code": _code_digest([signals, features, bands, tiers, tiers_train, tier_bundle,
                              calibrate, sys.modules[__name__]]),
    }
    digest = hashlib.sha256(canonical_json(key)).hexdigest()[:16]
    return Path(cache_dir) / f"bench-tiers-{digest}"


def ensure_bundle(load: BenchLoad, seed: int, cache_dir: Path) -> Path:
    """The cached bench bundle, verified; trained (again) when absent or refused."""
    load = _running(load)
    path = bundle_path(load, seed, cache_dir)
    if path.exists():
        try:
            load_bundle(path, DEV_KEY).check_spec(feature_spec(load))
            return path
        except BundleError:
            pass  # rebuilt below
    tmp = path.with_name(f".{path.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    argv = [sys.executable, "-m", "bench.bundle", "--out", str(tmp), "--seed", str(seed),
            *load.argv()]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=TRAIN_TIMEOUT_S, check=False)
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip()[-800:]
            raise BenchSetupError(f"training exited with {done.returncode}: {why}")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except subprocess.TimeoutExpired:
        raise BenchSetupError(f"training took over {TRAIN_TIMEOUT_S:.0f} s") from None
    except OSError as e:
        raise BenchSetupError(f"cannot build the bench bundle at {path}: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _tier_entry(graph: bytes, n_features: int, normal: F32, faulty: F32) -> dict[str, Any]:
    normal_s, fault_s = tier_bundle.onnx_scores(graph, n_features, normal, faulty)
    peak = float(normal_s.max())
    votes = np.sort(fault_s.reshape(-1, FAULT_ROWS), axis=1)[:, -TRIP_VOTES]
    floor = float(votes.min())
    if not floor >= MIN_SEPARATION * peak:
        raise BenchSetupError(f"bench bundle: the fault's floor score {floor:.3g} is not "
                              f"{MIN_SEPARATION}x the normal peak {peak:.3g}")
    threshold = math.sqrt(peak * floor)
    cal = calibrate.calibrate(normal_s, calibrate.DEFAULT_TARGET_FAR, 1.0)
    calibration = {**cal.to_dict(), "rule": "bench: geometric mean of the normal peak and the "
                   "fault floor", "normal_peak": peak, "fault_floor": floor}
    return {"threshold": threshold, "calibration": calibration,
            "metrics": {"onnx_bytes": len(graph), "normal_peak_over_threshold":
                        round(peak / threshold, 4), "fault_floor_over_threshold":
                        round(floor / threshold, 4)}}


def build_bundle(load: BenchLoad, seed: int, out_dir: Path) -> Path:
    """Train the three tiers on the bank's normal rows, set thresholds, sign and write."""
    spec = feature_spec(load)
    normal = normal_rows(SignalBank(load, seed))
    faulty = fault_rows(load, seed)
    cfg = replace(tier_bundle.MONITOR_TIER_CONFIG, seed=seed)
    models = tiers_train.train_tiers(normal, cfg, _allowance(load))
    graphs = {name: tiers.to_onnx(model) for name, model in models.items()}
    n = spec.n_features
    entries = {name: {**_tier_entry(g, n, normal, faulty), "params": models[name].n_params,
                      "quantized": models[name].quantized} for name, g in graphs.items()}
    manifest = tier_bundle.tiers_manifest(spec, training={
        "data_sha256": hashlib.sha256(normal.tobytes()).hexdigest(), "seed": seed,
        "seconds": normal.shape[0] * load.hop / load.rate_hz,
        "generator": "bench.signals.SignalBank", "load": asdict(load),
        "tier_config": asdict(cfg), "allowance": dict(ALLOWANCE), "fault_size": FAULT_SIZE,
    }, metrics={"n_train": int(normal.shape[0]), "n_fault_rows": int(faulty.shape[0])})
    return write_tiered_bundle(out_dir, graphs, entries, manifest, DEFAULT_TIER, DEV_KEY)


def main(argv: list[str] | None = None) -> int:
    import argparse  # the child process's entry point only

    p = argparse.ArgumentParser(prog="python -m bench.bundle", description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    BenchLoad.add_arguments(p)
    a = p.parse_args(argv)
    try:
        load = BenchLoad.from_arguments(a)
        build_bundle(load, a.seed, a.out)
    except (BenchSetupError, ModelError, ValueError, OSError) as e:
        print(f"bench.bundle: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
