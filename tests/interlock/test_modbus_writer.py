"""Modbus writer against scripted TCP peers: bad replies are never confirmations, a socket
is never reused after an error, and a late reply cannot answer the next request."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from interlock import modbus_codec as codec
from interlock.errors import BadReply, TargetUnavailable, WriteRefused, WriteTimeout
from interlock.modbus_writer import ModbusStopWriter
from tripwire.config import ModbusTargetConfig

# A responder gets (connection number, request ADU) and returns (delay_s, reply bytes).
Responder = Callable[[int, bytes], tuple[float, bytes]]


def _request_of(adu: bytes) -> codec.Request:
    tid, _proto, _len, unit = codec.MBAP.unpack_from(adu)
    fc, address, value = adu[7], int.from_bytes(adu[8:10], "big"), int.from_bytes(adu[10:12], "big")
    return codec.Request(tid, unit, codec.Function(fc), address, value)


class ScriptedPeer:
    """A real TCP server whose replies a test scripts; counts connections."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="scripted-peer")

    def __enter__(self) -> "ScriptedPeer":
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(5)
        for t in self._threads:
            t.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn, self.connections), name="scripted-conn")
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(0.05)
        with conn:
            while not self._stop.is_set():
                try:
                    adu = conn.recv(260)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not adu:
                    return
                delay_s, reply = self.respond(number, adu)
                if self._stop.wait(delay_s) or not reply:  # an empty reply: hang up
                    return
                try:
                    conn.sendall(reply)
                except OSError:
                    return


@pytest.fixture
def writer_for() -> Iterator[Callable[[ScriptedPeer], ModbusStopWriter]]:
    made: list[ModbusStopWriter] = []

    def make(peer: ScriptedPeer) -> ModbusStopWriter:
        made.append(ModbusStopWriter(ModbusTargetConfig(port=peer.port, timeout_ms=200.0)))
        return made[-1]

    yield make
    for w in made:
        w.close()


def test_good_peer_confirms(writer_for: Callable[[ScriptedPeer], ModbusStopWriter]) -> None:
    with ScriptedPeer(lambda n, adu: (0, codec.encode_reply(_request_of(adu), ()))) as peer:
        w = writer_for(peer)
        w.write_permit(False)
        w.write_heartbeat(9)
        assert peer.connections == 1  # one connection kept while all is well


@pytest.mark.parametrize("corrupt", ["tid", "unit", "echo_value", "echo_address", "garbage"])
def test_bad_reply_is_rejected_and_socket_dropped(
        corrupt: str, writer_for: Callable[[ScriptedPeer], ModbusStopWriter]) -> None:
    def respond(n: int, adu: bytes) -> tuple[float, bytes]:
        req = _request_of(adu)
        if n > 1:
            return 0, codec.encode_reply(req, ())
        if corrupt == "tid":
            req = codec.Request((req.transaction_id + 1) & 0xFFFF, req.unit, req.function, req.address, req.value)
        elif corrupt == "unit":
            req = codec.Request(req.transaction_id, req.unit + 1, req.function, req.address, req.value)
        elif corrupt == "echo_value":
            req = codec.Request(req.transaction_id, req.unit, req.function, req.address, codec.COIL_ON)
        elif corrupt == "echo_address":
            req = codec.Request(req.transaction_id, req.unit, req.function, req.address + 1, req.value)
        else:
            return 0, b"\x00\x01\x00\x00\x00\x02\x01\x05"
        return 0, codec.encode_reply(req, ())

    with ScriptedPeer(respond) as peer:
        w = writer_for(peer)
        with pytest.raises(BadReply):
            w.write_permit(False)
        assert not w.connected
        w.write_permit(False)  # a fresh connection, answered correctly
        assert peer.connections == 2


def test_exception_reply_is_refused(writer_for: Callable[[ScriptedPeer], ModbusStopWriter]) -> None:
    def respond(n: int, adu: bytes) -> tuple[float, bytes]:
        return 0, codec.encode_exception(_request_of(adu), codec.ExceptionCode.SERVER_DEVICE_BUSY)

    with ScriptedPeer(respond) as peer:
        w = writer_for(peer)
        with pytest.raises(WriteRefused, match="SERVER_DEVICE_BUSY"):
            w.write_permit(False)


def test_late_reply_never_answers_the_next_request(
        writer_for: Callable[[ScriptedPeer], ModbusStopWriter]) -> None:
    # Connection 1 answers after 400 ms (the writer gives up at 200 ms); connection 2 at once.
    def respond(n: int, adu: bytes) -> tuple[float, bytes]:
        return (0.4 if n == 1 else 0.0), codec.encode_reply(_request_of(adu), ())

    with ScriptedPeer(respond) as peer:
        w = writer_for(peer)
        t0 = time.monotonic()
        with pytest.raises(WriteTimeout):
            w.write_permit(False)
        assert time.monotonic() - t0 < 0.39
        w.write_heartbeat(5)  # must be answered on a new connection, not by the late reply
        assert peer.connections == 2


def test_peer_hanging_up_is_a_failure(writer_for: Callable[[ScriptedPeer], ModbusStopWriter]) -> None:
    with ScriptedPeer(lambda n, adu: (0, b"")) as peer:
        w = writer_for(peer)
        with pytest.raises(TargetUnavailable, match="connection lost"):
            w.write_permit(False)
        assert not w.connected
