"""Starts Tripwire components as child processes and guarantees none outlives its owner.

Used by ``tripwire demo`` and the hardware-in-the-loop tests. Each child is
``python -m tripwire.cli run <component> --config F`` with stdout and stderr sent to a log
file. ``close()`` asks each child to stop (SIGTERM), waits, then kills what is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def end_process(proc: subprocess.Popen[Any], timeout_s: float) -> int:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL what is left; the exit code."""
    proc.terminate()  # nothing when it has already exited
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=timeout_s)


@dataclass
class Supervisor:
    log_dir: Path
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, component: str, config_path: Path, *extra: str) -> Child:
        if name in self.children and self.children[name].alive():
            raise RuntimeError(f"{name} is already running")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()/close()
        cmd = [sys.executable, "-m", "tripwire.cli", "run", component, "--config", str(config_path), *extra]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        child = Child(name, proc, log_path, log)
        self.children[name] = child
        return child

    def stop(self, name: str, timeout_s: float = 5.0) -> int | None:
        child = self.children.get(name)
        if child is None:
            return None
        code = end_process(child.proc, timeout_s)
        child.log.close()
        return code

    def wait(self, name: str, timeout_s: float) -> int | None:
        try:
            return self.children[name].proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def close(self, timeout_s: float = 5.0) -> dict[str, int | None]:
        for child in self.children.values():
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int | None] = {}
        for name, child in self.children.items():
            try:
                codes[name] = child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.signal(signal.SIGKILL)
                codes[name] = child.proc.wait(timeout=timeout_s)
            child.log.close()
        return codes

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
