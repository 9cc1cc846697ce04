"""The sim process: plant, DAQ publisher and the simulated PLC, all on one asyncio loop.

Wiring only. ``serve(cfg, stop)`` brings up, in order: the frame PUB socket (connects to
``bus.frames``), the Modbus and OPC-UA faces of the PLC (loopback; port 0 = kernel's choice),
the control REP socket (binds ``bus.sim_ctl``), then logs ``sim_ready`` with the real ports,
takes its configured real-time priority (``sim.realtime_priority``, only now: start-up is
heavy), freezes its start-up objects out of the collector, and starts the PLC scan and the
DAQ. It runs until a ``stop`` request, the ``stop`` event, SIGTERM or SIGINT (handlers only
when called from the main thread), then closes everything it opened.

The cell is already in operation when the sim starts: the plant follows every change of the
PLC's run output from then on (so an interlock that starts SAFE with permit=0 and then arms
does not put a spin-up transient in front of the model), and spins down on any stop; with
``sim.machines_follow_plc = false`` (a test bench) the machines keep running whatever the PLC
says. ``inject`` and ``clear`` requests start and end faults on demand (the campaign).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
import time
from dataclasses import asdict
from typing import Any

import structlog
import zmq
import zmq.asyncio

from sim import control
from sim.daq import Daq
from sim.errors import BadControlRequest, BusSetupError, SimError
from sim.plant import Plant
from sim.plc_logic import PermitChanged, PlcEvent, PlcProgram, Relatched, RunningChanged, WatchdogTripped
from sim.plc_modbus import ModbusPlc
from sim.plc_opcua import OpcuaPlc
from sim.plc_runtime import PlcRuntime
from tripwire import bus, realtime
from tripwire.config import Config, FaultConfig

STOP_POLL_S = 0.02
REPLY_LINGER_MS = 200  # the last control reply ("stop") may still be on its way out
PUB_HWM = 1000


def serve(cfg: Config, stop: threading.Event | None = None) -> int:
    """Run the sim process until asked to stop; 0 on a clean stop, 1 if it could not run."""
    log = structlog.get_logger(component="sim")
    try:
        return asyncio.run(SimProcess(cfg, stop, log).run())
    except SimError as e:
        log.error("sim_failed", error=str(e))
        return 1


class SimProcess:
    """Owns the plant, the PLC and the sockets of one sim process (``SimHandlers``)."""

    def __init__(self, cfg: Config, stop: threading.Event | None, log: Any) -> None:
        self.cfg = cfg
        self.log = log
        self._external_stop = stop
        self.plant = Plant(cfg.sources, cfg.sim)
        self.plc = PlcRuntime(PlcProgram(cfg.sim.watchdog_ms))
        self.ports = {"modbus": 0, "opcua": 0}
        self.schedule_started_ns: int | None = None
        self._done: asyncio.Event | None = None
        self._daq: Daq | None = None

    # --- SimHandlers (control socket) ---------------------------------------------------

    def status(self, since: int) -> dict[str, Any]:
        s = self.plc.snapshot()
        daq = self._daq
        return {
            "ports": dict(self.ports),
            "plc": {
                "permit": s.permit, "heartbeat": s.heartbeat, "trip_reason": s.trip_reason,
                "watchdog_ms": s.watchdog_ms, "state": int(s.state), "running": s.running,
                "armed": s.armed, "watchdog_tripped": s.watchdog_tripped,
                "t_watchdog_trip_ns": s.t_watchdog_trip_ns,
            },
            "writes": [asdict(w) for w in self.plc.writes(since)],
            "writes_total": s.writes_total,
            "fault_onsets": [o.as_dict() for o in daq.onsets] if daq else [],
            "frames_published": daq.frames_published if daq else 0,
            "frames_by_source": {str(k): v for k, v in daq.frames_by_source.items()} if daq else {},
            "schedule_started_ns": self.schedule_started_ns,
            "machines_running": self.plant.permit,
        }

    def schedule(self) -> dict[str, Any]:
        if self.plant.schedule_started:
            raise BadControlRequest("schedule_already_started")
        self.schedule_started_ns = time.monotonic_ns()
        self.plant.start_schedule()
        self.log.info("schedule_started", faults=len(self.cfg.sim.faults),
                      t_ns=self.schedule_started_ns)
        return {"schedule_started_ns": self.schedule_started_ns}

    def inject(self, fault: FaultConfig) -> dict[str, Any]:
        if fault.source not in self.plant.source_ids:
            raise BadControlRequest(f"bad_request: no source with id {fault.source}")
        index = self.plant.inject(fault.source, fault)
        self.log.info("fault_injected", source=fault.source, kind=fault.kind,
                      severity=fault.severity, ramp_s=fault.ramp_s, sample_index=index)
        return {"source": fault.source, "kind": fault.kind, "sample_index": index}

    def clear(self, source: int) -> dict[str, Any]:
        if source not in self.plant.source_ids:
            raise BadControlRequest(f"bad_request: no source with id {source}")
        cleared = self.plant.clear(source)
        index = self.plant.samples_generated(source)
        self.log.info("faults_cleared", source=source, cleared=cleared, sample_index=index)
        return {"source": source, "cleared": cleared, "sample_index": index}

    def stop(self) -> None:
        if self._done is not None:
            self._done.set()

    # --- PLC events ---------------------------------------------------------------------

    def _on_plc_events(self, events: list[PlcEvent]) -> None:
        """The plant follows at once; the log lines wait until the PLC's reply has gone out
        (a write to the log file can block, and the stop write's confirmation must not)."""
        for e in events:
            if isinstance(e, RunningChanged) and self.cfg.sim.machines_follow_plc:
                self.plant.set_permit(e.running)
        try:
            asyncio.get_running_loop().call_soon(self._log_plc_events, events)
        except RuntimeError:  # no loop running (not from a server): nothing to wait for
            self._log_plc_events(events)

    def _log_plc_events(self, events: list[PlcEvent]) -> None:
        for e in events:
            if isinstance(e, PermitChanged):
                self.log.info("plc_permit_changed", permit=e.permit, target=e.target, t_ns=e.t_ns)
            elif isinstance(e, WatchdogTripped):
                self.log.warning("plc_watchdog_tripped", t_ns=e.t_ns,
                                 heartbeat_age_ms=round(e.heartbeat_age_ns / 1e6, 3))
            elif isinstance(e, Relatched):
                self.log.info("plc_relatched", t_ns=e.t_ns)

    # --- lifecycle ----------------------------------------------------------------------

    async def _serve_control(self, rep: zmq.asyncio.Socket) -> None:
        while True:
            parts = await rep.recv_multipart()
            reply = control.handle(list(parts), self)
            await rep.send(reply.payload)
            if reply.stop:
                self.stop()

    async def _watch_external_stop(self, ext: threading.Event) -> None:
        while not ext.is_set():
            await asyncio.sleep(STOP_POLL_S)
        self.stop()

    def _signals(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        if threading.current_thread() is not threading.main_thread():
            return []
        sigs = [signal.SIGTERM, signal.SIGINT]
        for s in sigs:
            loop.add_signal_handler(s, self.stop)
        return sigs

    async def run(self) -> int:
        done = self._done = asyncio.Event()
        loop = asyncio.get_running_loop()
        sigs = self._signals(loop)
        ctx = zmq.asyncio.Context()
        sockets: list[zmq.asyncio.Socket] = []
        try:
            return await self._run(ctx, sockets, done)
        finally:
            gc.unfreeze()
            for s in sigs:
                loop.remove_signal_handler(s)
            for sock in sockets:
                sock.close(linger=REPLY_LINGER_MS if sock.type == zmq.REP else 0)
            ctx.term()

    async def _run(self, ctx: zmq.asyncio.Context, sockets: list[zmq.asyncio.Socket],
                   done: asyncio.Event) -> int:
        cfg = self.cfg
        self.plc.add_listener(self._on_plc_events)  # before the PLC can take its first write
        try:
            pub = ctx.socket(zmq.PUB)
            sockets.append(pub)
            pub.linger = 0
            pub.sndhwm = PUB_HWM
            pub.connect(cfg.bus.frames)
        except zmq.ZMQError as e:
            raise BusSetupError(f"bus.frames {cfg.bus.frames!r}: {e}") from None
        async with (ModbusPlc(self.plc, cfg.interlock.modbus, cfg.sim.modbus_port) as mb,
                    OpcuaPlc(self.plc, cfg.interlock.opcua, cfg.sim.opcua_port) as ua):
            self.ports = {"modbus": mb.port, "opcua": ua.port}
            try:
                rep = ctx.socket(zmq.REP)
                sockets.append(rep)
                rep.linger = 0
                bus.bind(rep, cfg.bus.sim_ctl)
            except (zmq.ZMQError, OSError) as e:
                raise BusSetupError(f"bus.sim_ctl {cfg.bus.sim_ctl!r}: {e}") from None
            daq = self._daq = Daq(self.plant, cfg.sources, pub, cfg.sim.realtime, self.log,
                                  cell=cfg.bus.cell, clock_skew_ms=cfg.sim.clock_skew_ms,
                                  frame_delay_ms=cfg.sim.frame_delay_ms)
            self.log.info("sim_ready", modbus_port=mb.port, opcua_port=ua.port,
                          sources=[s.id for s in cfg.sources], realtime=cfg.sim.realtime,
                          machines_follow_plc=cfg.sim.machines_follow_plc)
            # The simulated PLC and DAQ stand for devices outside this host: with a priority
            # configured, the host's load must not starve them. Only now, once the servers
            # are up: asyncua's start-up would use up the RT budget of the whole CPU.
            realtime.apply(cfg.sim.realtime_priority, "sim")
            # A full collection scans every start-up object (asyncua's address space: about
            # half a million, ~0.6 s, a PLC that answers nothing meanwhile); freeze them.
            gc.freeze()
            return await self._supervise(rep, daq, done)

    async def _supervise(self, rep: zmq.asyncio.Socket, daq: Daq, done: asyncio.Event) -> int:
        tasks = [
            asyncio.create_task(self._serve_control(rep), name="sim_control"),
            asyncio.create_task(self.plc.run_scans(self.cfg.sim.scan_ms), name="plc_scan"),
            asyncio.create_task(daq.run(), name="daq"),
        ]
        if self._external_stop is not None:
            tasks.append(asyncio.create_task(self._watch_external_stop(self._external_stop),
                                             name="stop_watch"))
        done_wait = asyncio.create_task(done.wait(), name="done")
        finished, _ = await asyncio.wait([done_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
        code = 0
        for t in finished:
            if t is not done_wait and not t.cancelled() and t.exception() is not None:
                self.log.error("sim_task_failed", task=t.get_name(), error=repr(t.exception()))
                code = 1
        for t in [done_wait, *tasks]:
            t.cancel()
        for t in [done_wait, *tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.log.info("sim_stopped", frames_published=daq.frames_published, code=code)
        return code
