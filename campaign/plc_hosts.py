"""Real PLC servers for the PLC campaign rows, each on its own asyncio loop thread.

- ``SimPlcHost``: the simulated PLC (``sim.plc_logic`` program, ``sim.plc_modbus`` or
  ``sim.plc_opcua`` face, scans) that can reboot: ``down()`` stops the server (its
  connections close), ``up()`` starts a fresh one with the program at power-on defaults
  (permit 0, heartbeat 0, watchdog not armed) on a new port.
- ``StatusOpcuaPlc``: an asyncua server with the PLC nodes of DESIGN 5 whose write of
  ``Permit = false`` (the stop) is answered, while a fault is set, with a chosen status
  code: per written node (the WriteResponse result) or for the whole request (a
  ServiceFault). It uses asyncua's own pre- and post-write server callbacks.

Servers bind 127.0.0.1 on a port the kernel picks. Campaign shell code: it holds no PLC
rule of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, TypeVar

from asyncua import ua
from asyncua.server.server import Server
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError

from sim.plc_logic import PlcProgram, PlcSnapshot
from sim.plc_modbus import ModbusPlc
from sim.plc_opcua import OpcuaPlc
from sim.plc_runtime import PlcRuntime
from tripwire.config import ModbusTargetConfig, OpcuaTargetConfig
from interlock.opcua_writer import run_loop

T = TypeVar("T")
CALL_TIMEOUT_S = 30.0

for _noisy in ("pymodbus", "asyncua"):
    logging.getLogger(_noisy).setLevel(logging.CRITICAL)


class LoopThread:
    """An asyncio loop on a daemon thread; ``call(coro)`` runs a coroutine on it and waits."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "LoopThread":
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=run_loop, args=(loop,), name=self._name, daemon=True)
        self._thread.start()
        return self


    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError(f"{self._name} is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout_s)

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(15)
        self._loop = self._thread = None


class SimPlcHost:
    """The simulated PLC with one protocol face, able to reboot with power-on defaults."""

    def __init__(self, kind: str, *, modbus: ModbusTargetConfig, opcua: OpcuaTargetConfig,
                 watchdog_ms: float, scan_ms: float = 5.0) -> None:
        if kind not in ("modbus", "opcua"):
            raise ValueError(f"unknown PLC face {kind!r}")
        self.kind = kind
        self._modbus = modbus
        self._opcua = opcua
        self._watchdog_ms = watchdog_ms
        self._scan_ms = scan_ms
        self._loop = LoopThread(f"sim-plc-{kind}")
        self._stack: AsyncExitStack | None = None
        self._runtime: PlcRuntime | None = None
        self.port = 0
        self.boots = 0

    def __enter__(self) -> "SimPlcHost":
        self._loop.__enter__()
        try:
            self.up()
        except BaseException:
            self._loop.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.down()
        finally:
            self._loop.__exit__(None, None, None)

    def up(self) -> int:
        """Power on: a fresh program (defaults) behind a new server; returns its port."""
        self.port = self._loop.call(self._up())
        self.boots += 1
        return self.port

    def down(self) -> None:
        """Power off: the server stops and its connections close."""
        self._loop.call(self._down())

    def snapshot(self) -> PlcSnapshot:
        return self._loop.call(self._snapshot())

    async def _snapshot(self) -> PlcSnapshot:
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError("the simulated PLC is powered off")
        return runtime.snapshot()

    async def _up(self) -> int:
        await self._down()
        runtime = PlcRuntime(PlcProgram(self._watchdog_ms))
        stack = AsyncExitStack()
        try:
            face: ModbusPlc | OpcuaPlc
            if self.kind == "modbus":
                face = await stack.enter_async_context(ModbusPlc(runtime, self._modbus))
            else:
                face = await stack.enter_async_context(OpcuaPlc(runtime, self._opcua))
            scans = asyncio.get_running_loop().create_task(runtime.run_scans(self._scan_ms))
            stack.push_async_callback(self._cancel, scans)
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._runtime = stack, runtime
        return face.port

    async def _down(self) -> None:
        stack, self._stack = self._stack, None
        self._runtime = None
        if stack is not None:
            await stack.aclose()

    @staticmethod
    async def _cancel(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class StatusOpcuaPlc:
    """An asyncua PLC whose stop write gets an injected status while ``fault`` is set."""

    NODES = {"Permit": (False, ua.VariantType.Boolean, True),
             "Heartbeat": (0, ua.VariantType.UInt16, True),
             "TripReason": (0, ua.VariantType.UInt16, True),
             "WatchdogMs": (300, ua.VariantType.UInt32, False)}

    def __init__(self, namespace: str, watchdog_ms: int) -> None:
        self._namespace = namespace
        self._watchdog_ms = watchdog_ms
        self._loop = LoopThread("status-opcua-plc")
        self._server: Server | None = None
        self._permit_id: ua.NodeId | None = None
        self.url = ""
        # (status code, service level?) applied to permit-0 writes; None: answer Good
        self.fault: tuple[int, bool] | None = None
        self.stop_writes = 0  # permit-0 writes seen while a fault was set

    def __enter__(self) -> "StatusOpcuaPlc":
        self._loop.__enter__()
        try:
            self.url = self._loop.call(self._start())
        except BaseException:
            self._loop.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._server is not None:
                self._loop.call(self._server.stop())
        finally:
            self._server = None
            self._loop.__exit__(None, None, None)

    def permit(self) -> bool:
        return bool(self._loop.call(self._read_permit()))

    async def _read_permit(self) -> Any:
        server = self._server
        if server is None or self._permit_id is None:
            raise RuntimeError("the OPC-UA PLC is not serving")
        return await server.get_node(self._permit_id).read_value()

    async def _start(self) -> str:
        server = Server()
        server.disable_clock(True)
        await server.init()
        server.set_endpoint("opc.tcp://127.0.0.1:0")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(self._namespace)
        plc = await server.nodes.objects.add_object(ua.NodeId(ua.String("PLC"), ua.Int16(idx)),
                                                    ua.QualifiedName("PLC", idx))
        for name, (value, vtype, writable) in self.NODES.items():
            if name == "WatchdogMs":
                value = self._watchdog_ms
            node = await plc.add_variable(ua.NodeId(ua.String(name), ua.Int16(idx)), ua.QualifiedName(name, idx),
                                          ua.Variant(value, vtype))
            if writable:
                await node.set_writable()
            if name == "Permit":
                self._permit_id = node.nodeid
        server.subscribe_server_callback(CallbackType.PreWrite, self._pre_write)
        server.subscribe_server_callback(CallbackType.PostWrite, self._post_write)
        await server.start()
        self._server = server
        bserver = server.bserver
        port = int(bserver.port) if bserver is not None else 0
        return f"opc.tcp://127.0.0.1:{port}"

    def _stop_items(self, params: ua.WriteParameters) -> list[int]:
        """Indices of the request's items that write Permit = false."""
        out = []
        for i, wv in enumerate(params.NodesToWrite):
            variant = wv.Value.Value if wv.Value is not None else None
            if wv.NodeId == self._permit_id and variant is not None and variant.Value is False:
                out.append(i)
        return out

    def _pre_write(self, event: ServerItemCallback, dispatcher: Any) -> None:
        fault = self.fault
        if fault is None or not self._stop_items(event.request_params):
            return
        self.stop_writes += 1
        code, service_level = fault
        if service_level:
            raise ServiceError(code)  # asyncua answers the request with a ServiceFault

    def _post_write(self, event: ServerItemCallback, dispatcher: Any) -> None:
        fault = self.fault
        if fault is None or fault[1]:
            return
        results = event.response_params
        for i in self._stop_items(event.request_params):
            results[i] = ua.StatusCode(ua.UInt32(fault[0]))
