"""The simulated PLC's OPC-UA face: an asyncua server over the shared PLC program.

Namespace ``OpcuaTargetConfig.namespace``; string NodeIds in it, under an object "PLC":

    Permit (Boolean, writable)  Heartbeat (UInt16, writable)  TripReason (UInt16, writable)
    WatchdogMs (UInt32)         State (UInt16: 0 stopped, 1 running, 2 watchdog tripped)
    Stop() method: the same as writing Permit = false

Security policy None only, anonymous, loopback. A write of the wrong variant type is refused
with BadTypeMismatch by asyncua's own check, as a real PLC would; accepted writes reach
``PlcRuntime.write`` through value setters. Changes made elsewhere (Modbus writes, the
watchdog) are pushed into the address space by a small task, so subscriptions see them.
Shell code: it must hold no PLC rule of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Any, Self

from asyncua import ua
from asyncua.server.address_space import NodeData
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError

from sim.errors import PlcStartError
from sim.plc_logic import PlcEvent
from sim.plc_runtime import PlcRuntime
from tripwire.config import OpcuaTargetConfig

STATE_NODE = "State"
STOP_METHOD = "Stop"


def _string_node_id(name: str, namespace_index: int) -> ua.NodeId:
    # asyncua annotates these fields with its own wire types; plain str and int are what it takes
    return ua.NodeId(name, namespace_index)  # type: ignore[arg-type]


class OpcuaPlc:
    """Async context manager: ``async with OpcuaPlc(plc, target) as o: o.port``."""

    def __init__(self, plc: PlcRuntime, target: OpcuaTargetConfig, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        self._plc = plc
        self._target = target
        self._host = host
        self._want_port = port
        # variable name in the PLC program -> (browse name / string NodeId, variant type)
        self._vars: dict[str, tuple[str, ua.VariantType]] = {
            "permit": (target.permit_node, ua.VariantType.Boolean),
            "heartbeat": (target.heartbeat_node, ua.VariantType.UInt16),
            "trip_reason": (target.trip_reason_node, ua.VariantType.UInt16),
            "watchdog_ms": (target.watchdog_node, ua.VariantType.UInt32),
            "state": (STATE_NODE, ua.VariantType.UInt16),
        }
        self._writable = ("permit", "heartbeat", "trip_reason")
        self._server: Server | None = None
        self._ns = 0
        self._port = 0
        self._shown: dict[str, int] = {}
        self._own: set[int] = set()  # ids of DataValues this server is writing itself
        self._dirty = asyncio.Event()
        self._pusher: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the OPC-UA PLC is not serving")
        return self._port

    @property
    def url(self) -> str:
        return f"opc.tcp://{self._host}:{self.port}"

    def _node_id(self, name: str) -> ua.NodeId:
        return _string_node_id(self._vars[name][0], self._ns)

    def _values(self) -> dict[str, int]:
        s = self._plc.snapshot()
        return {"permit": int(s.permit), "heartbeat": s.heartbeat, "trip_reason": s.trip_reason,
                "watchdog_ms": s.watchdog_ms, "state": int(s.state)}

    def _variant(self, name: str, value: int) -> ua.Variant:
        vtype = self._vars[name][1]
        return ua.Variant(bool(value) if vtype is ua.VariantType.Boolean else int(value), vtype)

    async def _build(self, server: Server) -> None:
        self._ns = await server.register_namespace(self._target.namespace)
        plc = await server.nodes.objects.add_object(_string_node_id("PLC", self._ns), "PLC")
        values = self._values()
        for name, (browse, _vtype) in self._vars.items():
            node = await plc.add_variable(self._node_id(name), browse, self._variant(name, values[name]))
            self._shown[name] = values[name]
            if name in self._writable:
                await node.set_writable()
                server.set_attribute_value_setter(node.nodeid, self._setter_for(name))
        await plc.add_method(_string_node_id(STOP_METHOD, self._ns), STOP_METHOD, self._stop, [], [])

    def _setter_for(self, name: str) -> Any:
        def setter(node: NodeData, attr: AttributeIds, value: ua.DataValue) -> None:
            variant = value.Value
            if id(value) in self._own:
                node.attributes[attr].value = value
                return
            if variant is None or variant.Value is None:
                return  # a null (or Bad-status) write carries no value: keep the old one
            t_ns = time.monotonic_ns()
            node.attributes[attr].value = value
            self._shown[name] = int(variant.Value)
            self._plc.write("opcua", name, int(variant.Value), t_ns)
        return setter

    async def _stop(self, parent: ua.NodeId) -> list[ua.Variant]:
        self._plc.write("opcua", "stop", 1, time.monotonic_ns())
        return []

    def _on_plc_change(self, events: list[PlcEvent]) -> None:
        self._dirty.set()

    async def _push_changes(self) -> None:
        """Mirror the PLC program's state into the address space whenever it changed."""
        server = self._server
        while server is not None:
            await self._dirty.wait()
            self._dirty.clear()
            for name, value in self._values().items():
                if self._shown.get(name) == value:
                    continue
                dv = ua.DataValue(self._variant(name, value))
                self._own.add(id(dv))
                try:
                    await server.write_attribute_value(self._node_id(name), dv)
                finally:
                    self._own.discard(id(dv))
                self._shown[name] = value

    async def __aenter__(self) -> Self:
        asyncua_log = logging.getLogger("asyncua")
        if asyncua_log.level == logging.NOTSET:
            asyncua_log.setLevel(logging.ERROR)  # its start-up and refusal warnings are noise here
        server = Server()
        server.disable_clock(True)  # its 1 s clock task would only slow down stop()
        try:
            await server.init()
            server.set_endpoint(f"opc.tcp://{self._host}:{self._want_port}")
            server.set_server_name("Tripwire simulated PLC")
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            await self._build(server)
            await server.start()
        except (OSError, RuntimeError, UaError) as e:
            with contextlib.suppress(Exception):
                await server.stop()
            raise PlcStartError("opcua", f"cannot serve on {self._host}:{self._want_port}: {e}") from None
        bserver = server.bserver
        self._port = int(bserver.port) if bserver is not None else 0
        self._server = server
        self._plc.add_listener(self._on_plc_change)
        self._pusher = asyncio.get_running_loop().create_task(self._push_changes(), name="opcua_push")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        server, self._server = self._server, None
        self._port = 0
        self._plc.remove_listener(self._on_plc_change)
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        if server is not None:
            await server.stop()
