"""One suite every ``StopSink`` passes, run against real servers on loopback:
the Modbus writer against pymodbus, the OPC-UA writer against asyncua."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from interlock.errors import StopWriteFailed, TargetUnavailable, WriteRefused, WriteTimeout
from interlock.modbus_writer import ModbusStopWriter
from interlock.opcua_writer import OpcuaStopWriter
from interlock.sink import PermitReadback, StopSink
from tests.interlock.conftest import PLC_NS, FreezableProxy, ModbusPlc, OpcuaPlc
from tripwire.config import ModbusTargetConfig, OpcuaTargetConfig

TIMEOUT_MS = 500.0  # generous: a loaded 2-core machine must not flake


@dataclass
class Plc:
    """The test's view of the PLC behind a sink."""

    permit: Callable[[], bool]
    heartbeat: Callable[[], int]
    trip_reason: Callable[[], int]
    set_watchdog: Callable[[int], None]
    address: tuple[str, int]


def _modbus_view(plc: ModbusPlc) -> Plc:
    return Plc(lambda: plc.coil(0), lambda: plc.register(0), lambda: plc.register(1),
               lambda v: plc.set_register(2, v), ("127.0.0.1", plc.port))


def _opcua_view(plc: OpcuaPlc) -> Plc:
    port = int(plc.url.split(":")[2].split("/")[0])
    return Plc(lambda: bool(plc.value("Permit")), lambda: int(plc.value("Heartbeat")),
               lambda: int(plc.value("TripReason")), lambda v: plc.set_value("WatchdogMs", v),
               ("127.0.0.1", port))


def _modbus_cfg(port: int) -> ModbusTargetConfig:
    return ModbusTargetConfig(port=port, timeout_ms=TIMEOUT_MS)


def _opcua_cfg(url: str) -> OpcuaTargetConfig:
    return OpcuaTargetConfig(url=url, namespace=PLC_NS, timeout_ms=TIMEOUT_MS)


@pytest.fixture(params=["modbus", "opcua"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env(kind: str, opcua_server: OpcuaPlc,
        request: pytest.FixtureRequest) -> Iterator[tuple[Callable[..., StopSink], Plc]]:
    """(make_sink(**overrides), plc view) for one PLC of the parametrized kind.

    ``opcua_server`` is requested statically so the module's server starts before the
    leak guard takes its snapshot of running threads."""
    made: list[StopSink] = []
    if kind == "modbus":
        plc: Any = request.getfixturevalue("modbus_plc")
        view = _modbus_view(plc)

        def make(**over: Any) -> StopSink:
            cfg = replace(_modbus_cfg(over.pop("port", plc.port)), **over)
            made.append(ModbusStopWriter(cfg, connect_timeout_ms=TIMEOUT_MS))
            return made[-1]
    else:
        plc = request.getfixturevalue("opcua_plc")
        view = _opcua_view(plc)

        def make(**over: Any) -> StopSink:
            url = f"opc.tcp://127.0.0.1:{over.pop('port')}/tripwire-plc" if "port" in over else plc.url
            cfg = replace(_opcua_cfg(url), **over)
            made.append(OpcuaStopWriter(cfg, connect_timeout_ms=3000))
            return made[-1]
    yield make, view
    for sink in made:
        sink.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_permit_writes_are_confirmed_and_land(env: tuple[Callable[..., StopSink], Plc]) -> None:
    make, plc = env
    with make() as sink:
        sink.connect()
        assert sink.connected
        sink.write_permit(True)
        assert plc.permit() is True
        sink.write_permit(False)
        assert plc.permit() is False


def test_permit_reads_back(env: tuple[Callable[..., StopSink], Plc]) -> None:
    make, plc = env
    with make() as sink:
        assert isinstance(sink, PermitReadback)
        sink.connect()
        for on in (True, False):
            sink.write_permit(on)
            assert sink.read_permit() is on and plc.permit() is on


def test_heartbeat_and_trip_reason(env: tuple[Callable[..., StopSink], Plc]) -> None:
    make, plc = env
    with make() as sink:
        sink.connect()
        sink.write_heartbeat(65535)
        assert plc.heartbeat() == 65535
        sink.write_heartbeat(65536)  # a 16-bit register: wraps
        assert plc.heartbeat() == 0
        sink.write_trip_reason(4)
        assert plc.trip_reason() == 4


def test_submit_heartbeat_resolves(env: tuple[Callable[..., StopSink], Plc]) -> None:
    make, plc = env
    with make() as sink:
        sink.connect()
        fut = sink.submit_heartbeat(1234)
        assert fut.result(timeout=5) is None
        assert plc.heartbeat() == 1234


def test_read_watchdog(env: tuple[Callable[..., StopSink], Plc]) -> None:
    make, plc = env
    with make() as sink:
        sink.connect()
        assert sink.read_watchdog_ms() == 300
        plc.set_watchdog(0)
        assert sink.read_watchdog_ms() == 0


def test_unreachable_target_fails_fast(env: tuple[Callable[..., StopSink], Plc]) -> None:
    make, _plc = env
    with make(port=_free_port()) as sink:
        t0 = time.monotonic()
        with pytest.raises(TargetUnavailable):
            sink.connect()
        with pytest.raises(StopWriteFailed):
            sink.write_permit(False)
        assert time.monotonic() - t0 < 5
        assert not sink.connected
        failed = sink.submit_heartbeat(1)
        assert isinstance(failed.exception(timeout=5), StopWriteFailed)


def test_refused_write_is_not_a_confirmation(kind: str, env: tuple[Callable[..., StopSink], Plc]) -> None:
    make, _plc = env
    # Modbus: a coil outside the device's map (exception 02). OPC-UA: a Boolean into the
    # UInt32 watchdog node (Bad type mismatch).
    over = {"permit_coil": 500} if kind == "modbus" else {"permit_node": "WatchdogMs"}
    with make(**over) as sink:
        sink.connect()
        with pytest.raises(WriteRefused):
            sink.write_permit(False)


def test_silent_plc_times_out_within_the_deadline(env: tuple[Callable[..., StopSink], Plc]) -> None:
    make, plc = env
    proxy = FreezableProxy(plc.address)
    proxy.start()
    try:
        with make(port=proxy.port, timeout_ms=100.0) as sink:
            sink.connect()
            sink.write_permit(True)
            proxy.freeze()
            t0 = time.monotonic()
            with pytest.raises(WriteTimeout):
                sink.write_permit(False)
            elapsed = time.monotonic() - t0
            assert 0.09 <= elapsed < 2.0
            assert plc.permit() is True  # the stop never arrived: it must not count
    finally:
        proxy.stop()


def test_closed_sink_refuses(env: tuple[Callable[..., StopSink], Plc]) -> None:
    make, _plc = env
    sink = make()
    sink.connect()
    sink.close()
    assert not sink.connected
    with pytest.raises(StopWriteFailed):
        sink.write_permit(False)
    sink.close()  # idempotent
