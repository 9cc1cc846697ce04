"""The gateway's two bus peers: the monitor's output (SUB) and the interlock's commands (REQ).

Shell. ``MonitorFeed`` is a context manager over a SUB socket connected to
``bus.monitor_out``; ``drain`` reads what has arrived without blocking (bounded per call)
and folds it into a ``PlantView``. ``InterlockLink`` sends one command and waits at most
its timeout, with a fresh REQ socket each time (tripwire.control), so a dead interlock can
never wedge it; every failure becomes ``InterlockUnreachable``. Neither interprets what it
carries: that is view.py and commands.py.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import zmq

from scada.errors import GatewayStartError, InterlockUnreachable
from scada.view import PlantView
from tripwire.control import ControlTimeout
from tripwire.control import request as control_request
from tripwire.messages import DecodeError, decode_monitor_message

SUB_HWM = 20_000  # ~30 s of verdicts and heartbeats at the demo's rates; zmq drops beyond
MAX_DRAIN = 5_000  # messages folded per drain call, so one call stays short


class MonitorFeed:
    """``with MonitorFeed(ctx, endpoint) as feed: feed.drain(view, now_ns)``."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str) -> None:
        self._ctx = ctx
        self._endpoint = endpoint
        self._sock: zmq.Socket[bytes] | None = None

    def __enter__(self) -> Self:
        sock: zmq.Socket[bytes] = self._ctx.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, SUB_HWM)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(self._endpoint)
        except zmq.ZMQError as e:
            sock.close(0)
            raise GatewayStartError(f"cannot connect to {self._endpoint}: {e}") from None
        self._sock = sock
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close(0)

    def drain(self, view: PlantView, now_ns: int) -> int:
        """Fold every waiting message (up to MAX_DRAIN) into ``view``; how many were read."""
        sock = self._sock
        if sock is None:
            raise RuntimeError("MonitorFeed is closed")
        n = 0
        while n < MAX_DRAIN:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            try:
                view.on_message(decode_monitor_message(data), now_ns)
            except DecodeError:
                view.on_decode_error()
        return n


class InterlockLink:
    """One request, one reply, a deadline; safe to call from any one thread at a time."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, timeout_ms: float) -> None:
        self._ctx = ctx
        self._endpoint = endpoint
        self._timeout_ms = timeout_ms

    def send(self, payload: bytes, timeout_ms: float | None = None) -> dict[str, Any]:
        wait_ms = self._timeout_ms if timeout_ms is None else timeout_ms
        try:
            return control_request(self._ctx, self._endpoint, payload, wait_ms)
        except ControlTimeout:
            raise InterlockUnreachable(f"no reply within {wait_ms:.0f} ms") from None
        except DecodeError as e:
            raise InterlockUnreachable(f"unreadable reply ({e.reason})") from None
        except zmq.ZMQError as e:
            raise InterlockUnreachable(f"socket error: {e}") from None
