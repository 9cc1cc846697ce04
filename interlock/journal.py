"""The trip journal: an append-only SQLite table of what the interlock did.

``PRAGMA journal_mode=WAL`` and ``synchronous=FULL``: ``append()`` returns only once the
entry is committed and fsynced, so an entry reported written survives a crash. One table:
``events(id, wall_ns, mono_ns, kind, data)`` with ``data`` a JSON object.

``last_state()`` is what a restart needs: "TRIPPED" when the last latch-changing entry is a
trip (a shutdown does not clear it), else "ARMED"/"SAFE".

Shell: it owns a file. It must not decide anything; it records what it is told, and it is
used by one thread (the interlock loop).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from interlock.errors import JournalError

KINDS = frozenset({
    "armed", "trip", "stop_acked", "stop_failed", "reset", "reset_refused", "alarm",
    "deadline_miss", "start", "shutdown", "acknowledge",
})
_STATE_OF = {"trip": "TRIPPED", "reset": "SAFE", "armed": "ARMED"}
SYNCHRONOUS_FULL = 2  # what ``PRAGMA synchronous`` reads back for FULL

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    wall_ns INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    data    TEXT    NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    wall_ns: int
    mono_ns: int
    kind: str
    data: dict[str, Any]


class Journal:
    """Context manager around one SQLite connection; ``open()`` must be called (or use
    ``with``) before ``append``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def open(self) -> "Journal":
        if self._conn is not None:
            return self
        conn: sqlite3.Connection | None = None
        try:
            if self.path.parent != Path(""):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=FULL")
            sync = conn.execute("PRAGMA synchronous").fetchone()[0]
            conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            if conn is not None:
                conn.close()  # a file that is not a database: never leak the connection
            raise JournalError(f"cannot open journal {self.path}: {e}") from None
        if str(mode).lower() != "wal" or sync != SYNCHRONOUS_FULL:
            conn.close()
            raise JournalError(f"journal {self.path}: WAL + synchronous FULL refused "
                               f"(got {mode!r}, synchronous {sync!r})")
        self._conn = conn
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Journal":
        return self.open()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError("journal is not open")
        return self._conn

    # -- writing --
    def append(self, kind: str, mono_ns: int, data: dict[str, Any] | None = None) -> int:
        """Commit one entry (fsynced) and return its id."""
        if kind not in KINDS:
            raise ValueError(f"unknown journal kind {kind!r}")
        text = json.dumps(data or {}, separators=(",", ":"), default=str)
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute(
                "INSERT INTO events (wall_ns, mono_ns, kind, data) VALUES (?, ?, ?, ?)",
                (time.time_ns(), int(mono_ns), kind, text),
            )
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise JournalError(f"journal append failed: {e}") from None
        return int(cur.lastrowid or 0)

    # -- reading --
    def entries(self, kind: str | None = None, limit: int = 1000) -> list[Entry]:
        """The most recent entries (oldest first), optionally of one kind."""
        sql = "SELECT id, wall_ns, mono_ns, kind, data FROM events"
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (kind,)
        sql += " ORDER BY id DESC LIMIT ?"
        try:
            rows = self._db().execute(sql, (*args, limit)).fetchall()
        except sqlite3.Error as e:
            raise JournalError(f"journal read failed: {e}") from None
        return [Entry(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in reversed(rows)]

    def last_state(self) -> str | None:
        """The latch state the journal last recorded, or None for an empty journal."""
        try:
            row = self._db().execute(
                "SELECT kind FROM events WHERE kind IN ('trip', 'reset', 'armed') "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error as e:
            raise JournalError(f"journal read failed: {e}") from None
        return None if row is None else _STATE_OF[row[0]]

    def journal_mode(self) -> str:
        return str(self._db().execute("PRAGMA journal_mode").fetchone()[0])

    def synchronous(self) -> int:
        return int(self._db().execute("PRAGMA synchronous").fetchone()[0])
