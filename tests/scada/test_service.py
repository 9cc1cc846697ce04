"""The gateway end to end: real ZeroMQ peers, the real gateway process function, a real OPC-UA client."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import zmq
from asyncua import Client, ua

from tests.scada.conftest import (
    GOOD_TOKEN,
    FakeInterlock,
    FakeMonitor,
    free_port,
    make_config,
    start_gateway,
    stop_gateway,
    verdict,
)
from tripwire.messages import Level, VerdictFlag

NS = "urn:tripwire:scada"
T = TypeVar("T")


async def connect(url: str, user: str = "", password: str = "", timeout_s: float = 15.0) -> Client:
    deadline = time.monotonic() + timeout_s
    while True:
        client = Client(url, timeout=5)
        if user:
            client.set_user(user)
            client.set_password(password)
        try:
            await client.connect()
            return client
        except (OSError, asyncio.TimeoutError, ua.UaError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str,
                     timeout_s: float = 10.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await probe()
        if ok(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {got!r}")
        await asyncio.sleep(0.05)


class Reader:
    def __init__(self, client: Client, ns: int) -> None:
        self.client, self.ns = client, ns

    def node(self, path: str) -> Any:
        return self.client.get_node(ua.NodeId(path, self.ns))

    async def value(self, path: str) -> Any:
        return await self.node(path).read_value()

    async def data(self, path: str) -> ua.DataValue:
        return await self.node(path).read_data_value(raise_on_bad_status=False)

    async def call(self, method: str, *args: Any) -> Any:
        return await self.node("Operator").call_method(ua.NodeId(f"Operator/{method}", self.ns), *args)


async def reader(client: Client) -> Reader:
    return Reader(client, await client.get_namespace_index(NS))


def test_gateway_shows_monitor_and_interlock_and_forwards_commands(
        ipc_dir: Path, zctx: zmq.Context[Any]) -> None:
    cfg = make_config(ipc_dir, free_port())
    interlock = FakeInterlock(zctx, cfg.bus.interlock_cmd)
    monitor = FakeMonitor(zctx, cfg.bus.monitor_out)
    monitor.verdicts[1] = verdict(1, 9.5, Level.TRIP, ("vib_x", "temp"), VerdictFlag.LATE)
    monitor.verdicts[2] = verdict(2, 0.5, Level.OK)
    monitor.extra.append(b"TWVDgarbage")
    gw = start_gateway(cfg)

    async def scenario() -> None:
        client = await connect(gw.url)
        try:
            r = await reader(client)
            await eventually(lambda: r.value("Interlock/Reachable"), bool, "reachable interlock")
            await eventually(lambda: r.value("Sources/pump-1/Level"), lambda v: v == "TRIP", "pump verdict")
            await eventually(lambda: r.value("Monitor/FramesReceived"), lambda v: v == 1000, "heartbeat")
            assert await r.value("Interlock/State") == "ARMED"
            assert await r.value("Interlock/Trips") == 2
            assert await r.value("Interlock/DeadlineMisses") == 7
            assert await r.value("Interlock/ActiveAlarms") == 1
            assert await r.value("Interlock/Alarms") == ["monitor_gap: 3 frames"]
            assert await r.value("Interlock/LastAlarm") == "monitor_gap: 3 frames"
            assert await r.value("Latency/Count") == 100
            assert await r.value("Latency/P50Ms") == pytest.approx(1.0, rel=0.01)
            assert await r.value("Latency/P99Ms") == pytest.approx(4.0, rel=0.01)
            assert await r.value("Latency/MaxMs") == pytest.approx(8.0)
            assert await r.value("Monitor/FramesRejected") == 3
            assert await r.value("Sources/pump-1/Score") == pytest.approx(9.5)
            assert await r.value("Sources/pump-1/Threshold") == pytest.approx(2.5)
            assert await r.value("Sources/pump-1/TopChannels") == "vib_x,temp"
            assert await r.value("Sources/pump-1/Flags") == "late"
            assert 0 <= await r.value("Sources/pump-1/LastVerdictAgeMs") < 5000
            await eventually(lambda: r.value("Sources/fan-2/Level"), lambda v: v == "OK", "fan verdict")
            await eventually(lambda: r.value("Monitor/DecodeErrors"), lambda v: v >= 1, "decode error")

            assert await r.call("Reset", "wrong") == [False, "bad_token: token does not match"]
            assert await r.call("Reset", GOOD_TOKEN) == [True, "state ARMED"]
            resets = [q for q in interlock.requests if q["cmd"] == "reset"]
            assert [q["token"] for q in resets] == ["wrong", GOOD_TOKEN]

            assert await r.call("Trip", "operator test") == [True, "state TRIPPED"]
            assert interlock.requests[-1]["reason"] == "operator test"
            await eventually(lambda: r.value("Interlock/State"), lambda v: v == "TRIPPED", "tripped state")
            assert await r.value("Interlock/TripReason") == "manual"

            assert await r.call("Acknowledge", "wrong") == [False, "bad_token: token does not match"]
            assert await r.call("Acknowledge", GOOD_TOKEN) == [True, "ok"]
            # A command the interlock refuses by name is passed on as a failure, never as success.
            with pytest.raises(ua.UaStatusCodeError) as inh:
                await r.call("Inhibit", GOOD_TOKEN, 30.0)
            assert inh.value.code == ua.StatusCodes.BadNotImplemented
            assert interlock.commands()[-2:] == ["acknowledge", "inhibit"]
            assert interlock.requests[-1]["seconds"] == 30.0
            before = len(interlock.requests)
            with pytest.raises(ua.UaStatusCodeError) as bad:
                await r.call("Inhibit", GOOD_TOKEN, -1.0)
            assert bad.value.code == ua.StatusCodes.BadInvalidArgument
            assert "inhibit" not in [q["cmd"] for q in interlock.requests[before:]]
        finally:
            await client.disconnect()

    try:
        asyncio.run(scenario())
    finally:
        stop_gateway(gw)
        monitor.close()
        interlock.close()
    assert gw.result == [0]


def test_unreachable_interlock_is_shown_and_refuses_commands(ipc_dir: Path, zctx: zmq.Context[Any]) -> None:
    cfg = make_config(ipc_dir, free_port())
    gw = start_gateway(cfg)
    interlock: FakeInterlock | None = None

    async def scenario() -> None:
        nonlocal interlock
        client = await connect(gw.url)
        try:
            r = await reader(client)
            await eventually(lambda: r.value("Interlock/LastAlarm"),
                             lambda v: v.startswith("interlock unreachable: no reply"), "unreachable")
            assert await r.value("Interlock/Reachable") is False
            assert await r.value("Interlock/State") == "UNREACHABLE"
            trips = await r.data("Interlock/Trips")
            assert trips.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
            score = await r.data("Sources/pump-1/Score")
            assert score.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
            with pytest.raises(ua.UaStatusCodeError) as e:
                await r.call("Reset", GOOD_TOKEN)
            assert e.value.code == ua.StatusCodes.BadCommunicationError

            interlock = FakeInterlock(zctx, cfg.bus.interlock_cmd)
            await eventually(lambda: r.value("Interlock/Reachable"), bool, "recovery")
            assert await r.value("Interlock/State") == "ARMED"
            assert (await r.data("Interlock/Trips")).StatusCode.is_good()

            interlock.close()
            interlock = None
            await eventually(lambda: r.value("Interlock/Reachable"), lambda v: v is False, "loss")
            trips = await r.data("Interlock/Trips")
            assert trips.StatusCode.value == ua.StatusCodes.UncertainLastUsableValue
            assert trips.Value.Value == 2  # the last value seen, marked as such
        finally:
            await client.disconnect()

    try:
        asyncio.run(scenario())
    finally:
        stop_gateway(gw)
        if interlock is not None:
            interlock.close()
    assert gw.result == [0]


def test_require_user_refuses_anonymous_method_calls(ipc_dir: Path, zctx: zmq.Context[Any]) -> None:
    cfg = make_config(ipc_dir, free_port(), require_user=True, username="op", password="s3cret")
    interlock = FakeInterlock(zctx, cfg.bus.interlock_cmd)
    gw = start_gateway(cfg)

    async def scenario() -> None:
        anonymous = await connect(gw.url)
        try:
            r = await reader(anonymous)
            await eventually(lambda: r.value("Interlock/Reachable"), bool, "reachable interlock")
            with pytest.raises(ua.UaStatusCodeError) as e:
                await r.call("Reset", GOOD_TOKEN)
            assert e.value.code == ua.StatusCodes.BadUserAccessDenied
        finally:
            await anonymous.disconnect()
        assert "reset" not in interlock.commands()

        with pytest.raises(ua.UaStatusCodeError):
            await connect(gw.url, "op", "wrong", timeout_s=0.0)

        operator = await connect(gw.url, "op", "s3cret")
        try:
            r = await reader(operator)
            assert await r.call("Reset", GOOD_TOKEN) == [True, "state ARMED"]
        finally:
            await operator.disconnect()
        assert interlock.commands() == ["reset"]

    try:
        asyncio.run(scenario())
    finally:
        stop_gateway(gw)
        interlock.close()
    assert gw.result == [0]


def test_taken_endpoint_refuses_to_start(ipc_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = make_config(ipc_dir, taken.getsockname()[1])
        gw = start_gateway(cfg)
        gw.thread.join(15.0)
    assert gw.result == [3]
