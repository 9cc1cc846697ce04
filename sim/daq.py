"""The simulated DAQ: takes blocks from the plant, stamps them and publishes Frames.

Shell code. One task per source, paced on the monotonic clock without drift (frame k is due at
start + k x frame_samples / sample_rate), or as fast as the loop allows when not realtime.
``t_acq_ns`` is read when the block is taken, ``t_pub_ns`` just before the send; ``seq`` counts
from 0 per source. A fault onset's monotonic time is derived from the frame that carries its
first faulty sample: t_acq minus the samples that follow it in that frame. Nothing is logged per
frame; a fault onset is one ``fault_onset`` line.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
import zmq.asyncio

from sim.plant import Plant
from tripwire.config import SourceConfig
from tripwire.messages import encode_frame_header

MAX_LAG_FRAMES = 25  # further behind than this (process stopped), resume from now


@dataclass(frozen=True, slots=True)
class OnsetStamp:
    source: int
    kind: str
    sample_index: int
    t_onset_ns: int

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "sample_index": self.sample_index,
                "t_onset_ns": self.t_onset_ns}


class Daq:
    """Publishes every source's frames on one PUB socket (owned by the caller)."""

    def __init__(self, plant: Plant, sources: list[SourceConfig], pub: zmq.asyncio.Socket,
                 realtime: bool, log: Any) -> None:
        self._plant = plant
        self._sources = list(sources)
        self._pub = pub
        self._realtime = realtime
        self._log = log
        self._seen: set[tuple[int, str, int]] = set()
        self.onsets: list[OnsetStamp] = []
        self.frames_published = 0
        self.frames_by_source = {s.id: 0 for s in sources}
        self.resyncs = 0

    async def run(self) -> None:
        """All sources, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for s in self._sources:
                tg.create_task(self._run_source(s), name=f"daq_{s.id}")

    async def _run_source(self, src: SourceConfig) -> None:
        period_ns = round(src.frame_samples / src.sample_rate_hz * 1e9)
        due_ns = time.monotonic_ns() + period_ns
        seq = 0
        while True:
            if self._realtime:
                now = time.monotonic_ns()
                if due_ns > now:
                    await asyncio.sleep((due_ns - now) / 1e9)
                elif now - due_ns > MAX_LAG_FRAMES * period_ns:
                    self.resyncs += 1
                    self._log.warning("daq_resynced", source=src.id, behind_ms=(now - due_ns) / 1e6)
                    due_ns = now
            else:
                await asyncio.sleep(0)
            await self._publish(src, seq)
            seq += 1
            due_ns += period_ns

    async def _publish(self, src: SourceConfig, seq: int) -> None:
        first = self._plant.samples_generated(src.id)
        block = self._plant.next_frame(src.id)
        t_acq_ns = time.monotonic_ns()
        self._stamp_onsets(src, first, block.shape[1], t_acq_ns)
        data = np.ascontiguousarray(block, dtype=np.float32)
        payload = data.data.cast("B")
        header = encode_frame_header(
            source_id=src.id, seq=seq, t_acq_ns=t_acq_ns, t_pub_ns=time.monotonic_ns(),
            sample_rate_hz=src.sample_rate_hz, channels=data.shape[0], samples=data.shape[1],
            payload=payload,
        )
        await self._pub.send_multipart([header, payload], copy=False)
        self.frames_published += 1
        self.frames_by_source[src.id] += 1

    def _stamp_onsets(self, src: SourceConfig, first: int, n: int, t_acq_ns: int) -> None:
        for o in self._plant.onsets():
            key = (o.source_id, o.kind, o.sample_index)
            if o.source_id != src.id or key in self._seen:
                continue
            self._seen.add(key)
            after = (first + n - 1) - o.sample_index  # samples acquired after the first faulty one
            stamp = OnsetStamp(src.id, o.kind, o.sample_index,
                               t_acq_ns - round(after * 1e9 / src.sample_rate_hz))
            self.onsets.append(stamp)
            self._log.info("fault_onset", source=src.id, kind=o.kind, sample_index=o.sample_index,
                           t_onset_ns=stamp.t_onset_ns)
