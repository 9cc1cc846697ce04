"""The sim control protocol (every request gets a reply, malformed ones an error reply), and
faults injected and cleared on demand: in the plant, and over the sim process's socket."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from pymodbus.client import AsyncModbusTcpClient
from structlog.testing import capture_logs

from sim.control import handle
from sim.errors import BadControlRequest, SimConfigError
from sim.plant import Plant
from sim.service import serve
from tests.waiting import wait_until
from tripwire import config
from tripwire.config import FaultConfig, SimConfig, SourceConfig
from tripwire.control import ControlTimeout, sim_request
from tripwire.messages import VERSION, decode_reply


class FakeHandlers:
    """Records calls; a stand-in for the sim process in this pure unit test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.scheduled = False

    def status(self, since: int) -> dict[str, Any]:
        self.calls.append(("status", since))
        return {"frames_published": 3}

    def schedule(self) -> dict[str, Any]:
        if self.scheduled:
            raise BadControlRequest("schedule_already_started")
        self.scheduled = True
        return {"schedule_started_ns": 5}

    def inject(self, fault: FaultConfig) -> dict[str, Any]:
        self.calls.append(("inject", fault))
        return {"source": fault.source, "kind": fault.kind, "sample_index": 640}

    def clear(self, source: int) -> dict[str, Any]:
        self.calls.append(("clear", source))
        return {"source": source, "cleared": 1, "sample_index": 1280}

    def stop(self) -> None:
        self.calls.append(("stop", None))


def _ask(req: Any, handlers: FakeHandlers | None = None) -> tuple[dict[str, Any], bool]:
    parts = req if isinstance(req, list) else [json.dumps(req).encode()]
    reply = handle(parts, handlers or FakeHandlers())
    return decode_reply(reply.payload), reply.stop


def test_status_schedule_and_stop() -> None:
    h = FakeHandlers()
    assert _ask({"cmd": "status"}, h) == ({"v": VERSION, "ok": True, "frames_published": 3}, False)
    assert _ask({"cmd": "status", "since": 7, "v": VERSION}, h)[0]["ok"]
    assert h.calls == [("status", 0), ("status", 7)]
    assert _ask({"cmd": "schedule"}, h)[0] == {"v": VERSION, "ok": True, "schedule_started_ns": 5}
    again = _ask({"cmd": "schedule"}, h)[0]
    assert again["ok"] is False and again["error"] == "schedule_already_started"
    assert _ask({"cmd": "stop"}, h) == ({"v": VERSION, "ok": True}, True)
    assert h.calls[-1] == ("stop", None)


@pytest.mark.parametrize("parts", [
    [b"not json"],
    [b"\xff\xfe"],
    [b"[1, 2]"],
    [b"{}"],
    [b'{"cmd": 5}'],
    [b'{"cmd": "status", "v": 99}'],
    [b'{"cmd": "status", "since": -1}'],
    [b'{"cmd": "status", "since": "3"}'],
    [b'{"cmd": "status", "since": true}'],
    [b'{"cmd": "reboot"}'],
    [b'{"cmd": "status"}', b"extra part"],
    [b"{" + b" " * 10_000 + b"}"],
])
def test_malformed_requests_get_error_replies(parts: list[bytes]) -> None:
    h = FakeHandlers()
    reply, stop = _ask(parts, h)
    assert reply["ok"] is False and reply["error"] and not stop
    assert h.calls == []


def test_inject_and_clear_reach_the_handlers_with_defaults_filled_in() -> None:
    h = FakeHandlers()
    reply, stop = _ask({"cmd": "inject", "kind": "bearing", "source": 1}, h)
    assert reply == {"v": VERSION, "ok": True, "source": 1, "kind": "bearing", "sample_index": 640} and not stop
    assert h.calls[-1] == ("inject", FaultConfig("bearing", 1, at_s=0.0, ramp_s=0.5, severity=1.0))
    _ask({"cmd": "inject", "kind": "cavitation", "source": 2, "severity": 2, "ramp_s": 0, "v": VERSION}, h)
    assert h.calls[-1] == ("inject", FaultConfig("cavitation", 2, at_s=0.0, ramp_s=0.0, severity=2.0))
    assert _ask({"cmd": "clear", "source": 2}, h)[0] == {"v": VERSION, "ok": True, "source": 2, "cleared": 1,
                                                         "sample_index": 1280}
    assert h.calls[-1] == ("clear", 2)


