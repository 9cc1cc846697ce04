"""OPC-UA writer details that strict PLCs care about."""

from __future__ import annotations

from asyncua import ua
from asyncua.ua.ua_binary import struct_to_binary

from interlock.opcua_writer import OpcuaStopWriter, is_good, value_only
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
