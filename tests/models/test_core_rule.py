"""The models package's pure modules import none of the shell's libraries (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"zmq", "pymodbus", "asyncua", "onnxruntime", "asyncio", "structlog", "torch", "onnx"}
CORE = [
    "models/errors.py",
    "models/manifest.py",
    "models/providers.py",
    "models/protocol.py",
    "models/standardize.py",
    "models/autoencoder.py",
    "models/pca.py",
    "models/calibrate.py",
]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_is_pure(module: str) -> None:
    bad = _imports(ROOT / module) & FORBIDDEN
    assert not bad, f"{module} imports {sorted(bad)}"


def test_nothing_in_models_pickles() -> None:
    for path in (ROOT / "models").glob("*.py"):
        assert not _imports(path) & {"pickle", "joblib", "dill"}, path
        assert "allow_pickle=True" not in path.read_text(), path
