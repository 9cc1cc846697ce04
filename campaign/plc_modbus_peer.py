"""A small Modbus TCP PLC on plain sockets whose stop replies can be made wrong on purpose.

It serves what the interlock uses (FC01 read coils, FC03 read holding registers, FC05
write single coil, FC06 write single register) over a tiny register map: coil
``permit_coil``, holding registers heartbeat, trip reason and watchdog (read-only). Replies
are encoded by our own codec (``interlock.modbus_codec``). While ``fault`` is set, the stop
write (FC05 permit := 0) gets that reply instead of the confirmation:

    exception_0xNN   the exception reply with code NN (0x01..0x0B)
    wrong_tid        the confirmation with another transaction id
    wrong_unit       the confirmation with another unit id
    wrong_function   an FC06-shaped echo for the FC05 request
    wrong_protocol   protocol id 1 in the MBAP header
    bad_echo_value   the echo of the other coil value
    bad_echo_address the echo of another address
    truncated_header 5 bytes of the reply, then the connection closes
    truncated_body   the header promising 6 bytes, 2 of them sent, then silence
    short_pdu        a consistent header around a 3-byte echo PDU
    late             the right confirmation, ``late_s`` after the request
    silent           no reply at all

A faulted stop write is not applied to the register map (the PLC did not confirm it).
Binds 127.0.0.1 on a port the kernel picks; one thread per connection; campaign shell code.
"""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType

from interlock import modbus_codec as codec

EXCEPTION_FAULTS = tuple(f"exception_{code:#04x}" for code in range(0x01, 0x0C))
REPLY_FAULTS = ("wrong_tid", "wrong_unit", "wrong_function", "wrong_protocol", "bad_echo_value",
                "bad_echo_address", "truncated_header", "truncated_body", "short_pdu", "late",
                "silent")
FAULTS = EXCEPTION_FAULTS + REPLY_FAULTS
POLL_S = 0.05


