"""OPC-UA stop writer: an asyncua client on a private event loop in a background thread.

The interlock loop is synchronous; each blocking method submits a coroutine to the private
loop (``run_coroutine_threadsafe``) and waits with its deadline. ``submit_heartbeat``
returns that future without waiting, so a heartbeat write never blocks a stop write.

Writes must pass strict PLCs (Siemens S7-1500, open62541): asyncua's ``write_value`` adds a
SourceTimestamp, which they refuse. We send a DataValue that carries only an explicitly typed
Variant (no status, no timestamps: encoding mask 0x01) through the Write service, and take
only a Good result (code 0x0000 in the high word) as confirmation; Good_CompletesAsynchronously
or any Uncertain/Bad code is a failed delivery. The namespace index is resolved by URI at
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
from asyncua.ua.attribute_ids import AttributeIds
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

    def submit_heartbeat(self, value: int) -> Future[None]:
        return self._submit(self._write(self.cfg.heartbeat_node,
                                        value_only(value & 0xFFFF, ua.VariantType.UInt16), None))

    # -- sync side --
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=self._run, args=(loop,), name=f"{self.name}-writer",
                                      daemon=True)
            self._loop, self._thread = loop, thread
            thread.start()
        return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
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
        except (asyncio.TimeoutError, OSError, UaError, ValueError) as e:
            await self._dispose(client)
            raise TargetUnavailable(self.name, f"connect failed: {type(e).__name__}: {e}") from None
        except asyncio.CancelledError:  # close() while connecting: release the socket
            client.disconnect_socket()
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
        """Close session and socket; a dead peer gets one second, then the socket goes."""
        try:
            await asyncio.wait_for(client.disconnect(), 1.0)
        except (asyncio.TimeoutError, OSError, UaError):
            pass
        finally:
            client.disconnect_socket()

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
        except UaStatusCodeError as e:
            self._lost()  # a service-level fault: the session is suspect
            raise WriteRefused(self.name, f"service fault: {e}") from None
        except (OSError, UaError) as e:
            self._lost()
            raise TargetUnavailable(self.name, f"connection lost: {type(e).__name__}: {e}") from None

    async def _write(self, node: str, dv: ua.DataValue, timeout_ms: float | None) -> None:
        client = self._client
        if client is None:
            raise TargetUnavailable(self.name, "not connected")
        params = ua.WriteParameters(NodesToWrite=[
            ua.WriteValue(NodeId=self._nodes[node], AttributeId=AttributeIds.Value, Value=dv)
        ])
        results = await self._request(client.uaclient.write(params), timeout_ms)
        if len(results) != 1:
            raise BadReply(self.name, f"{len(results)} results for one write")
        if not is_good(results[0]):
            raise WriteRefused(self.name, f"{node}: {results[0].name} ({int(results[0].value):#010x})")

    async def _read_int(self, node: str, timeout_ms: float | None) -> int:
        client = self._client
        if client is None:
            raise TargetUnavailable(self.name, "not connected")
        params = ua.ReadParameters(NodesToRead=[
            ua.ReadValueId(NodeId=self._nodes[node], AttributeId=AttributeIds.Value)
        ])
        results = await self._request(client.uaclient.read(params), timeout_ms)
        if len(results) != 1:
            raise BadReply(self.name, f"{len(results)} results for one read")
        dv = results[0]
        if dv.StatusCode is not None and not is_good(dv.StatusCode):
            raise WriteRefused(self.name, f"{node}: {dv.StatusCode.name}")
        value = dv.Value.Value if dv.Value is not None else None
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadReply(self.name, f"{node}: not an integer: {value!r}")
        return value
