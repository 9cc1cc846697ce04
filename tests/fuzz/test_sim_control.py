"""Fuzzing the sim's control socket protocol: ``sim.control.handle``.

A malformed request must never raise: it gets ``{"ok": false, "error": ...}``. The handlers
are a recording stand-in (the protocol module is pure decode-dispatch-encode), so the oracle
can check that a request reaches at most the handler it names, that only ``stop`` ends the
process, and that ``since`` reaches ``status`` as a non-negative integer.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.control import MAX_REQUEST_BYTES, handle
from tests.fuzz import harness
from tripwire import messages as m

pytestmark = pytest.mark.timeout(harness.TEST_TIMEOUT_S)

DECODER = "sim_control"
COMMANDS = ("status", "schedule", "inject", "clear", "stop")


class StandInHandlers:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def status(self, since: int) -> dict[str, Any]:
        assert isinstance(since, int) and not isinstance(since, bool) and since >= 0
        self.calls.append("status")
        return {"frames": 3, "records": []}

    def schedule(self) -> dict[str, Any]:
        self.calls.append("schedule")
        return {"started": True}

    def inject(self, fault: Any) -> dict[str, Any]:
        assert math.isfinite(fault.severity) and math.isfinite(fault.ramp_s)
        self.calls.append("inject")
        return {"sample_index": 0}

    def clear(self, source: int) -> dict[str, Any]:
        assert isinstance(source, int) and not isinstance(source, bool)
        self.calls.append("clear")
        return {"cleared": 0}

    def stop(self) -> None:
        self.calls.append("stop")


def classify(parts: harness.Parts, workdir: Path) -> str:
    handlers = StandInHandlers()
    reply = handle(parts, handlers)
    answer = m.decode_reply(reply.payload)
    assert reply.stop == (handlers.calls == ["stop"])
    if answer["ok"]:
        assert len(handlers.calls) == 1, handlers.calls
        assert len(parts) == 1 and len(parts[0]) <= MAX_REQUEST_BYTES
        assert json.loads(parts[0].decode("utf-8"))["cmd"] == handlers.calls[0]
        return f"accept {handlers.calls[0]}"
    assert handlers.calls == [], handlers.calls
    error = answer["error"]
    assert isinstance(error, str)
    return f"reject {error.split(':')[0]}"


def request(cmd: str, **fields: Any) -> harness.Parts:
    return [json.dumps({"cmd": cmd, **fields}).encode()]


def seeds() -> list[harness.Parts]:
    out = [request("status", since=0), request("status", since=5, v=m.VERSION),
           request("schedule"), request("stop"), request("clear", source=1),
           request("inject", kind="bearing", source=1, severity=1.0, ramp_s=0.5)]
    out += [[t] for t in harness.NASTY_JSON if len(t) <= MAX_REQUEST_BYTES]
    return out + harness.corpus_parts(DECODER)


@st.composite
def candidates(draw: st.DrawFn) -> harness.Parts:
    tree = {"v": m.VERSION, "cmd": draw(st.sampled_from(COMMANDS + ("x",))),
            "since": draw(st.sampled_from((0, 3))), "kind": "bearing", "source": 1,
            "severity": 1.0, "ramp_s": 0.5}
    how = draw(st.sampled_from(("tree", "tree", "tree_bytes", "bytes", "nasty", "raw", "parts")))
    return harness.json_candidate(draw, tree, how)


@harness.fuzz_settings()
@given(parts=candidates())
def test_sim_control_structured(parts: harness.Parts) -> None:
    harness.timed(classify, parts, Path("."))


def test_sim_control_mutation_loop() -> None:
    def fielded(rng: random.Random) -> harness.Parts:
        tree: dict[str, Any] = {"cmd": rng.choice(COMMANDS)}
        tree.update(rng.choice(({"since": 0}, {"source": 1},
                                {"kind": "spike", "source": 2, "severity": 2.0, "ramp_s": 0.0})))
        return [harness.json_dumps_any(harness.random_tree_mutation(tree, rng))]

    report = harness.mutation_loop(classify, seeds(), Path("."), structured=fielded)
    assert any(k.startswith("accept") for k in report.outcomes) or report.inputs < 200, report
