"""``eval csv``: predictions for every row, metrics with labels, clear errors for bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from models import csv_eval, skab
from models.csv_eval import CsvDataError

SKAB_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "skab"


def _write(path: Path, rows: int = 1200, shift_at: int = 800, sep: str = ",",
           dates: bool = False, label: bool = True) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, (rows, 3))
    x[shift_at:, 1] += 6.0  # a clear fault on channel b
    header = ["time", "a", "b", "c"] + (["anomaly", "changepoint"] if label else [])
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter=sep)
        w.writerow(header)
        for i in range(rows):
            t = f"2024-01-01 00:{i // 60:02d}:{i % 60:02d}" if dates else f"{i * 0.5:g}"
            row = [t, *(f"{v:.5f}" for v in x[i])]
            if label:
                row += [int(i >= shift_at), int(i == shift_at)]
            w.writerow(row)
    return path


def test_predictions_and_metrics(tmp_path: Path) -> None:
    f = _write(tmp_path / "run1.csv")
    r = csv_eval.run([f], label_col="anomaly", train_rows=400, predictions_dir=tmp_path / "out")
    with (tmp_path / "out" / "run1.csv").open() as fh:
        out = list(csv.reader(fh))
    assert out[0] == ["time", "score", "alarm"] and len(out) == 1201
    assert out[1][0] == "0" and out[-1][0] == "599.5"
    assert {row[2] for row in out[1:]} <= {"0", "1"}
    (entry,) = r["files"]
    assert entry["rows"] == 1200 and entry["train_rows"] == 400 and entry["channels"] == ["a", "b", "c"]
    assert r["metrics"]["f1"] > 0.9 and r["metrics"]["tp"] + r["metrics"]["fn"] == 400
    assert r["nab"]["windows"] == 1 and r["nab"]["hits"] == 1


def test_semicolons_dates_fraction_and_no_labels(tmp_path: Path) -> None:
    f = _write(tmp_path / "x.csv", sep=";", dates=True, label=False)
    r = csv_eval.run([f], sep=";", time_col="time", train_fraction=0.5,
                     predictions_dir=tmp_path / "p", detector="pca-t2q")
    assert r["files"][0]["train_rows"] == 600 and "metrics" not in r and "nab" not in r
    assert (tmp_path / "p" / "x.csv").read_text().splitlines()[1].startswith("2024-01-01 00:00:00,")


def test_every_detector_runs_on_any_column_count(tmp_path: Path) -> None:
    f = _write(tmp_path / "d.csv")
    for name in ("default", "rolling-z", "pca-t2q", "pca-t2q-hysteresis", "iforest"):
        r = csv_eval.run([f], label_col="anomaly", predictions_dir=tmp_path / name, detector=name)
        assert r["detector"] == name and r["metrics"]["tp"] > 0


def _edit(path: Path, line: int, text: str) -> Path:
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line, text, match", [
    (5, "2,0.1,oops,0.3,0,0", r"bad\.csv:5: column 'b': not a number"),
    (7, "3,0.1,0.2", r"bad\.csv:7: expected 6 fields"),
    (9, "3.5,0.1,0.2,0.3,2,0", r"bad\.csv:9: column 'anomaly': expected 0 or 1"),
    (4, "0.5,0.1,0.2,0.3,0,0", r"bad\.csv:4: column 'time': time does not increase"),
    (6, "2.5,0.1,nan,0.3,0,0", r"bad\.csv:6: column 'b': non-finite"),
])
def test_bad_files_name_file_line_and_column(tmp_path: Path, line: int, text: str, match: str) -> None:
    f = _edit(_write(tmp_path / "bad.csv"), line, text)
    with pytest.raises(CsvDataError, match=match):
        csv_eval.run([f], label_col="anomaly", predictions_dir=tmp_path / "o")


def test_bad_arguments(tmp_path: Path) -> None:
    f = _write(tmp_path / "a.csv", rows=300)
    out = tmp_path / "o"
    with pytest.raises(CsvDataError, match="no label column 'y'"):
        csv_eval.run([f], label_col="y", predictions_dir=out)
    with pytest.raises(CsvDataError, match="300 rows"):
        csv_eval.run([f], predictions_dir=out)  # the default 400 training rows do not fit
    with pytest.raises(ValueError, match="not both"):
        csv_eval.run([f], train_rows=10, train_fraction=0.5, predictions_dir=out)
    with pytest.raises(ValueError, match="unknown detector"):
        csv_eval.run([f], train_rows=100, predictions_dir=out, detector="magic")
    with pytest.raises(CsvDataError, match="cannot read"):
        csv_eval.run([tmp_path / "missing.csv"], predictions_dir=out)


@pytest.mark.skipif(not SKAB_DIR.is_dir(), reason="SKAB data not present")
def test_skab_files_give_the_benchmark_figures(tmp_path: Path) -> None:
    names = ["valve1/1", "other/2"]
    files = [SKAB_DIR / f"{n}.csv" for n in names]
    r = csv_eval.run(files, sep=";", time_col="datetime", label_col="anomaly", train_rows=400,
                     predictions_dir=tmp_path)
    ref = skab.evaluate(SKAB_DIR, "default", names)
    assert (r["metrics"]["f1"], r["metrics"]["far"], r["metrics"]["mar"]) == (
        ref["f1"], ref["far"], ref["mar"])
    assert r["nab"]["standard"] == ref["nab"]["standard"]
