"""The monitor's batching and governor core modules import no shell library and read no
clock (STYLE.md: functional core); the shared check is tests/tripwire/test_core_imports.py."""

from __future__ import annotations

import pytest

from tests.tripwire.test_core_imports import FORBIDDEN, ROOT, _imports

CORE = ["monitor/batching.py", "monitor/governor.py", "monitor/batch.py", "monitor/figures.py"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_shell_library_and_no_clock(module: str) -> None:
    bad = _imports(ROOT / module) & (FORBIDDEN | {"time", "threading"})
    assert not bad, f"{module} imports {sorted(bad)}"
