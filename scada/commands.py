"""Operator methods as interlock commands: request bytes out, reply in, outcome out.

Pure core. The gateway holds no interlock logic and no secret: it checks only the shape
of the arguments, forwards the token untouched, and reports the interlock's answer as it
is. An error reply is never turned into success; a command the interlock does not know
(``unknown_command``) becomes ``not_supported`` so the shell can answer BadNotImplemented.
It must not touch a socket, read a clock or import asyncua, zmq or structlog.

``inhibit`` carries its duration as an extra ``seconds`` field beside the versioned
command fields (``tripwire.messages.Command`` has none yet); decoders ignore extra keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tripwire.messages import Command, encode_command

Status = Literal["good", "refused", "not_supported", "unreachable", "invalid_argument",
                 "access_denied"]

MAX_REASON = 200
MAX_INHIBIT_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an operator method answers: ``ok`` only when the interlock said ok."""

    status: Status
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "good"


def request(cmd: str, *, token: str = "", reason: str = "", seconds: float | None = None) -> bytes:
    payload = encode_command(Command(cmd, token, reason[:MAX_REASON]))
    if seconds is None:
        return payload
    obj = json.loads(payload)
    obj["seconds"] = seconds
    return json.dumps(obj).encode()


def check_inhibit_seconds(seconds: Any) -> Outcome | None:
    """A refusal for a duration the gateway will not forward, or None when it is fine."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return Outcome("invalid_argument", "seconds must be a number")
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_INHIBIT_S):
        return Outcome("invalid_argument", f"seconds must be in (0, {MAX_INHIBIT_S:.0f}]")
    return None


def outcome(reply: Mapping[str, Any]) -> Outcome:
    """The interlock's reply as an operator outcome; its words, never improved on."""
    if reply.get("ok") is True:
        state = reply.get("state")
        return Outcome("good", f"state {state}" if state else "ok")
    error = str(reply.get("error", "refused"))
    detail = str(reply.get("detail", ""))
    # the interlock's detail often repeats its error key already ("unknown_command: 'x'")
    text = detail if detail.startswith(error) else f"{error}: {detail}" if detail else error
    if error in ("unknown_command", "unsupported_command"):
        return Outcome("not_supported", text)
    return Outcome("refused", text)
