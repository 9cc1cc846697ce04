"""Modbus TCP codec: round trips and every rejection, without sockets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock import modbus_codec as codec
from interlock.errors import (
    ModbusBadEcho,
    ModbusExceptionReply,
    ModbusMismatch,
    ModbusReplyError,
    ModbusTruncated,
)


def test_write_single_coil_request_bytes_match_the_spec() -> None:
    req = codec.write_single_coil(0x0102, 1, 0, False)
    assert req.encode() == bytes.fromhex("0102 0000 0006 01 05 0000 0000")
    on = codec.write_single_coil(7, 1, 0x0010, True)
    assert on.encode() == bytes.fromhex("0007 0000 0006 01 05 0010 FF00")


def test_read_holding_registers_request_bytes_match_the_spec() -> None:
    req = codec.read_holding_registers(1, 17, 2, 3)
    assert req.encode() == bytes.fromhex("0001 0000 0006 11 03 0002 0003")


@given(tid=st.integers(0, 0xFFFF), unit=st.integers(0, 255), address=st.integers(0, 0xFFFF),
       on=st.booleans())
def test_coil_write_round_trip(tid: int, unit: int, address: int, on: bool) -> None:
    req = codec.write_single_coil(tid, unit, address, on)
    assert codec.decode_reply(req, codec.encode_reply(req, ())) == (int(on),)


@given(tid=st.integers(0, 0xFFFF), address=st.integers(0, 0xFFFF), value=st.integers(0, 0xFFFF))
def test_register_write_round_trip(tid: int, address: int, value: int) -> None:
    req = codec.write_single_register(tid, 1, address, value)
    assert codec.decode_reply(req, codec.encode_reply(req, ())) == (value,)


@given(values=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=codec.MAX_READ_REGISTERS))
def test_read_registers_round_trip(values: list[int]) -> None:
    req = codec.read_holding_registers(9, 1, 0, len(values))
    assert codec.decode_reply(req, codec.encode_reply(req, tuple(values))) == tuple(values)


@given(bits=st.lists(st.integers(0, 1), min_size=1, max_size=64))
def test_read_coils_round_trip(bits: list[int]) -> None:
    req = codec.read_coils(3, 1, 5, len(bits))
    assert codec.decode_reply(req, codec.encode_reply(req, tuple(bits))) == tuple(bits)


def test_adu_length_reads_the_length_field() -> None:
    req = codec.read_holding_registers(1, 1, 0, 2)
    reply = codec.encode_reply(req, (1, 2))
    assert codec.adu_length(reply[:7]) == len(reply)
    with pytest.raises(ModbusTruncated):
        codec.adu_length(reply[:5])
    with pytest.raises(ModbusMismatch):
        codec.adu_length(struct.pack(">HHHB", 1, 0, 0, 1))  # length below 2
    with pytest.raises(ModbusMismatch):
        codec.adu_length(struct.pack(">HHHB", 1, 0, 300, 1))  # more than a PDU can hold
    with pytest.raises(ModbusMismatch):
        codec.adu_length(struct.pack(">HHHB", 1, 5, 6, 1))  # protocol id


@pytest.mark.parametrize("code", range(0x01, 0x0C))
def test_every_exception_code_is_a_typed_refusal(code: int) -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    with pytest.raises(ModbusExceptionReply) as info:
        codec.decode_reply(req, codec.encode_exception(req, code))
    assert info.value.code == code
    assert info.value.function == 0x05
    expected = codec.ExceptionCode(code).name if code != 0x09 else "UNKNOWN_0x09"
    assert info.value.name == expected


def test_acknowledge_exception_is_not_a_confirmation() -> None:
    req = codec.write_single_register(5, 1, 0, 7)
    with pytest.raises(ModbusExceptionReply):
        codec.decode_reply(req, codec.encode_exception(req, codec.ExceptionCode.ACKNOWLEDGE))


def test_wrong_transaction_id_is_rejected() -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    other = codec.write_single_coil(6, 1, 0, False)
    with pytest.raises(ModbusMismatch) as info:
        codec.decode_reply(req, codec.encode_reply(other, ()))
    assert info.value.field == "transaction_id"


def test_wrong_unit_is_rejected() -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    with pytest.raises(ModbusMismatch) as info:
        codec.decode_reply(req, codec.encode_reply(codec.write_single_coil(5, 2, 0, False), ()))
    assert info.value.field == "unit"


def test_wrong_protocol_is_rejected() -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    reply = bytearray(codec.encode_reply(req, ()))
    reply[2:4] = b"\x00\x01"
    with pytest.raises(ModbusMismatch) as info:
        codec.decode_reply(req, bytes(reply))
    assert info.value.field == "protocol"


def test_wrong_function_is_rejected() -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    reg = codec.write_single_register(5, 1, 0, 0)
    with pytest.raises(ModbusMismatch) as info:
        codec.decode_reply(req, codec.encode_reply(reg, ()))
    assert info.value.field == "function"


def test_exception_for_another_function_is_rejected_as_mismatch() -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    reg = codec.write_single_register(5, 1, 0, 0)
    with pytest.raises(ModbusMismatch):
        codec.decode_reply(req, codec.encode_exception(reg, 2))


@pytest.mark.parametrize("cut", [0, 1, 6, 7, 8, 11])
def test_truncated_write_reply_is_rejected(cut: int) -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    reply = codec.encode_reply(req, ())
    with pytest.raises(ModbusTruncated):
        codec.decode_reply(req, reply[:cut])


def test_truncated_read_reply_is_rejected() -> None:
    req = codec.read_holding_registers(5, 1, 0, 2)
    reply = codec.encode_reply(req, (1, 2))
    with pytest.raises(ModbusTruncated):
        codec.decode_reply(req, reply[:-1])


def test_length_field_shorter_than_bytes_is_rejected() -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    with pytest.raises(ModbusMismatch) as info:
        codec.decode_reply(req, codec.encode_reply(req, ()) + b"\x00")
    assert info.value.field == "length"


def test_truncated_exception_reply_is_rejected() -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    adu = struct.pack(">HHHB", 5, 0, 2, 1) + bytes([0x85])
    with pytest.raises(ModbusTruncated):
        codec.decode_reply(req, adu)


@pytest.mark.parametrize("field", ["address", "value"])
def test_bad_coil_echo_is_rejected(field: str) -> None:
    req = codec.write_single_coil(5, 1, 0, False)
    echoed = (codec.Request(5, 1, codec.Function.WRITE_SINGLE_COIL, 1, codec.COIL_OFF) if field == "address"
              else codec.Request(5, 1, codec.Function.WRITE_SINGLE_COIL, 0, codec.COIL_ON))
    with pytest.raises(ModbusBadEcho):
        codec.decode_reply(req, codec.encode_reply(echoed, ()))


def test_bad_register_echo_is_rejected() -> None:
    req = codec.write_single_register(5, 1, 0, 41)
    with pytest.raises(ModbusBadEcho):
        codec.decode_reply(req, codec.encode_reply(codec.write_single_register(5, 1, 0, 42), ()))


def test_read_reply_with_wrong_byte_count_is_rejected() -> None:
    req = codec.read_holding_registers(5, 1, 0, 2)
    wrong = codec.encode_reply(codec.read_holding_registers(5, 1, 0, 1), (1,))
    with pytest.raises(ModbusMismatch) as info:
        codec.decode_reply(req, wrong)
    assert info.value.field == "byte_count"


@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_confirm_a_stop(data: bytes) -> None:
    req = codec.write_single_coil(0x1234, 1, 0, False)
    good = codec.encode_reply(req, ())
    try:
        codec.decode_reply(req, data)
    except ModbusReplyError:
        return
    assert data == good  # the only bytes accepted are the exact confirmation


@pytest.mark.parametrize("make", [
    lambda: codec.write_single_coil(70000, 1, 0, True),
    lambda: codec.write_single_coil(1, 256, 0, True),
    lambda: codec.write_single_register(1, 1, 0, 70000),
    lambda: codec.read_holding_registers(1, 1, 0, 0),
    lambda: codec.read_holding_registers(1, 1, 0, 126),
    lambda: codec.read_coils(1, 1, -1, 1),
])
def test_out_of_range_requests_are_programmer_errors(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]
