"""Modbus TCP stop writer: a blocking client on a plain socket, with exact deadlines.

Why not a library client: pymodbus' client defaults allow seconds per failed write
(timeouts times retries) and reuse a connection after a timeout, so a late reply could be
taken for the answer to the next request. Here every request has one deadline that covers
reconnect, send and the whole reply; any error closes the socket, and the next request
opens a fresh one. A reply counts only after ``modbus_codec.decode_reply`` checked every
field, including the FC05/FC06 echo.

Shell: reads ``time.monotonic_ns()`` for deadlines. It must not decide anything beyond
"confirmed or not"; retry and failover policy belong to the interlock loop.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType

from interlock import modbus_codec as codec
from interlock.errors import (
    BadReply,
    ModbusExceptionReply,
    ModbusReplyError,
    StopWriteFailed,
    TargetUnavailable,
    WriteRefused,
    WriteTimeout,
)
from tripwire.config import ModbusTargetConfig

MS = 1_000_000


class ModbusStopWriter:
    """``StopSink`` over Modbus TCP. Used from one thread. Connects on ``connect()`` or
    lazily on the first request; ``close()`` (or leaving ``with``) releases the socket."""

    def __init__(self, cfg: ModbusTargetConfig, *, name: str = "modbus",
                 connect_timeout_ms: float = 250.0) -> None:
        self.cfg = cfg
        self.name = name
        self.timeout_ms = cfg.timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self._sock: socket.socket | None = None
        self._tid = 0
        self._closed = False

    # -- lifecycle --
    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self, timeout_ms: float | None = None) -> None:
        self._check_open()
        self._drop()
        ms = self.connect_timeout_ms if timeout_ms is None else timeout_ms
        self._open(time.monotonic_ns() + int(ms * MS))

    def close(self) -> None:
        self._drop()
        self._closed = True

    def __enter__(self) -> "ModbusStopWriter":
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- StopSink --
    def write_permit(self, on: bool, timeout_ms: float | None = None) -> None:
        c = self.cfg
        self._transact(lambda tid: codec.write_single_coil(tid, c.unit, c.permit_coil, on), timeout_ms)

    def write_heartbeat(self, value: int, timeout_ms: float | None = None) -> None:
        c = self.cfg
        self._transact(lambda tid: codec.write_single_register(tid, c.unit, c.heartbeat_register,
                                                               value & 0xFFFF), timeout_ms)

    def write_trip_reason(self, code: int, timeout_ms: float | None = None) -> None:
        c = self.cfg
        self._transact(lambda tid: codec.write_single_register(tid, c.unit, c.trip_reason_register,
                                                               code & 0xFFFF), timeout_ms)

    def read_watchdog_ms(self, timeout_ms: float | None = None) -> int:
        c = self.cfg
        values = self._transact(
            lambda tid: codec.read_holding_registers(tid, c.unit, c.watchdog_register, 1), timeout_ms)
        return int(values[0])

    def read_permit(self, timeout_ms: float | None = None) -> bool:
        c = self.cfg
        values = self._transact(lambda tid: codec.read_coils(tid, c.unit, c.permit_coil, 1), timeout_ms)
        return bool(values[0])

    def submit_heartbeat(self, value: int) -> Future[None]:
        """A plain-socket write takes well under a millisecond: done inline, result in a
        completed future so the caller treats both sinks alike."""
        fut: Future[None] = Future()
        try:
            self.write_heartbeat(value)
        except StopWriteFailed as e:
            fut.set_exception(e)
        else:
            fut.set_result(None)
        return fut

    # -- internals --
    def _check_open(self) -> None:
        if self._closed:
            raise TargetUnavailable(self.name, "writer is closed")

    def _open(self, deadline_ns: int) -> None:
        left_s = (deadline_ns - time.monotonic_ns()) / 1e9
        if left_s <= 0:
            raise TargetUnavailable(self.name, "no time left to connect")
        try:
            sock = socket.create_connection((self.cfg.host, self.cfg.port), timeout=left_s)
        except TimeoutError:
            raise TargetUnavailable(self.name, f"connect timed out ({left_s * 1e3:.1f} ms)") from None
        except OSError as e:
            raise TargetUnavailable(self.name, f"connect failed: {e.strerror or e}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            sock.close()
            raise TargetUnavailable(self.name, f"socket option failed: {e}") from None
        self._sock = sock

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _next_tid(self) -> int:
        self._tid = (self._tid + 1) & 0xFFFF
        return self._tid

    def _transact(self, make: Callable[[int], codec.Request], timeout_ms: float | None) -> tuple[int, ...]:
        self._check_open()
        ms = self.timeout_ms if timeout_ms is None else timeout_ms
        deadline_ns = time.monotonic_ns() + int(ms * MS)
        if self._sock is None:
            self._open(deadline_ns)
        sock = self._sock
        if sock is None:  # pragma: no cover - _open either sets it or raises
            raise TargetUnavailable(self.name, "not connected")
        request = make(self._next_tid())
        try:
            self._send(sock, request.encode(), deadline_ns)
            header = self._recv_exact(sock, codec.MBAP_SIZE, deadline_ns)
            total = codec.adu_length(header)
            adu = header + self._recv_exact(sock, total - codec.MBAP_SIZE, deadline_ns)
            return codec.decode_reply(request, adu)
        except ModbusExceptionReply as e:
            self._drop()
            raise WriteRefused(self.name, str(e)) from None
        except ModbusReplyError as e:
            self._drop()
            raise BadReply(self.name, f"{e.reason}: {e}") from None
        except TimeoutError:
            self._drop()
            raise WriteTimeout(self.name, f"no reply within {ms:.1f} ms") from None
        except OSError as e:
            self._drop()
            raise TargetUnavailable(self.name, f"connection lost: {e.strerror or e}") from None

    @staticmethod
    def _left_s(deadline_ns: int) -> float:
        left = (deadline_ns - time.monotonic_ns()) / 1e9
        if left <= 0:
            raise TimeoutError
        return left

    def _send(self, sock: socket.socket, data: bytes, deadline_ns: int) -> None:
        sock.settimeout(self._left_s(deadline_ns))
        sock.sendall(data)

    def _recv_exact(self, sock: socket.socket, n: int, deadline_ns: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            sock.settimeout(self._left_s(deadline_ns))
            k = sock.recv_into(view[got:])
            if k == 0:
                raise ConnectionResetError("peer closed the connection")
            got += k
        return bytes(buf)
