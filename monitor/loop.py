"""The monitor's event loop (shell): frames in, verdicts and heartbeats out.

One SUB socket (bound on ``bus.frames``) and one PUB socket (bound on ``bus.monitor_out``),
served from one thread. Per wake-up: drain what is already queued (never wait for more),
decode, validate, push into the source's window features, and put every window that becomes
ready into the filling batch (dispatch.py); a window of an idle machine (the decision rules'
idle rule, read from its own features) skips the model and is only decided. The batch goes
to the model by the gate's rules (batching.py: full, slack to the deadline, gate time, or
input drained with the model idle); with ``monitor.pipeline`` the model runs in its own
thread (pipeline.py) while this one reads the next frames, and a scored batch is decided and
published here, in row order, with the threshold of the tier that scored it. A Heartbeat
goes out every ``heartbeat_ms`` (the wait for frames ends at the next one, or at the batch's
gate, or when the worker is done) and carries the current model tier; the tier governor
(governor.py) is consulted once per window from the same tick. A model call that runs past
its predicted time withholds the heartbeat (``model_overdue``): the beat attests the whole
pipeline, so the interlock's liveness rule sees a hung model as a hung monitor.

A source whose input stays bad past ``decision.bad_input_trip_ms`` gets TRIP verdicts from
the heartbeat tick, flagged STALE (no frames) or INVALID_INPUT (frames, but no usable window:
rejected, frozen, or gaps so frequent that no window completes). A gap or a restarted
sequence starts the source's window over, so a window never spans a hole; the first window
after it is flagged GAP. When the filling batch is full while the model is busy, frames stay
in the socket (``batch_overflow``): ZeroMQ's high-water mark then drops, and the validator
counts the gap.

Black channel: frames are decoded against this cell's identity (``bus.cell`` and each
source's id and name), verdicts and heartbeats go out stamped with the monitor's; a verdict
carries its window's t_acq on this host's monotonic clock (the source's learned clock offset
applied, validate.py), so the interlock's timeliness rule judges real delay. With
``bus.monitor_ctl`` set, a REP socket answers ``status`` commands with the counters and the
per-stage latency as JSON; it is served between frames.

Wiring and I/O only: the rules live in validate.py, features.py, batching.py, governor.py
and decide.py. Nothing here logs per frame; rejections are summarised at most once a second.
"""

from __future__ import annotations

import resource
import select
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import structlog
import zmq

from monitor import figures
from monitor.decide import Decider
from monitor.dispatch import Dispatcher, batch_capacity
from monitor.errors import BusError
from monitor.features import FeatureSpec, WindowFeatures
from monitor.governor import Governor, GovernorPolicy
from monitor.tiers import TierSet
from monitor.validate import FrameValidator
from monitor.verdicts import VerdictStage
from tripwire import bus, messages
from tripwire.config import Config, SourceConfig
from tripwire.latency import Histogram
from tripwire.messages import FrameLinks, Heartbeat, HeartbeatFlag, Link, VerdictFlag

RCV_HWM = 1000  # frames queued in the SUB socket before ZeroMQ drops (counted by the sender)
SND_HWM = 10000
REJECT_LOG_NS = 1_000_000_000
LATE_HB_PERIODS = 3  # a heartbeat gap this many periods long is logged with where the time went
STAGES = figures.STAGES
_GAP = int(VerdictFlag.GAP)
_MORE, _LAST = int(zmq.NOBLOCK | zmq.SNDMORE), int(zmq.NOBLOCK)


