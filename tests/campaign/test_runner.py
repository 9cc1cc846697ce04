"""The campaign's row arithmetic and runner: judging trials, a raising case, the JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from campaign import runner
from campaign.case import CaseResult, CaseSpec, Context, Trial, judge


def test_judge_counts_passes_and_applies_the_reaction_limit() -> None:
    trials = [Trial(True, 4.0), Trial(True, 12.5), Trial(False, None, "no ack"), Trial(True, None)]
    row = judge("x", "max <= 10 ms", trials, limit_ms=10.0)
    assert (row.trials, row.passed, row.max_reaction_ms) == (4, 1, 12.5)
    assert not row.ok
    assert row.failures == ("trial 1: reacted in 12.50 ms > 10 ms", "trial 2: no ack",
                            "trial 3: reaction not timed")


def test_an_empty_row_is_not_a_pass() -> None:
    assert not judge("x", "rule", []).ok
    assert judge("x", "rule", [Trial(True)]).ok


def _passing(ctx: Context, trials: int) -> CaseResult:
    for _ in range(trials):
        ctx.progress(1)
    assert ctx.work_dir.is_dir()
    return judge("passing", "all", [Trial(True, 1.0)] * trials)


def _raising(ctx: Context, trials: int) -> CaseResult:
    raise RuntimeError("server would not start")


def test_runner_runs_every_case_and_a_raising_case_is_a_failed_row(tmp_path: Path) -> None:
    specs = [CaseSpec("passing", 5, 2, _passing), CaseSpec("raising", 5, 2, _raising)]
    opts = runner.Options(reduced=True, work_dir=tmp_path, progress=False)
    results, elapsed = runner.run(specs, opts, Console(file=io.StringIO()))
    assert [r.name for r in results] == ["passing", "raising"]
    assert results[0].ok and results[0].trials == 2
    assert not results[1].ok and "server would not start" in results[1].failures[0]
    data = runner.report(results, elapsed, opts)
    assert data["ok"] is False and data["reduced"] is True
    runner.write_json(tmp_path / "out.json", data)
    assert json.loads((tmp_path / "out.json").read_text())["cases"][0]["passed"] == 2


def _fresh(ctx: Context, trials: int) -> CaseResult:
    # nothing from an earlier run in the case's folder: a journal there would restore its latch
    return judge("fresh", "empty folder", [Trial(not any(ctx.work_dir.iterdir()))] * trials)


def test_a_kept_work_dir_starts_each_case_empty_and_keeps_the_caches(tmp_path: Path) -> None:
    stale = tmp_path / "fresh" / "trial0" / "journal.sqlite"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"latched")
    cache = tmp_path / "bundle-cache" / "model.onnx"
    cache.parent.mkdir()
    cache.write_bytes(b"onnx")
    opts = runner.Options(reduced=True, work_dir=tmp_path, progress=False)
    results, _ = runner.run([CaseSpec("fresh", 2, 2, _fresh)], opts, Console(file=io.StringIO()))
    assert results[0].ok and results[0].passed == 2
    assert not stale.exists() and cache.read_bytes() == b"onnx"
