"""The state rows at their reduced counts, and proof that each can fail."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from campaign import clock_jump, journal_crash
from campaign.case import Context
from campaign.latch_walk import Walk
from campaign.state import CASES, run_journal_kill, run_latch_property, run_wall_clock_jump
from interlock.journal import Journal
from interlock.latch import Latch, Refusal

REDUCED = {c.name: c.reduced for c in CASES}
# The cell's D in these tests: behaviour, not the 10 ms budget, as in tests/integration (on a
# shared 2-core machine the monitor has stalled for ~12 ms). `make faults` runs at 10 ms.
TEST_DEADLINE_MS = 50.0


def test_rows_are_registered() -> None:
    assert [(c.name, c.full, c.reduced) for c in CASES] == [
        ("latch_property", 10_000, 200), ("journal_kill", 200, 10), ("wall_clock_jump", 20, 2)]


def test_latch_property_reduced(tmp_path: Path) -> None:
    result = run_latch_property(Context(tmp_path), REDUCED["latch_property"])
    assert result.ok, result.failures
    counts = result.details["counts"]
    # Not vacuous: the walks met every kind of reset outcome, restarts while latched, trips.
    for key in ("resets_ok", "resets_cause_refused", "resets_unauthorised_refused",
                "resets_not_latched_refused", "restarts_latched", "restarts_crash",
                "restarts_clean", "liveness_trips", "acknowledge_ok", "acknowledge_refused"):
        assert counts.get(key, 0) > 0, key
    assert counts["trips"] > 100
    assert not list((tmp_path / "latch").glob("*.sqlite"))  # passing walks leave no files


def test_latch_property_catches_a_reset_that_skips_the_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def any_token(self: Latch, token: str) -> Refusal | None:
        return None

    monkeypatch.setattr(Latch, "check_token", any_token)
    result = run_latch_property(Context(tmp_path), 60)
    assert not result.ok
    assert any("unauthorised" in f or "without an authorised reset" in f
               for f in result.failures), result.failures


def test_latch_property_catches_a_restart_that_forgets_the_trip(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Journal, "last_state", lambda self: None)
    result = run_latch_property(Context(tmp_path), 60)
    assert not result.ok
    assert any("journal" in f or "restart" in f for f in result.failures), result.failures


def test_a_walk_replays_from_its_seed(tmp_path: Path) -> None:
    notes = []
    for i in range(2):
        stats: dict[str, int] = {}
        walk = Walk(tmp_path / f"w{i}.sqlite", random.Random(1234), stats)
        notes.append((walk.run(40), stats))
    assert notes[0] == notes[1]


def test_journal_kill_reduced(tmp_path: Path) -> None:
    result = run_journal_kill(Context(tmp_path), REDUCED["journal_kill"])
    assert result.ok, result.failures
    # entries were written and reported before the kills (else the check proves nothing)
    assert result.details["entries_reported"] > 10 * REDUCED["journal_kill"]
    assert result.details["entries_committed"] >= result.details["entries_reported"]


def test_journal_judge_fails_on_a_missing_or_altered_entry(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        entry_id = j.append("trip", 1, journal_crash.entry_data(1))
    seen = journal_crash.Killed(ready={"journal_mode": "wal", "synchronous": 2})
    seen.reported = [{"id": entry_id, "kind": "trip", "mono_ns": 1, "data": journal_crash.entry_data(1)}]
    assert journal_crash._judge(path, seen)[0]
    seen.reported.append({"id": entry_id + 1, "kind": "trip", "mono_ns": 2, "data": {}})
    ok, note, _ = journal_crash._judge(path, seen)
    assert not ok and "missing" in note
    seen.reported = [{"id": entry_id, "kind": "trip", "mono_ns": 1, "data": {"i": 0}}]
    ok, note, _ = journal_crash._judge(path, seen)
    assert not ok and "differs" in note
    seen.ready = {"journal_mode": "delete", "synchronous": 1}
    assert not journal_crash._judge(path, seen)[0]


def test_wall_clock_jump_reduced(tmp_path: Path) -> None:
    result = run_wall_clock_jump(Context(tmp_path, deadline_ms=TEST_DEADLINE_MS),
                                 REDUCED["wall_clock_jump"])
    assert result.ok, result.failures
    assert result.max_reaction_ms is not None and result.max_reaction_ms <= TEST_DEADLINE_MS


@pytest.mark.skipif(clock_jump.libfaketime() is None,
                    reason="libfaketime is not installed (Debian package faketime)")
def test_wall_clock_jump_with_libfaketime(tmp_path: Path) -> None:
    t = clock_jump.trial(tmp_path / "ft", clock_jump.bundle(), -3600.0, TEST_DEADLINE_MS, "opcua",
                         "faketime")
    assert t.ok, t.note
    assert t.reaction_ms is not None


def test_jump_evidence_check_fails_when_a_process_did_not_jump(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    now = datetime.now(timezone.utc)
    for name in ("sim", "monitor", "interlock", "scada"):
        stamp = now + timedelta(hours=0 if name == "monitor" else 1)
        line = json.dumps({"event": "stopped", "timestamp": stamp.isoformat().replace("+00:00", "Z")})
        (tmp_path / "logs" / f"{name}.log").write_text("not json\n" + line + "\n")
    wall_minus_mono = time.time_ns() - time.monotonic_ns()
    with Journal(tmp_path / "journal.sqlite") as j:  # both entries unshifted: the trip should be
        j.append("start", time.monotonic_ns(), {})
        j.append("trip", time.monotonic_ns(), {})
    t_now = time.time()
    problems = clock_jump._shift_problems(tmp_path, 3600.0, wall_minus_mono, t_now - 5, t_now)
    assert len(problems) == 2, problems
    assert problems[0].startswith("monitor:") and problems[1].startswith("journal trip:")
