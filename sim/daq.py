"""The simulated DAQ: takes blocks from the plant, stamps them and publishes Frames.

Shell code. One task per source, paced on the monotonic clock without drift (frame k is due at
start + k x frame_samples / sample_rate), or as fast as the loop allows when not realtime.
``t_acq_ns`` is read when the block is taken, ``t_pub_ns`` just before the send; ``seq`` counts
from 0 per source. Every frame carries the source's connection identity (this cell's address,
the source's id and name: tripwire.messages). A fault onset's monotonic time is derived from
the frame that carries its first faulty sample: t_acq minus the samples that follow it in that
frame. Nothing is logged per frame; a fault onset is one ``fault_onset`` line.

Black-channel test knobs (``sim.clock_skew_ms``, ``sim.frame_delay_ms``, per source): a skewed
source stamps its frames on a clock that runs that far from the host's, as a remote device's
own clock would (fault onsets stay on the host's clock: they are the campaign's reference);
a delayed source, once the fault schedule has started, holds each frame that long after
acquisition before it reaches the bus (order kept), as a late transport would.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import zmq
import zmq.asyncio

from sim.plant import Plant
from tripwire.config import SourceConfig
from tripwire.messages import Link, encode_frame_header

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
                 realtime: bool, log: Any, *, cell: str, clock_skew_ms: Sequence[float] = (),
                 frame_delay_ms: Sequence[float] = ()) -> None:
        self._plant = plant
        self._sources = list(sources)
        self._pub = pub
        self._realtime = realtime
        self._log = log
        self._links = {s.id: Link.source(cell, s.id, s.name) for s in sources}
        self._skew_ns = {s.id: round(ms * 1e6) for s, ms in zip(sources, clock_skew_ms, strict=False)}
        self._delay_ns = {s.id: round(ms * 1e6) for s, ms in zip(sources, frame_delay_ms, strict=False)
                          if ms > 0}
        self._held: deque[asyncio.TimerHandle] = deque()  # delayed sends, oldest first
        self._sending: set[asyncio.Future[None]] = set()  # held frames on their way out
        self._seen: set[tuple[int, str, int]] = set()
        self.onsets: list[OnsetStamp] = []
        self.frames_published = 0
        self.frames_by_source = {s.id: 0 for s in sources}
        self.resyncs = 0

    async def run(self) -> None:
        """All sources, until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                for s in self._sources:
                    tg.create_task(self._run_source(s), name=f"daq_{s.id}")
        finally:
            while self._held:  # frames still held back die with the publisher
                self._held.popleft().cancel()

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
        delay_ns = self._delay_ns.get(src.id, 0) if self._plant.schedule_started else 0
        if delay_ns:
            handle = asyncio.get_running_loop().call_later(
                delay_ns / 1e9, self._send_held, src, seq, t_acq_ns, data)
            self._held.append(handle)
            return
        await self._send(src, seq, t_acq_ns, data)

    def _send_held(self, src: SourceConfig, seq: int, t_acq_ns: int,
                   data: npt.NDArray[np.float32]) -> None:
        self._held.popleft()  # handles fire in the order they were made: this one is first
        fut = asyncio.ensure_future(self._send(src, seq, t_acq_ns, data))
        self._sending.add(fut)  # the loop keeps only a weak reference to a task
        fut.add_done_callback(self._sent)

    def _sent(self, fut: asyncio.Future[None]) -> None:
        self._sending.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            self._log.error("daq_send_failed", error=repr(fut.exception()))

    async def _send(self, src: SourceConfig, seq: int, t_acq_ns: int,
                    data: npt.NDArray[np.float32]) -> None:
        skew = self._skew_ns.get(src.id, 0)
        payload = data.data.cast("B")
        header = encode_frame_header(
            source_id=src.id, seq=seq, t_acq_ns=t_acq_ns + skew, t_pub_ns=time.monotonic_ns() + skew,
            sample_rate_hz=src.sample_rate_hz, channels=data.shape[0], samples=data.shape[1],
            payload=payload, link=self._links[src.id],
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
