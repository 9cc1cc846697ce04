"""A broken config refuses to start with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripwire import config as c

SRC = {"id": 1, "name": "pump-1", "channels": ["vib_x", "temp"]}


def test_minimal_config_gets_defaults() -> None:
    cfg = c.from_dict({"sources": [SRC]})
    assert cfg.interlock.deadline_ms == 10.0
    assert cfg.sources[0].sample_rate_hz == 6400.0
    assert cfg.interlock.stop_budget_ms == pytest.approx(4.0)


@pytest.mark.parametrize(
    "table, key",
    [
        ({"sources": [SRC], "interlock": {"deadline_ms": -1}}, "interlock.deadline_ms"),
        ({"sources": [SRC], "interlock": {"dead_line_ms": 5}}, "interlock.dead_line_ms"),
        ({"sources": [SRC], "monitor": {"window": "big"}}, "monitor.window"),
        ({"sources": [SRC], "monitor": {"window": 1000, "hop": 128}}, "monitor.window"),
        ({"sources": [{**SRC, "channels": []}]}, "sources[0].channels"),
        ({"sources": [{"id": 1, "channels": ["a"]}]}, "sources[0].name"),
        ({"sources": [SRC], "interlock": {"targets": ["profibus"]}}, "interlock.targets[0]"),
        ({"sources": [SRC], "interlock": {"modbus": {"port": 70000}}}, "interlock.modbus.port"),
        ({"sources": [SRC], "sim": {"faults": [{"kind": "bearing", "source": 9, "at_s": 1}]}},
         "sim.faults[0].source"),
        ({"sources": [SRC], "decision": {"k": 6, "n": 5}}, "decision.k"),
        ({"sources": [SRC], "monitor": {"cpus": [1, 1]}}, "monitor.cpus"),
        ({"sources": [SRC], "interlock": {"cpus": [-1]}}, "interlock.cpus"),
        ({"sources": [SRC], "monitor": {"io_cpus": [4096]}}, "monitor.io_cpus"),
        ({}, "sources"),
    ],
)
def test_bad_config_names_the_key(table: dict, key: str) -> None:
    with pytest.raises(c.ConfigError) as e:
        c.from_dict(table)
    assert str(e.value).startswith(key), str(e.value)


def test_toml_round_trip(tmp_path: Path) -> None:
    cfg = c.from_dict({"sources": [SRC], "sim": {"faults": [{"kind": "bearing", "source": 1, "at_s": 3.0}]}})
    p = tmp_path / "t.toml"
    p.write_text(c.dumps_toml(c.to_dict(cfg)))
    assert c.load(p) == cfg


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(c.ConfigError, match="cannot read"):
        c.load(tmp_path / "missing.toml")
    p = tmp_path / "bad.toml"
    p.write_text("[interlock\n")
    with pytest.raises(c.ConfigError, match="not valid TOML"):
        c.load(p)
