"""One simulated rotating machine: parameters, load profile and a stateful signal generator.

Pure core (numpy only): deterministic given the seeds, no clock, no I/O. The generator keeps
phase accumulators, speed, temperature and filter state between calls, so consecutive blocks
join smoothly and the output does not depend on how the samples are cut into blocks (up to
float rounding). Faults are applied through ``sim.faults.FaultTrack``; this module knows the
healthy machine only. Must not import the shell's libraries (zmq, asyncio, pymodbus, ...).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt

from sim.faults import FaultTrack

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

MAINS_HZ = 50.0
SPIN_TAU_S = 0.7  # shaft speed follows the permit with this time constant
ELECTRICAL_TAU_S = 0.05  # motor current follows the contactor much faster
LOAD_TRANSITION_S = 0.5
LOAD_MIN, LOAD_MAX = 0.5, 1.0
MAX_BLOCK = 8192  # longer requests are cut; keeps the temperature recursion well conditioned


class ChannelKind(Enum):
    VIBRATION = "vibration"
    CURRENT = "current"
    TEMPERATURE = "temperature"


def channel_kind(name: str) -> ChannelKind:
    if name == "current":
        return ChannelKind.CURRENT
    if name == "temp":
        return ChannelKind.TEMPERATURE
    return ChannelKind.VIBRATION  # vib_x, vib_y and any other name


def seed_sequence(*parts: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([p % (1 << 64) for p in parts])


def name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))  # stable across runs, unlike hash()


@dataclass(frozen=True, slots=True)
class MachineParams:
    """What makes one machine itself; drawn once from (seed, source id)."""

    shaft_hz: float
    slip: float  # fractional speed drop at full load
    harmonic_g: tuple[float, float, float]  # 1x, 2x, 3x amplitude at reference load and speed
    harmonic_phase_rad: tuple[float, float, float]
    passes: int  # vanes or teeth: a tone at passes x shaft speed
    pass_g: float
    pass_phase_rad: float
    noise_g: float  # broadband noise while running (scales with speed^2)
    floor_g: float  # sensor noise floor, always present
    rated_a: float
    ripple: float  # mains ripple, fraction of the RMS current
    current_noise_a: float
    mains_phase_rad: float
    ambient_c: float
    rise_c: float  # temperature rise above ambient at full load
    temp_tau_s: float
    temp_noise_c: float
    resonance_hz: float  # structural resonance that bearing impacts ring
    resonance_decay_s: float
    bpfo_ratio: float  # outer-race defect frequency / shaft frequency

    @property
    def vibration_rms_g(self) -> float:
        """Typical vib_x RMS at mid load and full speed: the unit fault sizes are given in."""
        tonal = sum(a * a for a in self.harmonic_g) / 2 + self.pass_g**2 / 2
        scale = 0.6 + 0.4 * 0.75
        return math.sqrt(tonal * scale * scale + self.noise_g**2 + self.floor_g**2)


def machine_params(seed: int, source_id: int) -> MachineParams:
    r = np.random.default_rng(seed_sequence(seed, source_id, 0x504152))
    a1 = float(r.uniform(0.15, 0.30))
    ph = r.uniform(0.0, 2 * np.pi, 3)
    rated = float(r.uniform(8.0, 30.0))
    return MachineParams(
        shaft_hz=float(r.uniform(20.0, 30.0)),
        slip=float(r.uniform(0.01, 0.03)),
        harmonic_g=(a1, a1 * float(r.uniform(0.3, 0.5)), a1 * float(r.uniform(0.1, 0.25))),
        harmonic_phase_rad=(float(ph[0]), float(ph[1]), float(ph[2])),
        passes=int(r.integers(5, 10)),
        pass_g=float(r.uniform(0.05, 0.12)),
        pass_phase_rad=float(r.uniform(0.0, 2 * np.pi)),
        noise_g=float(r.uniform(0.02, 0.04)),
        floor_g=0.005,
        rated_a=rated,
        ripple=float(r.uniform(0.01, 0.03)),
        current_noise_a=0.01 * rated,
        mains_phase_rad=float(r.uniform(0.0, 2 * np.pi)),
        ambient_c=float(r.uniform(20.0, 28.0)),
        rise_c=float(r.uniform(25.0, 40.0)),
        temp_tau_s=float(r.uniform(15.0, 30.0)),
        temp_noise_c=0.02,
        resonance_hz=float(r.uniform(1800.0, 2300.0)),
        resonance_decay_s=float(r.uniform(0.0008, 0.0012)),
        bpfo_ratio=float(r.uniform(3.4, 3.8)),
    )


@dataclass(frozen=True, slots=True)
class VibrationMount:
    """How one vibration sensor sees the machine: gain, phase and bearing coupling."""

    gain: float
    phase_rad: float
    bearing_gain: float


def vibration_mount(seed: int, source_id: int, name: str) -> VibrationMount:
    if name == "vib_x":
        return VibrationMount(1.0, 0.0, 1.0)
    r = np.random.default_rng(seed_sequence(seed, source_id, name_key(name), 0x4D4F554E))
    if name == "vib_y":
        return VibrationMount(float(r.uniform(0.7, 0.9)), float(np.pi / 2 + r.uniform(-0.3, 0.3)),
                              float(r.uniform(0.5, 0.7)))
    return VibrationMount(float(r.uniform(0.5, 1.0)), float(r.uniform(0.0, 2 * np.pi)),
                          float(r.uniform(0.3, 0.8)))


class LoadSchedule:
    """Piecewise load in [0.5, 1.0], a new level every ~``every_s`` with smooth transitions.

    Segments are drawn lazily from their own random stream, so the load at a sample index is
    the same whichever way the caller walks through time.
    """

    def __init__(self, rng: np.random.Generator, every_s: float, sample_rate_hz: float) -> None:
        self._rng = rng
        self._every = every_s * sample_rate_hz
        self._transition = max(1.0, LOAD_TRANSITION_S * sample_rate_hz)
        self._starts: list[int] = [0]
        self._levels: list[float] = [float(rng.uniform(LOAD_MIN, LOAD_MAX))]
        self._starts_arr = np.array(self._starts, dtype=np.int64)
        self._levels_arr = np.array(self._levels)

    def _extend_to(self, k_max: int) -> None:
        if self._every <= 0 or self._starts[-1] > k_max:
            return
        while self._starts[-1] <= k_max:
            gap = max(self._transition, self._every * float(self._rng.uniform(0.75, 1.25)))
            self._starts.append(self._starts[-1] + int(gap))
            self._levels.append(float(self._rng.uniform(LOAD_MIN, LOAD_MAX)))
        self._starts_arr = np.array(self._starts, dtype=np.int64)
        self._levels_arr = np.array(self._levels)

    def load(self, k: npt.NDArray[np.int64]) -> F64:
        self._extend_to(int(k[-1]))
        idx = np.searchsorted(self._starts_arr, k, side="right") - 1
        level = self._levels_arr[idx]
        prev = self._levels_arr[np.maximum(idx - 1, 0)]
        x = np.clip((k - self._starts_arr[idx]) / self._transition, 0.0, 1.0)
        out: F64 = prev + (level - prev) * (x * x * (3.0 - 2.0 * x))
        return out


def _relax(start: float, target: float, n: int, tau_samples: float) -> F64:
    """First-order approach from ``start`` toward ``target``, one value per sample."""
    decay = np.exp(-np.arange(1, n + 1) / tau_samples)
    out: F64 = target + (start - target) * decay
    return out


class Machine:
    """Stateful generator for one machine's channels; ``generate(n)`` returns the next n samples."""

    def __init__(self, params: MachineParams, channels: list[str], sample_rate_hz: float,
                 load_change_every_s: float, seed: int, source_id: int, run: int = 0,
                 faults: FaultTrack | None = None) -> None:
        self.p = params
        self.channels = list(channels)
        self.fs = float(sample_rate_hz)
        self.kinds = [channel_kind(c) for c in channels]
        self.mounts = {c: vibration_mount(seed, source_id, c) for c, kd in zip(channels, self.kinds)
                       if kd is ChannelKind.VIBRATION}
        base = seed_sequence(seed, source_id, run, 0x52554E)
        self.load_schedule = LoadSchedule(np.random.default_rng(base.spawn(1)[0]),
                                          load_change_every_s, self.fs)
        self._noise = {c: np.random.default_rng(seed_sequence(seed, source_id, run, name_key(c)))
                       for c in channels}
        self.faults = faults if faults is not None else FaultTrack.empty()
        self.samples = 0  # samples generated so far; the next sample has this index
        self.permit = True
        self._revs = 0.0  # shaft revolutions since start (unwrapped)
        self._speed = 1.0  # fraction of nominal speed
        self._electric = 1.0  # fraction of the motor current the load asks for
        self._temp_c = params.ambient_c + params.rise_c * 0.75
        self._temp_a = math.exp(-1.0 / (params.temp_tau_s * self.fs))

    def generate(self, n: int) -> F32:
        out = np.empty((len(self.channels), n), dtype=np.float32)
        done = 0
        while done < n:
            m = min(MAX_BLOCK, n - done)
            out[:, done : done + m] = self._block(m)
            done += m
        return out

    def _block(self, n: int) -> F64:
        p, fs = self.p, self.fs
        k = self.samples + np.arange(n, dtype=np.int64)
        load = self.load_schedule.load(k)
        target = 1.0 if self.permit else 0.0
        speed = _relax(self._speed, target, n, SPIN_TAU_S * fs)
        electric = _relax(self._electric, target, n, ELECTRICAL_TAU_S * fs)
        shaft_hz = p.shaft_hz * (1.0 - p.slip * load) * speed
        revs = self._revs + np.cumsum(shaft_hz) / fs
        theta = 2.0 * np.pi * revs
        amp = (0.6 + 0.4 * load) * speed * speed
        fault = self.faults.block(k, revs * p.bpfo_ratio, speed, p, fs)

        out = np.empty((len(self.channels), n))
        for i, (name, kind) in enumerate(zip(self.channels, self.kinds)):
            noise = self._noise[name].standard_normal(n)
            if kind is ChannelKind.VIBRATION:
                mt = self.mounts[name]
                tonal = np.zeros(n)
                for h, (a, ph) in enumerate(zip(p.harmonic_g, p.harmonic_phase_rad), start=1):
                    gain = a * fault.one_x_gain if h == 1 else a
                    tonal += gain * np.sin(h * (theta + mt.phase_rad) + ph)
                tonal += p.pass_g * np.sin(p.passes * theta + p.pass_phase_rad + mt.phase_rad)
                out[i] = (amp * mt.gain * tonal + (p.floor_g + p.noise_g * speed * speed) * noise
                          + mt.bearing_gain * fault.bearing_g)
            elif kind is ChannelKind.CURRENT:
                rms = electric * p.rated_a * (0.35 + 0.65 * load)
                mains = 2.0 * np.pi * MAINS_HZ * k / fs + p.mains_phase_rad
                out[i] = rms * (1.0 + p.ripple * np.sin(mains)) + p.current_noise_a * noise
            else:
                out[i] = self._temperature(load * speed, fault.temp_rise_c) + p.temp_noise_c * noise

        self.faults.apply_sensor_faults(out, k, self.channels, p.vibration_rms_g)
        self.samples += n
        self._revs = float(revs[-1])
        self._speed = float(speed[-1])
        self._electric = float(electric[-1])
        return out

    def _temperature(self, duty: F64, rise_c: F64 | float) -> F64:
        """Exact first-order lag T[j] = a T[j-1] + (1-a) Teq[j], vectorised over the block."""
        p, a = self.p, self._temp_a
        teq = p.ambient_c + p.rise_c * duty + rise_c
        j = np.arange(1, len(teq) + 1)
        grow = a ** (-j.astype(np.float64))  # bounded: blocks are at most MAX_BLOCK long
        temp: F64 = (a**j) * (self._temp_c + (1.0 - a) * np.cumsum(teq * grow))
        self._temp_c = float(temp[-1])
        return temp
