"""A bench helper process (shell): ``with Child(name, argv):`` runs ``argv`` until the block
is left, then ends it (SIGTERM, then SIGKILL: tripwire.supervisor.end_process). Its stdout is
discarded and its stderr kept for ``failure``, which says why it ended early. The feeder and
the bus floor's relay and sink are run so."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Self

from bench.errors import BenchSetupError
from tripwire.supervisor import end_process

STOP_TIMEOUT_S = 5.0
ERR_CHARS = 500  # the tail of stderr a failure quotes


class Child:
    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self._proc: subprocess.Popen[bytes] | None = None
        self._failure = ""

    def __enter__(self) -> Self:
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as e:
            raise BenchSetupError(f"cannot start the {self.name}: {e}") from None
        return self

    @property
    def pid(self) -> int:
        """The running child's process id (only inside the ``with`` block)."""
        if self._proc is None:
            raise BenchSetupError(f"the {self.name} is not running")
        return self._proc.pid

    def returncode(self) -> int | None:
        """The child's exit code; None while it runs (or before it started)."""
        return None if self._proc is None else self._proc.poll()

    def failure(self) -> str:
        """Why the child ended early ("" while it runs). Reads its stderr once it has exited."""
        proc = self._proc
        if self._failure or proc is None or proc.poll() is None:
            return self._failure
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        self._failure = f"{self.name} exited with {proc.returncode}: {err.strip()[-ERR_CHARS:]}"
        return self._failure

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        end_process(proc, STOP_TIMEOUT_S)
        if proc.stderr is not None:
            proc.stderr.close()
