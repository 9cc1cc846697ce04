"""The monitor process end to end: a real bundle, real ZeroMQ ipc sockets, real frames."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from structlog.testing import capture_logs

from models.bundle import load_bundle
from monitor.errors import BundleRefused
from monitor.service import _GcPauses, check_spec, run, serve
from tests.monitor.conftest import SwitchedScorer, TinyBundle
from tests.monitor.rig import FRAME, RATE, SPEC, Rig, monitor_table, plant_signal, start_in_thread
from tripwire import config, messages
from tripwire.messages import HeartbeatFlag, Level, VerdictFlag

ANY_TIMING = ~VerdictFlag.LATE  # on a loaded test machine a verdict may be late; not the point


def _frames(seed: int, count: int) -> list[np.ndarray]:
    x = plant_signal(count * FRAME, seed)
    return [x[:, i * FRAME:(i + 1) * FRAME] for i in range(count)]


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def test_check_spec_accepts_the_matching_spec_and_names_mismatches(tiny_bundle: TinyBundle,
                                                                   ipc_dir: Path) -> None:
    cfg = config.from_dict(monitor_table(ipc_dir, tiny_bundle.path))
    assert check_spec(SPEC.to_dict(), cfg) == SPEC
    for table, needle in (
        ({**monitor_table(ipc_dir, tiny_bundle.path), "monitor": {"window": 2048}}, "window"),
        ({**monitor_table(ipc_dir, tiny_bundle.path, hop=256)}, "window/hop"),
    ):
        with pytest.raises(BundleRefused, match=needle) as e:
            check_spec(SPEC.to_dict(), config.from_dict(table))
        assert e.value.reason == "spec_mismatch"
    t = monitor_table(ipc_dir, tiny_bundle.path)
    t["sources"][1]["channels"] = ["vib_x", "vib_y", "current", "oil"]
    with pytest.raises(BundleRefused, match=r"sources\[1\].channels"):
        check_spec(SPEC.to_dict(), config.from_dict(t))
    t = monitor_table(ipc_dir, tiny_bundle.path)
    t["sources"][0]["sample_rate_hz"] = 12800.0
    with pytest.raises(BundleRefused, match="sample_rate_hz"):
        check_spec(SPEC.to_dict(), config.from_dict(t))
    with pytest.raises(BundleRefused) as e:
        check_spec({"channels": []}, cfg)
    assert e.value.reason == "spec_invalid"


@pytest.mark.parametrize("damage,reason", [
    ("missing", "bundle_missing"), ("tampered", "integrity_error"), ("channels", "spec_mismatch"),
])
def test_serve_refuses_a_bundle_it_cannot_trust(tiny_bundle: TinyBundle, ipc_dir: Path,
                                                tmp_path: Path, damage: str, reason: str) -> None:
    bundle = tmp_path / "b"
    if damage != "missing":
        bundle.mkdir()
        for f in tiny_bundle.path.iterdir():
            (bundle / f.name).write_bytes(f.read_bytes())
    if damage == "tampered":
        data = bytearray((bundle / "model.onnx").read_bytes())
        data[-1] ^= 0xFF
        (bundle / "model.onnx").write_bytes(bytes(data))
    table = monitor_table(ipc_dir, bundle)
    if damage == "channels":
        for s in table["sources"]:
            s["channels"] = ["a", "b", "c", "d"]
    with capture_logs() as logs:
        code = serve(config.from_dict(table), threading.Event())
    assert code == 2
    (refused,) = _events(logs, "bundle_refused")
    assert refused["reason"] == reason
    assert not _events(logs, "monitor_ready")


def test_serve_reports_a_busy_endpoint(tiny_bundle: TinyBundle, ipc_dir: Path) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    squatter = ctx.socket(zmq.PUB)
    squatter.linger = 0
    port = squatter.bind_to_random_port("tcp://127.0.0.1")
    try:
        table = monitor_table(ipc_dir, tiny_bundle.path)
        table["bus"]["frames"] = f"tcp://127.0.0.1:{port}"
        with capture_logs() as logs:
            assert serve(config.from_dict(table), threading.Event()) == 3
        assert _events(logs, "bus_bind_failed")
    finally:
        squatter.close(0)
        ctx.term()


def test_monitor_scores_flags_rejects_and_trips(tiny_bundle: TinyBundle, ipc_dir: Path) -> None:
    cfg = config.from_dict(monitor_table(ipc_dir, tiny_bundle.path))
    normal = {1: _frames(11, 60), 2: _frames(12, 60)}
    with capture_logs() as logs:
        running = start_in_thread(lambda stop: serve(cfg, stop))
        rig = Rig(cfg)
        try:
            rig.connect()
            # 1. normal running: one verdict per window once the first window is full
            n = 16
            for seq in range(n):
                for sid in (1, 2):
                    rig.send_frame(sid, seq, normal[sid][seq])
            rig.wait(lambda: rig.verdict(1, n - 1) and rig.verdict(2, n - 1), "normal verdicts")
            for sid in (1, 2):
                got = [v for v in rig.verdicts if v.source_id == sid and not v.flags & VerdictFlag.STALE]
                assert [v.seq for v in got] == list(range(SPEC.blocks - 1, n))
                for v in got:
                    assert v.level == Level.OK and v.flags & ANY_TIMING == VerdictFlag.NONE
                    assert v.score < 0.7 * tiny_bundle.threshold and v.channels == ()
                    assert v.threshold == pytest.approx(tiny_bundle.threshold, rel=1e-6)
                    assert v.model_id == load_bundle(tiny_bundle.path).model_id
                    assert v.t_verdict_ns >= v.t_acq_ns
            seqs = [v.verdict_seq for v in rig.verdicts]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

            # 2. malformed and invalid frames are counted, never fatal
            before = rig.heartbeats[-1].frames_rejected
            header, payload = messages.encode_frame(
                messages.Frame(1, n, 0, 0, RATE, normal[1][n]))
            bad_crc = bytearray(header)
            bad_crc[-1] ^= 0xFF
            nan = normal[1][n].copy()
            nan[3, 10] = np.nan
            rig.send_raw([b"one part"])
            rig.send_raw([bytes(header), bytes(payload), b"extra"])
            rig.send_raw([bytes(bad_crc), bytes(payload)])
            rig.send_frame(1, n, normal[1][n][:3])  # three channels where four are configured
            rig.send_frame(99, n, normal[1][n])  # nobody configured source 99
            rig.send_frame(1, n, nan)
            rig.send_frame(1, n + 1, normal[1][n + 1])  # accepted; seq n never was: a gap
            rig.send_frame(2, n, normal[2][n])
            rig.send_frame(2, n + 1, normal[2][n + 1])
            rig.wait(lambda: rig.verdict(2, n + 1), "verdicts after rejects")
            assert not rig.verdict(2, n + 1).flags & VerdictFlag.GAP  # type: ignore[union-attr]
            assert rig.verdict(1, n + 1) is None  # pump-1's window starts over after the gap
            rig.wait(lambda: rig.heartbeats[-1].frames_rejected >= before + 6, "rejection counts")

            # 3. a fault on fan-2's vib_y: a strong 1 kHz tone trips within k of n windows
            t = (np.arange(FRAME * 20) + (n + 2) * FRAME) / RATE
            tone = (4.0 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
            for i, seq in enumerate(range(n + 2, n + 12)):
                faulty = normal[2][seq].copy()
                faulty[1] += tone[i * FRAME:(i + 1) * FRAME]
                rig.send_frame(2, seq, faulty)
                rig.send_frame(1, seq, normal[1][seq])
            rig.wait(lambda: rig.verdict(2, n + 11) and rig.verdict(1, n + 11), "fault verdicts")
            fault = [rig.verdict(2, s) for s in range(n + 2, n + 12)]
            levels = [v.level for v in fault if v is not None]
            assert levels[0] == Level.WARN and Level.TRIP in levels
            assert levels.index(Level.TRIP) == cfg.decision.k - 1
            trip = fault[levels.index(Level.TRIP)]
            assert trip is not None and trip.channels[0] == "vib_y" and trip.score > trip.threshold
            # pump-1 scores again once a whole window has passed since the gap: GAP once, all OK
            after_gap = [rig.verdict(1, s) for s in range(n + 2, n + 12)]
            first = n + 1 + SPEC.blocks - 1
            assert [v.seq for v in after_gap if v is not None] == list(range(first, n + 12))
            assert [bool(v.flags & VerdictFlag.GAP) for v in after_gap if v is not None] == \
                [True] + [False] * (n + 11 - first)
            assert all(v.level == Level.OK for v in after_gap if v is not None)

            # 4. the sources fall silent: stale heartbeats, then STALE trips per source
            last = n + 11
            rig.wait(lambda: rig.heartbeats[-1].flags & HeartbeatFlag.SOURCE_STALE, "stale flag")
            def stale_trips() -> bool:
                got = {v.source_id for v in rig.verdicts
                       if v.flags & VerdictFlag.STALE and v.seq == last and v.level == Level.TRIP}
                return got == {1, 2}
            rig.wait(stale_trips, "STALE trip verdicts", timeout_s=30.0)
            assert all(math.isnan(v.score) for v in rig.verdicts if v.flags & VerdictFlag.STALE)
            counters = [h.counter for h in rig.heartbeats]
            assert counters == sorted(counters)
        finally:
            code = running.finish()
            rig.close()
    assert code == 0
    assert _events(logs, "monitor_ready")[0]["warmup_ms"] > 0
    rejected = _events(logs, "frame_rejected")
    assert rejected and sum(e["counts"].get("non_finite", 0) for e in rejected) == 1
    (stopped,) = _events(logs, "monitor_stopped")
    assert stopped["rejected"]["bad_parts"] >= 2  # probes and the one-part message
    for reason in ("decode_bad_crc", "bad_channels", "unknown_source", "non_finite"):
        assert stopped["rejected"][reason] == 1, reason
    assert stopped["gaps"] == 1 and stopped["levels"]["trip"] >= 2
    for stage in ("receive", "validate", "features", "inference", "decision", "total", "service"):
        assert stopped["latency_ms"][stage]["count"] > 0, stage
    # the collector's pauses while looping, per generation (frozen start-up objects aside)
    assert len(stopped["gc_collections"]) == len(stopped["gc_total_ms"]) == 3


def test_gc_pauses_are_counted_and_summed_per_generation() -> None:
    pauses = _GcPauses()
    for gen in (0, 0, 2):
        pauses("start", {"generation": gen})
        pauses("stop", {"generation": gen, "collected": 0})
    out = pauses.summary()
    assert out["gc_collections"] == [2, 0, 1]
    for total, longest in zip(out["gc_total_ms"], out["gc_pause_max_ms"], strict=True):
        assert total >= longest >= 0.0


def test_inference_errors_flag_verdicts_and_the_monitor_recovers(tiny_bundle: TinyBundle,
                                                                 ipc_dir: Path) -> None:
    cfg = config.from_dict(monitor_table(ipc_dir, tiny_bundle.path))
    bundle = load_bundle(tiny_bundle.path)
    scorer = SwitchedScorer(bundle.scorer(providers="cpu"))
    frames = _frames(21, 30)
    with capture_logs() as logs:
        running = start_in_thread(lambda stop: run(cfg, scorer, SPEC, bundle.threshold, stop))
        rig = Rig(cfg)
        try:
            rig.connect()
            for seq in range(10):
                rig.send_frame(1, seq, frames[seq])
            rig.wait(lambda: rig.verdict(1, 9), "a first verdict")
            scorer.failing.set()
            for seq in range(10, 14):
                rig.send_frame(1, seq, frames[seq])
            rig.wait(lambda: rig.verdict(1, 13), "verdicts during the failure")
            for seq in range(10, 14):
                v = rig.verdict(1, seq)
                assert v is not None and v.flags & VerdictFlag.INFERENCE_ERROR
                assert v.level == Level.OK and math.isnan(v.score)
            rig.wait(lambda: rig.heartbeats[-1].flags & HeartbeatFlag.MODEL_ERROR, "model error flag")
            scorer.failing.clear()
            for seq in range(14, 18):
                rig.send_frame(1, seq, frames[seq])
            rig.wait(lambda: rig.verdict(1, 17), "verdicts after recovery")
            v = rig.verdict(1, 17)
            assert v is not None and not v.flags & VerdictFlag.INFERENCE_ERROR and v.level == Level.OK
            rig.wait(lambda: not rig.heartbeats[-1].flags & HeartbeatFlag.MODEL_ERROR, "flag cleared")
        finally:
            code = running.finish()
            rig.close()
    assert code == 0
    assert len(_events(logs, "inference_failed")) == 1  # one line per burst
    assert len(_events(logs, "inference_recovered")) == 1


def test_frozen_or_gappy_input_trips_after_the_bad_input_time(tiny_bundle: TinyBundle,
                                                               ipc_dir: Path) -> None:
    table = monitor_table(ipc_dir, tiny_bundle.path)
    table["decision"]["bad_input_trip_ms"] = 300.0
    table["monitor"]["stale_after_ms"] = 5000.0
    cfg = config.from_dict(table)
    frames = {1: _frames(31, 400), 2: _frames(32, 400)}
    for f in frames[1]:
        f[3] = 55.0  # pump-1's temperature sensor is stuck
    running = start_in_thread(lambda stop: serve(cfg, stop))
    rig = Rig(cfg)
    try:
        rig.connect()
        frozen_trip = gappy_trip = None
        seq = 0
        while frozen_trip is None or gappy_trip is None:
            assert seq < 400, "no bad-input trip"
            rig.send_frame(1, seq, frames[1][seq])
            if seq % 2 == 0:
                rig.send_frame(2, seq, frames[2][seq])  # fan-2 loses every other frame
            processed = rig.heartbeats[-1].frames_processed
            rig.wait(lambda: rig.heartbeats[-1].frames_processed > processed, "frames processed")
            frozen_trip = frozen_trip or next(
                (v for v in rig.verdicts if v.source_id == 1 and v.level == Level.TRIP), None)
            gappy_trip = gappy_trip or next(
                (v for v in rig.verdicts if v.source_id == 2 and v.level == Level.TRIP), None)
            seq += 1
    finally:
        code = running.finish()
        rig.close()
    assert code == 0
    assert frozen_trip.flags & VerdictFlag.SENSOR_FROZEN
    assert all(v.flags & VerdictFlag.SENSOR_FROZEN for v in rig.verdicts if v.source_id == 1)
    # fan-2 never completes a window, so the heartbeat tick trips it
    assert gappy_trip.flags & VerdictFlag.INVALID_INPUT and math.isnan(gappy_trip.score)
    assert not [v for v in rig.verdicts if v.source_id == 2 and not math.isnan(v.score)]


def test_a_frame_longer_than_a_hop_dates_each_window_by_its_own_last_sample(
        tiny_bundle: TinyBundle, ipc_dir: Path) -> None:
    table = monitor_table(ipc_dir, tiny_bundle.path)
    long = 4 * FRAME  # four hops a frame: a DAQ that sends larger blocks
    table["sources"][0]["frame_samples"] = long
    cfg = config.from_dict(table)
    x = plant_signal(3 * long, 21)
    running = start_in_thread(lambda stop: serve(cfg, stop))
    rig = Rig(cfg)
    try:
        rig.connect()
        for seq in range(3):
            rig.send_frame(1, seq, x[:, seq * long:(seq + 1) * long])
        # the first window fills with frame 1; frame 2 makes four, the last ending with it
        rig.wait(lambda: len([v for v in rig.verdicts if v.source_id == 1 and v.seq == 2]) == 4,
                 "four verdicts of frame 2")
    finally:
        rig.close()
        assert running.finish() == 0
    got = [v for v in rig.verdicts if v.source_id == 1 and v.seq == 2]
    hop_ns = int(FRAME / RATE * 1e9)
    assert [b.t_acq_ns - a.t_acq_ns for a, b in itertools.pairwise(got)] == [hop_ns] * 3
    # (the rig sends faster than real time, so frame 2 is stamped just after frame 1)
    first = [v for v in rig.verdicts if v.source_id == 1 and v.seq == 1]
    assert len(first) == 1 and got[-1].t_acq_ns >= first[0].t_acq_ns > got[0].t_acq_ns


def test_a_burst_longer_than_a_heartbeat_period_is_read_to_its_end(
        tiny_bundle: TinyBundle, ipc_dir: Path) -> None:
    # Heartbeats every 5 ms interrupt the drain of a long burst; the frames it left must be
    # read without a new frame to wake for (nothing is sent after the burst).
    cfg = config.from_dict(monitor_table(ipc_dir, tiny_bundle.path))
    n = 300
    frames = _frames(31, n)
    running = start_in_thread(lambda stop: serve(cfg, stop))
    rig = Rig(cfg)
    try:
        rig.connect()
        for seq in range(n):
            rig.send_frame(1, seq, frames[seq])
        rig.wait(lambda: rig.verdict(1, n - 1), "the verdict of the burst's last frame")
    finally:
        rig.close()
        assert running.finish() == 0
    got = sorted(v.seq for v in rig.verdicts if v.source_id == 1 and not v.flags & VerdictFlag.STALE)
    assert got == list(range(SPEC.blocks - 1, n))
