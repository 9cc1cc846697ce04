"""Real servers on loopback for the interlock's tests.

- ``ModbusPlc``: a pymodbus 3 ``ModbusTcpServer`` with a ``ModbusServerContext`` (coil 0
  permit, holding registers 0 heartbeat, 1 trip reason, 2 watchdog ms, 3 state), port 0.
- ``OpcuaPlc``: an asyncua server with the PLC nodes of DESIGN 5 in "urn:tripwire:plc".
- ``FreezableProxy``: a TCP relay in front of a PLC that can stop answering on demand
  (connections stay open, requests vanish), to test undelivered stops.
- ``FakeMonitor``: a real ZeroMQ PUB socket that publishes heartbeats on its own thread and
  the verdicts a test hands it, encoded with tripwire.messages.

Each runs on its own thread and is stopped by its fixture; nothing leaks.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import zmq

from tripwire.config import BusConfig, MonitorConfig
from tripwire.messages import (
    Heartbeat,
    HeartbeatFlag,
    Level,
    Link,
    Verdict,
    VerdictFlag,
    encode_heartbeat,
    encode_verdict,
)

# What the monitor of a cell with the default config stamps on its messages.
DEFAULT_MONITOR_LINK = Link.monitor(BusConfig().cell, MonitorConfig().monitor_id)

T = TypeVar("T")
PLC_NS = "urn:tripwire:plc"

for _noisy in ("pymodbus", "asyncua"):
    logging.getLogger(_noisy).setLevel(logging.CRITICAL)





class _LoopThread:
    """An asyncio loop on a thread, running ``main`` until ``stop()``."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    async def setup(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def teardown(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        try:
            await self.setup()
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await self.teardown()

    def start(self) -> None:
        # A daemon, so a server that never comes up cannot keep pytest from exiting.
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name=self._name,
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"{self._name} did not start")
        if self._error is not None:
            self._thread.join(5)
            raise self._error

    def stop(self) -> None:
        if self.loop is not None and self._stop_event is not None and self._thread is not None:
            self.loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(10)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)


class ModbusPlc(_LoopThread):
    PERMIT, HEARTBEAT, TRIP_REASON, WATCHDOG, STATE = 0, 0, 1, 2, 3

    def __init__(self, watchdog_ms: int = 300, unit: int = 1) -> None:
        super().__init__("modbus-plc")
        self.watchdog_ms = watchdog_ms
        self.unit = unit
        self.port = 0
        self.server: Any = None

    async def setup(self) -> None:
        from pymodbus.datastore import (
            ModbusDeviceContext,
            ModbusSequentialDataBlock,
            ModbusServerContext,
        )
        from pymodbus.server import ModbusTcpServer

        # Block address 1 holds protocol address 0 (pymodbus' one-based data blocks).
        device = ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [False] * 16),
                                     hr=ModbusSequentialDataBlock(1, [0] * 16))
        context = ModbusServerContext({self.unit: device})
        self.server = ModbusTcpServer(context, address=("127.0.0.1", 0))
        await self.server.serve_forever(background=True)
        self.port = int(self.server.transport.sockets[0].getsockname()[1])
        await self.server.async_setValues(self.unit, 6, self.WATCHDOG, [self.watchdog_ms])

    async def teardown(self) -> None:
        # A client that connected and hung up just before teardown may still be in the
        # middle of asyncio's accept; closing the listener then (as shutdown does) makes
        # that accept fail and leak its socket (Python 3.11). Let pending accepts and EOFs
        # finish, shut down, then let the last close callbacks run.
        await asyncio.sleep(0.02)
        await self.server.shutdown()
        await asyncio.sleep(0.02)

    def coil(self, address: int = 0) -> bool:
        return bool(self.call(self.server.async_getValues(self.unit, 1, address, 1))[0])

    def register(self, address: int) -> int:
        return int(self.call(self.server.async_getValues(self.unit, 3, address, 1))[0])

    def set_register(self, address: int, value: int) -> None:
        self.call(self.server.async_setValues(self.unit, 6, address, [value]))

    def set_coil(self, address: int, value: bool) -> None:
        self.call(self.server.async_setValues(self.unit, 5, address, [value]))


class OpcuaPlc(_LoopThread):
    def __init__(self, watchdog_ms: int = 300) -> None:
        super().__init__("opcua-plc")
        self.watchdog_ms = watchdog_ms
        self.url = ""
        self.server: Any = None
        self.nodes: dict[str, Any] = {}

    async def setup(self) -> None:
        from asyncua import Server, ua

        server = Server()
        await server.init()
        server.set_endpoint("opc.tcp://127.0.0.1:0/tripwire-plc")
        idx = await server.register_namespace(PLC_NS)
        plc = await server.nodes.objects.add_object(ua.NodeId("PLC", idx), ua.QualifiedName("PLC", idx))
        spec = {
            "Permit": (False, ua.VariantType.Boolean, True),
            "Heartbeat": (0, ua.VariantType.UInt16, True),
            "TripReason": (0, ua.VariantType.UInt16, True),
            "WatchdogMs": (self.watchdog_ms, ua.VariantType.UInt32, False),
            "State": (0, ua.VariantType.UInt16, False),
        }
        for name, (value, vtype, writable) in spec.items():
            node = await plc.add_variable(ua.NodeId(name, idx), ua.QualifiedName(name, idx),
                                          ua.Variant(value, vtype))
            if writable:
                await node.set_writable()
            self.nodes[name] = node
        await server.start()
        self.server = server
        self.url = f"opc.tcp://127.0.0.1:{server.bserver.port}/tripwire-plc"

    async def teardown(self) -> None:
        await self.server.stop()

    def value(self, name: str) -> Any:
        return self.call(self.nodes[name].read_value())

    def data_value(self, name: str) -> Any:
        return self.call(self.nodes[name].read_data_value())

    def set_value(self, name: str, value: Any) -> None:
        from asyncua import ua

        vtype = {"Permit": ua.VariantType.Boolean, "WatchdogMs": ua.VariantType.UInt32}.get(
            name, ua.VariantType.UInt16)
        self.call(self.server.write_attribute_value(
            self.nodes[name].nodeid, ua.DataValue(ua.Variant(value, vtype))))


