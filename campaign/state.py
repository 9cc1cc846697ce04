"""The campaign's state rows: the latch property, the journal under SIGKILL, wall-clock jumps.

- ``latch_property``: random walks over the real controller, latch and SQLite journal
  (``campaign.latch_walk``): no automatic clear, every unauthorised reset refused, the
  journal agrees with the latch.
- ``journal_kill``: a writer child SIGKILLed at a random moment (``campaign.journal_crash``):
  integrity ok, every entry reported written is there with its content.
- ``wall_clock_jump``: a cell whose wall clock jumps +-1 h while armed
  (``campaign.clock_jump``): no spurious trip, a later fault trips within D.

Each ``run(ctx, trials)`` builds its row with ``campaign.case.judge``. Campaign shell.
"""

from __future__ import annotations

import random
import shutil

from campaign import clock_jump, journal_crash
from campaign.case import CaseResult, CaseSpec, Context, Trial, judge
from campaign.latch_walk import Walk, remove_journal

MIN_STEPS, MAX_STEPS = 10, 60


def run_latch_property(ctx: Context, trials: int) -> CaseResult:
    import structlog

    rng = random.Random(ctx.seed)
    folder = ctx.work_dir / "latch"
    folder.mkdir(parents=True, exist_ok=True)
    stats: dict[str, int] = {}
    results: list[Trial] = []
    for i in range(trials):
        walk_seed = rng.getrandbits(32)
        path = folder / f"walk{i}.sqlite"
        remove_journal(path)
        walk = Walk(path, random.Random(walk_seed), stats)
        # The controller logs every trip, alarm and refusal it is walked through; thousands
        # of them would bury the campaign's output. Captured per walk and dropped.
        with structlog.testing.capture_logs():
            note = walk.run(random.Random(walk_seed).randint(MIN_STEPS, MAX_STEPS))
        if note is None:
            remove_journal(path)  # kept only when a walk failed, for a look
            results.append(Trial(True))
        else:
            results.append(Trial(False, None, f"walk seed {walk_seed}: {note}"))
        ctx.progress(1)
    rule = ("no automatic clear; every unauthorised reset refused; journal agrees with the latch; "
            "armed trips on every cause")
    return judge("latch_property", rule, results, details={"counts": dict(sorted(stats.items()))})


def run_journal_kill(ctx: Context, trials: int) -> CaseResult:
    rng = random.Random(ctx.seed)
    results: list[Trial] = []
    reported = committed = before_ready = 0
    for i in range(trials):
        folder = ctx.work_dir / f"kill{i}"
        t, facts = journal_crash.trial(folder, rng)
        results.append(t)
        reported += facts["reported"]
        committed += facts["committed"]
        before_ready += bool(facts["before_ready"])
        if t.ok:
            shutil.rmtree(folder, ignore_errors=True)
        ctx.progress(1)
    details = {"entries_reported": reported, "entries_committed": committed,
               "killed_while_opening": before_ready,
               "note": "SIGKILL only: power loss cannot be simulated here; the child checks "
                       "journal_mode=wal and synchronous=FULL"}
    return judge("journal_kill", "integrity ok; every reported entry present with its content",
                 results, details=details)


def run_wall_clock_jump(ctx: Context, trials: int) -> CaseResult:
    model = clock_jump.bundle()
    # Every group of four covers both targets and both directions; with libfaketime
    # installed, every other group jumps the C library's clock too (CI may lack it).
    backends = ["hook"] + (["faketime"] if clock_jump.libfaketime() else [])
    results: list[Trial] = []
    used: dict[str, int] = {}
    for i in range(trials):
        jump_s = 3600.0 if i % 2 == 0 else -3600.0
        target = "opcua" if i % 4 in (1, 2) else "modbus"
        backend = backends[(i // 4) % len(backends)]
        used[backend] = used.get(backend, 0) + 1
        results.append(clock_jump.trial(ctx.work_dir / f"jump{i}", model, jump_s, ctx.deadline_ms,
                                        target, backend))
        ctx.progress(1)
    rule = f"+-1 h jumps while armed: no spurious trip; a later fault trips, max <= D ({ctx.deadline_ms:g} ms)"
    return judge("wall_clock_jump", rule, results, limit_ms=ctx.deadline_ms,
                 details={"trials_by_clock": used,
                          "hook": "tripwire.testclock: time.time(_ns), localtime, datetime.now",
                          "faketime": "libfaketime: every CLOCK_REALTIME read, monotonic real"})


CASES: list[CaseSpec] = [
    CaseSpec("latch_property", 10_000, 200, run_latch_property),
    CaseSpec("journal_kill", 200, 10, run_journal_kill),
    CaseSpec("wall_clock_jump", 20, 2, run_wall_clock_jump),
]
