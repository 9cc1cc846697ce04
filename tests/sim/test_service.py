"""The sim process end to end: frames on the bus, the control socket, the PLC ports."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest
import zmq
from pymodbus.client import AsyncModbusTcpClient
from structlog.testing import capture_logs

from sim.service import serve
from tests.waiting import wait_until
from tripwire import config, messages
from tripwire.control import ControlTimeout, request, sim_request

CH = ["vib_x", "vib_y", "current", "temp"]




@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    c: zmq.Context[Any] = zmq.Context()
    yield c
    c.destroy(linger=0)


def _cfg(ipc_dir: Path, **sim: Any) -> config.Config:
    return config.from_dict({
        "sources": [{"id": 1, "name": "pump-1", "channels": CH}, {"id": 2, "name": "fan-2", "channels": CH}],
        "bus": {name: f"ipc://{ipc_dir}/{name}" for name in ("frames", "monitor_out", "interlock_cmd", "sim_ctl")},
        "sim": sim,
    })


def _wait(probe: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """wait_until, with a control request that times out counting as "not yet"."""
    def tolerant() -> Any:
        try:
            return probe()
        except ControlTimeout:
            return None
    return wait_until(tolerant, timeout_s, what, poll_s=0.02)


class Running:
    """``serve`` in a thread, stopped and joined on exit."""

    def __init__(self, cfg: config.Config) -> None:
        self.stop = threading.Event()
        self.codes: list[int] = []
        self.thread = threading.Thread(target=lambda: self.codes.append(serve(cfg, self.stop)), name="sim")

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)


def _sub(ctx: zmq.Context[Any], endpoint: str) -> zmq.Socket[Any]:
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.subscribe(b"")
    sub.bind(endpoint)
    return sub


def _frames(sub: zmq.Socket[Any], seconds: float) -> list[messages.Frame]:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if sub.poll(100):
            header, payload = sub.recv_multipart()
            out.append(messages.decode_frame(header, payload))
    return out


async def _modbus_permit(port: int) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    try:
        assert not (await client.write_register(0, 1, device_id=1)).isError()
        assert not (await client.write_coil(0, True, device_id=1)).isError()
    finally:
        client.close()


def test_serve_publishes_frames_and_answers_control(ipc_dir: Path, ctx: zmq.Context[Any]) -> None:
    cfg = _cfg(ipc_dir, faults=[{"kind": "spike", "source": 1, "at_s": 0.3}])
    sub = _sub(ctx, cfg.bus.frames)
    ask = lambda cmd, **kw: sim_request(ctx, cfg.bus.sim_ctl, cmd, timeout_ms=2000, **kw)
    try:
        with capture_logs() as logs, Running(cfg) as sim:
            t_start = time.monotonic()
            st = _wait(lambda: sim_request(ctx, cfg.bus.sim_ctl, "status", timeout_ms=300), 20, "ready")
            ready_s = time.monotonic() - t_start
            assert ready_s < 10, ready_s  # about 1 s on an idle machine
            assert st["ok"] and st["ports"]["modbus"] > 0 and st["ports"]["opcua"] > 0
            assert st["fault_onsets"] == [] and st["schedule_started_ns"] is None

            t0 = time.monotonic()
            frames = _frames(sub, 1.0)
            rate = len(frames) / (time.monotonic() - t0)
            assert 50 < rate < 150, rate  # two sources at 50 frames/s each
            for sid in (1, 2):
                seqs = [f.seq for f in frames if f.source_id == sid]
                assert seqs[0] < 100 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            f = frames[-1]
            assert f.samples.shape == (4, 128) and f.sample_rate_hz == 6400.0
            assert f.t_acq_ns <= f.t_pub_ns <= time.monotonic_ns()

            sched = ask("schedule")
            assert sched["ok"] and sched["schedule_started_ns"] > 0
            assert ask("schedule")["ok"] is False
            seen = _frames(sub, 1.0)
            onsets = _wait(lambda: ask("status")["fault_onsets"], 5, "fault onset")
            (onset,) = onsets
            assert (onset["source"], onset["kind"]) == (1, "spike")
            spiky = [f for f in seen if f.source_id == 1 and np.abs(f.samples[0]).max() > 5]
            (frame,) = spiky
            j = int(np.argmax(np.abs(frame.samples[0])))
            assert onset["t_onset_ns"] == frame.t_acq_ns - round((127 - j) * 1e9 / 6400)
            assert onset["t_onset_ns"] > sched["schedule_started_ns"]

            asyncio.run(_modbus_permit(st["ports"]["modbus"]))
            st = ask("status")
            assert st["plc"]["permit"] is True and st["plc"]["state"] == 1 and st["plc"]["armed"]
            assert [(w["target"], w["name"], w["value"]) for w in st["writes"]] == [
                ("modbus", "heartbeat", 1), ("modbus", "permit", 1)]
            assert st["writes_total"] == 2 and len(ask("status", since=1)["writes"]) == 1
            assert st["frames_published"] >= sum(1 for _ in frames)

            bad = request(ctx, cfg.bus.sim_ctl, b"garbage", timeout_ms=2000)
            assert bad["ok"] is False and "bad_json" in bad["error"]
            assert ask("status")["ok"]
            assert ask("stop") == {"v": messages.VERSION, "ok": True}
            sim.thread.join(15)
            assert not sim.thread.is_alive() and sim.codes == [0]
        events = {e["event"] for e in logs}
        assert {"sim_ready", "schedule_started", "fault_onset", "plc_permit_changed", "sim_stopped"} <= events
    finally:
        sub.close()


def test_stop_event_ends_serve_and_non_realtime_runs_flat_out(ipc_dir: Path, ctx: zmq.Context[Any]) -> None:
    cfg = _cfg(ipc_dir, realtime=False)
    sub = _sub(ctx, cfg.bus.frames)
    try:
        with Running(cfg) as sim:
            _wait(lambda: sim_request(ctx, cfg.bus.sim_ctl, "status", timeout_ms=300), 20, "ready")
            frames = _frames(sub, 1.0)
            assert len(frames) > 300, len(frames)  # far above the realtime 100 per second
            sim.stop.set()
            sim.thread.join(15)
            assert not sim.thread.is_alive() and sim.codes == [0]
    finally:
        sub.close()


def test_watchdog_trip_stops_the_machines(ipc_dir: Path, ctx: zmq.Context[Any]) -> None:
    cfg = _cfg(ipc_dir, watchdog_ms=100.0, load_change_every_s=0.0)
    sub = _sub(ctx, cfg.bus.frames)
    try:
        with Running(cfg):
            st = _wait(lambda: sim_request(ctx, cfg.bus.sim_ctl, "status", timeout_ms=300), 20, "ready")
            running_rms = float(np.std(np.concatenate([f.samples[0] for f in _frames(sub, 0.5)])))
            asyncio.run(_modbus_permit(st["ports"]["modbus"]))  # arms, then the heartbeat stops
            plc = _wait(lambda: (p := sim_request(ctx, cfg.bus.sim_ctl, "status")["plc"])["watchdog_tripped"] and p,
                        10, "watchdog trip")
            assert plc["state"] == 2 and plc["t_watchdog_trip_ns"] > 0
            _frames(sub, 2.5)  # spin-down, time constant 0.7 s
            stopped = [f.samples[0] for f in _frames(sub, 0.5) if f.source_id == 1]
            assert float(np.std(np.concatenate(stopped))) < 0.2 * running_rms
            assert sim_request(ctx, cfg.bus.sim_ctl, "status")["machines_running"] is False
    finally:
        sub.close()


def test_taken_control_endpoint_fails_cleanly(ipc_dir: Path, ctx: zmq.Context[Any]) -> None:
    squatter = ctx.socket(zmq.REP)
    squatter.linger = 0
    port = squatter.bind_to_random_port("tcp://127.0.0.1")  # (an ipc bind would just take over)
    table = config.to_dict(_cfg(ipc_dir))
    table["bus"]["sim_ctl"] = f"tcp://127.0.0.1:{port}"
    cfg = config.from_dict(table)
    try:
        with capture_logs() as logs:
            assert serve(cfg, threading.Event()) == 1
        assert any(e["event"] == "sim_failed" and "sim_ctl" in e["error"] for e in logs)
    finally:
        squatter.close()


def test_sigterm_ends_the_process_cleanly(ipc_dir: Path, ctx: zmq.Context[Any]) -> None:
    cfg = _cfg(ipc_dir)
    path = ipc_dir / "sim.toml"
    path.write_text(config.dumps_toml(config.to_dict(cfg)))
    code = ("import sys; from tripwire import config; from sim.service import serve; "
            f"sys.exit(serve(config.load({str(path)!r})))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: sim_request(ctx, cfg.bus.sim_ctl, "status", timeout_ms=300), 30, "ready")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
        assert "sim_ready" in out and "sim_stopped" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
