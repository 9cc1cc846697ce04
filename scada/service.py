"""The SCADA gateway process: ``serve(cfg, stop)`` (shell, wiring only).

One asyncio loop on the calling thread runs the OPC-UA server (server.py) and one refresh
task. Every ``scada.update_ms`` the task drains the monitor's output into the PlantView,
starts a status poll of the interlock if none is in flight (on a worker thread, so a dead
interlock costs the loop nothing), and publishes the snapshot. Operator methods are
forwarded on a worker thread too. Never per frame, and never inside the interlock process.

Exit codes: 0 stopped (``stop`` set, SIGTERM or SIGINT; handlers installed only on the
main thread), 3 the endpoint or a socket could not be opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from types import FrameType
from typing import Any

import structlog
import zmq

from scada import commands
from scada.bus import InterlockLink, MonitorFeed
from scada.commands import Outcome
from scada.errors import GatewayStartError, InterlockUnreachable
from scada.server import OpcuaGateway
from scada.view import PlantView
from tripwire.config import Config

EXIT_OK, EXIT_START = 0, 3
STOP_CHECK_S = 0.05


def _install_signals(stop: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


class _Gateway:
    """The refresh loop and the method forwarder, sharing one view and one link."""

    def __init__(self, cfg: Config, ctx: zmq.Context[Any]) -> None:
        self.cfg = cfg
        self.view = PlantView([(s.id, s.name) for s in cfg.sources])
        self.link = InterlockLink(ctx, cfg.bus.interlock_cmd, cfg.scada.command_timeout_ms)
        self.log = structlog.get_logger(component="scada")
        self._poll: asyncio.Task[dict[str, Any]] | None = None
        self._decode_errors_logged = 0

    async def forward(self, method: str, args: list[Any]) -> Outcome:
        if method == "Inhibit":
            refusal = commands.check_inhibit_seconds(args[1])
            if refusal is not None:
                return refusal
            payload = commands.request("inhibit", token=str(args[0] or ""), seconds=float(args[1]))
        elif method == "Trip":
            payload = commands.request("trip", reason=str(args[0] or "operator trip"))
        else:
            payload = commands.request(method.lower(), token=str(args[0] or ""))
        try:
            reply = await asyncio.to_thread(self.link.send, payload)
            result = commands.outcome(reply)
        except InterlockUnreachable as e:
            result = Outcome("unreachable", f"interlock unreachable: {e}")
        # The token is never logged: the interlock alone knows and checks it.
        self.log.info("operator_command", command=method.lower(), status=result.status,
                      detail=result.detail)
        return result

    def _fold_poll(self, now_ns: int) -> None:
        task = self._poll
        if task is None or not task.done():
            return
        self._poll = None
        was = self.view.reachable
        try:
            self.view.on_status(task.result(), now_ns)
        except InterlockUnreachable as e:
            self.view.on_status_missing(str(e))
        if self.view.reachable != was:
            if self.view.reachable:
                self.log.info("interlock_reachable")
            else:
                self.log.warning("interlock_unreachable", detail=self.view.unreachable_detail)

    async def run(self, gw: OpcuaGateway, feed: MonitorFeed, stop: threading.Event) -> None:
        period_s = self.cfg.scada.update_ms / 1000.0
        poll_timeout_ms = max(10.0, min(self.cfg.scada.command_timeout_ms, 0.8 * self.cfg.scada.update_ms))
        status = commands.request("status")
        next_s = time.monotonic()
        try:
            while not stop.is_set():
                now_ns = time.monotonic_ns()
                if now_ns / 1e9 >= next_s:
                    next_s += period_s
                    if now_ns / 1e9 > next_s:  # fell behind: skip, never catch up in a burst
                        next_s = now_ns / 1e9 + period_s
                    feed.drain(self.view, now_ns)
                    self._fold_poll(now_ns)
                    if self._poll is None:
                        self._poll = asyncio.create_task(
                            asyncio.to_thread(self.link.send, status, poll_timeout_ms))
                    await gw.publish(self.view.snapshot(now_ns))
                    if self.view.decode_errors > self._decode_errors_logged:
                        self.log.warning("monitor_message_rejected", total=self.view.decode_errors)
                        self._decode_errors_logged = self.view.decode_errors
                await asyncio.sleep(min(STOP_CHECK_S, max(0.0, next_s - time.monotonic())))
        finally:
            if self._poll is not None:
                with contextlib.suppress(InterlockUnreachable):
                    await self._poll  # bounded by poll_timeout_ms


async def _main(cfg: Config, ctx: zmq.Context[Any], stop: threading.Event) -> int:
    log = structlog.get_logger(component="scada")
    gateway = _Gateway(cfg, ctx)
    try:
        with MonitorFeed(ctx, cfg.bus.monitor_out) as feed:
            async with OpcuaGateway(cfg.scada, gateway.view.nodes(), gateway.forward) as gw:
                log.info("scada_ready", endpoint=cfg.scada.endpoint,
                         sources=list(gateway.view.source_names), require_user=cfg.scada.require_user)
                await gateway.run(gw, feed, stop)
    except GatewayStartError as e:
        log.error("scada_failed", error=str(e))
        return EXIT_START
    log.info("scada_stopped", decode_errors=gateway.view.decode_errors,
             unknown_sources=gateway.view.unknown_sources)
    return EXIT_OK


def serve(cfg: Config, stop: threading.Event | None = None) -> int:
    stop = stop if stop is not None else threading.Event()
    previous = _install_signals(stop)
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        # asyncio.run joins the worker threads (in-flight requests end within their
        # timeout) before the context, and every socket still open in it, is destroyed.
        return asyncio.run(_main(cfg, ctx, stop))
    finally:
        ctx.destroy(linger=0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
