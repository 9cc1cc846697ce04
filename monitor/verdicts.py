"""Decide and publish: a finished batch's rows become verdicts, in row order (shell).

Runs on the loop's thread only, which owns the Decider and the PUB socket (see pipeline.py
for why no other thread touches either). Every row of a batch is decided against the
threshold of the tier that scored the batch and published with that tier's index, threshold
and model id; a row of an idle machine (never scored) is decided by the idle rule and
published with a NaN score and the IDLE flag; when the model call failed, every scored row of
the batch is published with a NaN score and INFERENCE_ERROR (TRIP only if its input trip
holds). ``input_trips`` publishes the heartbeat tick's TRIP verdicts for sources whose input
stayed bad. Each published batch verdict's age goes to the tier governor.

A batch's verdicts leave as one multipart message, a verdict per part, each part whole on
its own (messages.py): one message per batch instead of one per window, so the interlock
and its ZeroMQ I/O thread wake once per batch. A subscriber that reads part by part with
``recv()`` sees the same verdicts, in the same order, as before.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from monitor.batch import Batch
from monitor.decide import Decider, Decision
from monitor.governor import Governor
from monitor.tiers import Tier, TierSet
from tripwire import messages
from tripwire.latency import Histogram
from tripwire.messages import VERDICT_FLAGS, Level, Link, Verdict, VerdictFlag

_NO_SCORE = Decision(Level.OK, False, 0, False)


class VerdictStage:
    def __init__(self, tiers: TierSet, decider: Decider, governor: Governor, link: Link,
                 late_ns: int, send: Callable[[Sequence[bytes]], None], counts: Counter[str],
                 latency: dict[str, Histogram], log: Any, n_features: int) -> None:
        self._tiers = tiers
        self.decider = decider
        self._governor = governor
        self._link = link
        self._late_ns = late_ns
        self._send = send
        self._counts = counts
        self._latency = latency
        self._log = log
        self._no_contrib = np.zeros(n_features, dtype=np.float32)
        self._verdict_seq = 0
        self.model_error = False  # the last model call failed (heartbeat MODEL_ERROR)
        self.last_verdict_ns: dict[int, int] = {}

    def complete(self, b: Batch) -> None:
        """Decide every row of a finished batch in order, then publish the verdicts."""
        tier = self._tiers.tiers[b.tier]
        t1 = time.monotonic_ns()
        failed = b.error is not None
        if failed:
            self._inference_failed(b.error, b.model_rows)
        elif b.model_rows and self.model_error:
            self._log.info("inference_recovered", failed_batches=self._counts["inference_errors"])
            self.model_error = False
        n = b.rows
        sources, seqs = b.source[:n].tolist(), b.seq[:n].tolist()
        acqs, all_flags, slots = b.t_acq_ns[:n].tolist(), b.flags[:n].tolist(), b.slot[:n].tolist()
        decide, thr = self.decider.decide, tier.threshold
        decided: list[tuple[Decision, float, VerdictFlag]] = []
        for i in range(n):
            sid, slot, flags = sources[i], slots[i], VERDICT_FLAGS[all_flags[i]]
            if slot < 0:  # an idle machine's window: it never went to the model
                d = decide(sid, math.nan, self._no_contrib, t1, features=b.features(slot),
                           threshold=thr)
                decided.append((d, math.nan, flags | VerdictFlag.IDLE))
            elif failed:
                d = self.decider.input_trip(sid, t1) or _NO_SCORE
                decided.append((d, math.nan, flags | VerdictFlag.INFERENCE_ERROR))
            else:
                score = float(b.scores[slot])
                d = decide(sid, score, b.contrib[slot], t1, features=b.x[slot], threshold=thr)
                decided.append((d, score, (flags | VerdictFlag.IDLE) if d.idle else flags))
        self._latency["decision"].record(time.monotonic_ns() - t1)
        observe, verdict = self._governor.observe, self._verdict
        recvs, service = b.t_recv_ns[:n].tolist(), self._latency["service"]
        parts: list[bytes] = []
        for i, (d, score, flags) in enumerate(decided):
            data, age = verdict(sources[i], seqs[i], acqs[i], score, d, flags, tier)
            parts.append(data)
            observe(age)
            service.record(acqs[i] + age - recvs[i])  # frame received -> verdict sent
        self._send(parts)

    def input_trips(self, now: int, source_id: int, silent: bool, frozen: bool, seq: int,
                    tier: Tier) -> bool:
        """A TRIP verdict for a source whose input stayed bad, if one is due; True if sent."""
        d = self.decider.input_trip(source_id, now)
        if d is None:
            return False
        vflags = VerdictFlag.STALE if silent else VerdictFlag.INVALID_INPUT
        if frozen:
            vflags |= VerdictFlag.SENSOR_FROZEN
        self._counts["input_trips"] += 1
        self.publish(source_id, seq, now, math.nan, d, vflags, tier)
        return True

    def _inference_failed(self, e: Exception | None, rows: int) -> None:
        self._counts["inference_errors"] += 1
        if not self.model_error:  # one line per burst, not per batch
            self._log.error("inference_failed", error=f"{type(e).__name__}: {e}", rows=rows)
            self.model_error = True

    def publish(self, source_id: int, seq: int, t_acq_ns: int, score: float, d: Decision,
                flags: VerdictFlag, tier: Tier) -> int:
        """Send one verdict on its own; returns its age (t_verdict - t_acq)."""
        data, age = self._verdict(source_id, seq, t_acq_ns, score, d, flags, tier)
        self._send((data,))
        return age

    def _verdict(self, source_id: int, seq: int, t_acq_ns: int, score: float, d: Decision,
                 flags: VerdictFlag, tier: Tier) -> tuple[bytes, int]:
        """One verdict encoded and counted, and its age (t_verdict - t_acq)."""
        self._verdict_seq = (self._verdict_seq + 1) % messages.COUNTER_MODULUS
        if tier.degraded:  # a scorer that fell back from its provider runs, but says so
            flags |= VerdictFlag.DEGRADED_MODEL
        t_v = time.monotonic_ns()
        if t_v - t_acq_ns > self._late_ns:
            flags |= VerdictFlag.LATE
        v = Verdict(source_id, seq, self._verdict_seq, t_acq_ns, t_v, score, tier.threshold,
                    d.level, flags, tier.index, tier.model_id, d.channels)
        self._latency["total"].record(t_v - t_acq_ns)
        self.last_verdict_ns[source_id] = t_v
        self._counts["verdicts"] += 1
        self._counts[f"level_{d.level.name.lower()}"] += 1
        return messages.encode_verdict(v, self._link), t_v - t_acq_ns
