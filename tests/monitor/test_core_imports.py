"""The monitor's new core modules import no shell library (STYLE.md: functional core)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"zmq", "pymodbus", "asyncua", "onnxruntime", "onnx", "asyncio", "structlog", "torch",
             "time", "threading"}
CORE = ["monitor/batching.py", "monitor/governor.py", "monitor/batch.py", "monitor/figures.py"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_shell_library_and_no_clock(module: str) -> None:
    bad = _imports(ROOT / module) & FORBIDDEN
    assert not bad, f"{module} imports {sorted(bad)}"
