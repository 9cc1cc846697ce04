"""The bench's pure modules import no shell library; the generator does not pull in numba."""

from __future__ import annotations

import pytest

from tests.tripwire.test_core_imports import FORBIDDEN, ROOT, _imports

CORE = ["bench/signals.py", "bench/numpy_features.py", "bench/figures.py", "bench/errors.py",
        "bench/schedule.py", "bench/report.py"]


@pytest.mark.parametrize("module", CORE)
def test_bench_core_imports_no_shell_library(module: str) -> None:
    assert not _imports(ROOT / module) & FORBIDDEN


def test_signal_bank_imports_numpy_only() -> None:
    # The feeder process imports it: numba's import alone costs it half a second.
    assert _imports(ROOT / "bench/signals.py") <= {"__future__", "argparse", "math", "dataclasses",
                                                    "numpy", "bench"}
