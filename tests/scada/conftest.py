"""Real peers for the gateway's tests, each on its own thread and stopped by its fixture.

- ``FakeInterlock``: a ZeroMQ REP socket bound where the interlock's command socket would be;
  it answers ``status`` with an interlock-shaped reply (a real latency histogram in sparse
  form), ``reset`` by comparing the token, ``trip``, and refuses what
  tripwire.messages.decode_command refuses exactly as the interlock does. It records every
  request it received.
- ``FakeMonitor``: a ZeroMQ PUB socket bound at ``bus.monitor_out`` that republishes the
  latest heartbeat and verdicts every 20 ms (PUB/SUB joins late; repeating is what the real
  monitor does too).
- ``gateway``: ``scada.service.serve`` on a thread, on a free loopback port, ipc endpoints in
  a tmp dir.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq

from scada.service import serve
from tripwire.config import Config, from_dict
from tripwire.latency import Histogram
from tripwire.messages import (
    DecodeError,
    Heartbeat,
    HeartbeatFlag,
    Level,
    Verdict,
    VerdictFlag,
    decode_command,
    encode_heartbeat,
    encode_reply,
    encode_verdict,
)

GOOD_TOKEN = "let-me-reset"
logging.getLogger("asyncua").setLevel(logging.CRITICAL)





def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def latency_sparse(values_ms: list[float]) -> dict[str, object]:
    h = Histogram.new()
    for v in values_ms:
        h.record(int(v * 1e6))
    return h.to_sparse()


class FakeInterlock:
    def __init__(self, ctx: zmq.Context[Any], endpoint: str) -> None:
        self.endpoint = endpoint
        self.requests: list[dict[str, Any]] = []
        self.state = "ARMED"
        self.latency = latency_sparse([1.0] * 98 + [4.0, 8.0])
        self._sock: zmq.Socket[bytes] = ctx.socket(zmq.REP)
        self._sock.linger = 0
        self._sock.bind(endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake_interlock")
        self._thread.start()

    def commands(self) -> list[str]:
        return [r.get("cmd", "") for r in self.requests if r.get("cmd") != "status"]

    def _status(self) -> bytes:
        return encode_reply(
            True, state=self.state, latched=self.state == "TRIPPED",
            trip_reason="manual" if self.state == "TRIPPED" else None, selftest="ok",
            trips=[{"reason": "liveness"}, {"reason": "manual"}],
            counters={"deadline_misses": 7, "verdicts": 100},
            latency=self.latency, latency_ms={},
            alarms=[{"name": "plc_slow", "detail": "ack 4 ms", "t_ns": 1, "active": False, "count": 1},
                    {"name": "monitor_gap", "detail": "3 frames", "t_ns": 2, "active": True, "count": 2}],
            targets={"modbus": True}, plc_heartbeat=5, plc_heartbeat_running=True,
            stop_undelivered=False,
        )

    def _answer(self, data: bytes) -> bytes:
        self.requests.append(json.loads(data))
        try:
            cmd = decode_command(data)
        except DecodeError as e:
            return encode_reply(False, error=e.reason, detail=str(e))
        if cmd.cmd == "status":
            return self._status()
        if cmd.cmd == "reset":
            if cmd.token != GOOD_TOKEN:
                return encode_reply(False, error="bad_token", detail="token does not match",
                                    state=self.state)
            self.state = "ARMED"
            return encode_reply(True, state=self.state, armed=True)
        if cmd.cmd == "trip":
            self.state = "TRIPPED"
            return encode_reply(True, state=self.state, tripped=True)
        if cmd.cmd == "acknowledge":  # as the real interlock: token checked, nothing cleared
            if cmd.token != GOOD_TOKEN:
                return encode_reply(False, error="bad_token", detail="token does not match")
            return encode_reply(True, acknowledged=1)
        if cmd.cmd == "inhibit":  # as the real interlock: refused by name
            return encode_reply(False, error="unsupported_command", detail="inhibit")
        return encode_reply(False, error="not_here", detail="the fake does not shut down")

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(50, zmq.POLLIN):
                self._sock.send(self._answer(self._sock.recv()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._sock.close(0)


class FakeMonitor:
    def __init__(self, ctx: zmq.Context[Any], endpoint: str) -> None:
        self._sock: zmq.Socket[bytes] = ctx.socket(zmq.PUB)
        self._sock.linger = 0
        self._sock.bind(endpoint)
        self.heartbeat = Heartbeat(1, 1, 0, frames_received=1000, frames_processed=990,
                                   frames_rejected=3, tier=1, flags=HeartbeatFlag.NONE)
        self.verdicts: dict[int, Verdict] = {}
        self.extra: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake_monitor")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._sock.send(encode_heartbeat(self.heartbeat))
            for v in list(self.verdicts.values()):
                self._sock.send(encode_verdict(v))
            while self.extra:
                self._sock.send(self.extra.pop())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._sock.close(0)


def verdict(source_id: int, score: float, level: Level, channels: tuple[str, ...] = (),
            flags: VerdictFlag = VerdictFlag.NONE) -> Verdict:
    return Verdict(source_id, 10, 10, 0, 0, score, 2.5, level, flags, 1, b"model01", channels)


def make_config(tmp: Path, port: int, **scada: Any) -> Config:
    return from_dict({
        "bus": {"frames": f"ipc://{tmp}/frames", "monitor_out": f"ipc://{tmp}/monitor",
                "interlock_cmd": f"ipc://{tmp}/interlock", "sim_ctl": f"ipc://{tmp}/sim"},
        "sources": [
            {"id": 1, "name": "pump-1", "channels": ["vib_x", "vib_y", "current", "temp"]},
            {"id": 2, "name": "fan-2", "channels": ["vib_x", "vib_y", "current", "temp"]},
        ],
        "scada": {"endpoint": f"opc.tcp://127.0.0.1:{port}", "update_ms": 100.0,
                  "command_timeout_ms": 500.0, **scada},
    })


@dataclass
class Gateway:
    cfg: Config
    url: str
    thread: threading.Thread
    stop: threading.Event
    result: list[int]


def start_gateway(cfg: Config) -> Gateway:
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(serve(cfg, stop)), name="scada_gateway")
    thread.start()
    return Gateway(cfg, cfg.scada.endpoint, thread, stop, result)


def stop_gateway(gw: Gateway) -> None:
    gw.stop.set()
    gw.thread.join(15.0)
    if gw.thread.is_alive():
        raise AssertionError("the gateway did not stop within 15 s")




@pytest.fixture
def zctx() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)
