"""The SKAB benchmark: load its CSV files, run a detector under the published protocol, score.

Protocol (``../shared/data/skab/SOURCE.md``): each of the 34 labelled files is its own
experiment. A fresh detector is fitted on the file's first 400 rows and predicts a 0/1 alarm for
every remaining row; the test rows of all files are pooled for the pointwise metrics and the
alarms' edges are scored with SKAB's NAB variant (60 s windows to the right of each true
changepoint). The anomaly-free file is never scored; it is loaded only for choosing global
hyper-parameters.

``run`` also takes the model tiers' names (teacher, student, int8; skab_tiers.py), and
``default`` means the int8 tier; ``evaluate`` runs detectors.py's numpy detectors.

This module reads files but prints, logs and writes nothing; the CLI formats what ``run``
returns. It never copies the data anywhere.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.detectors import build
from models.errors import ModelError
from models.metrics import binary_metrics, nab_scores

SENSOR_COLUMNS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)
LABEL_COLUMNS = ("anomaly", "changepoint")
TRAIN_ROWS = 400
WINDOW_S = 60.0
LABELLED_FOLDERS = ("other", "valve1", "valve2")
ANOMALY_FREE = Path("anomaly-free") / "anomaly-free.csv"

# Published "Proposed Leaderboard" rows (upstream README at b2c0d46, copied into SOURCE.md).
LEADERBOARD: tuple[dict[str, Any], ...] = (
    {"algorithm": "Conv-AE", "f1": 0.78, "far": 13.55, "mar": 28.02,
     "nab": {"standard": 23.61, "low_fp": 21.54, "low_fn": 27.55, "missed": 82, "fp": 23}},
    {"algorithm": "MSET", "f1": 0.78, "far": 39.73, "mar": 14.13,
     "nab": {"standard": 13.84, "low_fp": 10.22, "low_fn": 17.37, "missed": 96, "fp": 66}},
    {"algorithm": "T-squared+Q (PCA-based)", "f1": 0.76, "far": 26.62, "mar": 24.92,
     "nab": {"standard": 25.35, "low_fp": 14.51, "low_fn": 31.33, "missed": 72, "fp": 232}},
    {"algorithm": "LSTM-AE", "f1": 0.74, "far": 29.96, "mar": 25.92,
     "nab": {"standard": 23.51, "low_fp": 20.11, "low_fn": 25.91, "missed": 88, "fp": 69}},
    {"algorithm": "T-squared", "f1": 0.66, "far": 19.21, "mar": 42.6,
     "nab": {"standard": 19.54, "low_fp": 10.2, "low_fn": 24.31, "missed": 70, "fp": 106}},
    {"algorithm": "LSTM-VAE", "f1": 0.56, "far": 9.13, "mar": 55.03, "nab": None},
    {"algorithm": "Vanilla LSTM", "f1": 0.54, "far": 12.54, "mar": 59.53,
     "nab": {"standard": 11.31, "low_fp": -3.8, "low_fn": 17.25, "missed": 90, "fp": 342}},
    {"algorithm": "MSCRED", "f1": 0.36, "far": 49.94, "mar": 69.88,
     "nab": {"standard": 32.42, "low_fp": 16.53, "low_fn": 40.28, "missed": 55, "fp": 342}},
    {"algorithm": "Vanilla AE", "f1": 0.39, "far": 2.59, "mar": 75.15,
     "nab": {"standard": 11.41, "low_fp": 6.53, "low_fn": 13.91, "missed": 103, "fp": 106}},
    {"algorithm": "Isolation forest", "f1": 0.29, "far": 2.56, "mar": 82.89,
     "nab": {"standard": 26.16, "low_fp": 19.5, "low_fn": 30.82, "missed": 76, "fp": 135}},
    {"algorithm": "ArimaFD", "f1": None, "far": None, "mar": None,
     "nab": {"standard": -0.09, "low_fp": -0.17, "low_fn": -0.06, "missed": 127, "fp": 2}},
)


class SkabDataError(ModelError):
    """The SKAB folder is missing, or one of its files is not what the benchmark ships."""


@dataclass(frozen=True, slots=True)
class SkabFile:
    """One experiment: timestamps, the eight sensor channels and, when labelled, its labels."""

    name: str  # e.g. "valve1/3"
    t_ns: np.ndarray  # (n,) int64 wall-clock ns, strictly increasing
    values: np.ndarray  # (n, 8) float64 in SENSOR_COLUMNS order
    anomaly: np.ndarray | None  # (n,) int8, None for the anomaly-free file
    changepoint: np.ndarray | None  # (n,) int8

    def __len__(self) -> int:
        return len(self.t_ns)


def _parse_line(path: Path, lineno: int, line: str, width: int) -> list[str]:
    fields = line.split(";")
    if len(fields) != width:
        raise SkabDataError(f"{path}:{lineno}: expected {width} fields, found {len(fields)}")
    return fields


def load_file(path: Path) -> SkabFile:
    """Parse one semicolon-separated SKAB file; raise SkabDataError naming the bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkabDataError(f"{path}: cannot read: {exc}") from exc
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise SkabDataError(f"{path}: empty file")
    header = tuple(h.strip() for h in lines[0].split(";"))
    labelled = header[-2:] == LABEL_COLUMNS
    expected = ("datetime", *SENSOR_COLUMNS, *(LABEL_COLUMNS if labelled else ()))
    if header != expected:
        raise SkabDataError(f"{path}:1: header {header} is not {expected}")
    stamps: list[str] = []
    rows: list[list[float]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        fields = _parse_line(path, lineno, line, len(expected))
        stamps.append(fields[0].strip().replace(" ", "T"))
        try:
            rows.append([float(v) for v in fields[1:]])
        except ValueError as exc:
            raise SkabDataError(f"{path}:{lineno}: not a number: {exc}") from exc
    if not rows:
        raise SkabDataError(f"{path}: no data rows")
    try:
        t_ns = np.array(stamps, dtype="datetime64[ns]").astype(np.int64)
    except ValueError as exc:
        raise SkabDataError(f"{path}: bad datetime: {exc}") from exc
    if np.any(np.diff(t_ns) <= 0):
        bad = int(np.argmax(np.diff(t_ns) <= 0)) + 3
        raise SkabDataError(f"{path}:{bad}: timestamps do not increase")
    data = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        bad = int(np.argmax(~np.all(np.isfinite(data), axis=1))) + 2
        raise SkabDataError(f"{path}:{bad}: non-finite value")
    n_sensors = len(SENSOR_COLUMNS)
    anomaly = changepoint = None
    if labelled:
        labels = data[:, n_sensors:]
        if not np.all(np.isin(labels, (0.0, 1.0))):
            raise SkabDataError(f"{path}: label columns hold values other than 0 and 1")
        anomaly, changepoint = labels[:, 0].astype(np.int8), labels[:, 1].astype(np.int8)
    name = f"{path.parent.name}/{path.stem}"
    return SkabFile(name, t_ns, data[:, :n_sensors], anomaly, changepoint)


def _sort_key(path: Path) -> tuple[str, int, str]:
    return (path.parent.name, int(path.stem) if path.stem.isdigit() else -1, path.stem)


def labelled_paths(data_dir: Path) -> list[Path]:
    """The benchmark's labelled files in a fixed order (folder, then number)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SkabDataError(f"SKAB folder {data_dir} does not exist")
    paths = [p for folder in LABELLED_FOLDERS for p in (data_dir / folder).glob("*.csv")]
    if not paths:
        raise SkabDataError(f"no labelled CSV files under {data_dir}/{{{','.join(LABELLED_FOLDERS)}}}")
    return sorted(paths, key=_sort_key)


def load_benchmark(data_dir: Path, names: Sequence[str] | None = None) -> list[SkabFile]:
    """Load the labelled files (all, or those whose ``name`` is listed, e.g. "valve1/3")."""
    paths = labelled_paths(data_dir)
    if names is not None:
        by_name = {f"{p.parent.name}/{p.stem}": p for p in paths}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise SkabDataError(f"no such SKAB file(s) under {data_dir}: {missing}")
        paths = [by_name[n] for n in names]
    files = [load_file(p) for p in paths]
    for f in files:
        if f.anomaly is None:
            raise SkabDataError(f"{f.name}: label columns are missing")
        if len(f) <= TRAIN_ROWS:
            raise SkabDataError(f"{f.name}: {len(f)} rows, need more than {TRAIN_ROWS}")
    return files


def load_anomaly_free(data_dir: Path) -> SkabFile:
    path = Path(data_dir) / ANOMALY_FREE
    if not path.is_file():
        raise SkabDataError(f"anomaly-free file {path} does not exist")
    return load_file(path)


@dataclass(frozen=True, slots=True)
class FileResult:
    name: str
    t_ns: np.ndarray  # test rows only
    alarm: np.ndarray  # (n_test,) int8
    anomaly: np.ndarray
    changepoint: np.ndarray


def predict_file(f: SkabFile, detector_name: str) -> FileResult:
    """Fit a fresh detector on the first TRAIN_ROWS rows and predict the rest."""
    if f.anomaly is None or f.changepoint is None:
        raise SkabDataError(f"{f.name}: cannot evaluate an unlabelled file")
    model = build(detector_name)
    model.fit(f.values[:TRAIN_ROWS])
    alarm = model.predict(f.values[TRAIN_ROWS:])
    return FileResult(
        f.name, f.t_ns[TRAIN_ROWS:], alarm, f.anomaly[TRAIN_ROWS:], f.changepoint[TRAIN_ROWS:]
    )


def score_results(results: Sequence[FileResult]) -> dict[str, Any]:
    """Pool the files' test rows and compute the pointwise and NAB figures."""
    alarm = np.concatenate([r.alarm for r in results])
    label = np.concatenate([r.anomaly for r in results])
    pointwise = binary_metrics(alarm, label)
    nab = nab_scores([(r.t_ns, r.alarm, r.changepoint) for r in results], window_s=WINDOW_S, unit="ns")
    per_file = []
    for r in results:
        b = binary_metrics(r.alarm, r.anomaly)
        n = nab_scores([(r.t_ns, r.alarm, r.changepoint)], window_s=WINDOW_S, unit="ns")
        per_file.append({
            "file": r.name, "rows": int(len(r.alarm)), "f1": b["f1"], "far": b["far"],
            "mar": b["mar"], "nab_standard": n["standard"], "hits": n["hits"],
            "missed": n["missed"], "fp": n["fp"],
        })
    return {
        "f1": pointwise["f1"], "far": pointwise["far"], "mar": pointwise["mar"],
        "confusion": {k: pointwise[k] for k in ("tp", "fp", "fn", "tn")},
        "nab": {k: nab[k] for k in ("standard", "low_fp", "low_fn", "missed", "fp")},
        "changepoints": {k: nab[k] for k in ("windows", "hits", "missed", "fp", "mean_delay_s")},
        "files": per_file,
    }


def evaluate(data_dir: Path, detector_name: str, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Run ``detector_name`` under the SKAB protocol on all labelled files (or ``names``)."""
    build(detector_name)  # an unknown name fails before any file is read
    files = load_benchmark(Path(data_dir), names)
    if not files:
        raise SkabDataError("no SKAB file selected")
    report = score_results([predict_file(f, detector_name) for f in files])
    report["detector"] = detector_name
    report["protocol"] = {"train_rows": TRAIN_ROWS, "nab_window_s": WINDOW_S, "files": len(files)}
    report["leaderboard"] = copy.deepcopy(list(LEADERBOARD))
    return report


# The model tiers (skab_tiers.py) are ONNX graphs scored by onnxruntime. "default" is the
# int8 tier: every tier met the published bar in the full run, and int8 is the one deployed.
TIERS = ("teacher", "student", "int8")
DEFAULT_TIER = "int8"


def run(data_dir: Path, detector: str = "default") -> dict[str, Any]:
    """CLI entry (``tripwire eval skab``): the full benchmark; prints nothing.

    ``detector`` is a tier name (``teacher``, ``student``, ``int8``; ``default`` is
    DEFAULT_TIER) or one of detectors.py's numpy detectors (``rolling-z``, ...).
    """
    tier = DEFAULT_TIER if detector == "default" else detector
    if tier in TIERS:
        # Imported here: onnxruntime and the tier trainers load only when a tier is asked for.
        from models import skab_tiers  # noqa: PLC0415

        return skab_tiers.evaluate(Path(data_dir), tier)
    return evaluate(Path(data_dir), detector)
