"""Socket calls the bus's processes share (shell): binding, reading a whole message, and
asking a socket whether input waits.

``recv_parts`` reads each part's own more-flag; pyzmq's ``recv_multipart`` asks the socket for
``RCVMORE`` through an option lookup per part, which cost more than half of a frame's receive
in the monitor. ``readable`` is the ZMQ_EVENTS look that an edge-triggered descriptor needs
where input may be left (monitor/loop.py, interlock/service.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zmq

IPC = "ipc://"


def bind(sock: zmq.Socket[Any], endpoint: str) -> None:
    """Bind ``sock`` to ``endpoint``; for an ipc endpoint, create its socket file's directory
    first (ZeroMQ does not, and a fresh ``/run`` or temporary directory lacks it)."""
    if endpoint.startswith(IPC):
        Path(endpoint[len(IPC):]).parent.mkdir(parents=True, exist_ok=True)
    sock.bind(endpoint)


def recv_parts(sock: zmq.Socket[Any], flags: int = zmq.NOBLOCK) -> list[zmq.Frame]:
    """Every part of one message, without copies (with NOBLOCK, ``zmq.Again`` when none is
    queued; the parts of a message arrive together, so only the first read can find none)."""
    part = sock.recv(flags, copy=False)
    parts = [part]
    while part.more:
        part = sock.recv(flags, copy=False)
        parts.append(part)
    return parts


def readable(sock: zmq.Socket[Any]) -> bool:
    """Whether a message waits on ``sock`` now."""
    return bool(int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)
