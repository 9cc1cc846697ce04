"""Modbus TCP framing for the stop path: bytes in, bytes out, nothing else.

We own this codec (rather than a library client) because the stop write's timeout and its
confirmation are safety-relevant: a reply counts only when every field matches the request
it answers. Supported: FC01 read coils, FC03 read holding registers, FC05 write single coil,
FC06 write single register.

An ADU is the 7-byte MBAP header (transaction id, protocol id 0, length = bytes that follow
the length field, unit id) followed by the PDU (function code, data). ``decode_reply``
raises a ``ModbusReplyError`` subclass for anything that is not a confirmation.

Pure core: no sockets, no clocks, no imports beyond the standard library and our errors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from interlock.errors import (
    ModbusBadEcho,
    ModbusExceptionReply,
    ModbusMismatch,
    ModbusTruncated,
)

MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
MBAP_SIZE = MBAP.size  # 7
PROTOCOL_ID = 0
MAX_PDU = 253
COIL_ON = 0xFF00
COIL_OFF = 0x0000
MAX_READ_COILS = 2000
MAX_READ_REGISTERS = 125


class Function(IntEnum):
    READ_COILS = 0x01
    READ_HOLDING_REGISTERS = 0x03
    WRITE_SINGLE_COIL = 0x05
    WRITE_SINGLE_REGISTER = 0x06


class ExceptionCode(IntEnum):
    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    NEGATIVE_ACKNOWLEDGE = 0x07
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_FAILED_TO_RESPOND = 0x0B


def exception_name(code: int) -> str:
    try:
        return ExceptionCode(code).name
    except ValueError:
        return f"UNKNOWN_{code:#04x}"


@dataclass(frozen=True, slots=True)
class Request:
    """One request and everything needed to check its reply.

    ``value`` is the quantity for reads and the written value for writes (for a coil,
    the wire value 0xFF00 or 0x0000).
    """

    transaction_id: int
    unit: int
    function: Function
    address: int
    value: int

    def encode(self) -> bytes:
        pdu = struct.pack(">BHH", int(self.function), self.address, self.value)
        return MBAP.pack(self.transaction_id, PROTOCOL_ID, 1 + len(pdu), self.unit) + pdu


def _check_common(transaction_id: int, unit: int, address: int) -> None:
    if not 0 <= transaction_id <= 0xFFFF:
        raise ValueError(f"transaction_id out of range: {transaction_id}")
    if not 0 <= unit <= 0xFF:
        raise ValueError(f"unit out of range: {unit}")
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"address out of range: {address}")


def read_coils(transaction_id: int, unit: int, address: int, count: int) -> Request:
    _check_common(transaction_id, unit, address)
    if not 1 <= count <= MAX_READ_COILS:
        raise ValueError(f"coil count out of range: {count}")
    return Request(transaction_id, unit, Function.READ_COILS, address, count)


def read_holding_registers(transaction_id: int, unit: int, address: int, count: int) -> Request:
    _check_common(transaction_id, unit, address)
    if not 1 <= count <= MAX_READ_REGISTERS:
        raise ValueError(f"register count out of range: {count}")
    return Request(transaction_id, unit, Function.READ_HOLDING_REGISTERS, address, count)


def write_single_coil(transaction_id: int, unit: int, address: int, on: bool) -> Request:
    _check_common(transaction_id, unit, address)
    return Request(transaction_id, unit, Function.WRITE_SINGLE_COIL, address,
                   COIL_ON if on else COIL_OFF)


def write_single_register(transaction_id: int, unit: int, address: int, value: int) -> Request:
    _check_common(transaction_id, unit, address)
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"register value out of range: {value}")
    return Request(transaction_id, unit, Function.WRITE_SINGLE_REGISTER, address, value)


def adu_length(header: bytes) -> int:
    """Total ADU size announced by a 7-byte MBAP header (for a reader that reads in two
    steps). Raises if the header cannot start a valid reply."""
    if len(header) < MBAP_SIZE:
        raise ModbusTruncated(f"{len(header)} header bytes, need {MBAP_SIZE}")
    _tid, protocol, length, _unit = MBAP.unpack_from(header)
    if protocol != PROTOCOL_ID:
        raise ModbusMismatch("protocol", PROTOCOL_ID, protocol)
    if not 2 <= length <= 1 + MAX_PDU:
        raise ModbusMismatch("length", 2, length)
    return 6 + int(length)


def decode_reply(request: Request, adu: bytes) -> tuple[int, ...]:
    """Check ``adu`` answers ``request`` and return its values.

    Reads return the coils (0/1) or registers read; writes return the echoed value.
    """
    if len(adu) < MBAP_SIZE + 1:
        raise ModbusTruncated(f"{len(adu)} bytes, need at least {MBAP_SIZE + 1}")
    tid, protocol, length, unit = MBAP.unpack_from(adu)
    if protocol != PROTOCOL_ID:
        raise ModbusMismatch("protocol", PROTOCOL_ID, protocol)
    if len(adu) - 6 < length:
        raise ModbusTruncated(f"length field says {length}, {len(adu) - 6} bytes follow")
    if len(adu) - 6 != length:
        raise ModbusMismatch("length", len(adu) - 6, length)
    if tid != request.transaction_id:
        raise ModbusMismatch("transaction_id", request.transaction_id, tid)
    if unit != request.unit:
        raise ModbusMismatch("unit", request.unit, unit)
    pdu = adu[MBAP_SIZE:]
    function = pdu[0]
    if function == int(request.function) | 0x80:
        if len(pdu) < 2:
            raise ModbusTruncated("exception reply without a code")
        if len(pdu) != 2:
            raise ModbusMismatch("length", 3, length)
        raise ModbusExceptionReply(function & 0x7F, pdu[1], exception_name(pdu[1]))
    if function != int(request.function):
        raise ModbusMismatch("function", int(request.function), function)
    if request.function in (Function.WRITE_SINGLE_COIL, Function.WRITE_SINGLE_REGISTER):
        return (_decode_echo(request, pdu),)
    return _decode_read(request, pdu)


def _decode_echo(request: Request, pdu: bytes) -> int:
    if len(pdu) < 5:
        raise ModbusTruncated(f"echo PDU has {len(pdu)} bytes, need 5")
    if len(pdu) != 5:
        raise ModbusMismatch("pdu_length", 5, len(pdu))
    _fc, address, value = struct.unpack(">BHH", pdu)
    if address != request.address:
        raise ModbusBadEcho(f"address {address} echoed, {request.address} written")
    if value != request.value:
        raise ModbusBadEcho(f"value {value:#06x} echoed, {request.value:#06x} written")
    if request.function == Function.WRITE_SINGLE_COIL:
        return 1 if value == COIL_ON else 0
    return int(value)


def _decode_read(request: Request, pdu: bytes) -> tuple[int, ...]:
    if len(pdu) < 2:
        raise ModbusTruncated("read reply without a byte count")
    count = request.value
    expected = (count + 7) // 8 if request.function == Function.READ_COILS else 2 * count
    byte_count = pdu[1]
    if byte_count != expected:
        raise ModbusMismatch("byte_count", expected, byte_count)
    data = pdu[2:]
    if len(data) < byte_count:
        raise ModbusTruncated(f"{len(data)} data bytes, byte count says {byte_count}")
    if len(data) != byte_count:
        raise ModbusMismatch("pdu_length", 2 + byte_count, len(pdu))
    if request.function == Function.READ_COILS:
        return tuple((data[i // 8] >> (i % 8)) & 1 for i in range(count))
    return struct.unpack(f">{count}H", data)


def encode_reply(request: Request, values: tuple[int, ...]) -> bytes:
    """A well-formed reply to ``request`` (the server side; used by tests and fakes)."""
    if request.function in (Function.WRITE_SINGLE_COIL, Function.WRITE_SINGLE_REGISTER):
        pdu = struct.pack(">BHH", int(request.function), request.address, request.value)
    elif request.function == Function.READ_COILS:
        data = bytearray((len(values) + 7) // 8)
        for i, bit in enumerate(values):
            if bit:
                data[i // 8] |= 1 << (i % 8)
        pdu = struct.pack(">BB", int(request.function), len(data)) + bytes(data)
    else:
        pdu = struct.pack(">BB", int(request.function), 2 * len(values))
        pdu += struct.pack(f">{len(values)}H", *values)
    return MBAP.pack(request.transaction_id, PROTOCOL_ID, 1 + len(pdu), request.unit) + pdu


def encode_exception(request: Request, code: int) -> bytes:
    """An exception reply to ``request`` (server side; used by tests)."""
    pdu = bytes((int(request.function) | 0x80, code))
    return MBAP.pack(request.transaction_id, PROTOCOL_ID, 1 + len(pdu), request.unit) + pdu
