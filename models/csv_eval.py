"""``tripwire eval csv``: fit a detector on the start of each CSV file and predict every row.

Per file: a header line names the columns; one column holds the time (``time_col``, default
the first), an optional one the 0/1 label (``label_col``), and an optional one named
``changepoint`` the 0/1 true changepoints; every other column is a sensor channel and must be
numeric. A fresh detector (``models.detectors``) is fitted on the first ``train_rows`` rows
(or ``train_fraction`` of them; default 400 rows, as in SKAB's protocol) and scores every row
causally; ``DIR/<file stem>.csv`` gets the time, ``score`` and ``alarm`` (0/1) for every row,
training rows included. Metrics, when a label column is given, cover the rows after the
training rows only: pointwise F1/FAR/MAR (``metrics.binary_metrics``), pooled over files and
per file, and SKAB's NAB scores when a changepoint column exists.

Detectors: ``default`` / ``rolling-z`` is the SKAB-tuned rule when the sensor columns are
exactly SKAB's, otherwise the same rule over every sensor column with no drift allowance;
``pca-t2q``, ``pca-t2q-hysteresis`` and ``iforest`` take any columns. Bad input raises
``CsvDataError`` naming the file, the line and the column. Nothing here logs or prints.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.detectors import (
    DEFAULT,
    SKAB_WINDOW_ROWS,
    AlarmModel,
    Hysteresis,
    RollingZ,
    build,
)
from models.errors import ModelError
from models.metrics import binary_metrics, nab_scores
from models.skab import SENSOR_COLUMNS, WINDOW_S

DEFAULT_TRAIN_ROWS = 400
CHANGEPOINT_COL = "changepoint"


class CsvDataError(ModelError):
    """A CSV file that cannot be evaluated; the message names the file, line and column."""


@dataclass(frozen=True, slots=True)
class CsvTable:
    path: Path
    time_col: str
    times: list[str]  # as written, for the predictions file
    t: np.ndarray  # float seconds or datetime64[ns]
    channels: tuple[str, ...]
    values: np.ndarray  # (n, channels) float64
    label: np.ndarray | None  # (n,) int8
    changepoint: np.ndarray | None


def _number(path: Path, line: int, col: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise CsvDataError(f"{path}:{line}: column {col!r}: not a number: {text!r}") from None
    if not math.isfinite(v):
        raise CsvDataError(f"{path}:{line}: column {col!r}: non-finite value {text!r}")
    return v


def _binary(path: Path, lines: list[int], col: str, values: np.ndarray) -> np.ndarray:
    bad = np.flatnonzero(~np.isin(values, (0.0, 1.0)))
    if bad.size:
        raise CsvDataError(f"{path}:{lines[int(bad[0])]}: column {col!r}: expected 0 or 1, "
                           f"got {values[bad[0]]!r}")
    return values.astype(np.int8)


def _times(path: Path, col: str, texts: list[str]) -> np.ndarray:
    try:
        return np.array([float(s) for s in texts], dtype=np.float64)
    except ValueError:
        pass
    out = np.empty(len(texts), dtype="datetime64[ns]")
    for i, s in enumerate(texts):
        try:
            out[i] = np.datetime64(s.strip().replace(" ", "T"), "ns")
        except ValueError:
            raise CsvDataError(f"{path}:{i + 2}: column {col!r}: neither a number nor a "
                               f"date-time: {s!r}") from None
    return out


def load_table(path: Path, *, sep: str = ",", time_col: str = "",
               label_col: str = "") -> CsvTable:
    """Parse one file; CsvDataError names the first bad line and column."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            lines = [row for row in csv.reader(fh, delimiter=sep)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CsvDataError(f"{path}: cannot read: {e}") from None
    numbered = [(i + 1, row) for i, row in enumerate(lines) if any(c.strip() for c in row)]
    if not numbered:
        raise CsvDataError(f"{path}: empty file")
    header = [h.strip() for h in numbered[0][1]]
    if len(set(header)) != len(header):
        raise CsvDataError(f"{path}:{numbered[0][0]}: duplicate column names in {header}")
    time_name = time_col or header[0]
    for role, name in (("time", time_name), ("label", label_col)):
        if name and name not in header:
            raise CsvDataError(f"{path}:{numbered[0][0]}: no {role} column {name!r} in {header}")
    special = {time_name, label_col, CHANGEPOINT_COL}
    channels = tuple(h for h in header if h not in special)
    if not channels:
        raise CsvDataError(f"{path}: no sensor columns besides {sorted(special - {''})}")
    rows = numbered[1:]
    if not rows:
        raise CsvDataError(f"{path}: no data rows")
    data = np.empty((len(rows), len(header)), dtype=np.float64)
    t_idx = header.index(time_name)
    for r, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise CsvDataError(f"{path}:{line}: expected {len(header)} fields ({sep!r}-separated), "
                               f"found {len(row)}")
        for c, name in enumerate(header):
            data[r, c] = math.nan if c == t_idx else _number(path, line, name, row[c].strip())
    times = [row[t_idx].strip() for _, row in rows]
    t = _times(path, time_name, times)
    steps = np.diff(t).astype(np.float64) if t.dtype.kind == "f" else np.diff(t).astype(np.int64)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0)) + 1
        raise CsvDataError(f"{path}:{rows[bad][0]}: column {time_name!r}: time does not increase")
    line_nos = [line for line, _ in rows]
    label = changepoint = None
    if label_col:
        label = _binary(path, line_nos, label_col, data[:, header.index(label_col)])
    if CHANGEPOINT_COL in header:
        changepoint = _binary(path, line_nos, CHANGEPOINT_COL, data[:, header.index(CHANGEPOINT_COL)])
    values = data[:, [header.index(c) for c in channels]]
    return CsvTable(path, time_name, times, t, channels, values, label, changepoint)


