"""Fuzzing our Modbus TCP reply decoder (``interlock.modbus_codec``) on the stop path.

An input is two parts: the request ADU we sent and the bytes the device answered. The reply is
read the way ``ModbusStopWriter`` reads it (7-byte MBAP header, ``adu_length``, the rest, then
``decode_reply``); the whole answer is also given to ``decode_reply`` unframed. Both may only
raise ``ModbusReplyError``. Oracle for an accepted reply, independent of the decoder: a write
is confirmed only by the exact echo of its request; a read only by the ADU that a well-formed
reply carrying the returned values would be (coil padding bits aside).
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock import modbus_codec as codec
from interlock.errors import ModbusMismatch, ModbusReplyError
from tests.fuzz import harness

pytestmark = pytest.mark.timeout(harness.TEST_TIMEOUT_S)

DECODER = "modbus"
WRITES = (codec.Function.WRITE_SINGLE_COIL, codec.Function.WRITE_SINGLE_REGISTER)


def request_from(adu: bytes) -> codec.Request:
    """The inverse of ``Request.encode`` (the corpus stores the request as sent)."""
    tid, _proto, _length, unit = codec.MBAP.unpack_from(adu)
    fc, address, value = struct.unpack_from(">BHH", adu, codec.MBAP_SIZE)
    return codec.Request(tid, unit, codec.Function(fc), address, value)


def _reason(e: ModbusReplyError) -> str:
    return f"{e.reason}:{e.field}" if isinstance(e, ModbusMismatch) else e.reason


def expected_adu(request: codec.Request, values: tuple[int, ...]) -> bytes:
    if request.function in WRITES:
        return request.encode()
    return codec.encode_reply(request, values)


def _check_confirmation(request: codec.Request, adu: bytes, values: tuple[int, ...]) -> None:
    if request.function in WRITES:
        assert adu == request.encode(), "a write confirmed by something other than its echo"
        return
    want = expected_adu(request, values)
    assert len(adu) == len(want)
    if request.function == codec.Function.READ_COILS:
        assert all(v in (0, 1) for v in values) and len(values) == request.value
        used = request.value % 8
        mask = (1 << used) - 1 if used else 0xFF
        assert adu[:-1] == want[:-1] and (adu[-1] & mask) == want[-1]
    else:
        assert adu == want, "a read confirmed by an ADU that is not its reply"


def classify(parts: harness.Parts, workdir: Path) -> str:
    if len(parts) != 2:
        return "reject bad_parts"
    request = request_from(parts[0])
    answer = parts[1]
    try:  # unframed: the decoder alone
        values = codec.decode_reply(request, answer)
    except ModbusReplyError:
        pass
    else:
        _check_confirmation(request, answer, values)
    # framed, as the writer reads a reply off the socket
    if len(answer) < codec.MBAP_SIZE:
        return "reject truncated"  # the writer waits for more and times out
    try:
        total = codec.adu_length(answer[:codec.MBAP_SIZE])
        adu = answer[:total]
        if len(adu) < total:
            return "reject truncated"
        values = codec.decode_reply(request, adu)
    except ModbusReplyError as e:
        return f"reject {_reason(e)}"
    _check_confirmation(request, adu, values)
    return "accept"


# --- requests and replies -------------------------------------------------------------------


def sample_exchanges() -> list[harness.Parts]:
    reqs = [codec.write_single_coil(7, 1, 0, False), codec.write_single_register(8, 1, 0, 41),
            codec.read_coils(9, 1, 0, 11), codec.read_holding_registers(10, 1, 0, 3)]
    out = [[r.encode(), codec.encode_reply(r, (1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1)[:r.value]
                                           if r.function == codec.Function.READ_COILS
                                           else (300, 0, 65535)[:r.value])] for r in reqs]
    out.append([reqs[0].encode(), codec.encode_exception(reqs[0], 4)])
    return out


def seeds() -> list[harness.Parts]:
    return sample_exchanges() + harness.corpus_parts(DECODER)


@st.composite
def requests(draw: st.DrawFn) -> codec.Request:
    fc = draw(st.sampled_from(list(codec.Function)))
    tid, unit = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFF))
    address = draw(st.integers(0, 0xFFFF))
    if fc == codec.Function.WRITE_SINGLE_COIL:
        return codec.write_single_coil(tid, unit, address, draw(st.booleans()))
    if fc == codec.Function.WRITE_SINGLE_REGISTER:
        return codec.write_single_register(tid, unit, address, draw(st.integers(0, 0xFFFF)))
    top = codec.MAX_READ_COILS if fc == codec.Function.READ_COILS else codec.MAX_READ_REGISTERS
    count = draw(st.one_of(st.integers(1, 17), st.sampled_from((top - 1, top)),
                           st.integers(1, top)))
    if fc == codec.Function.READ_COILS:
        return codec.read_coils(tid, unit, address, count)
    return codec.read_holding_registers(tid, unit, address, count)


@st.composite
def good_reply(draw: st.DrawFn, request: codec.Request) -> bytes:
    if request.function in WRITES:
        return codec.encode_reply(request, ())
    # Values from a drawn seed: a list strategy of up to 2000 elements costs Hypothesis more
    # than the decoder costs to run, and the values themselves matter little here.
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    top = 1 if request.function == codec.Function.READ_COILS else 0xFFFF
    values = tuple(rng.choice((0, top, rng.randint(0, top))) for _ in range(request.value))
    return codec.encode_reply(request, values)


def fix_length(adu: bytes) -> bytes:
    """Make the MBAP length field agree with the bytes that follow it."""
    if len(adu) < codec.MBAP_SIZE:
        return adu
    return adu[:4] + struct.pack(">H", (len(adu) - 6) & 0xFFFF) + adu[6:]


@st.composite
def candidates(draw: st.DrawFn) -> harness.Parts:
    request = draw(requests())
    reply = draw(st.one_of(good_reply(request),
                           st.integers(0, 255).map(lambda c: codec.encode_exception(request, c))))
    how = draw(st.sampled_from(("valid", "bytes", "bytes_length_fixed", "trailing", "other",
                                "raw")))
    if how == "bytes":
        reply = harness.apply_ops(reply, draw(harness.ops_strategy()))
    elif how == "bytes_length_fixed":
        reply = fix_length(harness.apply_ops(reply, draw(harness.ops_strategy())))
    elif how == "trailing":  # the next message glued on
        reply = reply + draw(st.binary(min_size=1, max_size=16))
    elif how == "other":  # a well-formed reply to a different request
        reply = draw(good_reply(draw(requests())))
    elif how == "raw":
        reply = draw(st.binary(max_size=64))
    return [request.encode(), reply]


@harness.fuzz_settings()
@given(parts=candidates())
def test_modbus_reply_decoder_structured(parts: harness.Parts) -> None:
    harness.timed(classify, parts, Path("."))


def test_modbus_reply_decoder_mutation_loop() -> None:
    exchanges = sample_exchanges()

    def fielded(rng: random.Random) -> harness.Parts:
        request, reply = rng.choice(exchanges)
        edited = harness.apply_ops(reply, [harness.random_op(rng)])
        return [request, fix_length(edited) if rng.random() < 0.7 else edited]

    # the reply only is mutated: the request is what we sent, never garbage
    report = harness.mutation_loop(classify, seeds(), Path("."), structured=fielded, only_part=1)
    assert report.outcomes.get("accept", 0) > 0 or report.inputs < 200, report
