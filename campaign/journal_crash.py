"""The journal under SIGKILL: a writer child killed at a random moment, then the file judged.

The child (``python -m campaign.journal_crash PATH``) opens ``interlock.journal.Journal`` at
PATH, reports its pragmas, then appends entries as fast as it can and, after each
``append`` returned, reports the entry (id, kind, mono_ns, data) on stdout in one write
of less than PIPE_BUF bytes (atomic on a pipe). The parent reads the pipe, sends SIGKILL
at a random moment, reads what is left, and checks: ``PRAGMA integrity_check`` is ok, the
file is still in WAL mode, every reported entry is present with its exact content, and the
real ``Journal`` reopens it.

What this proves and what it does not: SIGKILL loses what the process had not yet handed
to the kernel, so the check is that ``append`` reports an entry only after its COMMIT
reached the file. A power cut also loses what the kernel had not yet written to the disk;
``synchronous=FULL`` (checked here as the child's pragma) is what covers that, and no test
on this machine can cut its power.

Campaign shell: one child process per trial, files in the trial's folder only.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaign.case import Trial

KINDS = ("trip", "stop_acked", "alarm", "reset", "armed", "deadline_miss", "acknowledge")
MAX_PAD = 1500  # keeps a report line well under PIPE_BUF (4096 bytes)
READY_TIMEOUT_S = 20.0


def entry_data(i: int) -> dict[str, Any]:
    """Entry ``i``'s content: sizes vary so that commits span one page or several."""
    pad_len = (i * 7919) % MAX_PAD
    digest = hashlib.sha256(str(i).encode()).hexdigest()
    return {"i": i, "pad": (digest * (pad_len // 64 + 1))[:pad_len], "nested": {"n": i % 7}}


def writer_main(path: str) -> int:
    """The child: write and report until killed."""
    from interlock.journal import Journal

    out = sys.stdout.fileno()
    with Journal(path) as j:
        ready = {"ready": True, "journal_mode": j.journal_mode(), "synchronous": j.synchronous()}
        os.write(out, (json.dumps(ready) + "\n").encode())
        i = 0
        while True:
            i += 1
            kind, data = KINDS[i % len(KINDS)], entry_data(i)
            entry_id = j.append(kind, i, data)
            line = json.dumps({"id": entry_id, "kind": kind, "mono_ns": i, "data": data})
            os.write(out, (line + "\n").encode())


@dataclass
class Killed:
    """What one trial saw: the ready line, the reported entries, the moment of the kill."""

    ready: dict[str, Any] | None = None
    reported: list[dict[str, Any]] = field(default_factory=list)
    kill_after_ms: float = 0.0
    before_ready: bool = False


def _run_child(path: Path, log: Path, rng: random.Random) -> Killed:
    seen = Killed()
    seen.before_ready = rng.random() < 0.1  # now and then, kill while it opens the file
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "campaign.journal_crash", str(path)],
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    pipe = proc.stdout
    if pipe is None:  # pragma: no cover - Popen with PIPE always sets it
        raise RuntimeError("no pipe to the child")
    buf = b""
    sel = selectors.DefaultSelector()
    sel.register(pipe, selectors.EVENT_READ)
    try:
        t0 = time.monotonic()
        seen.kill_after_ms = rng.uniform(0.0, 150.0) if seen.before_ready else rng.uniform(0.0, 300.0)
        kill_at = t0 + seen.kill_after_ms / 1e3 if seen.before_ready else None
        while True:
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                break
            if kill_at is None and now - t0 > READY_TIMEOUT_S:
                break  # never got ready: judged below
            wait = 0.05 if kill_at is None else max(0.0, kill_at - now)
            if sel.select(wait):
                chunk = os.read(pipe.fileno(), 1 << 16)
                if not chunk:
                    break  # the child died by itself
                buf += chunk
                if kill_at is None and b"\n" in buf:
                    kill_at = time.monotonic() + seen.kill_after_ms / 1e3
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        while True:
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            buf += chunk
    finally:
        sel.close()
        pipe.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    lines = buf.split(b"\n")[:-1]  # an unterminated last line was never fully reported
    for raw in lines:
        obj = json.loads(raw)
        if obj.get("ready"):
            seen.ready = obj
        else:
            seen.reported.append(obj)
    return seen


def _judge(path: Path, seen: Killed) -> tuple[bool, str, int]:
    """(ok, note, entries committed) for the file the killed child left."""
    if seen.ready is None:
        if seen.reported or not seen.before_ready:
            return False, "the child never reported ready", 0
    elif seen.ready.get("journal_mode") != "wal" or seen.ready.get("synchronous") != 2:
        return False, f"journal pragmas {seen.ready}, want wal + synchronous FULL (2)", 0
    if not path.exists():
        return (not seen.reported), "no journal file", 0
    conn = sqlite3.connect(path)
    try:
        check = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if check != ["ok"]:
            return False, f"integrity_check: {check[:3]}", 0
        has_table = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'events'").fetchone()[0]
        rows = {} if not has_table else {
            r[0]: r[1:] for r in conn.execute("SELECT id, kind, mono_ns, data FROM events")}
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()
    if seen.ready is not None and mode != "wal":
        return False, f"journal_mode after the crash is {mode}", len(rows)
    for rep in seen.reported:
        row = rows.get(rep["id"])
        if row is None:
            return False, f"reported entry {rep['id']} missing ({len(rows)} committed)", len(rows)
        if row[0] != rep["kind"] or row[1] != rep["mono_ns"] or json.loads(row[2]) != rep["data"]:
            return False, f"entry {rep['id']} differs from what was reported", len(rows)
    from interlock.errors import JournalError
    from interlock.journal import Journal

    try:
        with Journal(path) as j:
            j.last_state()
            j.entries(limit=5)
    except JournalError as e:
        return False, f"the journal does not reopen: {e}", len(rows)
    return True, f"{len(seen.reported)} reported, {len(rows)} committed", len(rows)


def trial(work_dir: Path, rng: random.Random) -> tuple[Trial, dict[str, Any]]:
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "journal.sqlite"
    seen = _run_child(path, work_dir / "writer.log", rng)
    ok, note, committed = _judge(path, seen)
    facts = {"reported": len(seen.reported), "committed": committed,
             "kill_after_ms": round(seen.kill_after_ms, 1), "before_ready": seen.before_ready}
    return Trial(ok, None, note), facts


if __name__ == "__main__":
    try:
        sys.exit(writer_main(sys.argv[1]))
    except KeyboardInterrupt:
        sys.exit(130)
