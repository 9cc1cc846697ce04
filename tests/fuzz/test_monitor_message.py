"""Fuzzing ``decode_monitor_message``: verdicts and heartbeats on the monitor's output socket.

Both the interlock and the SCADA gateway decode these; the gateway then folds the message
into its ``PlantView`` and renders a snapshot, which must not raise either. Oracle for an
accepted message: a Verdict has a known level, flags within the 8 defined bits, an 8-byte
model id and non-empty channel names without commas; a Heartbeat has flags within its
defined bits.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scada.view import PlantView
from tests.fuzz import harness, wire
from tripwire import messages as m

pytestmark = pytest.mark.timeout(harness.TEST_TIMEOUT_S)

DECODER = "monitor"
NOW_NS = 10**12 + 5_000_000


def classify(parts: harness.Parts, workdir: Path) -> str:
    if len(parts) != 1:
        return "reject bad_parts"
    try:  # the gateway: integrity only, then into its view
        observed: m.Verdict | m.Heartbeat | None = wire.observe_monitor_message(parts[0])
    except m.DecodeError:
        observed = None
    if observed is not None:
        check_message(observed)
        view = PlantView([(1, "pump-1"), (2, "fan-2")])
        view.on_message(observed, NOW_NS)
        assert view.snapshot(NOW_NS + 1), "an empty snapshot"
    try:  # the interlock: integrity and the monitor's identity
        msg = wire.decode_monitor_message(parts[0])
    except m.DecodeError as e:
        return f"reject {e.reason}"
    assert repr(msg) == repr(observed), "the interlock and the gateway read it differently"
    return f"accept {'verdict' if isinstance(msg, m.Verdict) else 'heartbeat'}"


def check_message(msg: m.Verdict | m.Heartbeat) -> None:
    if isinstance(msg, m.Verdict):
        assert msg.level in (m.Level.OK, m.Level.WARN, m.Level.TRIP)
        assert 0 <= int(msg.flags) <= 0xFF
        assert isinstance(msg.model_id, bytes) and len(msg.model_id) == 8
        assert all(c and "," not in c for c in msg.channels)
    else:
        assert isinstance(msg, m.Heartbeat)
        assert 0 <= int(msg.flags) <= 0x3


def seeds() -> list[harness.Parts]:
    out = [[wire.encode_verdict(wire.sample_verdict())],
           [wire.encode_verdict(wire.sample_verdict(m.Level.OK, ()))],
           [wire.encode_heartbeat(wire.sample_heartbeat())]]
    return out + harness.corpus_parts(DECODER)


# --- structure-aware generation -----------------------------------------------------------

channel_names = st.lists(st.one_of(st.sampled_from(("vib_x", "temp", "", ",", "é" * 40)),
                                   st.text(max_size=12)), max_size=6).map(tuple)
f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@st.composite
def verdicts(draw: st.DrawFn) -> m.Verdict:
    return m.Verdict(
        source_id=draw(st.sampled_from((1, 2, 0, 2**32 - 1))),
        seq=draw(st.integers(0, 2**64 - 1)),
        verdict_seq=draw(st.integers(0, 2**64 - 1)),
        t_acq_ns=draw(st.integers(-(2**63), 2**63 - 1)),
        t_verdict_ns=draw(st.integers(-(2**63), 2**63 - 1)),
        score=draw(f32), threshold=draw(f32),
        level=draw(st.sampled_from(list(m.Level))),
        flags=m.VerdictFlag(draw(st.integers(0, 0xFF))),
        tier=draw(st.integers(0, 255)),
        model_id=draw(st.binary(max_size=8)),
        channels=draw(channel_names),
    )


@st.composite
def heartbeats(draw: st.DrawFn) -> m.Heartbeat:
    u64 = st.integers(0, 2**64 - 1)
    return m.Heartbeat(
        monitor_id=draw(st.integers(0, 2**32 - 1)), counter=draw(u64),
        t_ns=draw(st.integers(-(2**63), 2**63 - 1)), frames_received=draw(u64),
        frames_processed=draw(u64), frames_rejected=draw(u64), tier=draw(st.integers(0, 255)),
        flags=m.HeartbeatFlag(draw(st.integers(0, 3))),
    )


@st.composite
def field_edit(draw: st.DrawFn, data: bytes) -> bytes:
    layout, names = ((m.VERDICT_HEADER, wire.VERDICT_FIELDS) if data[:4] == m.VERDICT_MAGIC
                     else (m.HEARTBEAT, wire.HEARTBEAT_FIELDS))
    codes = wire.struct_codes(layout)
    i = draw(st.integers(0, len(names) - 1))
    data = wire.message_with_field(data, names[i], draw(wire.field_values(codes[i])))
    return wire.reseal_message(data) if draw(st.booleans()) else data


@st.composite
def candidates(draw: st.DrawFn) -> harness.Parts:
    msg = draw(st.one_of(verdicts(), heartbeats()))
    data = (wire.encode_verdict(msg) if isinstance(msg, m.Verdict)
            else wire.encode_heartbeat(msg))
    how = draw(st.sampled_from(("valid", "bytes", "bytes_resealed", "fields", "raw")))
    if how == "valid":
        decoded = wire.decode_monitor_message(data)
        if isinstance(msg, m.Verdict):
            assert isinstance(decoded, m.Verdict)
            assert (decoded.source_id, decoded.seq, decoded.verdict_seq, decoded.level,
                    decoded.tier, decoded.t_acq_ns) == (msg.source_id, msg.seq, msg.verdict_seq,
                                                        msg.level, msg.tier, msg.t_acq_ns)
            assert math.isnan(decoded.score) == math.isnan(msg.score)
        else:
            assert decoded == msg
    elif how == "bytes":
        data = harness.apply_ops(data, draw(harness.ops_strategy()))
    elif how == "bytes_resealed":
        data = wire.reseal_message(harness.apply_ops(data, draw(harness.ops_strategy())))
    elif how == "fields":
        data = draw(field_edit(data))
    else:
        data = draw(st.one_of(st.binary(max_size=160),
                              st.binary(max_size=150).map(lambda b: m.VERDICT_MAGIC + b),
                              st.binary(max_size=80).map(lambda b: m.HEARTBEAT_MAGIC + b)))
    return [data]


@harness.fuzz_settings()
@given(parts=candidates())
def test_monitor_message_decoder_structured(parts: harness.Parts) -> None:
    harness.timed(classify, parts, Path("."))


def test_monitor_message_decoder_mutation_loop() -> None:
    def fielded(rng: random.Random) -> harness.Parts:
        data = rng.choice(seeds())[0]
        if data[:4] not in (m.VERDICT_MAGIC, m.HEARTBEAT_MAGIC) or len(data) < 40:
            return [data]
        layout, names = ((m.VERDICT_HEADER, wire.VERDICT_FIELDS)
                         if data[:4] == m.VERDICT_MAGIC else (m.HEARTBEAT, wire.HEARTBEAT_FIELDS))
        if len(data) < layout.size:
            return [data]
        i = rng.randrange(len(names))
        value = wire.random_field_value(wire.struct_codes(layout)[i], rng)
        data = wire.message_with_field(data, names[i], value)
        return [wire.reseal_message(data) if rng.random() < 0.8 else data]

    report = harness.mutation_loop(classify, seeds(), Path("."), structured=fielded)
    assert report.outcomes.get("accept verdict", 0) > 0 or report.inputs < 200, report
