"""The monitor's event loop (shell): frames in, verdicts and heartbeats out.

One thread, one SUB socket (bound on ``bus.frames``) and one PUB socket (bound on
``bus.monitor_out``). Per wake-up: drain what is already queued (never wait for more), decode,
validate, push into the source's window features, score every ready window across sources in
one batch, decide, and publish a Verdict per window; a Heartbeat goes out every
``heartbeat_ms`` (the wait for frames ends at the next one). A source whose input stays
bad past ``decision.bad_input_trip_ms`` gets TRIP verdicts from the heartbeat tick, flagged
STALE (no frames) or INVALID_INPUT (frames, but no usable window: rejected, frozen, or
gaps so frequent that no window completes). A gap or a restarted sequence starts the source's
window over, so a window never spans a hole; the first window after it is flagged GAP.

Black channel: frames are decoded against this cell's identity (``bus.cell`` and each
source's id and name), verdicts and heartbeats go out stamped with the monitor's; a verdict
carries its window's t_acq on this host's monotonic clock (the source's learned clock offset
applied, validate.py), so the interlock's timeliness rule judges real delay. With
``bus.monitor_ctl`` set, a REP socket answers ``status`` commands with the counters as JSON
(the campaign's window onto what was rejected and why); it is served between frames.

Wiring and I/O only: the rules live in validate.py, features.py and decide.py. Nothing here
logs per frame; rejections are summarised at most once a second.
"""

from __future__ import annotations

import math
import os
import resource
import select
import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog
import zmq

from monitor.decide import Decider, Decision
from monitor.errors import BusError
from monitor.features import FeatureSpec, WindowFeatures
from monitor.validate import REJECT_REASONS, FrameValidator
from tripwire import messages
from tripwire.config import Config, SourceConfig
from tripwire.latency import Histogram
from tripwire.messages import FrameLinks, Heartbeat, HeartbeatFlag, Level, Link, Verdict, VerdictFlag

if TYPE_CHECKING:
    from models.protocol import Scorer

MAX_BATCH = 16  # rows per scoring call; the model is warmed for every size up to this
RCV_HWM = 1000  # frames queued in the SUB socket before ZeroMQ drops (counted by the sender)
SND_HWM = 10000
REJECT_LOG_NS = 1_000_000_000
LATE_HB_PERIODS = 3  # a heartbeat gap this many periods long is logged with where the time went
STAGES = ("receive", "validate", "features", "inference", "decision", "total", "heartbeat_gap")


@dataclass(slots=True)
class _Source:
    cfg: SourceConfig
    features: WindowFeatures
    period_ns: int  # one hop of samples: the cadence of this source's verdicts
    last_accepted_ns: int
    last_verdict_ns: int = 0
    pending: VerdictFlag = VerdictFlag.NONE  # carried to the next window (GAP after a reset)
    frozen: bool = False  # the last accepted frame had a constant channel


@dataclass(frozen=True, slots=True)
class _Row:
    source_id: int
    seq: int
    t_acq_ns: int
    flags: VerdictFlag


class _GapProbe:
    """Where a long heartbeat gap went: this thread's CPU time, context switches and page
    faults over the gap. CPU time near the gap is work of our own; a wall gap with little CPU
    and involuntary switches is preemption; voluntary switches are a blocking call."""

    def __init__(self) -> None:
        self._cpu_ns = time.thread_time_ns()
        self._ru = resource.getrusage(resource.RUSAGE_THREAD)

    def mark(self) -> dict[str, Any]:
        cpu, ru = time.thread_time_ns(), resource.getrusage(resource.RUSAGE_THREAD)
        out = {"cpu_ms": round((cpu - self._cpu_ns) / 1e6, 3),
               "involuntary_switches": ru.ru_nivcsw - self._ru.ru_nivcsw,
               "voluntary_switches": ru.ru_nvcsw - self._ru.ru_nvcsw,
               "minor_faults": ru.ru_minflt - self._ru.ru_minflt,
               "major_faults": ru.ru_majflt - self._ru.ru_majflt}
        self._cpu_ns, self._ru = cpu, ru
        return out


