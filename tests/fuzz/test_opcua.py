"""Fuzzing how an OPC-UA Write response is judged on the stop path.

An input is the body of the server's reply to our Write (the bytes asyncua's protocol hands
on). It takes the path of ``OpcuaStopWriter._write``: asyncua's ``UASocketProtocol
.check_answer`` (inside ``send_request``: a ServiceFault with a Bad status raises), then
``struct_from_binary`` into a ``WriteResponse`` (``_call``); an exception on the way becomes
``reply_failure(...)`` (as in ``_request``), and the decoded response is judged by
``check_write_response``. So a malformed reply can only end as a failed delivery
(``StopWriteFailed``), never as a success or as any other exception.

Oracle for a confirmed write, read off the decoded response rather than our code: it is a
WriteResponse, its service result's code part (the high 16 bits) is zero, and so is that of
its one and only result.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.client.ua_client import UASocketProtocol
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from hypothesis import given
from hypothesis import strategies as st

from interlock.errors import StopWriteFailed
from interlock.opcua_writer import check_write_response, reply_failure
from tests.fuzz import harness

pytestmark = pytest.mark.timeout(harness.TEST_TIMEOUT_S)

DECODER = "opcua"
WRITE_RESPONSE = ua.WriteResponse().TypeId
CODES = (0x00000000, 0x00000400, 0x002E0000, 0x00A90000, 0x40000000, 0x408F0000, 0x80000000,
         0x80740000, 0x803B0000, 0xC0000000, 0x0000FFFF, 0xFFFFFFFF)


_QUIET = logging.getLogger("tests.fuzz.opcua")  # check_answer warns of every ServiceFault
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class _Protocol:
    """Just enough of a UASocketProtocol for its (unbound) ``check_answer``."""

    logger = _QUIET


def decode_response(body: bytes) -> ua.WriteResponse:
    """asyncua's ServiceFault check, then the decode of ``OpcuaStopWriter._call``."""
    data = Buffer(body)
    UASocketProtocol.check_answer(_Protocol(), data, " in response to WriteRequest")  # type: ignore[arg-type]
    response: ua.WriteResponse = struct_from_binary(ua.WriteResponse, data)
    return response


def deliver(body: bytes) -> None:
    """Our side: raises StopWriteFailed unless the reply confirms the write."""
    try:
        response = decode_response(body)
    except Exception as e:  # noqa: BLE001 - what OpcuaStopWriter._request does with it
        raise reply_failure("opcua", e) from None
    check_write_response("opcua", "Permit", response)


def classify(parts: harness.Parts, workdir: Path) -> str:
    if len(parts) != 1:
        return "reject bad_parts"
    try:
        deliver(parts[0])
    except StopWriteFailed as e:
        return f"reject {type(e).__name__}"
    # confirmed: check it against the decoded response
    response = struct_from_binary(ua.WriteResponse, Buffer(parts[0]))
    assert response.TypeId == WRITE_RESPONSE
    assert int(response.ResponseHeader.ServiceResult.value) & 0xFFFF0000 == 0
    results = response.Results
    assert isinstance(results, list) and len(results) == 1, results
    assert int(results[0].value) & 0xFFFF0000 == 0, f"{int(results[0].value):#010x} taken as Good"
    return "accept"


def write_response(results: list[int] | None, service_result: int = 0, handle: int = 7,
                   strings: list[str] | None = None) -> bytes:
    r = ua.WriteResponse()
    r.ResponseHeader.Timestamp = datetime(2026, 1, 1, tzinfo=UTC)
    r.ResponseHeader.RequestHandle = handle
    r.ResponseHeader.ServiceResult = ua.StatusCode(service_result)
    r.ResponseHeader.StringTable = strings or []
    r.Results = None if results is None else [ua.StatusCode(c) for c in results]
    return struct_to_binary(r)


def service_fault(service_result: int) -> bytes:
    f = ua.ServiceFault()
    f.ResponseHeader.Timestamp = datetime(2026, 1, 1, tzinfo=UTC)
    f.ResponseHeader.ServiceResult = ua.StatusCode(service_result)
    return struct_to_binary(f)


def seeds() -> list[harness.Parts]:
    out = [[write_response([0])], [write_response([0x80740000])], [write_response([0, 0])],
           [write_response([])], [write_response(None)], [write_response([0], 0x80000000)],
           [write_response([0x002E0000])], [write_response([0], strings=["x", "é"])],
           [service_fault(0x80000000)]]
    return out + harness.corpus_parts(DECODER)


# --- structure-aware generation -----------------------------------------------------------

codes = st.one_of(st.sampled_from(CODES), st.integers(0, 2**32 - 1))


@st.composite
def candidates(draw: st.DrawFn) -> harness.Parts:
    kind = draw(st.sampled_from(("write", "write", "write", "fault")))
    if kind == "fault":
        body = service_fault(draw(codes))
    else:
        body = write_response(
            draw(st.one_of(st.none(), st.lists(codes, max_size=3))),
            service_result=draw(codes), handle=draw(st.integers(0, 2**32 - 1)),
            strings=draw(st.lists(st.text(max_size=6), max_size=2)))
    how = draw(st.sampled_from(("valid", "bytes", "bytes", "trailing", "raw")))
    if how == "bytes":
        body = harness.apply_ops(body, draw(harness.ops_strategy()))
    elif how == "trailing":
        body = body + draw(st.binary(min_size=1, max_size=16))
    elif how == "raw":
        body = draw(st.binary(max_size=80))
    return [body]


@harness.fuzz_settings()
@given(parts=candidates())
def test_opcua_write_reply_structured(parts: harness.Parts) -> None:
    harness.timed(classify, parts, Path("."))


def test_opcua_write_reply_mutation_loop() -> None:
    def fielded(rng: random.Random) -> harness.Parts:
        results = None if rng.random() < 0.1 else [
            rng.choice(CODES) if rng.random() < 0.8 else rng.getrandbits(32)
            for _ in range(rng.choice((0, 1, 1, 1, 2)))]
        return [write_response(results, service_result=rng.choice(CODES),
                               handle=rng.getrandbits(32))]

    report = harness.mutation_loop(classify, seeds(), Path("."), structured=fielded)
    assert report.outcomes.get("accept", 0) > 0 or report.inputs < 200, report
