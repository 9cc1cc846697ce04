"""The interlock process end to end: ``serve`` on a thread, a real pymodbus PLC (and an
asyncua one for failover), a fake monitor made of a real ZeroMQ PUB socket, commands over
the real REP socket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from interlock.journal import Journal
from interlock.service import MAX_DRAIN, serve
from tests.interlock.conftest import (
    PLC_NS,
    FakeMonitor,
    FreezableProxy,
    ModbusPlc,
    OpcuaPlc,
)
from tests.waiting import wait_until
from tripwire import config
from tripwire.control import command, request
from tripwire.config import BusConfig
from tripwire.messages import VERSION, Heartbeat, HeartbeatFlag, Level, Link, encode_heartbeat

TOKEN = "open-sesame"
HB_MS = 50.0


def make_cfg(ipc_dir: Path, journal: Path, *, modbus_port: int = 0, opcua_url: str = "",
             targets: tuple[str, ...] = ("modbus",), reset_token: str = TOKEN) -> config.Config:
    # Generous timings: a loaded 2-core test machine must never cause a spurious trip.
    return config.from_dict({
        "sources": [{"id": 1, "name": "pump-1", "channels": ["vib_x", "vib_y", "current", "temp"]}],
        "bus": {"monitor_out": f"ipc://{ipc_dir}/monitor", "interlock_cmd": f"ipc://{ipc_dir}/cmd",
                "frames": f"ipc://{ipc_dir}/frames", "sim_ctl": f"ipc://{ipc_dir}/sim"},
        "interlock": {
            "deadline_ms": 1000.0, "liveness_ms": 400.0, "verdict_budget_ms": 600.0,
            "plc_heartbeat_ms": HB_MS, "late_trip_after": 3, "targets": list(targets),
            "journal": str(journal), "reset_token": reset_token,
            "modbus": {"port": modbus_port or 1, "timeout_ms": 200.0},
            "opcua": {"url": opcua_url or "opc.tcp://127.0.0.1:4840", "namespace": PLC_NS,
                      "timeout_ms": 300.0},
        },
    })


class RunningInterlock:
    """``serve`` on a thread, with a command client."""

    def __init__(self, cfg: config.Config, ctx: zmq.Context[Any]) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.stop_event = threading.Event()
        self.rc: int | None = None
        self.thread = threading.Thread(target=self._run, name="interlock-serve")

    def _run(self) -> None:
        self.rc = serve(self.cfg, self.stop_event)

    def start(self) -> "RunningInterlock":
        self.thread.start()
        wait_until(lambda: self._answers(), 15, "the interlock's command socket")
        return self

    def _answers(self) -> bool:
        try:
            self.status()
        except TimeoutError:
            return False
        return True

    def cmd(self, name: str, **kw: str) -> dict[str, Any]:
        return command(self.ctx, self.cfg.bus.interlock_cmd, name, timeout_ms=5000, **kw)

    def status(self) -> dict[str, Any]:
        return command(self.ctx, self.cfg.bus.interlock_cmd, "status", timeout_ms=2000)

    def wait_state(self, state: str, timeout_s: float = 15.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            st = self.status()
            return st if st["state"] == state else None
        return dict(wait_until(probe, timeout_s, f"state {state}"))

    def stop(self) -> int | None:
        self.stop_event.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "serve did not return"
        return self.rc




@pytest.fixture
def monitor(ipc_dir: Path, zmq_ctx: zmq.Context[Any]) -> Iterator[FakeMonitor]:
    mon = FakeMonitor(zmq_ctx, f"ipc://{ipc_dir}/monitor")
    mon.start()
    yield mon
    mon.stop()


@pytest.fixture
def running(zmq_ctx: zmq.Context[Any]) -> Iterator[list[RunningInterlock]]:
    """Interlocks a test starts; each is stopped at the end."""
    started: list[RunningInterlock] = []
    yield started
    for il in started:
        if il.thread.is_alive():
            il.stop()


def start(running: list[RunningInterlock], cfg: config.Config, ctx: zmq.Context[Any]) -> RunningInterlock:
    il = RunningInterlock(cfg, ctx)
    running.append(il)
    return il.start()


def journal_kinds(path: Path) -> list[str]:
    with Journal(path) as j:
        return [e.kind for e in j.entries()]


def heartbeat_advances(read: Any, periods: int = 4) -> bool:
    first = read()
    return bool(wait_until(lambda: read() != first, periods * HB_MS / 1e3 + 5, "PLC heartbeat change"))


def test_arms_trips_on_trip_verdict_and_permit_is_0_in_the_plc(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    journal = tmp_path / "journal.sqlite"
    il = start(running, make_cfg(ipc_dir, journal, modbus_port=modbus_plc.port), zmq_ctx)
    st = il.wait_state("ARMED")
    assert st["targets"] == {"modbus": True}
    assert modbus_plc.coil(0) is True
    heartbeat_advances(lambda: modbus_plc.register(0))

    for _ in range(5):
        monitor.send_verdict(Level.OK)
    v = monitor.send_verdict(Level.TRIP, seq=42, score=9.5, threshold=2.0, channels=("vib_x", "vib_y"))
    st = il.wait_state("TRIPPED")
    assert modbus_plc.coil(0) is False
    assert modbus_plc.register(1) == 1  # trip reason: verdict
    (trip,) = st["trips"]
    assert trip["reason"] == "verdict" and trip["acked"] is True and trip["target"] == "modbus"
    assert trip["source_id"] == 1 and trip["seq"] == 42 and trip["t_acq_ns"] == v.t_acq_ns
    assert trip["channels"] == ["vib_x", "vib_y"] and trip["score"] == 9.5
    assert trip["t_acq_ns"] <= trip["t_decision_ns"] <= trip["t_ack_ns"]
    assert trip["trip_latency_ms"] > 0 and trip["journaled"] is True
    assert st["counters"]["verdicts"] == 6 and st["counters"]["trip_verdicts"] == 1
    assert st["latency"]["total"] == 6

    monitor.send_verdict(Level.TRIP)  # further trip verdicts are counted, nothing else
    wait_until(lambda: il.status()["counters"]["ignored_trip_verdicts"] == 1, 10, "ignored trip")
    assert len(il.status()["trips"]) == 1
    heartbeat_advances(lambda: modbus_plc.register(0))  # delivered: the heartbeat keeps going

    assert il.cmd("shutdown")["ok"] is True
    il.thread.join(20)
    assert il.rc == 0
    kinds = journal_kinds(journal)
    assert kinds[0] == "start" and "armed" in kinds and kinds[-1] == "shutdown"
    assert kinds.index("trip") < kinds.index("stop_acked")


def test_batches_of_verdicts_beyond_one_drain_are_all_judged(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    il = start(running, make_cfg(ipc_dir, tmp_path / "journal.sqlite",
                                 modbus_port=modbus_plc.port), zmq_ctx)
    il.wait_state("ARMED")
    before = il.status()["counters"]["verdicts"]
    # Nothing else arrives and nobody asks the interlock anything: what is left after one
    # drain (MAX_DRAIN parts) must be read without a new message's edge to wake for.
    batches, size = 20, 40
    assert batches * size > MAX_DRAIN
    flood = [[monitor.verdict(Level.OK) for _ in range(size)] for _ in range(batches)]
    # the last batch has a TRIP verdict in its middle: the interlock trips on that verdict
    flood.append([monitor.verdict(Level.OK, seq=7), monitor.verdict(Level.TRIP, seq=8),
                  monitor.verdict(Level.OK, seq=9)])
    monitor.heartbeats.clear()
    for batch in flood:
        monitor.send_batch(batch)
    wait_until(lambda: modbus_plc.coil(0) is False, 10, "the stop at the PLC")
    monitor.heartbeats.set()
    st = il.status()
    (trip,) = st["trips"]
    assert trip["reason"] == "verdict" and trip["seq"] == 8 and trip["acked"] is True
    assert st["counters"]["verdicts"] == before + batches * size + 3


def test_trips_when_monitor_heartbeats_stop(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    il = start(running, make_cfg(ipc_dir, tmp_path / "j.sqlite", modbus_port=modbus_plc.port), zmq_ctx)
    il.wait_state("ARMED")
    monitor.heartbeats.clear()
    st = il.wait_state("TRIPPED")
    (trip,) = st["trips"]
    assert trip["reason"] == "monitor_silent" and trip["acked"] is True
    assert trip["t_acq_ns"] is None and trip["trip_latency_ms"] is None
    assert modbus_plc.coil(0) is False
    assert modbus_plc.register(1) == 2

    # The cause is present: even the right token is refused until heartbeats return.
    refused = il.cmd("reset", token=TOKEN)
    assert refused["ok"] is False and refused["error"] == "cause_present"
    monitor.heartbeats.set()
    reply = wait_until(lambda: (r := il.cmd("reset", token=TOKEN))["ok"] and r, 10, "reset accepted")
    assert reply["state"] == "ARMED"
    assert modbus_plc.coil(0) is True


def test_reset_needs_the_token(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    journal = tmp_path / "j.sqlite"
    il = start(running, make_cfg(ipc_dir, journal, modbus_port=modbus_plc.port), zmq_ctx)
    il.wait_state("ARMED")
    not_tripped = il.cmd("reset", token=TOKEN)
    assert not_tripped["ok"] is False and not_tripped["error"] == "not_tripped"

    reply = il.cmd("trip", reason="operator test")
    assert reply["ok"] is True and reply["tripped"] is True and reply["trip"]["reason"] == "manual"
    assert reply["trip"]["detail"] == "operator test"
    assert modbus_plc.coil(0) is False

    for token in ("", "wrong"):
        refused = il.cmd("reset", token=token)
        assert refused["ok"] is False and refused["error"] == "bad_token"
        assert il.status()["state"] == "TRIPPED"
    assert modbus_plc.coil(0) is False

    ok = il.cmd("reset", token=TOKEN)
    assert ok["ok"] is True and ok["state"] == "ARMED"
    assert modbus_plc.coil(0) is True

    assert il.cmd("acknowledge", token="wrong")["error"] == "bad_token"
    assert il.cmd("acknowledge", token=TOKEN)["ok"] is True
    inhibit = il.cmd("inhibit", token=TOKEN)
    assert inhibit["ok"] is False and inhibit["error"] == "unsupported_command"
    assert il.status()["state"] == "ARMED"  # neither command is mistaken for another
    il.stop()
    kinds = journal_kinds(journal)
    assert kinds.count("reset_refused") == 3 and kinds.count("reset") == 1
    assert kinds.count("acknowledge") == 1
    assert kinds.index("trip") < kinds.index("reset")


def test_reset_refused_when_no_token_is_configured(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    cfg = make_cfg(ipc_dir, tmp_path / "j.sqlite", modbus_port=modbus_plc.port, reset_token="")
    il = start(running, cfg, zmq_ctx)
    il.wait_state("ARMED")
    il.cmd("trip")
    refused = il.cmd("reset", token="")
    assert refused["ok"] is False and refused["error"] == "reset_disabled"
    assert "no reset token" in refused["detail"]


def test_plc_that_stops_answering_trip_reported_unacked(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    proxy = FreezableProxy(("127.0.0.1", modbus_plc.port))
    proxy.start()
    try:
        journal = tmp_path / "j.sqlite"
        il = start(running, make_cfg(ipc_dir, journal, modbus_port=proxy.port), zmq_ctx)
        il.wait_state("ARMED")
        proxy.freeze()
        monitor.send_verdict(Level.TRIP)
        st = il.wait_state("TRIPPED")
        (trip,) = st["trips"]
        assert trip["acked"] is False and trip["target"] is None and trip["t_ack_ns"] is None
        assert trip["trip_latency_ms"] is None
        assert trip["attempts"][0]["target"] == "modbus" and not trip["attempts"][0]["acked"]
        alarms = {a["name"]: a for a in st["alarms"]}
        assert alarms["stop_undelivered"]["active"] is True
        assert st["stop_undelivered"] is True and st["plc_heartbeat_running"] is False
        assert modbus_plc.coil(0) is True  # the stop never arrived ...
        frozen_hb = modbus_plc.register(0)
        wait_until(lambda: il.status()["counters"]["stop_retries"] >= 3, 10, "stop retries")
        assert modbus_plc.register(0) == frozen_hb  # ... and the PLC heartbeat stopped
        st = il.status()
        assert st["trips"][0]["acked"] is False  # never reported acked
        refused = il.cmd("reset", token=TOKEN)
        assert refused["ok"] is False and refused["error"] == "cause_present"

        proxy.unfreeze()  # the PLC answers again: a retry delivers the stop, late
        st = wait_until(lambda: (s := il.status())["stop_undelivered"] is False and s, 10,
                        "the late delivery")
        assert modbus_plc.coil(0) is False
        assert st["trips"][0]["acked"] is False  # a late confirmation never rewrites the trip
        assert st["plc_heartbeat_running"] is False  # stays stopped until a reset
        assert not any(a["name"] == "stop_undelivered" and a["active"] for a in st["alarms"])
        ok = il.cmd("reset", token=TOKEN)
        assert ok["ok"] is True and ok["state"] == "ARMED"
        il.stop()
        with Journal(journal) as j:
            late = [e.data for e in j.entries("stop_acked")]
            kinds = [e.kind for e in j.entries()]
        assert late and late[0]["late"] is True
        assert "stop_failed" in kinds and "alarm" in kinds
    finally:
        proxy.stop()


def test_failover_to_opcua_when_modbus_is_silent(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, opcua_plc: OpcuaPlc,
        monitor: FakeMonitor, zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    proxy = FreezableProxy(("127.0.0.1", modbus_plc.port))
    proxy.start()
    try:
        cfg = make_cfg(ipc_dir, tmp_path / "j.sqlite", modbus_port=proxy.port,
                       opcua_url=opcua_plc.url, targets=("modbus", "opcua"))
        il = start(running, cfg, zmq_ctx)
        st = il.wait_state("ARMED")
        assert st["targets"] == {"modbus": True, "opcua": True}
        assert opcua_plc.value("Permit") is True and modbus_plc.coil(0) is True
        heartbeat_advances(lambda: opcua_plc.value("Heartbeat"))
        proxy.freeze()
        monitor.send_verdict(Level.TRIP)
        st = il.wait_state("TRIPPED")
        (trip,) = st["trips"]
        assert trip["acked"] is True and trip["target"] == "opcua"
        assert [a["acked"] for a in trip["attempts"]] == [False, True]
        assert opcua_plc.value("Permit") is False
        assert opcua_plc.value("TripReason") == 1
        assert st["stop_undelivered"] is False
        il.stop()
    finally:
        proxy.stop()


def test_refuses_to_arm_with_plc_watchdog_disabled(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    modbus_plc.set_register(ModbusPlc.WATCHDOG, 0)
    il = start(running, make_cfg(ipc_dir, tmp_path / "j.sqlite", modbus_port=modbus_plc.port), zmq_ctx)
    st = wait_until(lambda: (s := il.status())["selftest"] != "not run yet" and s, 10, "a self-test")
    assert st["state"] == "SAFE" and "watchdog disabled" in st["selftest"]
    assert any(a["name"] == "plc_watchdog_disabled:modbus" and a["active"] for a in st["alarms"])
    assert modbus_plc.coil(0) is False
    modbus_plc.set_register(ModbusPlc.WATCHDOG, 300)
    st = il.wait_state("ARMED")
    assert not any(a["name"] == "plc_watchdog_disabled:modbus" and a["active"] for a in st["alarms"])


def test_restart_after_trip_stays_latched_until_reset(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    journal = tmp_path / "j.sqlite"
    cfg = make_cfg(ipc_dir, journal, modbus_port=modbus_plc.port)
    first = start(running, cfg, zmq_ctx)
    first.wait_state("ARMED")
    first.cmd("trip", reason="before restart")
    assert first.cmd("shutdown")["ok"] is True
    first.thread.join(20)
    assert first.rc == 0

    second = start(running, cfg, zmq_ctx)
    st = wait_until(lambda: ((s := second.status())["selftest"].startswith("latched")
                             and s["counters"]["heartbeats"] > 0 and s), 10,
                    "the latched self-test with the monitor heard")
    assert st["state"] == "SAFE" and st["latched"] is True
    assert modbus_plc.coil(0) is False
    ok = second.cmd("reset", token=TOKEN)
    assert ok["ok"] is True and ok["state"] == "ARMED"
    assert modbus_plc.coil(0) is True


def test_timeliness_trips_after_consecutive_late_verdicts(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    il = start(running, make_cfg(ipc_dir, tmp_path / "j.sqlite", modbus_port=modbus_plc.port), zmq_ctx)
    il.wait_state("ARMED")
    # Late verdicts of the armed period: acquired after arming, 700 ms old against the 600 ms
    # budget (verdicts acquired before arming count as misses but build no streak).
    time.sleep(1.0)
    old = time.monotonic_ns() - 700_000_000
    monitor.send_verdict(Level.OK, t_acq_ns=old)
    monitor.send_verdict(Level.OK, t_acq_ns=old)
    wait_until(lambda: il.status()["counters"]["deadline_misses"] == 2, 10, "two misses")
    assert il.status()["state"] == "ARMED"
    monitor.send_verdict(Level.OK, t_acq_ns=old)
    st = il.wait_state("TRIPPED")
    assert st["trips"][0]["reason"] == "late_verdicts"


def test_verdicts_from_before_arming_are_misses_but_never_trip(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    before = time.monotonic_ns()  # a backlog acquired while the interlock was starting
    il = start(running, make_cfg(ipc_dir, tmp_path / "j.sqlite", modbus_port=modbus_plc.port), zmq_ctx)
    il.wait_state("ARMED")
    time.sleep(0.7)  # past the 600 ms budget
    for _ in range(3):  # a late streak's worth, from one source
        monitor.send_verdict(Level.OK, t_acq_ns=before)
    wait_until(lambda: il.status()["counters"]["late_before_armed"] == 3, 10, "three misses")
    st = il.status()
    assert st["counters"]["deadline_misses"] == 3 and st["state"] == "ARMED"


def test_bad_input_is_counted_never_fatal(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock]) -> None:
    il = start(running, make_cfg(ipc_dir, tmp_path / "j.sqlite", modbus_port=modbus_plc.port), zmq_ctx)
    il.wait_state("ARMED")
    endpoint = il.cfg.bus.interlock_cmd
    for raw, error in ((b"\xff\xfe", "bad_json"), (b"[1]", "bad_command"),
                       (b'{"v": %d, "cmd": "dance"}' % VERSION, "unknown_command"),
                       (b'{"v": 99, "cmd": "status"}', "bad_version")):
        reply = request(zmq_ctx, endpoint, raw, timeout_ms=5000)
        assert reply["ok"] is False and reply["error"] == error
    monitor.send_raw(b"TWVDgarbage")
    monitor.send_raw(b"nonsense")
    hb = Heartbeat(1, 10**9, 0, 0, 0, 0, 0, HeartbeatFlag.NONE)
    corrupted = bytearray(encode_heartbeat(hb, monitor.link))
    corrupted[20] ^= 4
    monitor.send_raw(bytes(corrupted))
    monitor.send_raw(encode_heartbeat(hb, Link.monitor("another-cell", 1)))  # wrong address
    monitor.send_raw(encode_heartbeat(hb, Link.monitor(BusConfig().cell, 2)))  # another monitor
    monitor.send_verdict(Level.OK, verdict_seq=100)
    monitor.send_verdict(Level.OK, verdict_seq=100)  # a repeat
    monitor.send_verdict(Level.OK, verdict_seq=103)  # a gap of two
    st = wait_until(lambda: (s := il.status())["counters"]["seq_gaps"] == 2 and s, 10, "counters")
    c = st["counters"]
    assert c["decode_errors"] == 5
    assert (c["crc_errors"], c["wrong_address"], c["masquerade"]) == (1, 1, 1)
    assert c["seq_repeats"] == 1
    assert st["state"] == "ARMED"


def test_unexpected_exception_in_the_loop_fails_safe_and_keeps_running(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any], running: list[RunningInterlock], monkeypatch: pytest.MonkeyPatch) -> None:
    from interlock import controller

    def broken(self: controller.Interlock, v: Any, now_ns: int) -> None:
        raise RuntimeError("injected fault")

    il = start(running, make_cfg(ipc_dir, tmp_path / "j.sqlite", modbus_port=modbus_plc.port), zmq_ctx)
    il.wait_state("ARMED")
    monkeypatch.setattr(controller.Interlock, "_on_verdict", broken)  # fault injection
    monitor.send_verdict(Level.OK)
    st = il.wait_state("TRIPPED")
    assert st["trips"][0]["reason"] == "internal_error"
    assert modbus_plc.coil(0) is False
    assert il.thread.is_alive()  # never silently dies
    assert il.status()["counters"]["internal_errors"] >= 1


def test_sigterm_in_a_real_process_is_a_clean_shutdown(
        ipc_dir: Path, tmp_path: Path, modbus_plc: ModbusPlc, monitor: FakeMonitor,
        zmq_ctx: zmq.Context[Any]) -> None:
    import signal
    import subprocess
    import sys

    journal = tmp_path / "j.sqlite"
    cfg = make_cfg(ipc_dir, journal, modbus_port=modbus_plc.port)
    path = tmp_path / "tripwire.toml"
    path.write_text(config.dumps_toml(config.to_dict(cfg)))
    proc = subprocess.Popen([sys.executable, "-m", "tripwire.cli", "run", "interlock", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def armed() -> bool:
            try:
                return command(zmq_ctx, cfg.bus.interlock_cmd, "status", timeout_ms=500)["state"] == "ARMED"
            except TimeoutError:
                return False
        wait_until(armed, 60, "the interlock process to arm")
        assert modbus_plc.coil(0) is True
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    assert modbus_plc.coil(0) is False  # safe state on the way out, not counted as a trip
    kinds = journal_kinds(journal)
    assert kinds[-1] == "shutdown" and "trip" not in kinds
    assert b"interlock_stopped" in out
