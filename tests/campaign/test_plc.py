"""The PLC rows at their reduced counts: real interlock processes, the simulated PLC and the
wrong-answering PLCs on loopback, a fault proxy between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.case import CaseResult, Context
from campaign.plc import CASES, ERROR_CODES, HANDFUL, LINK_FAULTS, T_HB_MS, error_codes

SPECS = {spec.name: spec for spec in CASES}


def run(tmp_path: Path, name: str) -> CaseResult:
    spec = SPECS[name]
    done: list[int] = []
    result = spec.run(Context(tmp_path, seed=0, deadline_ms=10.0, progress=done.append), spec.reduced)
    assert sum(done) == spec.reduced  # every trial reported its progress
    assert result.trials == spec.reduced
    return result


def test_cases_are_registered_with_reduced_counts() -> None:
    assert list(SPECS) == [*LINK_FAULTS, "stop_write_errors", "reconnect_soak"]
    assert SPECS["stop_write_errors"].full == len(ERROR_CODES)
    assert SPECS["reconnect_soak"].full == 1000
    assert all(SPECS[n].full == 20 and SPECS[n].reduced == 2 for n in LINK_FAULTS)


def test_error_codes_cover_every_modbus_exception_and_opcua_bad_status() -> None:
    codes = error_codes(len(ERROR_CODES))
    assert [f"modbus:exception_{c:#04x}" in codes for c in range(1, 12)] == [True] * 11
    for fault in ("wrong_tid", "wrong_unit", "truncated_header", "truncated_body", "short_pdu", "late"):
        assert f"modbus:{fault}" in codes
    assert "opcua:GoodCompletesAsynchronously" in codes and "opcua:BadTimeout" in codes
    assert "opcua-service:BadTimeout" in codes and "opcua-header:GoodCompletesAsynchronously" in codes
    assert sum(c.startswith("opcua:Bad") for c in codes) > 200
    assert error_codes(len(HANDFUL)) == list(HANDFUL)
    spread = error_codes(20)
    assert spread[:len(HANDFUL)] == list(HANDFUL) and len(set(spread)) == 20


@pytest.mark.parametrize("name", list(LINK_FAULTS))
def test_link_fault_is_alarmed_and_never_reported_delivered(tmp_path: Path, name: str) -> None:
    result = run(tmp_path, name)
    assert result.ok, result.failures
    assert result.details["targets"] == ["modbus", "opcua"]
    assert result.max_reaction_ms is not None and 0 <= result.max_reaction_ms <= 2 * T_HB_MS


def test_stop_write_errors_are_all_failed_deliveries(tmp_path: Path) -> None:
    result = run(tmp_path, "stop_write_errors")
    assert result.ok, result.failures
    assert result.details["codes"] == {"modbus": 3, "opcua": 1, "opcua-service": 1, "opcua-header": 1}


def test_reconnect_soak_recovers_without_leaks(tmp_path: Path) -> None:
    result = run(tmp_path, "reconnect_soak")
    assert result.ok, result.failures
    growth = result.details["growth_after_warm_up"]
    assert set(growth) == {"modbus", "opcua"}
    for kind, g in growth.items():
        assert g["fds"] <= 0 and g["threads"] <= 0 and g["rss_kb"] < 5 * 1024, (kind, g)
    assert result.max_reaction_ms is not None  # every cycle timed its recovery