class FreezableProxy:
    """Relays TCP to ``upstream``; after ``freeze()`` it swallows requests and never answers."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._run, name="freezable-proxy")

    def start(self) -> None:
        self._thread.start()

    def freeze(self) -> None:
        self.frozen.set()

    def unfreeze(self) -> None:
        """Relay again (what was swallowed stays lost)."""
        self.frozen.clear()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.02):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        client, _addr = self._listener.accept()
                        upstream = socket.create_connection(self.upstream, timeout=2)
                        for s in (client, upstream):
                            s.setblocking(False)
                            sel.register(s, selectors.EVENT_READ, None)
                        peers[client], peers[upstream] = upstream, client
                        continue
                    if sock not in peers:
                        continue  # closed with its peer earlier in this same batch of events
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if data and not self.frozen.is_set():
                        try:
                            peers[sock].sendall(data)
                        except OSError:
                            data = b""
                    if not data:
                        other = peers.pop(sock)
                        peers.pop(other, None)
                        for s in (sock, other):
                            sel.unregister(s)
                            s.close()
        finally:
            for s in list(peers):
                s.close()
            sel.close()
            self._listener.close()


class FakeMonitor:
    """Publishes heartbeats every ``period_s`` and any verdicts queued by the test."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, period_s: float = 0.01,
                 link: Link = DEFAULT_MONITOR_LINK) -> None:
        self.ctx = ctx
        self.endpoint = endpoint
        self.period_s = period_s
        self.link = link
        self.heartbeats = threading.Event()
        self.heartbeats.set()
        self._queue: queue.Queue[bytes | list[bytes]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-monitor")
        self.verdict_seq = 0
        self.model_error = False

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("fake monitor did not bind")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def send_raw(self, data: bytes) -> None:
        self._queue.put(data)

    def send_batch(self, verdicts: list[Verdict]) -> None:
        """Several verdicts as one message of a part each, as the monitor sends a batch's."""
        self._queue.put([encode_verdict(v, self.link) for v in verdicts])

    def verdict(self, level: Level = Level.OK, *, seq: int = 1) -> Verdict:
        """The next verdict (its ``verdict_seq`` taken), not sent."""
        now = time.monotonic_ns()
        self.verdict_seq += 1
        return Verdict(source_id=1, seq=seq, verdict_seq=self.verdict_seq, t_acq_ns=now,
                       t_verdict_ns=now, score=1.0 if level is Level.OK else 9.0, threshold=2.0,
                       level=level, flags=VerdictFlag.NONE, tier=0, model_id=b"test",
                       channels=())

    def send_verdict(self, level: Level = Level.OK, *, t_acq_ns: int | None = None, seq: int = 1,
                     source_id: int = 1, score: float = 1.0, threshold: float = 2.0,
                     channels: tuple[str, ...] = ("vib_x",), verdict_seq: int | None = None) -> Verdict:
        now = time.monotonic_ns()
        if verdict_seq is None:
            self.verdict_seq += 1
            verdict_seq = self.verdict_seq
        v = Verdict(source_id=source_id, seq=seq, verdict_seq=verdict_seq,
                    t_acq_ns=now if t_acq_ns is None else t_acq_ns, t_verdict_ns=now, score=score,
                    threshold=threshold, level=level, flags=VerdictFlag.NONE, tier=0,
                    model_id=b"test", channels=channels)
        self._queue.put(encode_verdict(v, self.link))
        return v

    def _run(self) -> None:
        pub = self.ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(self.endpoint)
        self._ready.set()
        counter = 0
        next_hb = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_hb:
                    next_hb = now + self.period_s
                    if self.heartbeats.is_set():
                        counter += 1
                        flags = HeartbeatFlag.MODEL_ERROR if self.model_error else HeartbeatFlag.NONE
                        pub.send(encode_heartbeat(Heartbeat(1, counter, time.monotonic_ns(), counter,
                                                            counter, 0, 0, flags), self.link))
                try:
                    data = self._queue.get(timeout=max(0.0, min(self.period_s, next_hb - now)))
                except queue.Empty:
                    continue
                if isinstance(data, list):
                    pub.send_multipart(data)
                else:
                    pub.send(data)
        finally:
            pub.close(0)


@pytest.fixture
def modbus_plc() -> Iterator[ModbusPlc]:
    plc = ModbusPlc()
    plc.start()
    yield plc
    plc.stop()


@pytest.fixture(scope="module")
def opcua_server() -> Iterator[OpcuaPlc]:
    plc = OpcuaPlc()
    plc.start()
    yield plc
    plc.stop()


@pytest.fixture
def opcua_plc(opcua_server: OpcuaPlc) -> OpcuaPlc:
    """The module's OPC-UA PLC with its values back at their defaults."""
    for name, value in (("Permit", False), ("Heartbeat", 0), ("TripReason", 0),
                        ("WatchdogMs", opcua_server.watchdog_ms)):
        opcua_server.set_value(name, value)
    return opcua_server


@pytest.fixture
def zmq_ctx() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)