@dataclass(slots=True)
class _Source:
    cfg: SourceConfig
    features: WindowFeatures
    period_ns: int  # one hop of samples: the cadence of this source's verdicts
    sample_ns: float  # one sample
    last_accepted_ns: int
    pending: int = 0  # VerdictFlag bits carried to the next window (GAP after a reset)
    frozen: bool = False  # the last accepted frame had a constant channel


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
    """Owns the sockets, the per-source state and the batches; ``open`` binds, ``close``
    releases (and joins the inference thread)."""

    def __init__(self, cfg: Config, tiers: TierSet, spec: FeatureSpec, *,
                 late_budget_ms: float | None = None) -> None:
        self._cfg = cfg
        self._tiers = tiers
        budget_ms = cfg.interlock.verdict_budget_ms if late_budget_ms is None else late_budget_ms
        self._late_ns = int(budget_ms * 1e6)
        self._hb_ns = max(1, int(cfg.monitor.heartbeat_ms * 1e6))
        self._stale_ns = int(cfg.monitor.stale_after_ms * 1e6)
        self._log = structlog.get_logger(component="monitor")
        self._links = FrameLinks.for_cell(cfg.bus.cell, [(s.id, s.name) for s in cfg.sources])
        self._link = Link.monitor(cfg.bus.cell, cfg.monitor.monitor_id)
        self._validator = FrameValidator(cfg.sources, max_frame_age_ms=cfg.monitor.max_frame_age_ms)
        decider = Decider.from_config(
            cfg.decision, threshold=tiers.tiers[tiers.start].threshold, channels=spec.channels,
            per_channel=spec.per_channel, source_ids=[s.id for s in cfg.sources], start_ns=0)
        self._sources = {
            s.id: _Source(s, WindowFeatures(spec), int(spec.hop / s.sample_rate_hz * 1e9),
                          1e9 / s.sample_rate_hz, 0)
            for s in cfg.sources
        }
        self.counts: Counter[str] = Counter()  # received, accepted, verdicts, levels, errors
        self.latency = {stage: Histogram.new() for stage in STAGES}
        m = cfg.monitor
        self._governor = Governor(GovernorPolicy.from_config(m, budget_ms), len(tiers.tiers),
                                  tiers.start, now_ns=0, cpu_ns=0, enabled=tiers.governed)
        self._verdicts = VerdictStage(tiers, decider, self._governor, self._link, self._late_ns,
                                      self._send, self.counts, self.latency, self._log,
                                      spec.n_features)
        self._batches = Dispatcher(
            tiers, n_features=spec.n_features, capacity=batch_capacity(cfg, spec),
            max_rows=m.batch_max_rows, gate_ms=m.batch_gate_ms,
            wait_when_idle=m.batch_wait_when_idle, pipeline=m.pipeline, budget_ns=self._late_ns,
            idle_rule=decider.idle_rule if m.idle_skip else None,
            complete=self._verdicts.complete, latency=self.latency, counts=self.counts)
        self._hb_counter = 0
        self._last_hb_ns = 0
        self._logged_rejects: Counter[str] = Counter()
        self._last_reject_log = 0
        self._probe = _GapProbe()
        self._overdue_logged = False
        self._last_gap_log = 0
        self._ctx: zmq.Context[Any] | None = None
        self._sub: zmq.Socket[Any] | None = None
        self._pub: zmq.Socket[Any] | None = None
        self._ctl: zmq.Socket[Any] | None = None
        self._closed = False

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
        self._batches.open()
        return self

    def close(self) -> None:
        self._closed = True
        self._batches.close()
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

    def warm(self) -> None:
        """Every tier's model at every batch size, timed to seed the batch cost model."""
        self._batches.warm()

    @property
    def tier(self) -> int:
        """The current tier's index in the bundle (0 teacher or the single model)."""
        return self._tiers.tiers[self._governor.tier].index

    # --- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if self._sub is None or self._pub is None:
            raise RuntimeError("open() the loop before run()")
        sub, ctl, batches = self._sub, self._ctl, self._batches
        start = time.monotonic_ns()
        # Every source's clocks start now: one that never sends is stale from here on.
        for sid, src in self._sources.items():
            src.last_accepted_ns = start
            self._verdicts.decider.input_good(sid, start)
        self._last_reject_log = start
        self._governor.restart(start, time.process_time_ns())
        # zmq_poll counts whole milliseconds; select() on the socket's (edge-triggered)
        # descriptor sleeps to the microsecond, so heartbeats keep their period exactly. An
        # edge fires when the socket's mailbox gets something and again only after a call on
        # the socket emptied it: a socket drained to EAGAIN needs no look before the next
        # wait, so ZMQ_EVENTS is read only where input may be left (a drain cut short, a
        # reply just sent) or select() saw the edge. With a full batch and a busy model the
        # frames socket is left out: the worker's eventfd ends the wait.
        sub_fd = int(sub.getsockopt(zmq.FD))
        ctl_fd = int(ctl.getsockopt(zmq.FD)) if ctl else -1
        base = [fd for fd in (batches.fd, ctl_fd) if fd >= 0]
        with_frames = [sub_fd, *base]
        frames_left = ctl_left = True  # at start: look
        next_hb = start
        while not stop.is_set():
            now = time.monotonic_ns()
            if now >= next_hb:
                self._tick(now)
                next_hb = now + self._hb_ns
                continue
            if ctl is not None and ctl_left:
                ctl_left = False
                if bus.readable(ctl):
                    self._answer(ctl)
                    ctl_left = True  # another request may have come meanwhile
                    continue
            room = not batches.full
            if batches.finished:
                batches.collect(now, drained=not frames_left)
                continue
            if room and frames_left:
                frames_left = self._drain(sub, next_hb)
                continue
            if batches.poll(now, drained=True):
                continue
            wake = batches.wake_ns(now)
            until = next_hb if wake is None else min(next_hb, wake)
            ready, _, _ = select.select(with_frames if room else base, [], [],
                                        max(0, until - now) / 1e9)
            frames_left = sub_fd in ready or frames_left
            ctl_left = ctl_fd in ready
        self._finish()

    def _finish(self) -> None:
        """Publish what the model still holds (the worker finishes its batch), then stop."""
        self._batches.stop()
        self._log_rejects(time.monotonic_ns(), force=True)

    def _drain(self, sub: zmq.Socket[Any], due_ns: int) -> bool:
        """Handle queued frames until the socket is empty, a heartbeat is due, or the batch
        is full while the model is busy (then the frames wait in the socket). Whether frames
        may be left (False: the socket said EAGAIN)."""
        batches = self._batches
        while True:
            if batches.full and not batches.poll(time.monotonic_ns(), drained=False):
                self.counts["batch_overflow"] += 1
                return True
            try:
                parts = bus.recv_parts(sub)
            except zmq.Again:
                break
            self._frame(parts, time.monotonic_ns())
            now = time.monotonic_ns()
            if batches.finished:
                batches.collect(now, drained=False)
            elif batches.filling.rows:
                batches.poll(now, drained=False)
            if time.monotonic_ns() >= due_ns:
                return True
        batches.poll(time.monotonic_ns(), drained=True)
        return False

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
            src.pending = _GAP
        made = src.features.push(frame.samples)
        if made:
            if not src.frozen:  # usable input is input that makes windows worth scoring
                self._verdicts.decider.input_good(frame.source_id, t1)
            t_ready = time.monotonic_ns()
            # A window's age counts from its own last sample: the newest window ended
            # ``pending`` samples before the frame's last, each earlier one a hop before that.
            t_acq = frame.t_acq_ns + offset_ns - int(src.features.pending * src.sample_ns)
            self.counts["idle_skipped"] += self._batches.filling.append(
                src.features, frame.source_id, frame.seq, t_acq, t_ready,
                int(out.flags) | src.pending, int(out.flags), src.period_ns, t_recv)
            src.pending = 0
        self.latency["features"].record(time.monotonic_ns() - t1)

    def _send(self, parts: Sequence[bytes]) -> None:
        """One message of one or more parts (a heartbeat; a batch's verdicts)."""
        pub = self._pub
        if pub is not None:  # PUB drops at the high-water mark, never blocks
            last = len(parts) - 1  # part by part with int flags: send_multipart's checks
            for i, part in enumerate(parts):  # and flag arithmetic cost more than the sends
                pub.send(part, _MORE if i < last else _LAST)

    def _tick(self, now: int) -> None:
        """Heartbeat, then TRIP verdicts for sources whose input stayed bad too long."""
        flags = HeartbeatFlag.NONE
        current = self._tiers.tiers[self._governor.tier]
        last_verdict = self._verdicts.last_verdict_ns
        for sid, src in self._sources.items():
            silent = now - src.last_accepted_ns > self._stale_ns
            if silent:
                flags |= HeartbeatFlag.SOURCE_STALE
            if now - last_verdict.get(sid, 0) >= src.period_ns:
                self._verdicts.input_trips(now, sid, silent, src.frozen,
                                           max(self._validator.last_seq(sid), 0), current)
        if self._verdicts.model_error:
            flags |= HeartbeatFlag.MODEL_ERROR
        if self._model_overdue(now):
            return
        self._hb_counter = (self._hb_counter + 1) % messages.COUNTER_MODULUS
        t_hb = time.monotonic_ns()
        hb = Heartbeat(self._cfg.monitor.monitor_id, self._hb_counter, t_hb,
                       self.counts["received"], self._validator.counts["accepted"],
                       self.rejected_total(), current.index, flags)
        self._send((messages.encode_heartbeat(hb, self._link),))
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
        if self._governor.due(t_hb):
            self._govern(t_hb)
        self._log_rejects(now)

    def _model_overdue(self, now: int) -> bool:
        """Whether to withhold this heartbeat: the model call in flight has run past its
        predicted time. A heartbeat says the whole pipeline is live; the inference thread lets
        it beat on while a batch runs, so a stalled model must silence it here, or the
        interlock's liveness rule would never see the hang (a stall of one call in the loop's
        own thread stops the beat by itself)."""
        overrun = self._batches.overrun_ns(now)
        if not overrun:
            self._overdue_logged = False
            return False
        self.counts["heartbeats_withheld"] += 1
        if not self._overdue_logged:  # one line per stall
            self._overdue_logged = True
            self._log.warning("model_overdue", overrun_ms=round(overrun / 1e6, 3),
                              withheld_total=self.counts["heartbeats_withheld"])
        return True

    def _govern(self, now: int) -> None:
        """Close the governor's window; a tier change applies from the next batch on."""
        change = self._governor.evaluate(now, time.process_time_ns())
        if change is None:
            return
        self._batches.tier_pos = self._governor.tier
        tiers = self._tiers.tiers
        self.counts["tier_changes"] += 1
        self._log.info("tier_changed", from_tier=tiers[change.from_tier].name,
                       to_tier=tiers[change.to_tier].name, from_index=tiers[change.from_tier].index,
                       to_index=tiers[change.to_tier].index, why=change.why,
                       p99_ms=change.p99_ms, cpu_cores=change.cpu_cores,
                       hold_s=round(self._governor.hold_ns / 1e9, 1),
                       tier_changes=self.counts["tier_changes"])

    def rejected_total(self) -> int:
        return self.counts["received"] - self._validator.counts["accepted"]

    def reject_counts(self) -> Counter[str]:
        """Every rejection so far by reason: socket, codec and validation."""
        return figures.reject_counts(self.counts, self._validator.counts)

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
        return {**figures.frames(self.counts, self._validator, self.rejected_total()),
                **figures.batching(self.counts, self._batches.batch_rows,
                                   pipeline=self._cfg.monitor.pipeline),
                **figures.tiers(self._governor, self._tiers, self.counts["tier_changes"])}

    def summary(self) -> dict[str, Any]:
        """Counters and latency summaries for the stop line."""
        return {**self.counters(),
                "latency_ms": {s: h.summary_ms() for s, h in self.latency.items()}}

    def status(self) -> dict[str, Any]:
        """The control socket's ``status`` reply: the counters, per-stage latency in µs and
        the batch cost model's predictions (µs by batch size) for the current tier."""
        return {**self.counters(), "latency_us": figures.latency_us(self.latency),
                "batch_cost_us": self._batches.cost_table_us()}

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
            reply = (messages.encode_reply(True, **self.status()) if cmd.cmd == "status" else
                     messages.encode_reply(False, error="unsupported_command", detail=cmd.cmd))
        ctl.send(reply, zmq.NOBLOCK)

def _bind(ctx: zmq.Context[Any], kind: int, endpoint: str, hwm_opt: int, hwm: int) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(hwm_opt, hwm)
    try:
        bus.bind(sock, endpoint)
    except (zmq.ZMQError, OSError):
        sock.close(linger=0)
        raise
    return sock
