"""The monitor's figures as JSON-ready dicts: batching, tiers, per-stage latency in µs.

Read by the loop's ``counters()``, ``summary()`` (the ``monitor_stopped`` line) and its
control socket's ``status`` reply, which the bench reads. Pure: builds dicts from counters
and histograms handed in; reads no clock, touches no socket, logs nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from monitor.batching import CloseReason
from monitor.governor import Governor
from monitor.tiers import TierSet
from monitor.validate import REJECT_REASONS, FrameValidator
from tripwire.latency import Histogram

# Per-stage histograms (ns): receive (t_pub -> received), validate, features, batch_wait (row
# ready -> its batch closed), inference (the model call), handoff (scored in the inference
# thread -> taken back by the loop; pipeline only), decision, total (t_acq -> verdict sent),
# service (its frame received -> verdict sent: the monitor's own share, per window),
# heartbeat_gap (between heartbeats: what the interlock's liveness rule watches).
STAGES = ("receive", "validate", "features", "batch_wait", "inference", "handoff", "decision",
          "total", "service", "heartbeat_gap")


def reject_counts(counts: Counter[str], validated: Counter[str]) -> Counter[str]:
    """Every rejection so far by reason: socket, codec (the loop's counts) and validation."""
    out: Counter[str] = Counter({k: v for k, v in counts.items()
                                 if k == "bad_parts" or k.startswith("decode_")})
    for reason in REJECT_REASONS:
        if validated[reason]:
            out[reason] = validated[reason]
    return out


def frames(counts: Counter[str], validator: FrameValidator, rejected: int) -> dict[str, Any]:
    """Frames in, what became of them, and the verdicts out."""
    vc = validator.counts
    clocks = validator.clocks()
    return {
        "frames_received": counts["received"],
        "frames_accepted": vc["accepted"],
        "frames_rejected": rejected,
        "rejected": dict(reject_counts(counts, vc)),
        "gaps": vc["gap"], "frames_missed": vc["frames_missed"], "frozen_frames": vc["frozen"],
        "restarts": vc["restart"], "clock_steps": vc["clock_step"],
        "clock_offsets_ms": {str(sid): round(c.offset_ns / 1e6, 3) for sid, c in clocks.items()},
        "last_seq": {str(sid): validator.last_seq(sid) for sid in clocks},
        "verdicts": counts["verdicts"],
        "levels": {k: counts[f"level_{k}"] for k in ("ok", "warn", "trip")},
        "inference_errors": counts["inference_errors"],
        "input_trips": counts["input_trips"],
        "heartbeats_late": counts["heartbeats_late"],
        "heartbeats_withheld": counts["heartbeats_withheld"],
    }


def latency_us(hists: dict[str, Histogram]) -> dict[str, dict[str, float]]:
    """Per stage {count, p50, p99, p999, max} in µs."""
    out: dict[str, dict[str, float]] = {}
    for stage, h in hists.items():
        out[stage] = h.summary(1e3, 1)
    return out


def rows_summary(h: Histogram, total_rows: int) -> dict[str, float]:
    """Rows per batch: {count, mean, p50, p99, max} (a count histogram, not a time)."""
    mean = total_rows / h.total if h.total else 0.0
    return {"count": h.total, "mean": round(mean, 2), "p50": h.percentile(0.5),
            "p99": h.percentile(0.99), "max": h.max_ns}


def batching(counts: Counter[str], rows: Histogram, *, pipeline: bool) -> dict[str, Any]:
    return {
        "pipeline": pipeline,
        "batches": counts["batches"],
        "batch_rows": rows_summary(rows, counts["batched_rows"]),
        "batch_closed_by": {r.name.lower(): counts[f"batch_close_{r.name.lower()}"]
                            for r in CloseReason},
        "batch_overflow": counts["batch_overflow"],
        "model_rows": counts["model_rows"],
        "idle_skipped": counts["idle_skipped"],
    }


def tiers(governor: Governor, tier_set: TierSet, changes: int) -> dict[str, Any]:
    current = tier_set.tiers[governor.tier]
    return {
        "tier": current.index,
        "tier_name": current.name,
        "tiers_loaded": tier_set.names(),
        "governor": "auto" if governor.enabled else "off",
        "tier_changes": changes,
        "governor_p99_ms": round(governor.last_p99_ns / 1e6, 3),
        "cpu_cores": round(governor.last_cpu_cores, 3),
    }
