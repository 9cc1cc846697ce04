"""Operator commands: request bytes and reply outcomes (pure)."""

from __future__ import annotations

import json
import math

import pytest

from scada.commands import Outcome, check_inhibit_seconds, outcome, request
from tripwire.messages import VERSION, decode_command


def test_requests_are_valid_commands_with_the_token_untouched() -> None:
    cmd = decode_command(request("reset", token="t0k en"))
    assert (cmd.cmd, cmd.token, cmd.reason) == ("reset", "t0k en", "")
    cmd = decode_command(request("trip", reason="x" * 500))
    assert cmd.reason == "x" * 200


def test_inhibit_carries_seconds_beside_the_versioned_fields() -> None:
    obj = json.loads(request("inhibit", token="t", seconds=30.0))
    assert obj == {"v": VERSION, "cmd": "inhibit", "token": "t", "reason": "", "seconds": 30.0}


@pytest.mark.parametrize("seconds", [0, -1.0, math.nan, math.inf, 1e9, True, "10", None])
def test_bad_inhibit_durations_are_refused_before_forwarding(seconds: object) -> None:
    refusal = check_inhibit_seconds(seconds)
    assert refusal is not None and refusal.status == "invalid_argument" and not refusal.ok


def test_good_inhibit_duration() -> None:
    assert check_inhibit_seconds(60) is None
    assert check_inhibit_seconds(0.5) is None


def test_outcomes_pass_the_interlock_words_on() -> None:
    assert outcome({"ok": True, "state": "ARMED"}) == Outcome("good", "state ARMED")
    assert outcome({"ok": True}).ok
    refused = outcome({"ok": False, "error": "bad_token", "detail": "no"})
    assert refused == Outcome("refused", "bad_token: no") and not refused.ok
    unknown = outcome({"ok": False, "error": "unknown_command", "detail": "'inhibit'"})
    assert unknown == Outcome("not_supported", "unknown_command: 'inhibit'") and not unknown.ok
    said_twice = outcome({"ok": False, "error": "unknown_command", "detail": "unknown_command: 'x'"})
    assert said_twice.detail == "unknown_command: 'x'"
    assert outcome({"ok": False}) == Outcome("refused", "refused")
