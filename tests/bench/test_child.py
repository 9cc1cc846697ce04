"""A bench helper process (bench.child.Child): its pid only while it runs, why it ended."""

from __future__ import annotations

import os
import sys
import time

import pytest

from bench.child import Child
from bench.errors import BenchSetupError


def test_pid_exists_only_inside_the_block_and_a_failure_is_named() -> None:
    child = Child("helper", [sys.executable, "-c", "import sys; sys.exit('no input')"])
    with pytest.raises(BenchSetupError, match="helper is not running"):
        _ = child.pid
    with child:
        assert child.pid > 0 and child.pid != os.getpid()
        deadline = time.monotonic() + 30
        while child.returncode() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.failure() == "helper exited with 1: no input"
    with pytest.raises(BenchSetupError):
        _ = child.pid
