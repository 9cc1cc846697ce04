"""The [scada] config section and the gateway's import rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tripwire.config import ConfigError, ScadaConfig, dumps_toml, from_dict, to_dict

SOURCES = [{"id": 1, "name": "pump-1", "channels": ["vib_x"]}]


def test_defaults() -> None:
    cfg = from_dict({"sources": SOURCES})
    assert cfg.scada == ScadaConfig()
    assert cfg.scada.endpoint == "opc.tcp://127.0.0.1:4841"
    assert cfg.scada.namespace == "urn:tripwire:scada"
    assert not cfg.scada.require_user


def test_round_trips_through_toml(tmp_path: Path) -> None:
    cfg = from_dict({"sources": SOURCES, "scada": {"require_user": True, "username": "op",
                                                   "password": "pw", "update_ms": 500}})
    path = tmp_path / "c.toml"
    path.write_text(dumps_toml(to_dict(cfg)))
    from tripwire.config import load
    assert load(path).scada == cfg.scada


@pytest.mark.parametrize(("scada", "key"), [
    ({"endpoint": "tcp://127.0.0.1:4841"}, "scada.endpoint"),
    ({"namespace": ""}, "scada.namespace"),
    ({"update_ms": 5}, "scada.update_ms"),
    ({"command_timeout_ms": 0}, "scada.command_timeout_ms"),
    ({"require_user": True, "username": "op"}, "scada.username"),
    ({"require_user": "yes"}, "scada.require_user"),
    ({"colour": "red"}, "scada.colour"),
])
def test_bad_values_name_the_key(scada: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict({"sources": SOURCES, "scada": scada})
