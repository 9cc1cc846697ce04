"""The process-level campaign rows at their reduced counts: real cells, real kills, real stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.case import CaseSpec, Context
from campaign.process import CASES
from campaign.process_cell import bundle_for

BY_NAME = {spec.name: spec for spec in CASES}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every row here, and the model trained into it once, up front."""
    path = tmp_path_factory.mktemp("process")
    bundle_for(Context(path / "any"))
    return path


def test_the_rows_and_their_counts() -> None:
    assert [(s.name, s.full, s.reduced) for s in CASES] == [
        ("anomaly", 1000, 4), ("kill_monitor", 50, 2), ("stop_monitor", 50, 2),
        ("stall_2d", 20, 1), ("stall_10d", 20, 1), ("kill_interlock", 50, 2),
    ]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", list(BY_NAME))
def test_reduced_row_passes(name: str, root: Path) -> None:
    spec: CaseSpec = BY_NAME[name]
    work = root / name
    work.mkdir()
    progressed: list[int] = []
    result = spec.run(Context(work, seed=1, deadline_ms=10.0, progress=progressed.append), spec.reduced)
    assert result.name == name and result.trials == spec.reduced
    assert sum(progressed) == spec.reduced
    assert result.ok, f"{result.passed}/{result.trials}: {list(result.failures)}; {result.details}"
    # Every trial was timed, against its own limit, and nothing tripped that should not have.
    assert result.max_reaction_ms is not None and result.max_reaction_ms > 0
    assert result.details["false_trips"] == 0
    assert result.details["seconds_per_trial"]["n"] == spec.reduced
    if name == "anomaly":
        assert result.max_reaction_ms <= 10.0
        assert set(result.details["by_condition"]) == {"modbus_idle", "modbus_loaded",
                                                      "opcua_idle", "opcua_loaded"}
    elif name == "kill_interlock":
        # The PLC's own watchdog (T_wd 300 ms, heartbeat every 100 ms) did it, not a stop write.
        assert 190.0 < result.max_reaction_ms <= 305.0
    else:
        assert result.max_reaction_ms <= 10.0
        assert result.details["stop_write_ms"]["n"] == spec.reduced
