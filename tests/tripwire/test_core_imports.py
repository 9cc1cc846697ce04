"""The functional core never imports the shell's libraries (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"zmq", "pymodbus", "asyncua", "onnxruntime", "onnx", "asyncio", "structlog", "torch"}
CORE = [
    "tripwire/messages.py",
    "tripwire/config.py",
    "tripwire/latency.py",
    "tripwire/summary.py",
    "monitor/features.py",
    "monitor/validate.py",
    "monitor/source_clock.py",
    "monitor/decide.py",
    "monitor/bands.py",
    "monitor/batching.py",
    "monitor/batch.py",
    "monitor/governor.py",
    "monitor/figures.py",
    "models/plan.py",
    "models/metrics.py",
    "models/detectors.py",
    "models/skab_forest.py",
    "models/errors.py",
    "models/manifest.py",
    "models/providers.py",
    "models/protocol.py",
    "models/standardize.py",
    "models/autoencoder.py",
    "models/pca.py",
    "models/calibrate.py",
    "scada/view.py",
    "scada/commands.py",
    "scada/errors.py",
    "interlock/latch.py",
    "interlock/watchdog.py",
    "interlock/modbus_codec.py",
    "sim/plant.py",
    "sim/plc_logic.py",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_shell_library(module: str) -> None:
    path = ROOT / module
    if not path.exists():
        pytest.fail(f"core module {module} is missing")
    bad = _imports(path) & FORBIDDEN
    assert not bad, f"{module} imports {sorted(bad)}"


def test_nothing_in_models_pickles() -> None:
    for path in (ROOT / "models").glob("*.py"):
        assert not _imports(path) & {"pickle", "joblib", "dill"}, path
        assert "allow_pickle=True" not in path.read_text(), path


def test_runtime_never_imports_torch() -> None:
    for pkg in ("tripwire", "monitor", "interlock", "sensors", "models", "sim"):
        for path in (ROOT / pkg).rglob("*.py"):
            assert "torch" not in _imports(path), f"{path} imports torch"
