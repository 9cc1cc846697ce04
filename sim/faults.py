"""Fault models for one simulated machine: bearing, imbalance, spike and freeze.

Pure core (numpy only), driven by ``sim.machine.Machine`` one block at a time. Fault time runs
on the plant's schedule clock: ``start(next_sample)`` fixes each fault's onset sample, and a
fault acts only on samples at or after its onset. The onset of each fault is recorded when its
first faulty sample is generated. No clock, no I/O, no shell libraries.

Sizes are relative to the machine's typical vibration RMS (``MachineParams.vibration_rms_g``):
- bearing: impacts at the outer-race defect frequency (BPFO, with jitter), each ringing the
  structural resonance (~2 kHz, ~1 ms decay); peak ~4x RMS at full severity after ``ramp_s``;
  bearing temperature rises by up to ~3 degC;
- imbalance: the 1x shaft component grows to 3x its normal amplitude over ``ramp_s``;
- spike: one sample of 50x RMS on the vibration channel at onset (a sensor glitch);
- freeze: the vibration channel holds its last value from onset on (a stuck sensor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tripwire.config import FaultConfig

if TYPE_CHECKING:
    from sim.machine import MachineParams

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Signal = F64 | float

BEARING_PEAK_RMS = 4.0  # impact amplitude in units of vibration RMS at full severity
BEARING_JITTER_CYCLES = 0.03
BEARING_AMP_SPREAD = 0.15
BEARING_TEMP_RISE_C = 3.0
IMBALANCE_EXTRA = 2.0  # 1x gain goes from 1 to 1 + 2 = 3
SPIKE_RMS = 50.0


@dataclass(frozen=True, slots=True)
class FaultOnset:
    """A fault that has begun: its first faulty sample, in that source's sample count."""

    source_id: int
    kind: str
    sample_index: int
    t_plant_s: float  # sample_index / sample rate: plant time on that source's clock


@dataclass(frozen=True, slots=True)
class FaultEffects:
    """What the faults add to one block of the healthy machine (scalars mean 'nothing')."""

    one_x_gain: Signal = 1.0
    bearing_g: Signal = 0.0
    temp_rise_c: Signal = 0.0


@dataclass(slots=True)
class _Scheduled:
    cfg: FaultConfig
    onset: int | None = None
    recorded: bool = False


@dataclass(slots=True)
class _BearingState:
    rng: np.random.Generator
    next_cycle: float | None = None
    last_cycle: float = 0.0
    overhang: F64 = field(default_factory=lambda: np.zeros(0))


