"""Control-path client: one JSON request, one reply, with a deadline.

A fresh REQ socket per request (``linger=0``), so a peer that never answers cannot wedge
the REQ state machine for the next caller. Used by the CLI, the demo and the tests.
"""

from __future__ import annotations

import json
from typing import Any

import zmq

from tripwire.messages import Command, DecodeError, decode_reply, encode_command


class ControlTimeout(TimeoutError):
    """The peer did not answer within the deadline."""


def request(ctx: zmq.Context[Any], endpoint: str, payload: bytes, timeout_ms: float = 1000.0) -> dict[str, Any]:
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send(payload)
        if not sock.poll(int(timeout_ms), zmq.POLLIN):
            raise ControlTimeout(f"no reply from {endpoint} within {timeout_ms:.0f} ms")
        return decode_reply(sock.recv())
    finally:
        sock.close()


def command(ctx: zmq.Context[Any], endpoint: str, cmd: str, *, token: str = "", reason: str = "",
            timeout_ms: float = 1000.0) -> dict[str, Any]:
    """A Command to the interlock."""
    return request(ctx, endpoint, encode_command(Command(cmd, token, reason)), timeout_ms)


def sim_request(ctx: zmq.Context[Any], endpoint: str, cmd: str, timeout_ms: float = 1000.0,
                **fields: Any) -> dict[str, Any]:
    """A request to the simulator's control socket."""
    return request(ctx, endpoint, json.dumps({"cmd": cmd, **fields}).encode(), timeout_ms)


def trip_count(status: dict[str, Any]) -> int:
    """Trips the interlock has recorded (its status lists only the most recent ones)."""
    return int(status.get("trips_total", len(status.get("trips", []))))


def trips_since(status: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The trip records after the first ``count`` (as many as the status still lists)."""
    trips: list[dict[str, Any]] = list(status.get("trips", []))
    new = trip_count(status) - count
    return trips[max(0, len(trips) - new):] if new > 0 else []


__all__ = ["ControlTimeout", "DecodeError", "command", "request", "sim_request", "trip_count",
           "trips_since"]
