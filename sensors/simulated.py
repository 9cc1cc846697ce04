"""A FrameSource over the in-process plant simulator (shell), for replaying the simulator
without the sim process: benchmarks, notebooks, tests of the monitor alone.

Every configured source produces frames at its own rate; ``read`` hands out the frame that
is due first (ties by source id), paced on the monotonic clock like a DAQ or as fast as
possible. The plant's fault schedule starts when the source opens (unless ``schedule`` is
False), so ``sim.faults`` onsets count from the first frame. ``plant`` is exposed so a
benchmark can close the loop (``plant.set_permit(False)`` on a trip). No PLC, no sockets.
"""

from __future__ import annotations

import heapq
import time

from sensors.errors import SourceStateError
from sensors.source import DEFAULT_POLL_S, Clock, Lifecycle, Pacer, Sleep
from sim.plant import Plant
from tripwire.config import SimConfig, SourceConfig
from tripwire.messages import Frame


class SimulatedSource(Lifecycle):
    def __init__(
        self,
        sources: list[SourceConfig],
        sim: SimConfig,
        *,
        paced: bool = True,
        seconds: float | None = None,
        schedule: bool = True,
        poll_s: float = DEFAULT_POLL_S,
        clock: Clock = time.monotonic_ns,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__()
        self.sources = list(sources)
        self.sim = sim
        self.paced, self.seconds, self.schedule = paced, seconds, schedule
        self._clock = clock
        self._pacer = Pacer(clock, sleep, poll_s)
        self._plant: Plant | None = None
        self._queue: list[tuple[int, int, int]] = []  # (due offset ns, source id, seq)
        self._limit_ns = None if seconds is None else int(seconds * 1e9)

    @property
    def plant(self) -> Plant:
        if self._plant is None:
            raise SourceStateError("the simulated source is not open")
        return self._plant

    def _period_ns(self, source: SourceConfig) -> int:
        return int(round(source.frame_samples / source.sample_rate_hz * 1e9))

    def __enter__(self) -> SimulatedSource:
        self._opening()
        self._plant = Plant(self.sources, self.sim)
        if self.schedule:
            self._plant.start_schedule()
        self._queue = [(self._period_ns(s), s.id, 0) for s in self.sources]
        heapq.heapify(self._queue)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        super().close()
        self._plant = None

    def read(self) -> Frame | None:
        if not self._readable() or self._plant is None:
            return None
        due, sid, seq = self._queue[0]
        if self._limit_ns is not None and due > self._limit_ns:
            self._drained()
            return None
        if self.paced and not self._pacer.due(due):
            return None
        heapq.heapreplace(self._queue, (due + self._period_ns(self._source(sid)), sid, seq + 1))
        samples = self._plant.next_frame(sid)
        return Frame(sid, seq, self._clock(), 0, self._source(sid).sample_rate_hz, samples)

    def _source(self, source_id: int) -> SourceConfig:
        for s in self.sources:
            if s.id == source_id:
                return s
        raise SourceStateError(f"no source with id {source_id}")
