"""The bus floor (bench.relay): the feeder, a null relay and a null sink as real processes,
their CPU per frame read over the span, nothing left running."""

from __future__ import annotations

import os
import subprocess

import pytest

from bench import relay
from bench.cell import placement
from tests.bench.conftest import SMALL


@pytest.mark.timeout(120)
def test_bus_floor_moves_every_frame_and_costs_it() -> None:
    cpus = placement(os.sched_getaffinity(0))
    fig = relay.bus_floor(SMALL, cpus, seconds=1.0, warm_s=0.2)
    got = fig["received"]
    # every relayed frame makes one message; the sink may miss the first few (PUB joins late)
    assert got["relay"] >= got["sink"] > 0
    assert fig["frames_per_s"] == SMALL.frames_per_s
    assert fig["relay_us_per_frame"] >= 0 and fig["sink_us_per_frame"] >= 0
    assert fig["total_us_per_frame"] == pytest.approx(
        fig["relay_us_per_frame"] + fig["sink_us_per_frame"], abs=0.11)
    assert fig["placement"] == {"relay": cpus["monitor"], "relay_io": cpus["monitor_io"],
                                "sink": cpus["interlock"]}
    assert 0.9 <= fig["measured_s"] < 5.0
    seen = fig["placement_seen"]["relay"]
    assert any(name.startswith("ZMQbg/IO") for name in seen), seen
    if cpus["monitor"]:  # pinned (two CPUs or more): read back, thread by thread
        for name, where in seen.items():
            want = cpus["monitor_io"] if name.startswith("ZMQbg/IO") else cpus["monitor"]
            assert where == ",".join(map(str, want)), (name, where)
    left = subprocess.run(["pgrep", "-f", "-m bench.relay"], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout


def test_relay_needs_somewhere_to_publish(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(SystemExit) as e:
        relay.main(["relay", "--sub", "ipc:///nowhere", "--report", f"{tmp_path}/r.json"])
    assert e.value.code == 2
