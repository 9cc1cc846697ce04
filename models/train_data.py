"""Normal training data from recorded files: CSV, NPY or Parquet, to feature rows (shell).

Each file is one recording of raw samples at the feature spec's sample rate, holding the
spec's channels (or the ``channels`` named instead, mapped in order onto the spec's). CSV and
NPY are read by sensors.replay's loaders, so a file that trains a model also replays; Parquet
needs pyarrow, which is optional: without it a Parquet file is refused with a message saying
so. A CSV time column, when named, must agree with the sample rate and have no gaps.

Every file is cut by samples (never by overlapping windows, so no window straddles two
parts) into a training, a validation and a calibration part, in time order: the first
``train_fraction`` of the file trains, the next ``val_fraction`` validates, the rest
calibrates the threshold. Features come from the monitor's own kernels (offline_features).
``data_sha256`` hashes the samples as loaded (float32, channels-first, file by file), and
each file's bytes are hashed too, so a manifest names exactly what the model learned from.

Bad training data is refused with TrainingError naming the file: unlike live frames, a
non-finite sample here would silently teach the model, so it is not data but an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import TrainingError
from monitor.features import FeatureSpec, offline_features
from sensors.errors import ReplayError
from sensors.replay import load_csv, load_npy

F32 = npt.NDArray[np.float32]
RATE_TOLERANCE = 0.01
GAP_FACTOR = 1.5  # a time step this many sample periods long is a gap
DEFAULT_TRAIN_FRACTION = 0.5
DEFAULT_VAL_FRACTION = 0.1
SEPARATORS = (",", ";", "\t")


@dataclass(frozen=True, slots=True)
class FileData:
    train: F32
    val: F32
    calib: F32
    sha256: str
    seconds: float  # of signal, all files together
    files: list[dict[str, Any]]  # name, sha256 of its bytes, samples


def _check_sep(path: Path, sep: str) -> None:
    if sep not in SEPARATORS:
        raise TrainingError(f"separator {sep!r} is not one of {list(SEPARATORS)}")
    try:
        with path.open(encoding="utf-8") as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError) as e:
        raise TrainingError(f"{path}: cannot read ({e})") from None
    found = max(SEPARATORS, key=header.count)
    if found != sep:
        raise TrainingError(f"{path}: the header is {found!r}-separated, not {sep!r}")


def _check_times(path: Path, times_s: npt.NDArray[np.float64], rate_hz: float) -> None:
    steps = np.diff(times_s)
    if steps.size == 0:
        return
    period = 1.0 / rate_hz
    median = float(np.median(steps))
    if abs(median - period) > RATE_TOLERANCE * period:
        raise TrainingError(f"{path}: recorded at {1.0 / median:.6g} Hz, the spec says "
                            f"{rate_hz:g} Hz")
    gaps = int(np.count_nonzero(steps > GAP_FACTOR * period))
    if gaps:
        raise TrainingError(f"{path}: {gaps} gaps in the time column; windows across a gap "
                            f"would mix unrelated samples, so split the file at its gaps")


def _read_parquet(path: Path, columns: Sequence[str]) -> F32:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise TrainingError(f"{path}: reading Parquet needs pyarrow, which is not installed "
                            f"(pip install pyarrow, or convert the file to CSV or NPY)") from None
    try:
        table = pq.read_table(path, columns=list(columns))
    except (OSError, ValueError, KeyError) as e:
        raise TrainingError(f"{path}: cannot read the Parquet columns {list(columns)} ({e})") from None
    try:
        cols = [np.asarray(table.column(c).to_numpy(), dtype=np.float32) for c in columns]
    except (TypeError, ValueError) as e:
        raise TrainingError(f"{path}: a column is not numeric ({e})") from None
    return np.ascontiguousarray(np.vstack(cols))


def read_signal(path: str | Path, spec: FeatureSpec, *, sep: str | None = None,
                time_col: str | None = None, channels: Sequence[str] | None = None) -> F32:
    """One file's samples, (len(spec.channels), n) float32, in the spec's channel order."""
    p = Path(path)
    cols = tuple(channels) if channels else spec.channels
    if len(cols) != len(spec.channels):
        raise TrainingError(f"{len(cols)} columns {list(cols)} given for the spec's "
                            f"{len(spec.channels)} channels {list(spec.channels)}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            samples = load_npy(p, cols).samples
        elif suffix in (".parquet", ".pq"):
            samples = _read_parquet(p, cols)
        elif suffix in (".csv", ".txt", ".tsv"):
            if sep is not None:
                _check_sep(p, sep)
            rec = load_csv(p, cols, time_col or None)
            if rec.times_s is not None:
                _check_times(p, rec.times_s, spec.sample_rate_hz)
            samples = rec.samples
        else:
            raise TrainingError(f"{p}: unknown file type {suffix!r} (use .csv, .npy or .parquet)")
    except ReplayError as e:
        raise TrainingError(str(e)) from None
    bad = int(np.count_nonzero(~np.isfinite(samples)))
    if bad:
        raise TrainingError(f"{p}: {bad} samples are not finite; normal training data must be clean")
    return samples


def _cuts(n: int, train_fraction: float, val_fraction: float) -> tuple[int, int]:
    return round(n * train_fraction), round(n * (train_fraction + val_fraction))


def _features(path: Path, part: str, signal: F32, spec: FeatureSpec, required: bool) -> F32:
    rows = offline_features(signal, spec)
    if required and rows.shape[0] == 0:
        raise TrainingError(f"{path}: its {part} part ({signal.shape[1]} samples) is shorter "
                            f"than one {spec.window}-sample window")
    return rows


def load_files(
    paths: Sequence[str | Path], spec: FeatureSpec, *, sep: str | None = None,
    time_col: str | None = None, channels: Sequence[str] | None = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION, val_fraction: float = DEFAULT_VAL_FRACTION,
) -> FileData:
    """Read, check, split and featurize every file; features of a part are stacked in order."""
    if not paths:
        raise TrainingError("no training files given")
    if not (0 < train_fraction < 1 and 0 <= val_fraction and train_fraction + val_fraction < 1):
        raise TrainingError(f"fractions: train {train_fraction}, val {val_fraction} must be > 0 "
                            f"and leave a calibration part")
    parts: dict[str, list[F32]] = {"train": [], "val": [], "calib": []}
    digest = hashlib.sha256()
    files: list[dict[str, Any]] = []
    total = 0
    for path in map(Path, paths):
        signal = read_signal(path, spec, sep=sep, time_col=time_col, channels=channels)
        digest.update(np.ascontiguousarray(signal).tobytes())
        a, b = _cuts(signal.shape[1], train_fraction, val_fraction)
        parts["train"].append(_features(path, "training", signal[:, :a], spec, True))
        parts["val"].append(_features(path, "validation", signal[:, a:b], spec, False))
        parts["calib"].append(_features(path, "calibration", signal[:, b:], spec, True))
        files.append({"name": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                      "samples": int(signal.shape[1])})
        total += int(signal.shape[1])
    out = {k: np.concatenate(v).astype(np.float32, copy=False) for k, v in parts.items()}
    for role, arr in out.items():
        if not np.all(np.isfinite(arr)):
            raise TrainingError(f"{role} features contain non-finite values")
    return FileData(out["train"], out["val"], out["calib"], digest.hexdigest(),
                    total / spec.sample_rate_hz, files)
