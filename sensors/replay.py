"""Replay a recording (CSV or NPY) as frames, at the recorded rate or as fast as possible (shell).

CSV: one header row naming the columns, then one row per sample; the delimiter (comma,
semicolon or tab) is taken from the header. The configured channels are picked by name, in
the configured order; other columns are ignored. An optional time column (seconds as numbers,
or ISO timestamps such as SKAB's ``2020-02-08 13:30:47``) paces the replay on the recorded
times, gaps included, and must agree with the configured sample rate. A missing column, a
ragged row, a value that is not a number, or a time that goes backwards is refused with the
line named. "nan" is a number: bad samples are replayed as recorded for the monitor to flag.

NPY: a 2-D numeric array, (channels, n) or (n, channels), with the channel names given; the
layout is inferred from which axis has the channel count, or named when both do.

The recording is cut into frames of ``frame_samples`` (a trailing partial frame is dropped:
frames have a fixed length). Each frame's ``t_acq_ns`` is stamped when ``read`` hands it out.
Paced, frame k is handed out when its last sample's recorded time has elapsed since the first
read; unpaced, as fast as the reader asks. Files are read on ``__enter__``, never in the
constructor.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from sensors.errors import MissingColumn, ReplayError, ReplayFormatError
from sensors.source import DEFAULT_POLL_S, Clock, Lifecycle, Pacer, Sleep
from tripwire.config import SourceConfig
from tripwire.messages import Frame

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Layout = Literal["auto", "channels_first", "samples_first"]
RATE_TOLERANCE = 0.01  # recorded vs configured sample rate


@dataclass(frozen=True, slots=True)
class Recording:
    samples: F32  # (channels, n), C-contiguous
    channels: tuple[str, ...]
    times_s: F64 | None  # per-sample recorded time from the first sample, when recorded


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.strip()).timestamp()


def load_csv(path: str | Path, channels: list[str] | tuple[str, ...],
             time_column: str | None = None) -> Recording:
    name = str(path)
    try:
        f = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as e:
        raise ReplayError(f"{name}: cannot open ({e.strerror})") from None
    with f:
        first = f.readline()
        if not first.strip():
            raise ReplayFormatError(name, 1, "no header row")
        delimiter = max((",", ";", "\t"), key=first.count)
        header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
        if len(set(header)) != len(header):
            raise ReplayFormatError(name, 1, "duplicate column names in the header")
        wanted = list(channels) + ([time_column] if time_column else [])
        for col in wanted:
            if col not in header:
                raise MissingColumn(name, col, header)
        idx = [header.index(c) for c in channels]
        t_idx = header.index(time_column) if time_column else -1
        rows: list[list[float]] = []
        times: list[float] = []
        for lineno, row in enumerate(csv.reader(f, delimiter=delimiter), start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(header):
                raise ReplayFormatError(
                    name, lineno, f"{len(row)} fields, the header has {len(header)}"
                )
            try:
                rows.append([float(row[i]) for i in idx])
            except ValueError:
                bad = next(c for c, i in zip(channels, idx, strict=True) if not _is_number(row[i]))
                value = row[header.index(bad)]
                raise ReplayFormatError(
                    name, lineno, f"column {bad!r}: not a number: {value!r}"
                ) from None
            if t_idx >= 0:
                try:
                    times.append(_parse_time(row[t_idx]))
                except ValueError:
                    raise ReplayFormatError(
                        name, lineno, f"time column {time_column!r}: not a time: {row[t_idx]!r}"
                    ) from None
                if len(times) > 1 and times[-1] < times[-2]:
                    raise ReplayFormatError(name, lineno, f"time column {time_column!r} goes backwards")
    if not rows:
        raise ReplayFormatError(name, 2, "no data rows")
    samples = np.ascontiguousarray(np.asarray(rows, dtype=np.float32).T)
    t = np.asarray(times, dtype=np.float64) - times[0] if times else None
    return Recording(samples, tuple(channels), t)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_npy(path: str | Path, channels: list[str] | tuple[str, ...],
             layout: Layout = "auto") -> Recording:
    name = str(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ReplayError(f"{name}: not a readable .npy array ({e})") from None
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise ReplayError(f"{name}: expected a 2-D numeric array, got {arr.ndim}-D {arr.dtype}")
    c = len(channels)
    if layout == "auto":
        first, second = arr.shape[0] == c, arr.shape[1] == c
        if first and second:
            raise ReplayError(
                f"{name}: shape {arr.shape} is ambiguous with {c} channels; name the layout"
            )
        if not (first or second):
            raise ReplayError(f"{name}: shape {arr.shape} has no axis of {c} channels {list(channels)}")
        layout = "channels_first" if first else "samples_first"
    data = arr if layout == "channels_first" else arr.T
    if data.shape[0] != c:
        raise ReplayError(f"{name}: {data.shape[0]} channels in the file, {c} configured")
    return Recording(np.ascontiguousarray(data, dtype=np.float32), tuple(channels), None)


class ReplaySource(Lifecycle):
    """A FrameSource over a recorded file; ``from_config`` builds one from a SourceConfig."""

    def __init__(
        self,
        path: str | Path,
        *,
        source_id: int,
        channels: list[str] | tuple[str, ...],
        sample_rate_hz: float,
        frame_samples: int,
        paced: bool = True,
        loop: bool = False,
        time_column: str | None = None,
        layout: Layout = "auto",
        poll_s: float = DEFAULT_POLL_S,
        clock: Clock = time.monotonic_ns,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__()
        if frame_samples <= 0 or not sample_rate_hz > 0:
            raise ReplayError("frame_samples and sample_rate_hz must be > 0")
        self.path = Path(path)
        self.source_id = source_id
        self.channels = tuple(channels)
        self.sample_rate_hz = float(sample_rate_hz)
        self.frame_samples = frame_samples
        self.paced, self.loop = paced, loop
        self.time_column, self.layout = time_column, layout
        self._clock = clock
        self._pacer = Pacer(clock, sleep, poll_s)
        self._chunks: F32 = np.empty((0, len(self.channels), frame_samples), np.float32)
        self._due_ns: npt.NDArray[np.int64] = np.empty(0, np.int64)
        self._seq = 0

    @classmethod
    def from_config(cls, source: SourceConfig, **kwargs: object) -> ReplaySource:
        return cls(source.path, source_id=source.id, channels=source.channels,
                   sample_rate_hz=source.sample_rate_hz, frame_samples=source.frame_samples,
                   **kwargs)  # type: ignore[arg-type]

    @property
    def frames(self) -> int:
        """Whole frames in one pass over the recording."""
        return int(self._chunks.shape[0])

    def __enter__(self) -> ReplaySource:
        self._opening()
        try:
            rec = self._load()
            self._prepare(rec)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self) -> Recording:
        suffix = self.path.suffix.lower()
        if suffix == ".csv":
            return load_csv(self.path, self.channels, self.time_column)
        if suffix == ".npy":
            if self.time_column:
                raise ReplayError(f"{self.path}: an .npy recording has no time column")
            return load_npy(self.path, self.channels, self.layout)
        raise ReplayError(
            f"{self.path}: replay reads .csv or .npy files, not {suffix or 'no suffix'!r}"
        )

    def _prepare(self, rec: Recording) -> None:
        n = rec.samples.shape[1]
        k = n // self.frame_samples
        if k == 0:
            raise ReplayError(f"{self.path}: {n} samples, fewer than one frame of {self.frame_samples}")
        if rec.times_s is not None and n > 1:
            steps = np.diff(rec.times_s)
            step = float(np.median(steps))
            recorded = 1.0 / step if step > 0 else math.inf
            if abs(recorded - self.sample_rate_hz) > RATE_TOLERANCE * self.sample_rate_hz:
                raise ReplayError(
                    f"{self.path}: time column {self.time_column!r} gives {recorded:g} Hz, "
                    f"the source is configured for {self.sample_rate_hz:g} Hz"
                )
        used = rec.samples[:, : k * self.frame_samples]
        chunks = used.reshape(len(self.channels), k, self.frame_samples).transpose(1, 0, 2)
        self._chunks = np.ascontiguousarray(chunks)
        self._chunks.flags.writeable = False
        last = np.arange(1, k + 1) * self.frame_samples - 1  # index of each frame's last sample
        if rec.times_s is not None:
            offsets_s = rec.times_s[last] + 1.0 / self.sample_rate_hz
        else:
            offsets_s = (last + 1) / self.sample_rate_hz
        self._due_ns = np.round(offsets_s * 1e9).astype(np.int64)

    def read(self) -> Frame | None:
        if not self._readable():
            return None
        k = self._seq % self.frames
        rounds = self._seq // self.frames
        if rounds and not self.loop:
            self._drained()
            return None
        if self.paced:
            offset = int(self._due_ns[k]) + rounds * int(self._due_ns[-1])
            if not self._pacer.due(offset):
                return None
        seq = self._seq
        self._seq += 1
        return Frame(self.source_id, seq, self._clock(), 0, self.sample_rate_hz, self._chunks[k])
