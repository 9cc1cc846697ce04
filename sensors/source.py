"""The ``FrameSource`` seam, its lifecycle, pacing, and a helper that publishes any source (shell).

A frame source is a context manager with an explicit state:

    NEW --__enter__--> OPEN --(no more data)--> DRAINED
     \\                  \\                        \\
      +-----------------+--------close()--------+--> CLOSED (final; cannot be reopened)

``read()`` returns the next Frame, or None when no frame is ready within the source's poll
interval (a paced source waiting for its next frame time) or when the source is drained;
``state`` tells the two apart. Sources stamp ``t_acq_ns`` when they hand a frame out and
leave ``t_pub_ns`` at 0; ``publish`` stamps it just before the send.

``publish`` sends every frame of a source on a ZeroMQ PUB socket that CONNECTS to an
endpoint (the monitor binds), as two parts with ``copy=False``, until the source drains or
``stop`` is set, and always closes its socket with ``linger=0``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import Protocol, runtime_checkable

import structlog
import zmq

from sensors.errors import PublishError, SourceStateError
from tripwire.messages import Frame, encode_frame

Clock = Callable[[], int]  # monotonic nanoseconds
Sleep = Callable[[float], None]  # seconds

DEFAULT_POLL_S = 0.05
SNDHWM = 1000  # frames queued per peer before the PUB socket drops (counted by the monitor)



class SourceState(Enum):
    NEW = "new"
    OPEN = "open"
    DRAINED = "drained"
    CLOSED = "closed"


@runtime_checkable
class FrameSource(Protocol):
    @property
    def state(self) -> SourceState: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


class Lifecycle:
    """State bookkeeping every source shares; subclasses call these from their methods."""

    def __init__(self) -> None:
        self._state = SourceState.NEW

    @property
    def state(self) -> SourceState:
        return self._state

    def _opening(self) -> None:
        if self._state is not SourceState.NEW:
            raise SourceStateError(f"cannot open a source that is {self._state.value}")
        self._state = SourceState.OPEN

    def _readable(self) -> bool:
        """True when open; False when drained; raises when never opened or closed."""
        if self._state is SourceState.OPEN:
            return True
        if self._state is SourceState.DRAINED:
            return False
        raise SourceStateError(f"read() on a source that is {self._state.value}")

    def _drained(self) -> None:
        if self._state is SourceState.OPEN:
            self._state = SourceState.DRAINED

    def close(self) -> None:
        self._state = SourceState.CLOSED


class Pacer:
    """Waits for frame due times on the monotonic clock, never longer than ``poll_s`` at once.

    Due times are absolute (start + offset of the frame's last sample), so pacing does not
    drift however long a replay runs; a consumer that falls behind gets frames back to back
    until it has caught up.
    """

    def __init__(self, clock: Clock, sleep: Sleep, poll_s: float) -> None:
        self.clock, self.sleep, self.poll_s = clock, sleep, poll_s
        self.start_ns: int | None = None

    def due(self, offset_ns: int) -> bool:
        """Wait up to poll_s for ``start + offset_ns``; True once that time has come."""
        now = self.clock()
        if self.start_ns is None:
            self.start_ns = now
        target = self.start_ns + offset_ns
        if now >= target:
            return True
        self.sleep(min((target - now) / 1e9, self.poll_s))
        return self.clock() >= target


def publish(
    source: FrameSource,
    endpoint: str,
    stop: threading.Event,
    *,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    clock: Clock = time.monotonic_ns,
) -> int:
    """Send the source's frames until it drains or ``stop`` is set; returns frames sent.

    The source must already be open (``with source: publish(source, ...)``); the caller owns
    its lifecycle. ``context`` defaults to the process-wide one (needed for ``inproc://``).
    """
    log = structlog.get_logger(component="sensors")
    ctx = context if context is not None else zmq.Context.instance()
    try:
        sock = ctx.socket(zmq.PUB)
    except zmq.ZMQError as e:
        raise PublishError(f"cannot create a PUB socket: {e}") from None
    sent = 0
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, SNDHWM)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as e:
            raise PublishError(f"cannot connect to {endpoint}: {e}") from None
        log.info("publish_started", endpoint=endpoint)
        while not stop.is_set():
            frame = source.read()
            if frame is None:
                if source.state is not SourceState.OPEN:
                    break
                continue
            frame = dataclasses.replace(frame, t_pub_ns=clock())
            header, payload = encode_frame(frame)
            sock.send_multipart([header, payload], copy=False)
            sent += 1
    finally:
        sock.close(linger=0)
    log.info("publish_stopped", endpoint=endpoint, frames=sent, drained=source.state.value)
    return sent