class ScriptedModbusPlc:
    def __init__(self, *, unit: int = 1, permit_coil: int = 0, heartbeat_register: int = 0,
                 trip_reason_register: int = 1, watchdog_register: int = 2, watchdog_ms: int = 300,
                 late_s: float = 0.2) -> None:
        self.unit = unit
        self.permit_coil = permit_coil
        self.registers = {heartbeat_register: 0, trip_reason_register: 0, watchdog_register: watchdog_ms}
        self._writable = {heartbeat_register, trip_reason_register}
        self.permit = False
        self.fault: str | None = None
        self.late_s = late_s
        self.stop_writes = 0  # stop writes answered with the fault
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_S)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="scripted-modbus-plc", daemon=True)

    def __enter__(self) -> "ScriptedModbusPlc":
        self._acceptor.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
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
            except OSError:
                return
            self._threads = [t for t in self._threads if t.is_alive()]
            t = threading.Thread(target=self._serve, args=(conn,), name="scripted-modbus-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _recv_exact(self, conn: socket.socket, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            if self._stop.is_set():
                return None
            try:
                chunk = conn.recv(n - len(buf))
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(POLL_S)
        with conn:
            while not self._stop.is_set():
                header = self._recv_exact(conn, codec.MBAP_SIZE)
                if header is None:
                    return
                tid, _protocol, length, unit = codec.MBAP.unpack(header)
                body = self._recv_exact(conn, length - 1) if length > 1 else b""
                if body is None or len(body) != 5:
                    return  # not a request this PLC knows: hang up
                fc, address, value = struct.unpack(">BHH", body)
                reply, delay_s, close = self._answer(tid, unit, fc, address, value)
                if delay_s and self._stop.wait(delay_s):
                    return
                try:
                    if reply:
                        conn.sendall(reply)
                except OSError:
                    return
                if close:
                    return

    def _answer(self, tid: int, unit: int, fc: int, address: int, value: int) -> tuple[bytes, float, bool]:
        """(reply bytes, delay before sending, hang up after)."""
        try:
            function = codec.Function(fc)
        except ValueError:
            pdu = bytes((fc | 0x80, codec.ExceptionCode.ILLEGAL_FUNCTION))
            return codec.MBAP.pack(tid, 0, 1 + len(pdu), unit) + pdu, 0.0, False
        req = codec.Request(tid, unit, function, address, value)
        if unit != self.unit:
            return codec.encode_exception(req, codec.ExceptionCode.GATEWAY_PATH_UNAVAILABLE), 0.0, False
        fault = self.fault
        is_stop = function is codec.Function.WRITE_SINGLE_COIL and address == self.permit_coil \
            and value == codec.COIL_OFF
        if is_stop and fault is not None:
            with self._lock:
                self.stop_writes += 1
            return self._faulty(req, fault)
        with self._lock:
            return self._apply(req), 0.0, False

    def _apply(self, req: codec.Request) -> bytes:
        f = req.function
        if f is codec.Function.WRITE_SINGLE_COIL:
            if req.address != self.permit_coil or req.value not in (codec.COIL_ON, codec.COIL_OFF):
                return codec.encode_exception(req, codec.ExceptionCode.ILLEGAL_DATA_ADDRESS)
            self.permit = req.value == codec.COIL_ON
            return codec.encode_reply(req, ())
        if f is codec.Function.WRITE_SINGLE_REGISTER:
            if req.address not in self._writable:
                return codec.encode_exception(req, codec.ExceptionCode.ILLEGAL_DATA_ADDRESS)
            self.registers[req.address] = req.value
            return codec.encode_reply(req, ())
        if f is codec.Function.READ_COILS:
            if req.address != self.permit_coil or req.value != 1:
                return codec.encode_exception(req, codec.ExceptionCode.ILLEGAL_DATA_ADDRESS)
            return codec.encode_reply(req, (int(self.permit),))
        addresses = range(req.address, req.address + req.value)
        if any(a not in self.registers for a in addresses):
            return codec.encode_exception(req, codec.ExceptionCode.ILLEGAL_DATA_ADDRESS)
        return codec.encode_reply(req, tuple(self.registers[a] for a in addresses))

    def _faulty(self, req: codec.Request, fault: str) -> tuple[bytes, float, bool]:
        good = codec.encode_reply(req, ())
        if fault.startswith("exception_"):
            return codec.encode_exception(req, int(fault.removeprefix("exception_"), 16)), 0.0, False
        if fault == "wrong_tid":
            other = codec.Request((req.transaction_id + 1) & 0xFFFF, req.unit, req.function,
                                  req.address, req.value)
            return codec.encode_reply(other, ()), 0.0, False
        if fault == "wrong_unit":
            other = codec.Request(req.transaction_id, (req.unit + 1) & 0xFF, req.function,
                                  req.address, req.value)
            return codec.encode_reply(other, ()), 0.0, False
        if fault == "wrong_function":
            pdu = struct.pack(">BHH", int(codec.Function.WRITE_SINGLE_REGISTER), req.address, req.value)
            return codec.MBAP.pack(req.transaction_id, 0, 1 + len(pdu), req.unit) + pdu, 0.0, False
        if fault == "wrong_protocol":
            return good[:2] + b"\x00\x01" + good[4:], 0.0, False
        if fault in ("bad_echo_value", "bad_echo_address"):
            value = codec.COIL_ON if fault == "bad_echo_value" else req.value
            address = req.address if fault == "bad_echo_value" else (req.address + 1) & 0xFFFF
            pdu = struct.pack(">BHH", int(req.function), address, value)
            return codec.MBAP.pack(req.transaction_id, 0, 1 + len(pdu), req.unit) + pdu, 0.0, False
        if fault == "truncated_header":
            return good[:5], 0.0, True
        if fault == "truncated_body":
            return good[:codec.MBAP_SIZE + 2], 0.0, False
        if fault == "short_pdu":
            pdu = good[codec.MBAP_SIZE:codec.MBAP_SIZE + 3]
            return codec.MBAP.pack(req.transaction_id, 0, 1 + len(pdu), req.unit) + pdu, 0.0, False
        if fault == "late":
            return good, self.late_s, False
        if fault == "silent":
            return b"", 0.0, False
        raise ValueError(f"unknown Modbus reply fault {fault!r}")