@pytest.mark.parametrize("req", [
    {"cmd": "inject", "source": 1},
    {"cmd": "inject", "kind": "meteor", "source": 1},
    {"cmd": "inject", "kind": 3, "source": 1},
    {"cmd": "inject", "kind": "bearing"},
    {"cmd": "inject", "kind": "bearing", "source": "1"},
    {"cmd": "inject", "kind": "bearing", "source": True},
    {"cmd": "inject", "kind": "bearing", "source": 1, "severity": 0},
    {"cmd": "inject", "kind": "bearing", "source": 1, "severity": -1},
    {"cmd": "inject", "kind": "bearing", "source": 1, "severity": 1e9},
    {"cmd": "inject", "kind": "bearing", "source": 1, "severity": "big"},
    {"cmd": "inject", "kind": "bearing", "source": 1, "ramp_s": -0.1},
    {"cmd": "inject", "kind": "bearing", "source": 1, "ramp_s": None},
    {"cmd": "inject", "kind": "bearing", "source": 1, "at_s": 3},
    {"cmd": "clear"},
    {"cmd": "clear", "source": 1.5},
])
def test_malformed_inject_and_clear_are_refused_before_the_handlers(req: dict[str, Any]) -> None:
    h = FakeHandlers()
    reply, stop = _ask(req, h)
    assert reply["ok"] is False and reply["error"].startswith("bad_request") and not stop
    assert h.calls == []


def test_non_finite_severity_is_refused() -> None:
    h = FakeHandlers()
    reply, _ = _ask([b'{"cmd": "inject", "kind": "bearing", "source": 1, "severity": NaN}'], h)
    assert reply["ok"] is False and h.calls == []


# --- the plant behind the commands ----------------------------------------------------------

CH = ["vib_x", "vib_y", "current", "temp"]
PUMP, FAN = SourceConfig(1, "pump-1", list(CH)), SourceConfig(2, "fan-2", list(CH))
KINDS = ["bearing", "imbalance", "spike", "freeze", "bearing_wear", "imbalance_growth", "cavitation"]


def _pair() -> tuple[Plant, Plant]:
    """Two plays of the same plant: one for the faults, one as the healthy reference."""
    return Plant([PUMP, FAN], SimConfig(seed=3)), Plant([PUMP, FAN], SimConfig(seed=3))


def _high_band(x: np.ndarray, lo_hz: float = 1000.0) -> float:
    spec = np.abs(np.fft.rfft(x - x.mean())) ** 2
    return float(spec[np.fft.rfftfreq(len(x), 1 / 6400.0) >= lo_hz].sum())


def _play(plant: Plant, source: int, frames: int) -> np.ndarray:
    return np.concatenate([plant.next_frame(source) for _ in range(frames)], axis=1)


@pytest.mark.parametrize("kind", KINDS)
def test_injected_fault_begins_at_the_next_sample_and_clear_ends_it(kind: str) -> None:
    plant, ref = _pair()
    assert np.array_equal(_play(plant, 1, 5), _play(ref, 1, 5))
    # Any kind, configured or not, and whatever at_s says: it begins at the next sample.
    index = plant.inject(1, FaultConfig(kind, 1, at_s=99.0, ramp_s=0.05, severity=1.0))  # type: ignore[arg-type]
    assert index == 5 * 128 == plant.samples_generated(1)
    faulty, healthy = _play(plant, 1, 25), _play(ref, 1, 25)
    assert not np.array_equal(faulty[:3], healthy[:3])
    assert [(o.source_id, o.kind, o.sample_index) for o in plant.onsets()] == [(1, kind, index)]
    assert np.array_equal(_play(plant, 2, 30), _play(ref, 2, 30))  # the other machine is untouched

    assert plant.clear(1) == 1
    assert plant.clear(1) == 0
    # Healthy again from the next sample: vibration and current as if nothing had happened
    # (the temperature keeps its own slow memory of a bearing fault's heat).
    assert np.array_equal(_play(plant, 1, 10)[:3], _play(ref, 1, 10)[:3])


def test_a_fault_can_be_injected_again_after_clear() -> None:
    plant, ref = _pair()
    for _ in range(3):
        plant.inject(1, FaultConfig("bearing", 1, at_s=0.0, ramp_s=0.0))
        faulty, healthy = _play(plant, 1, 10), _play(ref, 1, 10)
        # Impacts at full size from the onset ring the ~2 kHz resonance: far more energy
        # there than the healthy machine has.
        assert _high_band(faulty[0]) > 5 * _high_band(healthy[0])
        plant.clear(1)
        assert np.array_equal(_play(plant, 1, 5)[:3], _play(ref, 1, 5)[:3])
    assert [o.kind for o in plant.onsets()] == ["bearing"] * 3


