"""Fuzzing the interlock's replies as their readers take them: ``decode_reply`` (the control
client behind the CLI and the SCADA gateway), then the gateway's ``commands.outcome`` (an
operator method's answer) and ``PlantView.on_status`` (a status poll) with a snapshot.

Oracle: an operator method reports success only when the interlock said ``"ok": true``;
the view marks the interlock reachable only on an ``ok`` reply it could read figures from;
nothing raises but ``DecodeError``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scada import commands
from scada.view import PlantView
from tests.fuzz import harness
from tripwire import messages as m
from tripwire.latency import Histogram

pytestmark = pytest.mark.timeout(harness.TEST_TIMEOUT_S)

DECODER = "reply"
NOW_NS = 10**12


def classify(parts: harness.Parts, workdir: Path) -> str:
    if len(parts) != 1:
        return "reject bad_parts"
    try:
        reply = m.decode_reply(parts[0])
    except m.DecodeError as e:
        return f"reject {e.reason}"
    outcome = commands.outcome(reply)
    assert outcome.ok == (reply["ok"] is True)
    assert isinstance(outcome.detail, str)
    view = PlantView([(1, "pump-1")])
    shown = view.on_status(reply, NOW_NS)
    assert shown == view.reachable
    assert not shown or reply["ok"] is True
    assert view.snapshot(NOW_NS + 1)
    return f"accept {outcome.status}{' figures' if shown else ''}"


def status_reply() -> dict[str, object]:
    h = Histogram.new()
    for v in (1_000_000, 2_500_000, 9_000_000):
        h.record(v)
    return {"state": "ARMED", "trip_reason": "", "trips": [{"reason": "score"}],
            "counters": {"deadline_misses": 1},
            "alarms": [{"name": "stop_undelivered", "detail": "modbus", "active": True}],
            "latency": h.to_sparse()}


def seeds() -> list[harness.Parts]:
    out = [[m.encode_reply(True, **status_reply())],
           [m.encode_reply(True, state="TRIPPED")],
           [m.encode_reply(False, error="bad_token", detail="bad_token: wrong token")],
           [m.encode_reply(False, error="unknown_command", detail="'x'")]]
    out += [[t] for t in harness.NASTY_JSON]
    return out + harness.corpus_parts(DECODER)


# --- structure-aware generation -----------------------------------------------------------


@st.composite
def candidates(draw: st.DrawFn) -> harness.Parts:
    tree = draw(st.sampled_from((
        {"v": m.VERSION, "ok": True, **status_reply()},
        {"v": m.VERSION, "ok": False, "error": "unknown_command", "detail": "unknown_command: 'x'"},
        {"v": m.VERSION, "ok": True, "state": "ARMED"},
    )))
    how = draw(st.sampled_from(("tree", "tree", "tree_bytes", "bytes", "nasty", "raw")))
    return harness.json_candidate(draw, tree, how)


@harness.fuzz_settings()
@given(parts=candidates())
def test_reply_readers_structured(parts: harness.Parts) -> None:
    harness.timed(classify, parts, Path("."))


def test_reply_readers_mutation_loop() -> None:
    def fielded(rng: random.Random) -> harness.Parts:
        tree = {"v": m.VERSION, "ok": True, **status_reply()}
        for _ in range(rng.randint(1, 3)):
            tree = harness.random_tree_mutation(tree, rng)
        return [harness.json_dumps_any(tree)]

    report = harness.mutation_loop(classify, seeds(), Path("."), structured=fielded)
    assert report.outcomes.get("accept good figures", 0) > 0 or report.inputs < 200, report
