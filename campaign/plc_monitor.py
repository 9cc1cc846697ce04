"""A monitor stand-in process for the PLC rows: monitor heartbeats on a PUB socket, nothing else.

``python -m campaign.plc_monitor ENDPOINT PERIOD_MS CELL MONITOR_ID`` binds ENDPOINT and
publishes a ``Heartbeat`` stamped with the monitor's connection identity every PERIOD_MS
until SIGTERM or SIGINT. Its own process, so that the campaign's in-process PLC servers
(asyncua's start-up holds the GIL for long stretches) cannot starve it and make the
interlock under test trip on a silent monitor.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType

import zmq

from tripwire.messages import Heartbeat, HeartbeatFlag, Link, encode_heartbeat


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m campaign.plc_monitor ENDPOINT PERIOD_MS CELL MONITOR_ID", file=sys.stderr)
        return 2
    endpoint, period_s, link = argv[0], float(argv[1]) / 1e3, Link.monitor(argv[2], int(argv[3]))
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    try:
        pub.bind(endpoint)
        counter = 0
        while not stop.wait(period_s):
            counter += 1
            hb = Heartbeat(1, counter, time.monotonic_ns(), counter, counter, 0, 0, HeartbeatFlag.NONE)
            pub.send(encode_heartbeat(hb, link))
    finally:
        pub.close(0)
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