class FaultTrack:
    """The faults of one machine and the little state they keep between blocks."""

    def __init__(self, faults: list[FaultConfig], source_id: int, sample_rate_hz: float,
                 rng: np.random.Generator) -> None:
        self.source_id = source_id
        self.fs = float(sample_rate_hz)
        self._faults = [_Scheduled(f) for f in faults if f.source == source_id]
        self._bearing = _BearingState(rng)
        self._frozen: float | None = None
        self._last_vib = 0.0
        self._onsets: list[FaultOnset] = []

    @classmethod
    def empty(cls) -> FaultTrack:
        return cls([], 0, 1.0, np.random.default_rng(0))

    @property
    def started(self) -> bool:
        return any(f.onset is not None for f in self._faults)

    def start(self, next_sample: int) -> None:
        """Schedule t=0 is ``next_sample``; each fault begins ``at_s`` later."""
        for f in self._faults:
            if f.onset is None:
                f.onset = next_sample + round(f.cfg.at_s * self.fs)

    def onsets(self) -> list[FaultOnset]:
        return list(self._onsets)

    # --- per block ---------------------------------------------------------------------

    def _ramp(self, kind: str, k: I64) -> F64 | None:
        total: F64 | None = None
        for f in self._faults:
            if f.cfg.kind != kind or f.onset is None or k[-1] < f.onset:
                continue
            ramp_n = f.cfg.ramp_s * self.fs
            since = (k - f.onset + 1).astype(np.float64)
            r = np.clip(since / ramp_n, 0.0, 1.0) if ramp_n >= 1 else (since > 0).astype(np.float64)
            r *= f.cfg.severity
            total = r if total is None else total + r
        return total

    def _record_onsets(self, k: I64) -> None:
        for f in self._faults:
            if f.onset is not None and not f.recorded and f.onset <= k[-1]:
                f.recorded = True  # start() never schedules before the next sample
                self._onsets.append(FaultOnset(self.source_id, f.cfg.kind, f.onset, f.onset / self.fs))

    def block(self, k: I64, bpfo_cycles: F64, speed: F64, p: MachineParams, fs: float) -> FaultEffects:
        if not self._faults:
            return FaultEffects()
        self._record_onsets(k)
        imbalance = self._ramp("imbalance", k)
        bearing_r = self._ramp("bearing", k)
        wave = self._bearing_wave(k, bpfo_cycles, speed, bearing_r, p, fs)
        return FaultEffects(
            one_x_gain=1.0 if imbalance is None else 1.0 + IMBALANCE_EXTRA * imbalance,
            bearing_g=wave,
            temp_rise_c=0.0 if bearing_r is None else BEARING_TEMP_RISE_C * bearing_r,
        )

    def _bearing_wave(self, k: I64, cycles: F64, speed: F64, ramp: F64 | None,
                      p: MachineParams, fs: float) -> Signal:
        st = self._bearing
        n = len(k)
        if ramp is None and not st.overhang.any():
            st.last_cycle = float(cycles[-1])
            return 0.0
        tau = p.resonance_decay_s * fs  # in samples
        length = math.ceil(8.0 * tau) + 1
        wave = np.zeros(n + length)
        if st.overhang.size:
            wave[: st.overhang.size] += st.overhang
        if ramp is not None:
            first = int(np.argmax(ramp > 0))
            if st.next_cycle is None:
                st.next_cycle = math.floor(cycles[first]) + 1.0
            m = np.arange(length, dtype=np.float64)
            rms = p.vibration_rms_g
            while st.next_cycle <= cycles[-1]:
                j = int(np.searchsorted(cycles, st.next_cycle))
                before = cycles[j - 1] if j > 0 else st.last_cycle
                step = cycles[j] - before
                delay = (cycles[j] - st.next_cycle) / step if step > 0 else 0.0  # sub-sample
                t = (m + delay) / fs
                amp = BEARING_PEAK_RMS * rms * ramp[j] * speed[j]
                amp *= 1.0 + BEARING_AMP_SPREAD * float(st.rng.standard_normal())
                wave[j : j + length] += amp * np.exp(-t * fs / tau) * np.sin(2 * np.pi * p.resonance_hz * t)
                jitter = BEARING_JITTER_CYCLES * float(st.rng.standard_normal())
                st.next_cycle += max(0.5, 1.0 + jitter)
        st.last_cycle = float(cycles[-1])
        st.overhang = wave[n:].copy()
        out: F64 = wave[:n]
        return out

    def apply_sensor_faults(self, out: F64, k: I64, channels: list[str], rms_g: float) -> None:
        """Spike and freeze act on the sensor's output, after the machine is computed."""
        ch = _vibration_channel(channels)
        for f in self._faults:
            if f.onset is None or k[-1] < f.onset:
                continue
            j = f.onset - int(k[0])
            if f.cfg.kind == "spike" and j >= 0:
                out[ch, j] += SPIKE_RMS * f.cfg.severity * rms_g
            elif f.cfg.kind == "freeze":
                if self._frozen is None:
                    self._frozen = float(out[ch, j - 1]) if j > 0 else self._last_vib
                out[ch, max(j, 0) :] = self._frozen
        self._last_vib = float(out[ch, -1])


def _vibration_channel(channels: list[str]) -> int:
    if "vib_x" in channels:
        return channels.index("vib_x")
    for i, c in enumerate(channels):
        if c not in ("current", "temp"):
            return i
    return 0
