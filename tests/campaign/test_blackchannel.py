"""The black-channel rows at their reduced counts: real processes and sockets on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.blackchannel import CASES, CLASSES
from campaign.case import CaseResult, Context

SPECS = {spec.name: spec for spec in CASES}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module's cases: the model bundles are trained once, beside them."""
    return tmp_path_factory.mktemp("blackchannel")


def run(root: Path, name: str, deadline_ms: float = 10.0) -> CaseResult:
    spec = SPECS[name]
    work = root / name
    work.mkdir()
    done: list[int] = []
    result = spec.run(Context(work, seed=0, deadline_ms=deadline_ms, progress=done.append),
                      spec.reduced)
    assert sum(done) == spec.reduced  # every trial reported its progress
    return result


def test_cases_are_registered_with_reduced_counts() -> None:
    assert list(SPECS) == ["black_channel", "heartbeat_counter", "source_skew"]
    assert SPECS["black_channel"].full == 100 * len(CLASSES)
    assert all(0 < s.reduced < s.full for s in CASES)


def test_black_channel_detects_every_class(root: Path) -> None:
    result = run(root, "black_channel")
    assert result.ok, result.failures
    per_class = result.details["passed_per_class"]
    assert set(per_class) == set(CLASSES) and all(n >= 3 for n in per_class.values())
    rejected = result.details["monitor_rejected"]
    for reason in ("decode_bad_crc", "decode_masquerade", "decode_wrong_address", "repeat",
                   "reorder", "insertion", "stale"):
        assert rejected[reason] >= 3, reason


def test_heartbeat_counter_freezes_trip_and_wraps_do_not(root: Path) -> None:
    result = run(root, "heartbeat_counter")
    assert result.ok, result.failures
    assert result.details["freezes"] == SPECS["heartbeat_counter"].reduced - 1
    assert result.details["plc_wraps"] >= 2 and result.details["monitor_wraps"] == 1
    assert result.max_reaction_ms is not None and result.max_reaction_ms >= 300.0  # T_wd


def test_source_skew_neither_causes_nor_hides_a_trip(root: Path) -> None:
    # Behaviour, not the 10 ms budget (as the hardware-in-the-loop tests): on a shared 2-core
    # CI machine the monitor's loop has been seen to stall for ~12 ms, which at D = 10 ms trips
    # the liveness rule for reasons this row is not about. ``make faults`` runs it at 10 ms.
    result = run(root, "source_skew", deadline_ms=50.0)
    assert result.ok, result.failures
    kinds = [t["kind"] for t in result.details["trials"]]
    assert kinds == ["model", "delay"]
    assert [t["skew_ms"][0] for t in result.details["trials"]] == [10_000.0, -10_000.0]
    assert result.max_reaction_ms is not None  # every trip timed from the fault's start
