"""A test-only wall clock that can jump: the fault campaign's way to move a cell's time.

``install(path)`` replaces the wall-clock readers of this process with ones that add an
offset read from the file at ``path`` (seconds, a decimal number; missing or empty = 0). The
campaign starts the cell's processes with that file named in the environment (``ENV``; only
``tripwire.cli`` reads it, before it imports any component) and, at the moment it wants the
jump, replaces the file atomically: every process sees the new offset on its next read.

Shifted: ``time.time``, ``time.time_ns``, ``time.localtime``/``gmtime``/``ctime``/``strftime``
without an explicit time, and ``datetime.datetime.now``/``utcnow``/``today`` (the class in
the ``datetime`` module is replaced by a subclass, so this must run before other modules
bind it by name). Not shifted: what C code reads from CLOCK_REALTIME by itself (libzmq,
SQLite), and never the monotonic clock: every decision in the cell is taken on
``time.monotonic_ns()``, which is exactly what a jump must not disturb.

Test machinery only: it decides nothing, logs nothing (a logger reads the wall clock) and
is never installed unless the environment asks for it.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "TRIPWIRE_TEST_CLOCK"

_undo: list[Callable[[], None]] = []


class Offset:
    """The offset in the control file, re-read only when the file changes (a stat per read)."""

    __slots__ = ("path", "ns", "_key")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ns = 0
        self._key: tuple[int, int, int] | None = None

    def get_ns(self) -> int:
        try:
            st = os.stat(self.path)
        except OSError:
            self._key, self.ns = None, 0
            return 0
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            self._key = key
            try:
                text = self.path.read_text().strip()
                self.ns = round(float(text) * 1e9) if text else 0
            except (OSError, ValueError):
                pass  # a file being replaced or garbled: keep the last good offset
        return self.ns


def write_offset(path: Path, offset_s: float) -> None:
    """Set the cell's wall-clock offset (atomic: write aside, then rename over)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{offset_s!r}\n")
    os.replace(tmp, path)


def installed() -> bool:
    return bool(_undo)


def install(path: Path) -> Offset:
    """Shift this process's wall clock by the offset in ``path`` from now on."""
    if _undo:
        raise RuntimeError("the test clock is already installed")
    offset = Offset(path)
    real_time, real_time_ns = time.time, time.time_ns
    real_localtime, real_gmtime = time.localtime, time.gmtime
    real_ctime, real_strftime = time.ctime, time.strftime

    def shifted_time() -> float:
        return real_time() + offset.get_ns() / 1e9

    def shifted_time_ns() -> int:
        return real_time_ns() + offset.get_ns()

    def shifted_localtime(secs: float | None = None) -> time.struct_time:
        return real_localtime(shifted_time() if secs is None else secs)

    def shifted_gmtime(secs: float | None = None) -> time.struct_time:
        return real_gmtime(shifted_time() if secs is None else secs)

    def shifted_ctime(secs: float | None = None) -> str:
        return real_ctime(shifted_time() if secs is None else secs)

    def shifted_strftime(fmt: str, t: Any = None) -> str:
        return real_strftime(fmt, shifted_localtime() if t is None else t)

    class ShiftedDatetime(_dt.datetime):  # the real class: install() runs once at a time
        """``datetime`` whose "now" is the shifted wall clock."""

        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> Any:
            return cls.fromtimestamp(shifted_time(), tz)

        @classmethod
        def utcnow(cls) -> Any:
            return cls.fromtimestamp(shifted_time(), _dt.timezone.utc).replace(tzinfo=None)

        @classmethod
        def today(cls) -> Any:
            return cls.fromtimestamp(shifted_time())

    replaced: list[tuple[Any, str, Any]] = [
        (time, "time", shifted_time), (time, "time_ns", shifted_time_ns),
        (time, "localtime", shifted_localtime), (time, "gmtime", shifted_gmtime),
        (time, "ctime", shifted_ctime), (time, "strftime", shifted_strftime),
        (_dt, "datetime", ShiftedDatetime),
    ]
    originals = [(mod, name, getattr(mod, name)) for mod, name, _ in replaced]
    for mod, name, new in replaced:
        setattr(mod, name, new)

    def undo() -> None:
        for mod, name, old in originals:
            setattr(mod, name, old)

    _undo.append(undo)
    return offset


def uninstall() -> None:
    """Put the real wall clock back (tests of this module)."""
    while _undo:
        _undo.pop()()