def test_clear_leaves_faults_scheduled_for_later_alone() -> None:
    plant = Plant([PUMP, FAN], SimConfig(seed=3, faults=[FaultConfig("spike", 1, at_s=0.5)]))
    plant.start_schedule()
    plant.inject(1, FaultConfig("imbalance", 1, at_s=0.0, ramp_s=0.0))
    _play(plant, 1, 2)
    assert plant.clear(1) == 1  # the imbalance; the spike has not begun
    _play(plant, 1, 30)
    assert [o.kind for o in plant.onsets()] == ["imbalance", "spike"]


def test_inject_names_a_known_source() -> None:
    plant, _ = _pair()
    with pytest.raises(SimConfigError):
        plant.inject(7, FaultConfig("bearing", 7, at_s=0.0))
    with pytest.raises(SimConfigError):
        plant.inject(1, FaultConfig("bearing", 2, at_s=0.0))
    with pytest.raises(SimConfigError):
        plant.clear(7)


# --- over the sim process's socket ----------------------------------------------------------


def _cfg(ipc_dir: Path, **sim: Any) -> config.Config:
    return config.from_dict({
        "sources": [{"id": 1, "name": "pump-1", "channels": CH}, {"id": 2, "name": "fan-2", "channels": CH}],
        "bus": {name: f"ipc://{ipc_dir}/{name}" for name in ("frames", "monitor_out", "interlock_cmd", "sim_ctl")},
        "sim": sim,
    })


@contextmanager
def _running(cfg: config.Config) -> Iterator[Callable[..., dict[str, Any]]]:
    """The sim's ``serve`` in a thread; yields a request function; stops and joins on exit."""
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(cfg, stop), name="sim")
    ctx: zmq.Context[Any] = zmq.Context()

    def ask(cmd: str, **kw: Any) -> dict[str, Any]:
        return sim_request(ctx, cfg.bus.sim_ctl, cmd, timeout_ms=2000, **kw)

    def ready() -> dict[str, Any] | None:
        try:
            return sim_request(ctx, cfg.bus.sim_ctl, "status", timeout_ms=300)
        except ControlTimeout:
            return None

    thread.start()
    try:
        wait_until(ready, 30, "sim ready", poll_s=0.05)
        yield ask
    finally:
        stop.set()
        thread.join(15)
        ctx.destroy(linger=0)


async def _arm_then_fall_silent(port: int) -> None:
    """What an interlock does when it arms (heartbeat, permit 1), and then nothing more."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    try:
        assert not (await client.write_register(0, 1, device_id=1)).isError()
        assert not (await client.write_coil(0, True, device_id=1)).isError()
    finally:
        client.close()


def test_inject_and_clear_over_the_control_socket(ipc_dir: Path) -> None:
    with capture_logs() as logs, _running(_cfg(ipc_dir)) as ask:
        got = ask("inject", kind="bearing", source=2, ramp_s=0.0)
        assert got["ok"] and got["source"] == 2 and got["kind"] == "bearing" and got["sample_index"] >= 0
        onset = wait_until(lambda: ask("status")["fault_onsets"], 10, "onset stamped", poll_s=0.05)[0]
        assert (onset["source"], onset["kind"], onset["sample_index"]) == (2, "bearing", got["sample_index"])
        assert onset["t_onset_ns"] <= time.monotonic_ns()
        cleared = ask("clear", source=2)
        assert cleared["ok"] and cleared["cleared"] == 1 and cleared["sample_index"] > got["sample_index"]
        assert ask("clear", source=2)["cleared"] == 0
        refused = ask("inject", kind="bearing", source=9)
        assert refused["ok"] is False and "no source with id 9" in refused["error"]
        assert ask("clear", source=9)["ok"] is False
    events = [e["event"] for e in logs]
    assert "fault_injected" in events and "faults_cleared" in events


def test_bench_machines_keep_running_through_a_plc_stop(ipc_dir: Path) -> None:
    cfg = _cfg(ipc_dir, watchdog_ms=100.0, machines_follow_plc=False)
    with _running(cfg) as ask:
        asyncio.run(_arm_then_fall_silent(ask("status")["ports"]["modbus"]))
        plc = wait_until(lambda: (p := ask("status")["plc"])["watchdog_tripped"] and p, 10, "watchdog trip")
        assert plc["state"] == 2 and plc["running"] is False  # the PLC's output is off...
        assert ask("status")["machines_running"] is True  # ...and the bench's motors ignore it
