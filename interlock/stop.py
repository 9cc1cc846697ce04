"""The stop path and the PLC heartbeat pump, over a list of ``StopSink``s.

``deliver_stop`` writes permit 0 to the targets in their configured order until the stop
policy is met (``watchdog.Delivery``: "any" stops at the first confirmation, "all" needs
every target, and it sets each attempt's timeout so that the next target is still tried
within D). A pass that failed fast is repeated once if D is not used up yet. Each
confirmation's time is read right after its reply, before anything else happens; the stop's
``t_ack`` is the confirmation that met the policy.

``HeartbeatPump`` advances the PLC heartbeat counter every ``plc_heartbeat_ms`` on every
target through ``submit_heartbeat`` and collects the results on the next tick, so a slow
heartbeat write delays a stop write by at most that one write.

Shell helpers: they call sinks and a clock handed in; the decisions (when to stop, whether
the heartbeat runs) belong to the controller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from interlock.errors import StopWriteFailed
from interlock.records import Attempt
from interlock.sink import StopSink
from interlock.watchdog import Delivery, next_heartbeat

Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class StopOutcome:
    target: str | None
    t_ack_ns: int | None
    attempts: tuple[Attempt, ...]

    @property
    def acked(self) -> bool:
        return self.target is not None


def deliver_stop(sinks: Sequence[StopSink], delivery: Delivery, clock: Clock) -> StopOutcome:
    """Permit 0 to the targets ``delivery`` still needs, until its policy is met: one pass
    in order, then, when that failed and D is not used up, one more pass within D."""
    attempts: list[Attempt] = []
    for within_d_retry in (False, True):
        todo = [s for s in sinks if delivery.needs(s.name)]
        for i, sink in enumerate(todo):
            now_ns = clock()
            if within_d_retry:
                retry_ms = delivery.retry_timeout_ms(sink.timeout_ms, now_ns)
                if retry_ms is None:
                    break
                timeout_ms = retry_ms
            else:
                timeout_ms = delivery.attempt_timeout_ms(sink.timeout_ms, now_ns, last=i == len(todo) - 1)
            try:
                sink.write_permit(False, timeout_ms=timeout_ms)
            except StopWriteFailed as e:
                attempts.append(Attempt(sink.name, False, round(timeout_ms, 3), str(e)))
                continue
            t_ack_ns = clock()
            attempts.append(Attempt(sink.name, True, round(timeout_ms, 3), t_ack_ns=t_ack_ns))
            delivery.confirmed(sink.name)
            if delivery.acked:
                target = "+".join(s.name for s in sinks) if delivery.require_all else sink.name
                return StopOutcome(target, t_ack_ns, tuple(attempts))
    delivery.all_failed(clock())
    return StopOutcome(None, None, tuple(attempts))


def write_all(sinks: Sequence[StopSink], action: Callable[[StopSink], None]) -> dict[str, str]:
    """Apply ``action`` to every sink; return {name: error} for those that failed."""
    errors: dict[str, str] = {}
    for sink in sinks:
        try:
            action(sink)
        except StopWriteFailed as e:
            errors[sink.name] = str(e)
    return errors


class HeartbeatPump:
    """The PLC heartbeat: counter + 1 mod 65536 every period, on every target."""

    __slots__ = ("_sinks", "period_ns", "counter", "next_due_ns", "_pending", "overruns", "writes")

    def __init__(self, sinks: Sequence[StopSink], period_ns: int) -> None:
        self._sinks = list(sinks)
        self.period_ns = period_ns
        self.counter = 0
        self.next_due_ns: int | None = None
        self._pending: dict[str, Future[None]] = {}
        self.overruns = 0  # a tick skipped a target whose previous write had not finished
        self.writes = 0

    @property
    def running(self) -> bool:
        return self.next_due_ns is not None

    def start(self, now_ns: int) -> None:
        if self.next_due_ns is None:
            self.next_due_ns = now_ns

    def stop(self) -> None:
        self.next_due_ns = None

    def due(self, now_ns: int) -> bool:
        return self.next_due_ns is not None and now_ns >= self.next_due_ns

    def pump(self, now_ns: int) -> None:
        """Advance the counter and submit one write per target (skipping busy ones)."""
        if self.next_due_ns is None:
            return
        self.counter = next_heartbeat(self.counter)
        for sink in self._sinks:
            busy = self._pending.get(sink.name)
            if busy is not None and not busy.done():
                self.overruns += 1
                continue
            self._pending[sink.name] = sink.submit_heartbeat(self.counter)
            self.writes += 1
        self.next_due_ns += self.period_ns
        if self.next_due_ns <= now_ns:  # fell behind: do not burst to catch up
            self.next_due_ns = now_ns + self.period_ns

    def collect(self) -> dict[str, str | None]:
        """Finished writes since the last call: {target: None if confirmed else error}."""
        done: dict[str, str | None] = {}
        for name, fut in list(self._pending.items()):
            if not fut.done():
                continue
            del self._pending[name]
            if fut.cancelled():
                done[name] = "cancelled"
                continue
            exc = fut.exception()
            if exc is None:
                done[name] = None
            elif isinstance(exc, StopWriteFailed):
                done[name] = str(exc)
            else:
                done[name] = f"{type(exc).__name__}: {exc}"
        return done