def _model(name: str, channels: Sequence[str]) -> AlarmModel:
    key = DEFAULT if name == "default" else name
    if key == "rolling-z" and tuple(channels) != SENSOR_COLUMNS:
        return AlarmModel(RollingZ(tuple(range(len(channels))), SKAB_WINDOW_ROWS), Hysteresis())
    return build(name)


def _train_rows(path: Path, n: int, train_rows: int | None, train_fraction: float | None,
                need: int) -> int:
    k = round(n * train_fraction) if train_fraction is not None else (train_rows or DEFAULT_TRAIN_ROWS)
    if not need <= k < n:
        raise CsvDataError(f"{path}: {n} rows; the training part ({k} rows) must be at least "
                           f"{need} rows and leave at least one row to predict")
    return k


def _write_predictions(out: Path, table: CsvTable, score: np.ndarray, alarm: np.ndarray) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([table.time_col, "score", "alarm"])
        for t, s, a in zip(table.times, score, alarm):
            w.writerow([t, f"{float(s):.6g}", int(a)])
    tmp.replace(out)


def evaluate_file(table: CsvTable, detector: str, train_rows: int | None,
                  train_fraction: float | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Fit on the first rows; (score, alarm) for every row and the training row count."""
    model = _model(detector, table.channels)
    n_train = _train_rows(table.path, len(table.values), train_rows, train_fraction,
                          max(2, model.detector.lookback_rows))
    train, test = table.values[:n_train], table.values[n_train:]
    model.fit(train)
    # The decision restarts at the first predicted row, as in the SKAB protocol, so a file's
    # test alarms do not depend on how its training rows ended.
    fit_score, test_score = model.detector.score(train), model.scores(test)
    alarm = np.concatenate([model.decision.decide(fit_score), model.decision.decide(test_score)])
    return np.concatenate([fit_score, test_score]), alarm.astype(np.int8), n_train


def run(
    files: Sequence[str | Path], *, sep: str = ",", time_col: str = "", label_col: str = "",
    train_rows: int | None = None, train_fraction: float | None = None,
    predictions_dir: str | Path, detector: str = "default",
) -> dict[str, Any]:
    """CLI entry (``tripwire eval csv``): predictions per file, and metrics with labels."""
    if train_rows is not None and train_fraction is not None:
        raise ValueError("give train_rows or train_fraction, not both")
    if train_fraction is not None and not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    if train_rows is not None and train_rows < 2:
        raise ValueError(f"train_rows must be >= 2, got {train_rows}")
    if not files:
        raise ValueError("no CSV files given")
    build(detector)  # an unknown name fails before any file is read
    stems = [Path(f).stem for f in files]
    if len(set(stems)) != len(stems):
        raise ValueError(f"two files share a name stem; predictions would collide: {stems}")
    out_dir = Path(predictions_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = [load_table(Path(f), sep=sep, time_col=time_col, label_col=label_col) for f in files]
    per_file: list[dict[str, Any]] = []
    pooled: list[tuple[np.ndarray, np.ndarray]] = []
    nab_in: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for table in tables:
        score, alarm, n_train = evaluate_file(table, detector, train_rows, train_fraction)
        dest = out_dir / f"{table.path.stem}.csv"
        _write_predictions(dest, table, score, alarm)
        entry: dict[str, Any] = {"file": str(table.path), "rows": len(alarm), "train_rows": n_train,
                                 "channels": list(table.channels), "alarms": int(alarm.sum()),
                                 "predictions": str(dest)}
        if table.label is not None:
            a, y = alarm[n_train:], table.label[n_train:]
            pooled.append((a, y))
            entry.update(binary_metrics(a, y))
        if table.changepoint is not None:  # numeric times are seconds; dates are dates
            nab_in.append((table.t[n_train:], alarm[n_train:], table.changepoint[n_train:]))
            entry["nab"] = nab_scores([nab_in[-1]], window_s=WINDOW_S, unit="s")
        per_file.append(entry)
    report: dict[str, Any] = {"detector": detector, "files": per_file,
                              "protocol": {"train_rows": train_rows, "train_fraction": train_fraction,
                                           "default_train_rows": DEFAULT_TRAIN_ROWS,
                                           "metrics_on": "rows after the training rows"}}
    if pooled:
        report["metrics"] = binary_metrics(np.concatenate([a for a, _ in pooled]),
                                           np.concatenate([y for _, y in pooled]))
    if nab_in:
        report["nab"] = nab_scores(nab_in, window_s=WINDOW_S, unit="s")
    return report
