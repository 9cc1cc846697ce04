"""Helpers shared by the sensors tests: a fake monotonic clock, draining a source."""

from __future__ import annotations

from sensors.source import FrameSource, SourceState
from tripwire.messages import Frame


class FakeClock:
    """Monotonic nanoseconds that only move when the code under test sleeps."""

    def __init__(self) -> None:
        self.now_ns = 1_000_000_000
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_ns += int(round(seconds * 1e9))


def read_all(src: FrameSource, limit: int = 10_000) -> list[Frame]:
    frames: list[Frame] = []
    for _ in range(limit):
        f = src.read()
        if f is None:
            if src.state is SourceState.DRAINED:
                break
            continue
        frames.append(f)
    return frames
