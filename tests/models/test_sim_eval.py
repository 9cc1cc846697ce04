"""The simulator detection study: runs offline through the monitor's code, faster than real time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models import sim_eval
from models.train import build_default_bundle
from tripwire import config
from tripwire.stack import demo_table


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = config.from_dict(demo_table(bundle="", fault=None))
    return build_default_bundle(cfg, tmp_path_factory.mktemp("sim_eval") / "b", seconds=120.0,
                                kind="pca")


def test_study_reports_every_asked_fault_and_normal_windows(bundle: Path) -> None:
    table = demo_table(bundle="", fault="bearing")  # configured faults are ignored
    t0 = time.monotonic()
    r = sim_eval.run(table, bundle, hours=0.005, trials_per_fault=2,
                     kinds=["bearing", "freeze", "cavitation"])
    elapsed = time.monotonic() - t0
    normal = r["normal"]
    # 18 s of both sources: one window per 20 ms frame once the first 1024 samples are in
    assert normal["windows"] == 2 * (900 - 7)
    assert normal["false_trips"] == len(normal["trips"]) >= 0
    assert set(r["faults"]) == {"bearing", "freeze", "cavitation"}
    for kind, res in r["faults"].items():
        assert res["trials"] == 2 and 0 <= res["detected"] <= 2, kind
        if res["detected"]:
            assert 0 <= res["median_delay_ms"] <= res["p90_delay_ms"] <= res["observe_s"] * 1e3
    # a step fault and a stuck sensor are caught within a second or two
    assert r["faults"]["bearing"]["detected"] == 2
    assert r["faults"]["freeze"]["detected"] == 2
    assert r["faults"]["freeze"]["median_delay_ms"] <= 1100.0
    assert "note" in r["faults"]["freeze"]
    assert r["setup"]["k"] == 3 and r["setup"]["fault_source"] == 1
    assert elapsed < 60.0  # ~18 s of plant and ~2 x 30 s of trials, far faster than real time


def test_study_is_deterministic(bundle: Path) -> None:
    table = demo_table(bundle="", fault=None)
    a = sim_eval.run(table, bundle, hours=0.002, trials_per_fault=1, kinds=["imbalance"], seed=4)
    b = sim_eval.run(table, bundle, hours=0.002, trials_per_fault=1, kinds=["imbalance"], seed=4)
    assert a["faults"] == b["faults"] and a["normal"] == b["normal"]


def test_bad_arguments_are_refused(bundle: Path) -> None:
    table = demo_table(bundle="", fault=None)
    with pytest.raises(ValueError, match="unknown fault kind"):
        sim_eval.run(table, bundle, hours=0.001, kinds=["rust"])
    with pytest.raises(ValueError, match="hours"):
        sim_eval.run(table, bundle, hours=0.0)
    with pytest.raises(KeyError):
        sim_eval.run(table, bundle, hours=0.001, fault_source=9)
