"""Every exception the sensors package raises, in one tree.

    SensorError
    ├── SourceStateError        a source used outside its lifecycle (read before open,
    │                           reopened after close: a closed source cannot be reused)
    ├── ReplayError             a recording that cannot be replayed as configured
    │   ├── MissingColumn       a configured channel is not in the CSV header (``column``)
    │   └── ReplayFormatError   a malformed file; ``line`` names the line (1 = the header)
    │                           for ragged rows, non-numeric values, a bad time column
    └── PublishError            the frame socket could not be set up (translated from zmq)

Bad samples (NaN, out of range) are not errors here: they are data, replayed as recorded,
and the monitor's validation flags them.
"""

from __future__ import annotations


class SensorError(Exception):
    """Base of everything the sensors package raises."""


class SourceStateError(SensorError):
    pass


class ReplayError(SensorError):
    pass


class MissingColumn(ReplayError):
    def __init__(self, path: str, column: str, header: list[str]) -> None:
        super().__init__(f"{path}: no column {column!r} in the header (columns: {header})")
        self.column = column


class ReplayFormatError(ReplayError):
    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}, line {line}: {problem}")
        self.line = line


class PublishError(SensorError):
    pass
