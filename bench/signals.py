"""The bench's load: M machines x C channels at R Hz, cut into frames, from a precomputed bank.

Pure core (numpy only): deterministic given the seed, never reads a clock, never touches a
socket. The simulator in sim/ models one machine's physics sample by sample; the bench needs
26.2 M samples/s (16 x 64 x 25.6 kHz) for the price of a slice, so each machine's normal
signal is computed once as a loop of ``loop_frames`` frames and played round and round:

- per channel: three shaft harmonics and a gear-mesh tone (phase and amplitude drawn per
  machine and channel, a per-channel gain) plus white noise;
- every tone is snapped to a whole number of cycles per loop, so the loop joins seamlessly;
  the noise simply repeats with the loop (the bench measures cost, not detection);
- the bank is stored frame by frame, (machines, loop_frames, channels, frame_samples), so a
  healthy frame is a C-contiguous read-only view: no copy, no per-sample Python.

A fault (``Fault``) is added on demand to one channel of one machine from a given sample on,
until a given sample or for good: a bearing-like train of decaying resonance impulses, or a
step in the channel's RMS. Only a faulted frame is copied. ``SignalBank`` is not thread-safe: one owner asks for frames.
Imports numpy only (no numba), so the frame feeder's process starts quickly.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.errors import BenchConfigError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

BEARING = "bearing"
RMS_STEP = "rms_step"
FAULT_KINDS = (BEARING, RMS_STEP)

DEFAULT_LOOP_FRAMES = 64
BANK_BUDGET_BYTES = 64 << 20  # the loop shrinks (never below two windows) to stay within this
IMPULSE_DECAY_S = 0.4e-3  # a bearing impulse rings down with this time constant
IDLE_NOISE = 0.02  # a still machine's signal, as a fraction of a running one's broadband noise
IDLE_RMS_BELOW = 0.05  # the idle rule's threshold: running ch00 >= 0.15 RMS, still <= 0.012


@dataclass(frozen=True, slots=True)
class BenchLoad:
    """What the bench offers: ``machines`` sources of ``channels`` channels at ``rate_hz``."""

    machines: int = 16
    channels: int = 64
    rate_hz: float = 25600.0
    frame_samples: int = 128
    window: int = 1024
    hop: int = 128
    # Every machine's DAQ frames at the same instants (one shared clock: the worst burst), or,
    # by default, each on its own free-running clock: a seeded phase within the frame period.
    aligned: bool = False
    # The last ``idle`` machines stand still: their sensors send noise only, the plant context
    # the monitor's idle rule (decision.idle_channel) reads from the signal itself.
    idle: int = 0

    def __post_init__(self) -> None:
        for name in ("machines", "channels", "frame_samples", "window", "hop"):
            if getattr(self, name) <= 0:
                raise BenchConfigError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not 0 <= self.idle < self.machines:
            raise BenchConfigError(f"idle: 0..{self.machines - 1} machines (one must run), "
                                   f"got {self.idle}")
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise BenchConfigError(f"rate_hz: must be > 0, got {self.rate_hz}")
        if self.window % self.hop:
            raise BenchConfigError(f"window: must be a multiple of hop, got {self.window}/{self.hop}")

    @property
    def samples_per_s(self) -> float:
        return self.machines * self.channels * self.rate_hz

    @property
    def running(self) -> int:
        """Machines that turn (faults are injected into these only)."""
        return self.machines - self.idle

    @property
    def frames_per_s(self) -> float:
        """Frames of all machines together, per second of stream."""
        return self.machines * self.rate_hz / self.frame_samples

    def phases_ns(self, seed: int) -> list[int]:
        """Each machine's frame instants as an offset into the frame period (ns)."""
        period_ns = round(self.frame_samples / self.rate_hz * 1e9)
        if self.aligned:
            return [0] * self.machines
        rng = np.random.default_rng([seed, 0x0DA0])
        return [int(x) for x in rng.integers(0, period_ns, self.machines)]

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.frame_samples * 4

    def channel_names(self) -> tuple[str, ...]:
        return tuple(f"ch{i:02d}" for i in range(self.channels))

    def argv(self) -> list[str]:
        """The load as command-line options of the bench's child processes (``add_arguments``)."""
        return ["--machines", str(self.machines), "--channels", str(self.channels),
                "--rate", repr(self.rate_hz), "--frame-samples", str(self.frame_samples),
                "--window", str(self.window), "--hop", str(self.hop), "--idle", str(self.idle)] + \
            (["--aligned"] if self.aligned else [])

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        d = BenchLoad()
        p.add_argument("--machines", type=int, default=d.machines)
        p.add_argument("--channels", type=int, default=d.channels)
        p.add_argument("--rate", type=float, default=d.rate_hz)
        p.add_argument("--frame-samples", type=int, default=d.frame_samples)
        p.add_argument("--window", type=int, default=d.window)
        p.add_argument("--hop", type=int, default=d.hop)
        p.add_argument("--aligned", action="store_true",
                       help="every machine's frames at the same instants (default: own clocks)")
        p.add_argument("--idle", type=int, default=d.idle)

    @staticmethod
    def from_arguments(a: argparse.Namespace) -> BenchLoad:
        return BenchLoad(a.machines, a.channels, a.rate, a.frame_samples, a.window, a.hop,
                         a.aligned, a.idle)


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault signature on one channel.

    ``size``: for a bearing fault the impulses' peak as a multiple of the channel's normal
    RMS; for an RMS step the factor on the channel's signal. ``defect_hz`` (impulse rate) and
    ``resonance_hz`` (the ringing) matter to bearing faults only.
    """

    kind: str = BEARING
    channel: int = 0
    size: float = 10.0  # the bench model flags this on one channel of 64; 4 it does not
    defect_hz: float = 157.0
    resonance_hz: float = 2400.0  # inside the (1800, 3000) Hz feature band

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise BenchConfigError(f"fault.kind: one of {FAULT_KINDS}, got {self.kind!r}")
        if not (self.size > 0 and math.isfinite(self.size)):
            raise BenchConfigError(f"fault.size: must be > 0, got {self.size}")
        if not (self.defect_hz > 0 and self.resonance_hz > 0):
            raise BenchConfigError("fault.defect_hz and fault.resonance_hz: must be > 0")


@dataclass(frozen=True, slots=True)
class Onset:
    machine: int
    fault: Fault
    sample: int  # index of the first faulty sample in the machine's stream
    end: int | None = None  # index of the first healthy sample after it (None: never ends)


@dataclass(frozen=True, slots=True)
class _Active:
    onset: Onset
    loop: F32 | None  # (loop_frames, frame_samples) additive signal; None for an RMS step


def default_loop_frames(load: BenchLoad) -> int:
    per_loop_frame = load.machines * load.frame_bytes
    fit = BANK_BUDGET_BYTES // per_loop_frame
    two_windows = 2 * math.ceil(load.window / load.frame_samples)
    return int(max(two_windows, min(DEFAULT_LOOP_FRAMES, fit)))


class SignalBank:
    """Frames of every machine, frame ``index`` of a machine being its samples
    ``index * frame_samples`` onwards. Random access: the same index gives the same frame."""

    def __init__(self, load: BenchLoad, seed: int = 0, loop_frames: int | None = None) -> None:
        k = default_loop_frames(load) if loop_frames is None else loop_frames
        if k * load.frame_samples < 2 * load.window:
            raise BenchConfigError(f"loop_frames: {k} frames hold less than two windows")
        self.load = load
        self.seed = seed
        self.loop_frames = k
        n = k * load.frame_samples
        self._df_hz = load.rate_hz / n  # tones on this grid repeat exactly once per loop
        self._t_s = np.arange(n, dtype=np.float64) / load.rate_hz
        self._frames = np.empty((load.machines, k, load.channels, load.frame_samples), np.float32)
        self._rms = np.empty((load.machines, load.channels), np.float64)
        for m in range(load.machines):
            sig = self._machine_signal(m)
            self._rms[m] = np.sqrt(np.mean(sig * sig, axis=1))
            self._frames[m] = sig.reshape(load.channels, k, load.frame_samples).transpose(1, 0, 2)
        self._frames.flags.writeable = False
        self._active: dict[int, list[_Active]] = {}

    # -- the normal signal ---------------------------------------------------------------
    def _snap(self, f_hz: float) -> float:
        return max(1, round(f_hz / self._df_hz)) * self._df_hz

    def _machine_signal(self, machine: int) -> F64:
        load = self.load
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, machine, 0x42454E43]))
        c = load.channels
        gain = rng.uniform(0.5, 2.0, c)
        shaft_hz = rng.uniform(20.0, 50.0)
        tones = [(shaft_hz * h, rng.uniform(0.2, 1.0, c) / h) for h in (1, 2, 3)]
        tones.append((shaft_hz * int(rng.integers(8, 17)), rng.uniform(0.1, 0.4, c)))
        sig = rng.standard_normal((c, self._t_s.size)) * (0.3 * gain[:, None])
        if machine >= load.running:  # standing still: what is left is the sensors' own noise
            return sig * IDLE_NOISE
        for f_hz, amp in tones:
            f = self._snap(f_hz)
            if f >= 0.45 * load.rate_hz:
                continue
            phase = rng.uniform(0.0, 2.0 * math.pi, c)
            arg = 2.0 * math.pi * f * self._t_s
            # sin(wt + p) = sin(wt) cos(p) + cos(wt) sin(p): two outer products, no (C, L) sin
            sig += np.outer(amp * gain * np.cos(phase), np.sin(arg))
            sig += np.outer(amp * gain * np.sin(phase), np.cos(arg))
        return sig

    def _impulse_loop(self, machine: int, fault: Fault) -> F32:
        rate = self.load.rate_hz
        n = self._t_s.size
        count = max(1, round(self._snap(fault.defect_hz) / self._df_hz))
        res_hz = min(fault.resonance_hz, 0.4 * rate)
        span = min(n, math.ceil(5 * IMPULSE_DECAY_S * rate))
        t = np.arange(span) / rate
        ring = np.exp(-t / IMPULSE_DECAY_S) * np.sin(2.0 * math.pi * res_hz * t)
        ring *= fault.size * self._rms[machine, fault.channel] / max(np.max(np.abs(ring)), 1e-12)
        loop = np.zeros(n, np.float64)
        for j in range(count):
            at = (j * n) // count
            idx = (at + np.arange(span)) % n
            loop[idx] += ring
        return loop.astype(np.float32).reshape(self.loop_frames, self.load.frame_samples)

    # -- faults --------------------------------------------------------------------------
    def _check_machine(self, machine: int) -> None:
        if not 0 <= machine < self.load.machines:
            raise BenchConfigError(f"machine: 0..{self.load.machines - 1}, got {machine}")

    def inject(self, machine: int, fault: Fault, at_s: float, until_s: float | None = None) -> Onset:
        """Add ``fault`` to ``machine`` from stream time ``at_s`` (its sample round(at_s * R)),
        until stream time ``until_s`` (None: for good)."""
        self._check_machine(machine)
        if not 0 <= fault.channel < self.load.channels:
            raise BenchConfigError(f"fault.channel: 0..{self.load.channels - 1}, got {fault.channel}")
        if not (at_s >= 0 and math.isfinite(at_s)):
            raise BenchConfigError(f"at_s: must be >= 0, got {at_s}")
        if until_s is not None and not (until_s > at_s and math.isfinite(until_s)):
            raise BenchConfigError(f"until_s: must be > at_s ({at_s}), got {until_s}")
        end = None if until_s is None else round(until_s * self.load.rate_hz)
        onset = Onset(machine, fault, round(at_s * self.load.rate_hz), end)
        loop = self._impulse_loop(machine, fault) if fault.kind == BEARING else None
        self._active.setdefault(machine, []).append(_Active(onset, loop))
        return onset

    def clear(self, machine: int) -> int:
        """Remove every fault of ``machine``; returns how many there were."""
        self._check_machine(machine)
        return len(self._active.pop(machine, []))

    def onsets(self) -> list[Onset]:
        return sorted((a.onset for acts in self._active.values() for a in acts),
                      key=lambda o: (o.sample, o.machine))

    # -- frames --------------------------------------------------------------------------
    def channel_rms(self, machine: int) -> F64:
        """Each channel's normal RMS over the loop (a copy)."""
        self._check_machine(machine)
        rms: F64 = self._rms[machine].copy()
        return rms

    def frame(self, machine: int, index: int) -> F32:
        """(channels, frame_samples) float32, C-contiguous. A healthy frame is a read-only view
        of the bank; a frame a fault has reached is a new array."""
        if index < 0 or not 0 <= machine < self.load.machines:
            raise BenchConfigError(f"frame: no frame {index} of machine {machine}")
        base: F32 = self._frames[machine, index % self.loop_frames]
        acts = self._active.get(machine)
        if not acts:
            return base
        fs = self.load.frame_samples
        first = index * fs
        out: F32 | None = None
        for a in acts:
            end = a.onset.end
            if a.onset.sample >= first + fs or (end is not None and end <= first):
                continue
            if out is None:
                out = base.copy()
            off = max(0, a.onset.sample - first)
            stop = fs if end is None else min(fs, end - first)
            row = out[a.onset.fault.channel]
            if a.loop is None:
                row[off:stop] *= np.float32(a.onset.fault.size)
            else:
                row[off:stop] += a.loop[index % self.loop_frames, off:stop]
        return base if out is None else out

    def block(self, machine: int, first: int, frames: int) -> F32:
        """``frames`` consecutive frames joined: (channels, frames * frame_samples), a copy."""
        return np.concatenate([self.frame(machine, first + i) for i in range(frames)], axis=1)
