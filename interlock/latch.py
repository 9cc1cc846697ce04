"""The interlock's latch: SAFE -> ARMED -> TRIPPED -> (authenticated reset) -> ARMED.

- SAFE: start-up, permit 0. ``arm()`` moves to ARMED once the shell's self-test passed,
  unless the latch was restored tripped from the journal (then a reset comes first).
- ARMED: permit 1. ``trip()`` latches TRIPPED.
- TRIPPED: permit 0, latched. Nothing clears it on its own; only ``reset()`` with the right
  token, while the cause is gone, unlatches it. The reset lands in SAFE and the shell arms
  at once through the one arming path (self-test, permit 1), so "reset -> ARMED" never
  skips the checks that arming needs.

A restart never resets: ``Latch.restored(...)`` starts SAFE but latched when the journal's
last state was TRIPPED, and refuses to arm until a reset.

Pure core: no clock, no I/O; times come in as ``now_ns`` and are only recorded.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum, StrEnum


class State(StrEnum):
    SAFE = "SAFE"
    ARMED = "ARMED"
    TRIPPED = "TRIPPED"


class TripReason(IntEnum):
    """Codes written to the PLC's trip_reason register/node (0 = none)."""

    NONE = 0
    VERDICT = 1
    MONITOR_SILENT = 2
    LATE_VERDICTS = 3
    MANUAL = 4
    INTERNAL_ERROR = 5
    SHUTDOWN = 6
    PLC_PERMIT_LOST = 7  # a target's PLC came back without our permit (restarted at defaults)

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a transition was refused; ``reason`` is a stable snake_case key."""

    reason: str
    detail: str = ""


class Latch:
    """The state machine. Transitions return ``None`` on success or a ``Refusal``."""

    __slots__ = ("_token", "_state", "_latched", "_reason", "_since_ns")

    def __init__(self, reset_token: str, *, latched: bool = False) -> None:
        self._token = reset_token
        self._state = State.SAFE
        self._latched = latched  # restored TRIPPED: SAFE, but arming needs a reset first
        self._reason: TripReason = TripReason.NONE
        self._since_ns = 0

    @classmethod
    def restored(cls, reset_token: str, last_state: str | None) -> "Latch":
        """A latch after a restart: SAFE, and latched if the journal says it was tripped."""
        return cls(reset_token, latched=last_state == State.TRIPPED)

    @property
    def state(self) -> State:
        return self._state

    @property
    def latched(self) -> bool:
        """True while TRIPPED, or SAFE but restored tripped: a reset is required."""
        return self._state == State.TRIPPED or self._latched

    @property
    def reason(self) -> TripReason:
        return self._reason

    @property
    def since_ns(self) -> int:
        return self._since_ns

    def arm(self, now_ns: int) -> Refusal | None:
        if self._state != State.SAFE:
            return Refusal("not_safe", f"state is {self._state}")
        if self._latched:
            return Refusal("latched", "restarted while tripped; a reset is required")
        self._state, self._since_ns = State.ARMED, now_ns
        return None

    def trip(self, reason: TripReason, now_ns: int) -> bool:
        """Latch TRIPPED; True when this is a new trip, False when already TRIPPED."""
        if self._state == State.TRIPPED:
            return False
        self._state, self._reason, self._since_ns = State.TRIPPED, reason, now_ns
        self._latched = False  # folded into TRIPPED
        return True

    def authorize(self, token: str) -> Refusal | None:
        """The checks of ``reset`` that need no look at the plant: latched, token."""
        if not self.latched:
            return Refusal("not_tripped", f"state is {self._state}")
        return self.check_token(token)

    def check_token(self, token: str) -> Refusal | None:
        """The operator's credential alone (reset and alarm acknowledgement share it)."""
        if not self._token:
            return Refusal("reset_disabled", "no reset token is configured; resets are refused")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            return Refusal("bad_token", "the reset token does not match")
        return None

    def reset(self, token: str, cause: str | None, now_ns: int) -> Refusal | None:
        """Clear the latch. ``cause`` names what is still wrong (None when it has cleared).

        Success leaves the latch SAFE and unlatched, ready for ``arm()``.
        """
        refusal = self.authorize(token)
        if refusal is not None:
            return refusal
        if cause is not None:
            return Refusal("cause_present", cause)
        self._state = State.SAFE
        self._latched = False
        self._reason, self._since_ns = TripReason.NONE, now_ns
        return None

    def disarm(self, now_ns: int) -> None:
        """ARMED -> SAFE (shutdown, or a self-test that no longer holds). Never unlatches."""
        if self._state == State.ARMED:
            self._state, self._since_ns = State.SAFE, now_ns
