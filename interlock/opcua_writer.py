"""OPC-UA stop writer: an asyncua client on a private event loop in a background thread.

The interlock loop is synchronous; each blocking method submits a coroutine to the private
loop (``run_coroutine_threadsafe``) and waits with its deadline. ``submit_heartbeat``
returns that future without waiting, so a heartbeat write never blocks a stop write.

Writes must pass strict PLCs (Siemens S7-1500, open62541): asyncua's ``write_value`` adds a
SourceTimestamp, which they refuse. We send a DataValue that carries only an explicitly typed
Variant (no status, no timestamps: encoding mask 0x01) through the Write service, and take
only a Good result (code 0x0000 in the high word) as confirmation; Good_CompletesAsynchronously
or any Uncertain/Bad code is a failed delivery. That holds for the response header's
ServiceResult too: asyncua's own ``write``/``read`` accept any status of Good severity
there (Good_CompletesAsynchronously included) and return only the per-node results, so we
send the request through the client's protocol and judge the whole response ourselves. The namespace index is resolved by URI at
connect.

Shell: owns one thread and one loop, both started by ``connect()`` and ended by ``close()``.
Nothing is started in the constructor. It decides nothing beyond "confirmed or not".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UASocketProtocol
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.ua_binary import struct_from_binary
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from interlock.errors import (
    BadReply,
    StopWriteFailed,
    TargetUnavailable,
    WriteRefused,
    WriteTimeout,
)
from tripwire.config import OpcuaTargetConfig

T = TypeVar("T")


def value_only(value: Any, vtype: ua.VariantType) -> ua.DataValue:
    """A DataValue with just a typed Variant: no StatusCode, no timestamps."""
    return ua.DataValue(ua.Variant(value, vtype), StatusCode=None, SourceTimestamp=None,
                        ServerTimestamp=None)


def is_good(status: ua.StatusCode) -> bool:
    """Strictly Good: the code part (high 16 bits) is 0; info bits are ignored."""
    return (int(status.value) & 0xFFFF0000) == 0


def check_write_results(name: str, node: str, results: object) -> None:
    """Our judgement of a Write's results: confirmed only by exactly one strictly Good status.
    A decoder may hand back None (array length -1) or a list of any length."""
    if not isinstance(results, list) or len(results) != 1:
        count = len(results) if isinstance(results, list) else "no"
        raise BadReply(name, f"{count} results for one write")
    status = results[0]
    if not isinstance(status, ua.StatusCode):
        raise BadReply(name, f"{node}: result is not a status code: {type(status).__name__}")
    if not is_good(status):
        raise WriteRefused(name, f"{node}: {status.name} ({int(status.value):#010x})")


def check_response(name: str, what: str, response: ua.WriteResponse | ua.ReadResponse) -> None:
    """The response as a whole: of the requested type (a ServiceFault whose status has Good
    severity is not raised by asyncua and would otherwise be decoded as the response) and
    with a strictly Good ServiceResult in its header."""
    expected = type(response)().TypeId
    if response.TypeId != expected:
        raise BadReply(name, f"{what}: response type {response.TypeId}, expected {expected}")
    status = response.ResponseHeader.ServiceResult
    if not isinstance(status, ua.StatusCode) or not is_good(status):
        code = int(status.value) if isinstance(status, ua.StatusCode) else status
        label = status.name if isinstance(status, ua.StatusCode) else "not a status code"
        raise WriteRefused(name, f"{what}: service result {label} ({code:#010x})")


def check_write_response(name: str, node: str, response: ua.WriteResponse) -> None:
    """Confirmed only by a WriteResponse with a Good header and exactly one Good result."""
    check_response(name, node, response)
    check_write_results(name, node, response.Results)


def reply_failure(name: str, exc: Exception) -> StopWriteFailed:
    """What an exception met while awaiting or decoding a reply means for the delivery.

    asyncua's binary decoder raises more than UaError on a malformed reply (ValueError for
    an unknown NodeId encoding, TypeError, struct.error); none of it may escape as anything
    but a failed delivery, or a stop would not fail over to the next target."""
    if isinstance(exc, UaStatusCodeError):
        return WriteRefused(name, f"service fault: {exc}")
    if isinstance(exc, (OSError, UaError)):
        return TargetUnavailable(name, f"connection lost: {type(exc).__name__}: {exc}")
    return BadReply(name, f"malformed reply: {type(exc).__name__}: {exc}")


class OpcuaStopWriter:
    """``StopSink`` over OPC-UA (asyncua client, anonymous, no security)."""

    def __init__(self, cfg: OpcuaTargetConfig, *, name: str = "opcua",
                 connect_timeout_ms: float = 2000.0) -> None:
        self.cfg = cfg
        self.name = name
        self.timeout_ms = cfg.timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Client | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._connected = False
        self._connecting: Future[None] | None = None
        self._closed = False

    # -- lifecycle --
    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, timeout_ms: float | None = None) -> None:
        """Connect, or wait ``timeout_ms`` for a connect already in progress; a connect that
        outlives the wait keeps going in the background and a later call picks it up."""
        if self._closed:
            raise TargetUnavailable(self.name, "writer is closed")
        if self._connected:
            return
        loop = self._ensure_loop()
        fut = self._connecting
        if fut is None or fut.done():
            fut = self._connecting = asyncio.run_coroutine_threadsafe(self._connect(), loop)
        wait_ms = self.connect_timeout_ms if timeout_ms is None else timeout_ms
        try:
            fut.result(timeout=wait_ms / 1e3)
        except concurrent.futures.TimeoutError:
            raise TargetUnavailable(self.name, "connect still in progress") from None
        except concurrent.futures.CancelledError:
            raise TargetUnavailable(self.name, "connect cancelled") from None

    def close(self) -> None:
        self._closed = True
        self._connected = False
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._drop_client(), loop).result(timeout=3.0)
            except (concurrent.futures.TimeoutError, StopWriteFailed):
                pass
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5.0)
        self._loop = self._thread = None

    def __enter__(self) -> "OpcuaStopWriter":
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- StopSink --
    def write_permit(self, on: bool, timeout_ms: float | None = None) -> None:
        self._wait(self._write(self.cfg.permit_node, value_only(bool(on), ua.VariantType.Boolean),
                               timeout_ms), timeout_ms)

    def write_heartbeat(self, value: int, timeout_ms: float | None = None) -> None:
        self._wait(self._write(self.cfg.heartbeat_node,
                               value_only(value & 0xFFFF, ua.VariantType.UInt16), timeout_ms), timeout_ms)

    def write_trip_reason(self, code: int, timeout_ms: float | None = None) -> None:
        self._wait(self._write(self.cfg.trip_reason_node,
                               value_only(code & 0xFFFF, ua.VariantType.UInt16), timeout_ms), timeout_ms)

    def read_watchdog_ms(self, timeout_ms: float | None = None) -> int:
        return self._wait(self._read_int(self.cfg.watchdog_node, timeout_ms), timeout_ms)

    def read_permit(self, timeout_ms: float | None = None) -> bool:
        return self._wait(self._read_bool(self.cfg.permit_node, timeout_ms), timeout_ms)

    def submit_heartbeat(self, value: int) -> Future[None]:
        return self._submit(self._write(self.cfg.heartbeat_node,
                                        value_only(value & 0xFFFF, ua.VariantType.UInt16), None))

    # -- sync side --
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=run_loop, args=(loop,), name=f"{self.name}-writer",
                                      daemon=True)
            self._loop, self._thread = loop, thread
            thread.start()
        return self._loop


    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        loop = self._loop
        if self._closed or loop is None or not self._connected:
            coro.close()
            fut: Future[T] = Future()
            fut.set_exception(TargetUnavailable(self.name, "not connected"))
            return fut
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def _wait(self, coro: Coroutine[Any, Any, T], timeout_ms: float | None) -> T:
        ms = self.timeout_ms if timeout_ms is None else timeout_ms
        fut = self._submit(coro)
        try:
            return fut.result(timeout=ms / 1e3)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise WriteTimeout(self.name, f"no reply within {ms:.1f} ms") from None
        except concurrent.futures.CancelledError:
            raise WriteTimeout(self.name, "request cancelled") from None

    # -- loop side --
    async def _connect(self) -> None:
        await self._drop_client()
        timeout_s = self.connect_timeout_ms / 1e3
        client = Client(self.cfg.url, timeout=max(timeout_s, 0.5))
        try:
            await asyncio.wait_for(client.connect(), timeout_s)
            ns = await asyncio.wait_for(client.get_namespace_index(self.cfg.namespace), timeout_s)
        except Exception as e:  # noqa: BLE001 - asyncua raises any type on a bad peer; cancel is not one
            await self._dispose(client)
            raise TargetUnavailable(self.name, f"connect failed: {type(e).__name__}: {e}") from None
        except asyncio.CancelledError:  # close() while connecting: release the socket
            self._close_socket(client, client.uaclient.protocol)
            raise
        self._client = client
        c = self.cfg
        self._nodes = {n: ua.NodeId(ua.String(n), ua.Int16(ns)) for n in (c.permit_node, c.heartbeat_node,
                                                    c.trip_reason_node, c.watchdog_node)}
        self._connected = True

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._connected = False
        if client is not None:
            await self._dispose(client)

    @staticmethod
    async def _dispose(client: Client) -> None:
        """Close session and socket; a dead peer gets one second, then the socket goes.

        The transport is closed here as well: once asyncua's own health probe has marked
        the client disconnected (a peer that went silent without closing), its
        ``disconnect_socket`` returns without closing the socket, which leaked one socket
        per silent episode."""
        protocol = client.uaclient.protocol
        try:
            await asyncio.wait_for(client.disconnect(), 1.0)
        except (asyncio.TimeoutError, OSError, UaError):
            pass
        finally:
            OpcuaStopWriter._close_socket(client, protocol)

    @staticmethod
    def _close_socket(client: Client, protocol: UASocketProtocol | None) -> None:
        client.disconnect_socket()
        transport = protocol.transport if protocol is not None else None
        if transport is not None and not transport.is_closing():
            transport.close()

    def _lost(self) -> None:
        """The connection is unusable: mark it and tear it down in the background."""
        if self._connected:
            self._connected = False
            asyncio.get_running_loop().create_task(self._drop_client())

    async def _request(self, coro: Coroutine[Any, Any, T], timeout_ms: float | None) -> T:
        ms = self.timeout_ms if timeout_ms is None else timeout_ms
        try:
            return await asyncio.wait_for(coro, ms / 1e3)
        except asyncio.TimeoutError:
            raise WriteTimeout(self.name, f"no reply within {ms:.1f} ms") from None
        except Exception as e:  # noqa: BLE001 - see reply_failure: asyncua raises any type here
            self._lost()  # a service fault, a lost connection or a malformed reply: suspect
            raise reply_failure(self.name, e) from None

    @staticmethod
    async def _call(client: Client, request: Any, response_type: type[T]) -> T:
        """One service call through the client's protocol, decoded but not yet judged."""
        protocol = client.uaclient.protocol
        if protocol is None:
            raise ConnectionError("the OPC-UA connection is not open")
        data = await protocol.send_request(request)
        response: T = struct_from_binary(response_type, data)
        return response

    async def _write(self, node: str, dv: ua.DataValue, timeout_ms: float | None) -> None:
        client = self._client
        if client is None:
            raise TargetUnavailable(self.name, "not connected")
        params = ua.WriteParameters(NodesToWrite=[
            ua.WriteValue(NodeId=self._nodes[node], AttributeId=AttributeIds.Value, Value=dv)
        ])
        request = ua.WriteRequest()
        request.Parameters = params
        response = await self._request(self._call(client, request, ua.WriteResponse), timeout_ms)
        check_write_response(self.name, node, response)

    async def _read_int(self, node: str, timeout_ms: float | None) -> int:
        value = await self._read(node, timeout_ms)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadReply(self.name, f"{node}: not an integer: {value!r}")
        return value

    async def _read_bool(self, node: str, timeout_ms: float | None) -> bool:
        value = await self._read(node, timeout_ms)
        if not isinstance(value, bool):
            raise BadReply(self.name, f"{node}: not a Boolean: {value!r}")
        return value

    async def _read(self, node: str, timeout_ms: float | None) -> Any:
        client = self._client
        if client is None:
            raise TargetUnavailable(self.name, "not connected")
        params = ua.ReadParameters(NodesToRead=[
            ua.ReadValueId(NodeId=self._nodes[node], AttributeId=AttributeIds.Value)
        ])
        request = ua.ReadRequest()
        request.Parameters = params
        response = await self._request(self._call(client, request, ua.ReadResponse), timeout_ms)
        check_response(self.name, node, response)
        results = response.Results
        if not isinstance(results, list) or len(results) != 1:  # None: array length -1
            count = len(results) if isinstance(results, list) else "no"
            raise BadReply(self.name, f"{count} results for one read")
        dv = results[0]
        if dv.StatusCode is not None and not is_good(dv.StatusCode):
            raise WriteRefused(self.name, f"{node}: {dv.StatusCode.name}")
        return dv.Value.Value if dv.Value is not None else None


def run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` in this thread until stopped; then cancel its tasks and close it."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
