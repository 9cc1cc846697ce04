"""Fault models for one simulated machine: steps, growing faults and sensor faults.

Pure core (numpy only), driven by ``sim.machine.Machine`` one block at a time. Fault time runs
on the plant's schedule clock: ``start(next_sample)`` fixes each fault's onset sample, and a
fault acts only on samples at or after its onset. ``inject`` adds a fault on demand that begins
at the next sample; ``clear`` ends every fault that has begun (the fault-injection campaign's
many trials in one cell). The onset of each fault is recorded when its first faulty sample is
generated. No clock, no I/O, no shell libraries.

Sizes are relative to the machine's typical vibration RMS (``MachineParams.vibration_rms_g``);
``ramp_s`` is the time from onset to full ``severity``:
- bearing: impacts at the outer-race defect frequency (BPFO, with jitter), each ringing the
  structural resonance (~2 kHz, ~1 ms decay); peak ~4x RMS at full severity, reached linearly;
  bearing temperature rises by up to ~3 degC;
- bearing_wear: the same defect growing the way spalls do, slowly then faster
  (r = (e^(3u) - 1) / (e^3 - 1) over u = t / ramp_s; give ramp_s in tens of seconds to
  minutes), with broadband wear noise growing as r^2 (up to 0.5x RMS) and the temperature rise;
- imbalance: the 1x shaft component grows to 3x its normal amplitude, linearly;
- imbalance_growth: mass builds up (fouling, erosion) at its own angle: a new 1x vector, up to
  2x the 1x amplitude of the healthy machine, grows linearly and adds to the original within
  +-90 degrees of its phase, so the 1x magnitude rises monotonically (to about 2.5-3.5x at
  full severity: the new vector scales with speed^2 alone, the original also with load);
- cavitation: vapour bubbles collapsing: random bursts (Poisson, ~6/s, 20-150 ms each,
  half-sine envelope, log-normal sizes around 1.5x RMS) of high-frequency-weighted broadband
  noise in the vibration, and a 8-20 Hz ripple of up to ~4 % on the motor current during each
  burst as the flow surges; intensity builds up smoothly over ramp_s;
- spike: one sample of 50x RMS on the vibration channel at onset (a sensor glitch);
- freeze: the vibration channel holds its last value from onset on (a stuck sensor).

Every additive vibration term (impacts, the growing 1x vector, wear noise, cavitation) travels
in ``FaultEffects.bearing_g``, which the machine couples into each vibration sensor with its
mount's gain. The cavitation current ripple is applied with the sensor faults, on the finished
current channel.
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
WEAR_GROWTH = 3.0  # convexity of the wear curve
WEAR_NOISE_RMS = 0.5
GROWTH_PHASE_SPREAD_RAD = math.pi / 2
CAV_RATE_HZ = 6.0
CAV_BURST_S = (0.02, 0.15)
CAV_RMS = 1.5
CAV_SIZE_SPREAD = 0.4  # sigma of the log-normal burst size
CAV_CURRENT_RIPPLE = 0.04
CAV_RIPPLE_HZ = (8.0, 20.0)
_NOISY = ("bearing_wear", "cavitation")


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
    bearing_g: Signal = 0.0  # every additive vibration term, see the module docstring
    temp_rise_c: Signal = 0.0


@dataclass(slots=True)
class _Scheduled:
    cfg: FaultConfig
    onset: int | None = None
    recorded: bool = False
    phase_rad: float = 0.0  # imbalance_growth: angle of the new mass against the old 1x


@dataclass(slots=True)
class _BearingState:
    rng: np.random.Generator
    next_cycle: float | None = None
    last_cycle: float = 0.0
    overhang: F64 = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True, slots=True)
class _Burst:
    start: int  # sample index
    length: int
    vib_g: float
    ripple: float  # fraction of the current
    ripple_hz: float
    ripple_phase_rad: float


@dataclass(slots=True)
class _CavitationState:
    rng: np.random.Generator
    next_start: float | None = None
    bursts: list[_Burst] = field(default_factory=list)


def _shape(kind: str, u: F64) -> F64:
    """Time course from onset (u = 0) to full severity (u = 1), u already clipped to [0, 1]."""
    if kind == "bearing_wear":
        out: F64 = np.expm1(WEAR_GROWTH * u) / math.expm1(WEAR_GROWTH)
        return out
    if kind == "cavitation":
        return u * u * (3.0 - 2.0 * u)
    return u


class FaultTrack:
    """The faults of one machine and the little state they keep between blocks."""

    def __init__(self, faults: list[FaultConfig], source_id: int, sample_rate_hz: float,
                 rng: np.random.Generator) -> None:
        self.source_id = source_id
        self.fs = float(sample_rate_hz)
        self._rng = rng  # injected kinds draw their own streams from it, on demand
        self._faults = [_Scheduled(f) for f in faults if f.source == source_id]
        self._bearing = _BearingState(rng)
        self._frozen: float | None = None
        self._last_vib = 0.0
        self._onsets: list[FaultOnset] = []
        self._current_gain: F64 | None = None
        # Growing faults draw their randomness only when configured, so the older kinds play
        # exactly as they did. Noise has its own streams: the same whatever the block sizes.
        kinds = {f.cfg.kind for f in self._faults}
        for f in self._faults:
            if f.cfg.kind == "imbalance_growth":
                f.phase_rad = float(rng.uniform(-GROWTH_PHASE_SPREAD_RAD, GROWTH_PHASE_SPREAD_RAD))
        self._noise = {k: np.random.default_rng(int(rng.integers(1 << 62))) for k in _NOISY
                       if k in kinds}
        self._cav = _CavitationState(np.random.default_rng(int(rng.integers(1 << 62)))) \
            if "cavitation" in kinds else None
        self._hp_last = 0.0  # last cavitation noise sample, for the first difference

    def _prepare(self, f: _Scheduled) -> None:
        """The randomness an injected fault's kind needs and the track does not have yet
        (configured kinds got theirs in the constructor, so schedules play as they did)."""
        kind = f.cfg.kind
        if kind in _NOISY and kind not in self._noise:
            self._noise[kind] = np.random.default_rng(int(self._rng.integers(1 << 62)))
        if kind == "cavitation" and self._cav is None:
            self._cav = _CavitationState(np.random.default_rng(int(self._rng.integers(1 << 62))))

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

    def inject(self, cfg: FaultConfig, next_sample: int) -> int:
        """A fault on demand: it begins at ``next_sample`` (``cfg.at_s`` is ignored) and
        ramps as configured. Returns its onset sample index."""
        f = _Scheduled(cfg, onset=next_sample)
        if cfg.kind == "imbalance_growth":
            f.phase_rad = float(self._rng.uniform(-GROWTH_PHASE_SPREAD_RAD, GROWTH_PHASE_SPREAD_RAD))
        self._prepare(f)
        self._faults.append(f)
        return next_sample

    def clear(self, next_sample: int) -> int:
        """End every fault that has begun or begins by ``next_sample``: the machine is healthy
        again from that sample on (a ringing impact already under way dies out on its own).
        Faults scheduled for later stay scheduled. Returns how many ended."""
        keep = [f for f in self._faults if f.onset is None or f.onset > next_sample]
        ended = len(self._faults) - len(keep)
        self._faults = keep
        self._bearing.next_cycle = None  # a later bearing fault starts its impacts afresh
        self._frozen = None
        if self._cav is not None:
            self._cav.next_start = None
            self._cav.bursts.clear()
        self._current_gain = None
        return ended

    # --- per block ---------------------------------------------------------------------

    def _active(self, kinds: tuple[str, ...], k: I64) -> list[tuple[_Scheduled, F64]]:
        """Each fault of these kinds that acts in the block, with its severity per sample."""
        out: list[tuple[_Scheduled, F64]] = []
        for f in self._faults:
            if f.cfg.kind not in kinds or f.onset is None or k[-1] < f.onset:
                continue
            ramp_n = f.cfg.ramp_s * self.fs
            since = (k - f.onset + 1).astype(np.float64)
            if ramp_n >= 1:
                r = _shape(f.cfg.kind, np.clip(since / ramp_n, 0.0, 1.0))
            else:
                r = (since > 0).astype(np.float64)
            out.append((f, r * f.cfg.severity))
        return out

    def _ramp(self, kinds: tuple[str, ...], k: I64) -> F64 | None:
        active = self._active(kinds, k)
        return None if not active else np.sum([r for _, r in active], axis=0)

    def _record_onsets(self, k: I64) -> None:
        for f in self._faults:
            if f.onset is not None and not f.recorded and f.onset <= k[-1]:
                f.recorded = True  # start() never schedules before the next sample
                self._onsets.append(FaultOnset(self.source_id, f.cfg.kind, f.onset, f.onset / self.fs))

    def block(self, k: I64, bpfo_cycles: F64, speed: F64, p: MachineParams, fs: float) -> FaultEffects:
        if not self._faults:
            return FaultEffects()
        self._record_onsets(k)
        noise = {kind: g.standard_normal(len(k)) for kind, g in self._noise.items()}
        imbalance = self._ramp(("imbalance",), k)
        bearing_r = self._ramp(("bearing", "bearing_wear"), k)
        wave = self._bearing_wave(k, bpfo_cycles, speed, bearing_r, p, fs)
        wear = self._ramp(("bearing_wear",), k)
        if wear is not None:
            wave = wave + WEAR_NOISE_RMS * p.vibration_rms_g * wear * wear * speed * noise["bearing_wear"]
        theta = 2.0 * np.pi * bpfo_cycles / p.bpfo_ratio
        for f, r in self._active(("imbalance_growth",), k):
            phase = p.harmonic_phase_rad[0] + f.phase_rad
            wave = wave + IMBALANCE_EXTRA * p.harmonic_g[0] * r * speed * speed * np.sin(theta + phase)
        if self._cav is not None:
            wave = wave + self._cavitation(self._cav, k, speed, noise["cavitation"], p.vibration_rms_g)
        return FaultEffects(
            one_x_gain=1.0 if imbalance is None else 1.0 + IMBALANCE_EXTRA * imbalance,
            bearing_g=wave,
            temp_rise_c=0.0 if bearing_r is None else BEARING_TEMP_RISE_C * bearing_r,
        )

    def _cavitation(self, st: _CavitationState, k: I64, speed: F64, white: F64,
                    rms_g: float) -> Signal:
        """Burst vibration for the block; leaves the current ripple in ``_current_gain``."""
        self._current_gain = None
        hp = np.diff(white, prepend=self._hp_last) / math.sqrt(2.0)  # weights high frequencies
        self._hp_last = float(white[-1])
        k0, n = int(k[0]), len(k)
        intensity = self._ramp(("cavitation",), k)
        if intensity is not None:
            if st.next_start is None:
                onsets = [f.onset for f in self._faults
                          if f.cfg.kind == "cavitation" and f.onset is not None]
                st.next_start = float(max(k0, min(onsets)))
            while st.next_start <= k[-1]:
                j = int(st.next_start) - k0
                if intensity[j] > 0:
                    size = intensity[j] * math.exp(CAV_SIZE_SPREAD * float(st.rng.standard_normal()))
                    st.bursts.append(_Burst(
                        int(st.next_start), max(1, round(float(st.rng.uniform(*CAV_BURST_S)) * self.fs)),
                        CAV_RMS * rms_g * size, CAV_CURRENT_RIPPLE * min(size, 2.0),
                        float(st.rng.uniform(*CAV_RIPPLE_HZ)), float(st.rng.uniform(0, 2 * np.pi))))
                st.next_start += float(st.rng.exponential(self.fs / CAV_RATE_HZ))
        if not st.bursts:
            return 0.0
        env = np.zeros(n)
        ripple = np.zeros(n)
        for b in st.bursts:
            lo, hi = max(b.start, k0), min(b.start + b.length, k0 + n)
            if lo >= hi:
                continue
            idx = np.arange(lo, hi, dtype=np.float64)
            e = np.sin(np.pi * (idx - b.start + 0.5) / b.length)
            env[lo - k0 : hi - k0] += b.vib_g * e
            ripple[lo - k0 : hi - k0] += b.ripple * e * np.sin(
                2 * np.pi * b.ripple_hz * idx / self.fs + b.ripple_phase_rad)
        st.bursts = [b for b in st.bursts if b.start + b.length > k0 + n]
        self._current_gain = 1.0 + ripple * speed
        out: F64 = env * hp * speed * speed
        return out

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
        """Spike, freeze and the cavitation current ripple act on the finished outputs."""
        if self._current_gain is not None and "current" in channels:
            out[channels.index("current")] *= self._current_gain
            self._current_gain = None
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
