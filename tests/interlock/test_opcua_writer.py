"""OPC-UA writer details that strict PLCs care about."""

from __future__ import annotations

import struct

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from interlock.errors import BadReply, WriteRefused
from interlock.opcua_writer import OpcuaStopWriter, check_write_response, is_good, value_only
from tests.interlock.conftest import PLC_NS, OpcuaPlc
from tripwire.config import OpcuaTargetConfig


def test_value_only_datavalue_carries_no_status_or_timestamps() -> None:
    dv = value_only(True, ua.VariantType.Boolean)
    wire = struct_to_binary(dv)
    assert wire[0] == 0x01  # encoding mask: Value only
    assert wire[1] == int(ua.VariantType.Boolean)
    assert dv.SourceTimestamp is None and dv.ServerTimestamp is None and dv.StatusCode is None


def test_only_good_counts() -> None:
    assert is_good(ua.StatusCode(ua.StatusCodes.Good))
    assert not is_good(ua.StatusCode(ua.StatusCodes.GoodCompletesAsynchronously))
    assert not is_good(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue))
    assert not is_good(ua.StatusCode(ua.StatusCodes.BadTypeMismatch))


def test_written_value_has_no_source_timestamp_on_the_server(opcua_server: OpcuaPlc) -> None:
    cfg = OpcuaTargetConfig(url=opcua_server.url, namespace=PLC_NS, timeout_ms=500.0)
    with OpcuaStopWriter(cfg, connect_timeout_ms=3000) as w:
        w.connect()
        w.write_permit(True)
        dv = opcua_server.data_value("Permit")
        assert dv.Value.Value is True
        assert dv.Value.VariantType == ua.VariantType.Boolean
        assert dv.SourceTimestamp is None  # we sent none; strict servers would refuse one
        w.write_permit(False)


def test_wrong_namespace_refuses_to_connect(opcua_server: OpcuaPlc) -> None:
    cfg = OpcuaTargetConfig(url=opcua_server.url, namespace="urn:not:there", timeout_ms=500.0)
    with OpcuaStopWriter(cfg, connect_timeout_ms=3000) as w:
        try:
            w.connect()
        except Exception as e:  # noqa: BLE001 - we check the type below
            assert type(e).__name__ == "TargetUnavailable"
        else:
            raise AssertionError("connected without the PLC namespace")
        assert not w.connected


def _write_response(service: int, results: list[ua.StatusCode]) -> ua.WriteResponse:
    response = ua.WriteResponse()
    response.ResponseHeader.ServiceResult = ua.StatusCode(service)
    response.Results = results
    return response


@pytest.mark.parametrize("service", [ua.StatusCodes.GoodCompletesAsynchronously, ua.StatusCodes.GoodCallAgain,
                                     ua.StatusCodes.UncertainLastUsableValue, ua.StatusCodes.BadTimeout])
def test_a_write_response_header_that_is_not_plain_good_refuses(service: int) -> None:
    # asyncua's own write() lets a header of Good severity through and returns only the
    # results; the stop writer judges the header itself.
    good = [ua.StatusCode(ua.StatusCodes.Good)]
    with pytest.raises(WriteRefused, match="service result"):
        check_write_response("opcua", "Permit", _write_response(service, good))
    check_write_response("opcua", "Permit", _write_response(ua.StatusCodes.Good, good))


def test_a_service_fault_decoded_as_a_write_response_is_no_confirmation() -> None:
    # A ServiceFault of Good severity is not raised by asyncua; its bytes (here followed by
    # what looks like one Good result) decode as a WriteResponse carrying the fault's type id.
    fault = ua.ServiceFault()
    fault.ResponseHeader.ServiceResult = ua.StatusCode(ua.StatusCodes.GoodCompletesAsynchronously)
    wire = struct_to_binary(fault) + struct.pack("<iIi", 1, 0, -1)  # [Good], no diagnostics
    response = struct_from_binary(ua.WriteResponse, Buffer(wire))
    assert response.Results == [ua.StatusCode(ua.StatusCodes.Good)]
    with pytest.raises(BadReply, match="response type"):
        check_write_response("opcua", "Permit", response)
