"""The simulated plant: one rotating machine per configured source, one permit for the cell.

Pure core (numpy only). Deterministic given ``sim.seed``: each machine's character comes from
(seed, source id), so machines differ from each other but not from run to run. Nothing here
reads a clock; the sim process stamps frames. Must not import zmq, asyncio, pymodbus, asyncua,
onnxruntime or structlog (a test enforces it).

Use::

    plant = Plant(cfg.sources, cfg.sim)
    plant.start_schedule()            # fault clock t=0 is the next sample generated
    block = plant.next_frame(1)       # float32 (channels, frame_samples), C-contiguous
    plant.next_block(1, 8192)         # the same stream in any block size (offline studies)
    plant.set_permit(False)           # machines spin down (tau ~0.7 s), noise floor remains
    plant.onsets()                    # faults that have begun
    plant.inject(1, fault_cfg)        # a fault on demand from the next sample (at_s ignored)
    plant.clear(1)                    # every fault of source 1 that has begun ends

``normal_run`` generates fault-free operation offline (model training), fast.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sim.errors import SimConfigError, SimError
from sim.faults import FaultOnset, FaultTrack
from sim.machine import Machine, machine_params, seed_sequence
from tripwire.config import FaultConfig, SimConfig, SourceConfig

F32 = npt.NDArray[np.float32]

__all__ = ["FaultOnset", "Plant", "normal_run"]

LIVE_RUN = 0  # the realization the plant plays; training runs use other numbers


def _machine(source: SourceConfig, sim: SimConfig, run: int, faults: FaultTrack | None) -> Machine:
    return Machine(machine_params(sim.seed, source.id), source.channels, source.sample_rate_hz,
                   sim.load_change_every_s, sim.seed, source.id, run=run, faults=faults)


class Plant:
    """All machines of the cell, generated block by block on demand."""

    def __init__(self, sources: list[SourceConfig], sim: SimConfig, *, run: int = LIVE_RUN) -> None:
        """``run`` picks the realization (noise, load profile, fault randomness); studies that
        need many independent plays of the same machines give each its own number."""
        ids = [s.id for s in sources]
        if len(set(ids)) != len(ids):
            raise SimConfigError("sources: duplicate source id")
        for i, f in enumerate(sim.faults):
            if f.source not in ids:
                raise SimConfigError(f"sim.faults[{i}].source: no source with id {f.source}")
        self._sources = {s.id: s for s in sources}
        self._machines: dict[int, Machine] = {}
        for s in sources:
            rng = np.random.default_rng(seed_sequence(sim.seed, s.id, run, 0x4641554C))
            track = FaultTrack(list(sim.faults), s.id, s.sample_rate_hz, rng)
            self._machines[s.id] = _machine(s, sim, run, track)
        self._scheduled = False
        self._permit = True

    def _get(self, source_id: int) -> Machine:
        try:
            return self._machines[source_id]
        except KeyError:
            raise SimConfigError(f"no source with id {source_id}") from None

    @property
    def source_ids(self) -> list[int]:
        return list(self._machines)

    @property
    def schedule_started(self) -> bool:
        return self._scheduled

    @property
    def permit(self) -> bool:
        return self._permit

    def start_schedule(self) -> None:
        """Fault time t=0 is the next sample each source generates. Only once per plant."""
        if self._scheduled:
            raise SimError("the fault schedule has already started")
        self._scheduled = True
        for m in self._machines.values():
            m.faults.start(m.samples)

    def next_frame(self, source_id: int) -> F32:
        m = self._get(source_id)
        return m.generate(self._sources[source_id].frame_samples)

    def next_block(self, source_id: int, n: int) -> F32:
        """The next ``n`` samples of the source at once (offline studies; same signal as frames)."""
        if n <= 0:
            raise SimConfigError(f"next_block: n must be > 0, got {n}")
        return self._get(source_id).generate(n)

    def samples_generated(self, source_id: int) -> int:
        """Index of the next sample of this source (its sample count so far)."""
        return self._get(source_id).samples

    def set_permit(self, on: bool) -> None:
        """One PLC permits the whole cell: every machine spins down or back up."""
        self._permit = bool(on)
        for m in self._machines.values():
            m.permit = self._permit

    def inject(self, source_id: int, fault: FaultConfig) -> int:
        """``fault`` begins on that source's next sample, whatever its ``at_s`` and whether or
        not the schedule has started. Returns the onset's sample index (see ``onsets()``)."""
        if fault.source != source_id:
            raise SimConfigError(f"inject: fault is for source {fault.source}, not {source_id}")
        m = self._get(source_id)
        return m.faults.inject(fault, m.samples)

    def clear(self, source_id: int) -> int:
        """End every fault of the source that has begun (or was injected); returns how many.
        Scheduled faults that have not begun yet stay scheduled."""
        m = self._get(source_id)
        return m.faults.clear(m.samples)

    def onsets(self) -> list[FaultOnset]:
        """Faults whose first faulty sample has been generated, in plant-time order."""
        out = [o for m in self._machines.values() for o in m.faults.onsets()]
        return sorted(out, key=lambda o: (o.t_plant_s, o.source_id))


def normal_run(source: SourceConfig, sim: SimConfig, seconds: float, run: int = 1) -> F32:
    """Fault-free operation with load changes, (channels, n) float32, n = seconds x rate.

    Same machine as the live plant for this seed and source id, but realization ``run``
    (noise, load profile): the default, 1, differs from what the live plant plays (0), so a
    model trained on it is not scored on its own training data.
    """
    n = round(seconds * source.sample_rate_hz)
    if n <= 0:
        raise SimConfigError(f"normal_run: seconds must give at least one sample, got {seconds}")
    return _machine(source, sim, run, None).generate(n)
