"""Journal: WAL + FULL sync, entries survive reopen, last_state for restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from interlock.errors import JournalError
from interlock.journal import Journal


def test_wal_and_full_sync(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        assert j.journal_mode() == "wal"
        assert j.synchronous() == 2  # FULL


def test_entries_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "j.sqlite"
    with Journal(path) as j:
        first = j.append("start", 1, {"targets": ["modbus"]})
        j.append("trip", 2, {"reason": "verdict", "acked": True, "channels": ["vib_x"]})
    with Journal(path) as j:
        entries = j.entries()
    assert [e.kind for e in entries] == ["start", "trip"]
    assert entries[0].id == first
    assert entries[1].data == {"reason": "verdict", "acked": True, "channels": ["vib_x"]}
    assert entries[1].mono_ns == 2 and entries[1].wall_ns > 0


def test_committed_entry_is_visible_to_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        j.append("alarm", 5, {"alarm": "stop_undelivered"})
        other = sqlite3.connect(path)
        try:
            rows = other.execute("SELECT kind FROM events").fetchall()
        finally:
            other.close()
    assert rows == [("alarm",)]


def test_unknown_kind_is_a_programmer_error(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j, pytest.raises(ValueError):
        j.append("party", 1, {})


def test_append_on_closed_journal_raises(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    with pytest.raises(JournalError):
        j.append("start", 1, {})


def test_unopenable_journal_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(JournalError):
        Journal(blocker / "j.sqlite").open()


@pytest.mark.parametrize(("kinds", "expected"), [
    ([], None),
    (["start"], None),
    (["start", "armed"], "ARMED"),
    (["start", "armed", "trip", "stop_acked"], "TRIPPED"),
    (["start", "armed", "trip", "shutdown"], "TRIPPED"),  # a shutdown never clears a trip
    (["start", "armed", "trip", "reset", "armed", "shutdown"], "ARMED"),
    (["start", "trip", "reset"], "SAFE"),
])
def test_last_state(tmp_path: Path, kinds: list[str], expected: str | None) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        for i, kind in enumerate(kinds):
            j.append(kind, i, {})
        assert j.last_state() == expected


def test_entries_filter_and_limit(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        for i in range(5):
            j.append("deadline_miss", i, {"i": i})
        j.append("trip", 9, {})
        assert [e.data["i"] for e in j.entries("deadline_miss", limit=2)] == [3, 4]
        assert len(j.entries()) == 6


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not an SQLite database, just some bytes " * 100)
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal(path).open()
