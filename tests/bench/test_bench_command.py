"""``tripwire bench`` end to end at a small load: every process real, trips injected and
caught, the report's fields present, nothing left running; bad arguments exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.cell import placement
from tripwire import config
from tripwire.cli import main

FIELDS = ("offered_samples_per_s", "samples_per_s", "dropped_frames", "deadline_misses",
          "trip_latency_ms", "false_trips", "stages", "floors", "baselines", "load", "cpu",
          "cpu_threads", "placement", "monitor", "checks", "ok")


@pytest.fixture
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.getbasetemp() / "bench-cache"  # one bundle for the session
    monkeypatch.setenv("TRIPWIRE_CACHE", str(path))
    return path


@pytest.mark.timeout(180)
def test_short_run_trips_and_reports(tmp_path: Path, cache: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out, work = tmp_path / "out.json", tmp_path / "work"
    code = main(["bench", "--machines", "2", "--channels", "4", "--rate", "6400", "--seconds",
                 "3", "--trips", "2", "--skip-baselines", "--json", str(out), "--work-dir",
                 str(work)])
    assert code == 0, capsys.readouterr().err
    rep = json.loads(out.read_text())
    for name in FIELDS:
        assert name in rep, name
    assert rep["offered_samples_per_s"] == 2 * 4 * 6400.0
    assert rep["samples_per_s"] > 0.5 * rep["offered_samples_per_s"]
    assert rep["load"]["machines"] == 2 and rep["load"]["deadline_ms"] == 10.0
    assert rep["trips"]["injected"] == 2 and rep["trips"]["caught"] == 2
    assert rep["trip_latency_ms"]["count"] == 2 and rep["trip_latency_ms"]["p99"] > 0
    assert {"interlock_judged_late", "monitor_flagged_late"} <= set(rep["deadline_misses"])
    for stage in ("receive", "features", "inference", "total", "service", "interlock_verdict_age",
                  "interlock_stop_write"):
        assert rep["stages"][stage]["p99_us"] > 0, stage
    assert set(rep["floors"]) >= {"bus_hop", "model_call", "plc_write"}
    for proc in ("monitor", "interlock"):  # both run a loop thread and a ZeroMQ I/O thread
        names = [r["thread"] for r in rep["cpu_threads"][proc]]
        assert any(n.startswith("ZMQbg/IO") for n in names) and len(names) >= 2, (proc, names)
        assert all(r["cpu_us_per_frame"] >= 0 for r in rep["cpu_threads"][proc])
    assert rep["baselines"] == {"skipped": True}
    assert set(rep["cpu"]) >= {"monitor", "interlock", "feeder", "plc"}
    assert rep["checks"]["trips_caught"]["ok"] is True
    assert isinstance(rep["ok"], bool)
    cell = work / "cell"
    assert (cell / "logs" / "monitor.log").exists() and (cell / "tripwire.toml").exists()
    ran = config.load(cell / "tripwire.toml")  # the placement reported is the one that ran
    assert rep["placement"] == {"monitor": list(ran.monitor.cpus),
                                "monitor_io": list(ran.monitor.io_cpus),
                                "interlock": list(ran.interlock.cpus)}
    assert rep["placement"] == placement(os.sched_getaffinity(0))
    if rep["placement"]["monitor"]:  # pinned: every thread runs where the placement put it
        where = {"monitor": rep["placement"]["monitor"], "interlock": rep["placement"]["interlock"]}
        for proc in ("monitor", "interlock"):
            for r in rep["cpu_threads"][proc]:
                io = proc == "monitor" and r["thread"].startswith("ZMQbg/IO")
                want = rep["placement"]["monitor_io"] if io else where[proc]
                assert r["cpus"] == ",".join(map(str, want)), (proc, r)
    assert "tripwire bench" in capsys.readouterr().out  # the table


@pytest.mark.timeout(180)
def test_still_machines_skip_the_model_and_running_ones_still_trip(tmp_path: Path, cache: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    code = main(["bench", "--machines", "3", "--idle", "1", "--channels", "4", "--rate", "6400",
                 "--seconds", "3", "--trips", "2", "--skip-baselines", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    rep = json.loads(out.read_text())
    assert rep["load"]["idle"] == 1
    mon = rep["monitor"]
    # One machine in three stands still: about a third of the windows never reach the model.
    assert 0.2 < mon["idle_skipped"] / mon["verdicts"] < 0.45, mon
    assert mon["model_rows"] + mon["idle_skipped"] >= mon["verdicts"] - 3 * 2  # rows in flight
    assert rep["trips"]["injected"] == 2 and rep["trips"]["caught"] == 2
    assert rep["false_trips"] == 0


@pytest.mark.parametrize("args", [
    ["--machines", "2", "--idle", "2"],
    ["--machines", "0"],
    ["--channels", "-1"],
    ["--rate", "0"],
    ["--seconds", "-3"],
    ["--deadline-ms", "0"],
    ["--trips", "-1"],
    ["--trips", "40", "--seconds", "3"],
    ["--target", "opcua"],
    ["--machines", "many"],
])
def test_bad_arguments_exit_2(args: list[str], cache: Path) -> None:
    try:
        code = main(["bench", *args])
    except SystemExit as e:  # argparse's own refusals
        code = int(e.code or 0)
    assert code == 2
