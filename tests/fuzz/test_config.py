"""Fuzzing the configuration decoder: ``config.load`` on TOML bytes and ``config.from_dict``.

Both may only raise ``ConfigError``. Oracle for an accepted configuration: it survives the
trip to a child process unchanged (``dumps_toml(to_dict(cfg))`` loads back to the same
values), and the fields that end up in fixed-width wire fields fit them (source ids and the
monitor id in 32 bits, Modbus addresses in 16), so an accepted file cannot crash a
component later.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import harness
from tripwire import config as c

pytestmark = pytest.mark.timeout(harness.TEST_TIMEOUT_S)

DECODER = "config"
CHANNELS = ["vib_x", "vib_y", "current", "temp"]


def valid_config() -> c.Config:
    return c.Config(
        sources=[c.SourceConfig(1, "pump-1", list(CHANNELS)),
                 c.SourceConfig(2, "fan-2", list(CHANNELS))],
        interlock=c.InterlockConfig(targets=["modbus", "opcua"]),
        sim=c.SimConfig(faults=[c.FaultConfig("bearing", 1, 5.0)]),
    )


def valid_tree() -> dict[str, Any]:
    return c.to_dict(valid_config())


def check_accepted(cfg: c.Config) -> None:
    again = c.from_dict(tomllib.loads(c.dumps_toml(c.to_dict(cfg))))
    assert repr(c.to_dict(again)) == repr(c.to_dict(cfg)), "changed on the way to a child"
    assert all(0 <= s.id <= 0xFFFFFFFF for s in cfg.sources)
    assert 0 <= cfg.monitor.monitor_id <= 0xFFFFFFFF
    m = cfg.interlock.modbus
    assert all(0 <= a <= 0xFFFF for a in (m.permit_coil, m.heartbeat_register,
                                         m.trip_reason_register, m.watchdog_register))


def _reason(e: c.ConfigError, path: Path | None) -> str:
    text = str(e)
    if path is not None and text.startswith(f"{path}: "):
        return "file: " + text[len(f"{path}: "):].split(" (")[0]
    return text.split(": ")[0]


def classify(parts: harness.Parts, workdir: Path) -> str:
    """TOML bytes through ``load``, as ``main()`` and ``check-config`` read a file."""
    if len(parts) != 1:
        return "reject bad_parts"
    path = workdir / "fuzz.toml"
    path.write_bytes(parts[0])
    try:
        cfg = c.load(path)
    except c.ConfigError as e:
        return f"reject {_reason(e, path)}"
    check_accepted(cfg)
    return "accept"


def classify_tree(tree: Any) -> str:
    try:
        cfg = c.from_dict(tree)
    except c.ConfigError as e:
        return f"reject {_reason(e, None)}"
    check_accepted(cfg)
    return "accept"


def seeds() -> list[harness.Parts]:
    tree = valid_tree()
    out = [[c.dumps_toml(tree).encode()],
           [b'[[sources]]\nid = 1\nname = "a"\nchannels = ["x"]\n'],
           [b"x = " + b"[" * 990 + b"]" * 990 + b"\n"],
           [b"a = " + b"9" * 5000 + b"\n"],
           [b'[[sources]]\nid = 1\nname = "\xff"\nchannels = ["x"]\n']]
    return out + harness.corpus_parts(DECODER)


# --- structure-aware generation -----------------------------------------------------------


@functools.cache
def toml_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        harness.json_scalars(),
        st.sampled_from((dt.datetime(2026, 1, 1, 12, 0), dt.date(2026, 1, 1), dt.time(12, 0), 2**32,
                         -(2**31), 65536, 2**70, "\n", "\x7f", '"', "\\", "a\tb", "ipc:///x",
                         "opc.tcp://h:1", "modbus", "opcua", "trip", "bearing")),
    )
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
        max_leaves=8)


@st.composite
def trees(draw: st.DrawFn) -> Any:
    return draw(harness.tree_edits(valid_tree(), toml_values()))


def toml_text(tree: Any) -> bytes | None:
    try:
        return c.dumps_toml(tree).encode("utf-8")
    except (TypeError, AttributeError, UnicodeEncodeError):  # the writer cannot express it
        return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-fuzz")


@harness.fuzz_settings()
@given(tree=trees())
def test_config_from_dict_structured(tree: Any) -> None:
    harness.bounded(lambda: classify_tree(tree), lambda: repr(tree))


@harness.fuzz_settings()
@given(tree=trees(), ops=st.one_of(st.just([]), harness.ops_strategy()),
       raw=st.one_of(st.none(), st.binary(max_size=200)))
def test_config_load_structured(tree: Any, ops: list[harness.Op], raw: bytes | None,
                                workdir: Path) -> None:
    text = toml_text(tree)
    data = raw if raw is not None or text is None else harness.apply_ops(text, ops)
    harness.timed(classify, [data or b""], workdir)


def test_config_load_mutation_loop(tmp_path: Path) -> None:
    def fielded(rng: random.Random) -> harness.Parts:
        tree: Any = valid_tree()
        for _ in range(rng.randint(1, 3)):
            tree = harness.random_tree_mutation(tree, rng)
        return [toml_text(tree) or b""]

    report = harness.mutation_loop(classify, seeds(), tmp_path, structured=fielded)
    assert report.outcomes.get("accept", 0) > 0 or report.inputs < 200, report


def test_config_from_dict_mutation_loop() -> None:
    rng = random.Random(harness.SEED)
    for i in range(harness.EXAMPLES):
        tree: Any = valid_tree()
        for _ in range(rng.randint(1, 3)):
            tree = harness.random_tree_mutation(tree, rng)
        try:
            harness.bounded(lambda: classify_tree(tree), lambda: repr(tree))
        except Exception as e:
            raise AssertionError(f"input {i} (TRIPWIRE_FUZZ_SEED={harness.SEED}): "
                                 f"{type(e).__name__}: {e}\n{tree!r}") from e