class MonitorLoop:
    """Owns the sockets and the per-source state; ``open`` binds, ``close`` releases."""

    def __init__(self, cfg: Config, scorer: Scorer, spec: FeatureSpec, threshold: float,
                 *, late_budget_ms: float | None = None) -> None:
        self._cfg = cfg
        self._scorer = scorer
        self._spec = spec
        self._threshold = float(threshold)
        self._model_id = bytes(scorer.model_id)[:8]
        # A scorer that fell back from the provider it was asked for runs, but says so.
        self._base_flags = (VerdictFlag.DEGRADED_MODEL if getattr(scorer, "degraded", False)
                            else VerdictFlag.NONE)
        budget_ms = cfg.interlock.verdict_budget_ms if late_budget_ms is None else late_budget_ms
        self._late_ns = int(budget_ms * 1e6)
        self._hb_ns = max(1, int(cfg.monitor.heartbeat_ms * 1e6))
        self._stale_ns = int(cfg.monitor.stale_after_ms * 1e6)
        self._log = structlog.get_logger(component="monitor")
        self._links = FrameLinks.for_cell(cfg.bus.cell, [(s.id, s.name) for s in cfg.sources])
        self._link = Link.monitor(cfg.bus.cell, cfg.monitor.monitor_id)
        self._validator = FrameValidator(cfg.sources, max_frame_age_ms=cfg.monitor.max_frame_age_ms)
        self._decider = Decider.from_config(
            cfg.decision, threshold=self._threshold, channels=spec.channels,
            per_channel=spec.per_channel, source_ids=[s.id for s in cfg.sources], start_ns=0)
        self._sources = {
            s.id: _Source(s, WindowFeatures(spec), int(spec.hop / s.sample_rate_hz * 1e9), 0)
            for s in cfg.sources
        }
        self._rows_per_frame = max(s.frame_samples for s in cfg.sources) // spec.hop + 1
        self._batch = np.zeros((batch_capacity(cfg, spec), spec.n_features), dtype=np.float32)
        self._rows: list[_Row] = []
        self._verdict_seq = 0
        self._hb_counter = 0
        self._last_hb_ns = 0
        self._model_error = False
        self._logged_rejects: Counter[str] = Counter()
        self._last_reject_log = 0
        self._probe = _GapProbe()
        self._last_gap_log = 0
        self._ctx: zmq.Context[Any] | None = None
        self._sub: zmq.Socket[Any] | None = None
        self._pub: zmq.Socket[Any] | None = None
        self._ctl: zmq.Socket[Any] | None = None
        self._closed = False
        self.counts: Counter[str] = Counter()  # received, accepted, verdicts, levels, errors
        self.latency = {stage: Histogram.new() for stage in STAGES}

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> MonitorLoop:
        if self._closed or self._ctx is not None:
            raise RuntimeError("a MonitorLoop opens once")
        self._ctx = ctx = zmq.Context()
        try:
            self._sub = _bind(ctx, zmq.SUB, self._cfg.bus.frames, zmq.RCVHWM, RCV_HWM)
            self._sub.setsockopt(zmq.SUBSCRIBE, b"")
            self._pub = _bind(ctx, zmq.PUB, self._cfg.bus.monitor_out, zmq.SNDHWM, SND_HWM)
            if self._cfg.bus.monitor_ctl:
                self._ctl = _bind(ctx, zmq.REP, self._cfg.bus.monitor_ctl, zmq.SNDHWM, 10)
        except zmq.ZMQError as e:
            self.close()
            raise BusError(f"cannot bind monitor sockets: {e}") from None
        return self

    def close(self) -> None:
        self._closed = True
        for sock in (self._sub, self._pub, self._ctl):
            if sock is not None:
                sock.close(linger=0)
        if self._ctx is not None:
            self._ctx.term()
        self._sub = self._pub = self._ctl = None

    def __enter__(self) -> MonitorLoop:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if self._sub is None or self._pub is None:
            raise RuntimeError("open() the loop before run()")
        sub = self._sub
        start = time.monotonic_ns()
        # Every source's clocks start now: one that never sends is stale from here on.
        for sid, src in self._sources.items():
            src.last_accepted_ns = start
            self._decider.input_good(sid, start)
        self._last_reject_log = start
        # zmq_poll counts whole milliseconds; select() on the socket's (edge-triggered)
        # descriptor sleeps to the microsecond, so heartbeats keep their period exactly.
        # ZMQ_EVENTS is checked first: the edge may have fired while we were busy.
        ctl = self._ctl
        fds = [int(sub.getsockopt(zmq.FD))]
        if ctl is not None:
            fds.append(int(ctl.getsockopt(zmq.FD)))
        next_hb = start
        while not stop.is_set():
            now = time.monotonic_ns()
            if now >= next_hb:
                self._tick(now)
                next_hb = now + self._hb_ns
                continue
            if ctl is not None and int(ctl.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                self._answer(ctl)
                continue
            if int(sub.getsockopt(zmq.EVENTS)) & zmq.POLLIN or \
                    select.select(fds, [], [], (next_hb - now) / 1e9)[0]:
                self._drain(sub, next_hb)
        self._log_rejects(time.monotonic_ns(), force=True)

    def _drain(self, sub: zmq.Socket[Any], due_ns: int) -> None:
        """Handle queued frames until the socket is empty or a heartbeat is due."""
        while True:
            try:
                parts = sub.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self._frame(parts, time.monotonic_ns())
            if time.monotonic_ns() >= due_ns:
                break
        if self._rows:
            self._flush()

    def _frame(self, parts: list[zmq.Frame], t_recv: int) -> None:
        self.counts["received"] += 1
        if len(parts) != 2:
            self.counts["bad_parts"] += 1
            return
        try:
            frame = messages.decode_frame(parts[0].buffer, parts[1].buffer, self._links)
        except messages.DecodeError as e:
            self.counts[f"decode_{e.reason}"] += 1
            return
        t0 = time.monotonic_ns()
        out = self._validator.check(frame, t0)
        t1 = time.monotonic_ns()
        self.latency["validate"].record(t1 - t0)
        offset_ns = out.offset_ns if out.accepted else self._validator.offset_ns(frame.source_id)
        self.latency["receive"].record(t_recv - (frame.t_pub_ns + offset_ns))
        if not out.accepted:
            return
        src = self._sources[frame.source_id]
        src.last_accepted_ns = t1
        src.frozen = out.frozen
        if out.missed or out.restart:
            # A window never spans a hole: the jump at a missing frame would ring the band
            # filters like a real transient. Start the window over; the next one says GAP.
            src.features.reset()
            src.pending = VerdictFlag.GAP
        if len(self._rows) + self._rows_per_frame > self._batch.shape[0]:
            self._flush()  # keep room for every window this frame can complete
        made = src.features.push(frame.samples)
        if made:
            if not out.frozen:  # usable input is input that makes windows worth scoring
                self._decider.input_good(frame.source_id, t1)
            src.features.pop_into(self._batch, len(self._rows))
            for _ in range(made):
                self._rows.append(_Row(frame.source_id, frame.seq, frame.t_acq_ns + offset_ns,
                                       out.flags | src.pending))
                src.pending = VerdictFlag.NONE
        self.latency["features"].record(time.monotonic_ns() - t1)

    def _flush(self) -> None:
        rows, m = self._rows, len(self._rows)
        t0 = time.monotonic_ns()
        scores: Any = None
        contrib: Any = None
        try:
            scores, contrib = self._scorer.score(self._batch[:m])
            if scores.shape[0] != m or contrib.shape != (m, self._spec.n_features):
                raise ValueError(f"scorer returned {scores.shape} and {contrib.shape} for {m} rows")
        except Exception as e:  # the model must never take the process down
            self._inference_failed(e, m)
            scores = None
        else:
            if self._model_error:
                self._log.info("inference_recovered", failed_batches=self.counts["inference_errors"])
                self._model_error = False
        t1 = time.monotonic_ns()
        self.latency["inference"].record(t1 - t0)
        decided: list[tuple[_Row, Decision, float, VerdictFlag]] = []
        for i, row in enumerate(rows):
            if scores is None:
                d = self._decider.input_trip(row.source_id, t1) or _NO_SCORE
                decided.append((row, d, math.nan, row.flags | VerdictFlag.INFERENCE_ERROR))
            else:
                score = float(scores[i])
                d = self._decider.decide(row.source_id, score, contrib[i], t1, features=self._batch[i])
                decided.append((row, d, score, row.flags | VerdictFlag.IDLE if d.idle else row.flags))
        self.latency["decision"].record(time.monotonic_ns() - t1)
        for row, d, score, flags in decided:
            self._publish(row.source_id, row.seq, row.t_acq_ns, score, d, flags)
        rows.clear()

    def _inference_failed(self, e: Exception, rows: int) -> None:
        self.counts["inference_errors"] += 1
        if not self._model_error:  # one line per burst, not per batch
            self._log.error("inference_failed", error=f"{type(e).__name__}: {e}", rows=rows)
            self._model_error = True

    def _publish(self, source_id: int, seq: int, t_acq_ns: int, score: float,
                 d: Decision, flags: VerdictFlag) -> None:
        self._verdict_seq = (self._verdict_seq + 1) % messages.COUNTER_MODULUS
        flags |= self._base_flags
        t_v = time.monotonic_ns()
        if t_v - t_acq_ns > self._late_ns:
            flags |= VerdictFlag.LATE
        v = Verdict(source_id, seq, self._verdict_seq, t_acq_ns, t_v, score, self._threshold,
                    d.level, flags, 0, self._model_id, d.channels)
        self._send(messages.encode_verdict(v, self._link))
        self.latency["total"].record(t_v - t_acq_ns)
        self._sources[source_id].last_verdict_ns = t_v
        self.counts["verdicts"] += 1
        self.counts[f"level_{d.level.name.lower()}"] += 1

    def _send(self, data: bytes) -> None:
        if self._pub is not None:
            self._pub.send(data, zmq.NOBLOCK)  # PUB drops at the high-water mark, never blocks

    def _tick(self, now: int) -> None:
        """Heartbeat, then TRIP verdicts for sources whose input stayed bad too long."""
        flags = HeartbeatFlag.NONE
        for sid, src in self._sources.items():
            silent = now - src.last_accepted_ns > self._stale_ns
            if silent:
                flags |= HeartbeatFlag.SOURCE_STALE
            d = self._decider.input_trip(sid, now)
            if d is not None and now - src.last_verdict_ns >= src.period_ns:
                vflags = VerdictFlag.STALE if silent else VerdictFlag.INVALID_INPUT
                if src.frozen:
                    vflags |= VerdictFlag.SENSOR_FROZEN
                self.counts["input_trips"] += 1
                self._publish(sid, max(self._validator.last_seq(sid), 0), now, math.nan, d, vflags)
        if self._model_error:
            flags |= HeartbeatFlag.MODEL_ERROR
        self._hb_counter = (self._hb_counter + 1) % messages.COUNTER_MODULUS
        t_hb = time.monotonic_ns()
        hb = Heartbeat(self._cfg.monitor.monitor_id, self._hb_counter, t_hb,
                       self.counts["received"], self._validator.counts["accepted"],
                       self.rejected_total(), 0, flags)
        self._send(messages.encode_heartbeat(hb, self._link))
        probe = self._probe.mark()
        if self._last_hb_ns:  # the interlock's liveness rule watches exactly this gap
            gap = t_hb - self._last_hb_ns
            self.latency["heartbeat_gap"].record(gap)
            if gap > LATE_HB_PERIODS * self._hb_ns:
                self.counts["heartbeats_late"] += 1
                if t_hb - self._last_gap_log >= REJECT_LOG_NS:
                    self._last_gap_log = t_hb
                    self._log.warning("heartbeat_late", gap_ms=round(gap / 1e6, 3),
                                      late_total=self.counts["heartbeats_late"], **probe)
        self._last_hb_ns = t_hb
        self._log_rejects(now)

    def rejected_total(self) -> int:
        return self.counts["received"] - self._validator.counts["accepted"]

    def reject_counts(self) -> Counter[str]:
        """Every rejection so far by reason: socket, codec and validation."""
        out: Counter[str] = Counter({k: v for k, v in self.counts.items()
                                     if k == "bad_parts" or k.startswith("decode_")})
        for reason in REJECT_REASONS:
            if self._validator.counts[reason]:
                out[reason] = self._validator.counts[reason]
        return out

    def _log_rejects(self, now: int, force: bool = False) -> None:
        if not force and now - self._last_reject_log < REJECT_LOG_NS:
            return
        counts = self.reject_counts()
        delta = counts - self._logged_rejects
        if delta:
            self._log.warning("frame_rejected", counts=dict(delta), total=counts.total())
            self._logged_rejects = counts
            self._last_reject_log = now

    def counters(self) -> dict[str, Any]:
        """Every counter, cheap to build: the control socket's reply and the stop line's core."""
        vc = self._validator.counts
        clocks = self._validator.clocks()
        return {
            "frames_received": self.counts["received"],
            "frames_accepted": vc["accepted"],
            "frames_rejected": self.rejected_total(),
            "rejected": dict(self.reject_counts()),
            "gaps": vc["gap"], "frames_missed": vc["frames_missed"], "frozen_frames": vc["frozen"],
            "restarts": vc["restart"], "clock_steps": vc["clock_step"],
            "clock_offsets_ms": {str(sid): round(c.offset_ns / 1e6, 3) for sid, c in clocks.items()},
            "last_seq": {str(sid): self._validator.last_seq(sid) for sid in clocks},
            "verdicts": self.counts["verdicts"],
            "levels": {k: self.counts[f"level_{k}"] for k in ("ok", "warn", "trip")},
            "inference_errors": self.counts["inference_errors"],
            "input_trips": self.counts["input_trips"],
            "heartbeats_late": self.counts["heartbeats_late"],
        }

    def summary(self) -> dict[str, Any]:
        """Counters and latency summaries for the stop line."""
        return {**self.counters(),
                "latency_ms": {s: h.summary_ms() for s, h in self.latency.items()}}

    def _answer(self, ctl: zmq.Socket[Any]) -> None:
        """One request on the control socket, one reply: ``status`` gets the counters."""
        try:
            parts = ctl.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            if len(parts) != 1:
                raise messages.DecodeError("bad_command", f"{len(parts)} message parts")
            cmd = messages.decode_command(parts[0])
        except messages.DecodeError as e:
            reply = messages.encode_reply(False, error=e.reason, detail=str(e))
        else:
            reply = (messages.encode_reply(True, **self.counters()) if cmd.cmd == "status" else
                     messages.encode_reply(False, error="unsupported_command", detail=cmd.cmd))
        ctl.send(reply, zmq.NOBLOCK)


_NO_SCORE = Decision(Level.OK, False, 0, False)


def batch_capacity(cfg: Config, spec: FeatureSpec) -> int:
    """Rows per scoring call: room for a full drain, and for every window one frame can make."""
    return max(MAX_BATCH, max(s.frame_samples for s in cfg.sources) // spec.hop + 1)


def _bind(ctx: zmq.Context[Any], kind: int, endpoint: str, hwm_opt: int, hwm: int) -> zmq.Socket[Any]:
    if endpoint.startswith("ipc://"):  # ZeroMQ does not create the socket file's directory
        os.makedirs(os.path.dirname(endpoint[len("ipc://"):]) or ".", exist_ok=True)
    sock: zmq.Socket[Any] = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(hwm_opt, hwm)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError:
        sock.close(linger=0)
        raise
    return sock
