"""Fuzzing the frame decoder and the monitor's per-source validation behind it.

An input is a list of ZeroMQ message parts. The monitor drops anything but two parts
(``bad_parts``), then ``decode_frame`` (called as the monitor calls it, with the cell's
links: see wire.py) must accept or raise ``DecodeError``; a decoded frame then meets
``FrameValidator`` (configured like the demo plant), which rejects with a reason and never
raises. Oracle for an accepted decode: the samples are the payload, unchanged.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.validate import FrameValidator, warm
from tests.fuzz import harness, wire
from tripwire import messages as m
from tripwire.config import SourceConfig

pytestmark = pytest.mark.timeout(harness.TEST_TIMEOUT_S)

DECODER = "frame"
CHANNELS = ["vib_x", "vib_y", "current", "temp"]
SOURCES = (SourceConfig(id=1, name="pump-1", channels=CHANNELS),
           SourceConfig(id=2, name="fan-2", channels=CHANNELS))
NOW_NS = 10**12 + 2_000_000

warm()  # numba compiles (or loads) the value scan once here, not inside a timed input


def classify(parts: harness.Parts, workdir: Path) -> str:
    if len(parts) != 2:
        return "reject bad_parts"
    try:
        frame = wire.decode_frame(parts)
    except m.DecodeError as e:
        return f"reject {e.reason}"
    payload = parts[1]
    assert frame.samples.dtype == np.float32 and frame.samples.ndim == 2
    assert frame.channels * frame.length * 4 == len(payload)
    assert frame.samples.tobytes() == payload, "decoded samples differ from the payload"
    assert frame.sample_rate_hz > 0 and math.isfinite(frame.sample_rate_hz)
    out = FrameValidator(SOURCES, max_frame_age_ms=50.0).check(frame, NOW_NS)
    return "accept" if out.accepted else f"reject {out.reason}"


def seeds() -> list[harness.Parts]:
    out = [wire.encode_frame(wire.sample_frame())]
    out.append(wire.encode_frame(wire.sample_frame(source_id=2, channels=1, samples=4, seed=1)))
    out.append(wire.encode_frame(wire.sample_frame(source_id=99, channels=2, samples=3, seed=2)))
    return out + harness.corpus_parts(DECODER)


# --- structure-aware generation -----------------------------------------------------------


@st.composite
def frames(draw: st.DrawFn) -> m.Frame:
    channels = draw(st.integers(1, 5))
    samples = draw(st.sampled_from((1, 2, 3, 16, 128)))
    values = draw(st.one_of(
        st.just(None),  # normal noise
        st.floats(width=32, allow_nan=True, allow_infinity=True),  # one value everywhere
    ))
    data = np.random.default_rng(draw(st.integers(0, 3))).standard_normal((channels, samples))
    if values is not None:
        data[...] = values
    return m.Frame(
        source_id=draw(st.sampled_from((1, 2, 0, 2**32 - 1))),
        seq=draw(st.integers(0, 2**64 - 1)),
        t_acq_ns=draw(st.sampled_from((10**12, 0, -(2**63), 2**63 - 1, NOW_NS + 10**9))),
        t_pub_ns=draw(st.integers(-(2**63), 2**63 - 1)),
        sample_rate_hz=draw(st.sampled_from((6400.0, 6400.000001, 1.0, 1e308))),
        samples=data.astype(np.float32),
    )


_CODES = wire.struct_codes(m.FRAME_HEADER)


@st.composite
def field_edits(draw: st.DrawFn, parts: harness.Parts) -> harness.Parts:
    for _ in range(draw(st.integers(1, 2))):
        i = draw(st.integers(0, len(wire.FRAME_FIELDS) - 1))
        parts = wire.frame_with_field(parts, wire.FRAME_FIELDS[i], draw(wire.field_values(_CODES[i])))
    return wire.reseal_frame(parts) if draw(st.booleans()) else parts


@st.composite
def candidates(draw: st.DrawFn) -> harness.Parts:
    parts = wire.encode_frame(draw(frames()))
    how = draw(st.sampled_from(("valid", "header", "payload", "fields", "parts", "raw")))
    if how == "header":
        parts = [harness.apply_ops(parts[0], draw(harness.ops_strategy())), parts[1]]
    elif how == "payload":
        parts = [parts[0], harness.apply_ops(parts[1], draw(harness.ops_strategy()))]
        parts = wire.reseal_frame(parts) if draw(st.booleans()) else parts
    elif how == "fields":
        parts = draw(field_edits(parts))
    elif how == "parts":
        parts = draw(st.sampled_from(([parts[0]], parts + [b""], [parts[0] + parts[1]], [])))
    elif how == "raw":
        parts = draw(st.lists(st.binary(max_size=128), min_size=2, max_size=2))
    return parts


@harness.fuzz_settings()
@given(parts=candidates())
def test_frame_decoder_structured(parts: harness.Parts) -> None:
    harness.timed(classify, parts, Path("."))


def test_frame_decoder_mutation_loop() -> None:
    report = harness.mutation_loop(classify, seeds(), Path("."), structured=_random_fielded)
    assert report.outcomes.get("accept", 0) > 0 or report.inputs < 200, report


def _random_fielded(rng: random.Random) -> harness.Parts:
    parts = wire.encode_frame(wire.sample_frame(
        source_id=rng.choice((1, 2, 3)), channels=rng.choice((1, 4)),
        samples=rng.choice((4, 128)), seed=rng.randrange(4)))
    i = rng.randrange(len(wire.FRAME_FIELDS))
    value = wire.random_field_value(_CODES[i], rng)
    parts = wire.frame_with_field(parts, wire.FRAME_FIELDS[i], value)
    return wire.reseal_frame(parts) if rng.random() < 0.8 else parts
