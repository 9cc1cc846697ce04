"""Fuzzing the interlock's command path: ``decode_command`` behind ``handle_command``.

An input is the list of parts of one request on the interlock's REP socket. The interlock
answers every request; nothing a peer sends may raise out of ``handle_command`` (the loop
would take it for an internal error and trip the machine). ``handle_command`` is driven with
a recording stand-in for the controller: the dispatch is pure logic, and the stand-in lets
the oracle check that only the command that was sent reaches the controller, that
``shutdown`` alone ends the process, and that a trip's reason is bounded.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.service import handle_command
from tests.fuzz import harness
from tripwire import messages as m

pytestmark = pytest.mark.timeout(harness.TEST_TIMEOUT_S)

DECODER = "command"


class _Latch:
    state = "ARMED"


class StandInInterlock:
    """Records which controller entry points a request reached."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.latch = _Latch()

    def status(self) -> dict[str, Any]:
        self.calls.append("status")
        return {"state": "ARMED", "latched": False}

    def reset(self, token: str, now_ns: int) -> dict[str, Any]:
        assert isinstance(token, str)
        self.calls.append("reset")
        return {"ok": True, "state": "ARMED"}

    def trip(self, reason: object, now_ns: int, detail: str = "") -> None:
        assert isinstance(detail, str) and 0 < len(detail) <= 200
        self.calls.append("trip")

    def acknowledge(self, token: str, now_ns: int) -> dict[str, Any]:
        assert isinstance(token, str)
        self.calls.append("acknowledge")
        return {"ok": True}

    def shutdown(self, now_ns: int, why: str) -> dict[str, str]:
        self.calls.append("shutdown")
        return {}


def classify(parts: harness.Parts, workdir: Path) -> str:
    il = StandInInterlock()
    reply, quit_after = handle_command(il, parts, 10**12)  # type: ignore[arg-type]
    answer = m.decode_reply(reply)  # the interlock's own reply always decodes
    assert quit_after == (il.calls == ["shutdown"])
    if answer["ok"]:
        assert len(il.calls) == 1, il.calls
        cmd = il.calls[0]
        # Oracle independent of the decoder: the request really was that command.
        obj = json.loads(parts[0].decode("utf-8"))
        assert obj["cmd"] == cmd and obj["v"] == m.VERSION
        return f"accept {cmd}"
    assert il.calls == [], il.calls
    assert isinstance(answer.get("error"), str)
    return f"reject {answer['error']}"


def valid_request(cmd: str = "status", token: str = "", reason: str = "") -> harness.Parts:
    return [m.encode_command(m.Command(cmd, token, reason))]


def seeds() -> list[harness.Parts]:
    out = [valid_request(c) for c in sorted(m.COMMANDS)]
    out.append(valid_request("reset", token="secret", reason="r" * 300))
    out += [[t] for t in harness.NASTY_JSON]
    return out + harness.corpus_parts(DECODER)


# --- structure-aware generation -----------------------------------------------------------

COMMAND_TREE = {"v": m.VERSION, "cmd": "trip", "token": "t", "reason": "why"}


@st.composite
def candidates(draw: st.DrawFn) -> harness.Parts:
    how = draw(st.sampled_from(("valid", "tree", "tree_bytes", "bytes", "nasty", "raw", "parts")))
    tree = dict(COMMAND_TREE, cmd=draw(st.sampled_from(sorted(m.COMMANDS) + ["", "STATUS"])),
                token=draw(st.text(max_size=8)), reason=draw(st.text(max_size=300)))
    return harness.json_candidate(draw, tree, how)


@harness.fuzz_settings()
@given(parts=candidates())
def test_command_path_structured(parts: harness.Parts) -> None:
    harness.timed(classify, parts, Path("."))


def test_command_path_mutation_loop() -> None:
    def fielded(rng: random.Random) -> harness.Parts:
        tree = dict(COMMAND_TREE, cmd=rng.choice(sorted(m.COMMANDS)))
        return [harness.json_dumps_any(harness.random_tree_mutation(tree, rng))]

    report = harness.mutation_loop(classify, seeds(), Path("."), structured=fielded)
    assert any(k.startswith("accept") for k in report.outcomes) or report.inputs < 200, report
