"""Round trips and every rejection class of the wire codecs."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tripwire import messages as m


def _frame(seq: int = 7, channels: int = 4, n: int = 128) -> m.Frame:
    rng = np.random.default_rng(seq)
    data = rng.standard_normal((channels, n)).astype(np.float32)
    return m.Frame(3, seq, 1_000_000, 1_000_500, 6400.0, data)


def test_frame_round_trip_is_exact_and_zero_copy() -> None:
    f = _frame()
    header, payload = m.encode_frame(f)
    g = m.decode_frame(header, bytes(payload))
    assert (g.source_id, g.seq, g.t_acq_ns, g.t_pub_ns, g.sample_rate_hz) == (3, 7, 1_000_000, 1_000_500, 6400.0)
    np.testing.assert_array_equal(g.samples, f.samples)
    assert g.samples.base is not None  # a view of the payload, not a copy
    assert g.channels == 4 and g.length == 128


def test_frame_rejects_truncated_header() -> None:
    header, payload = m.encode_frame(_frame())
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(header[:-1], payload)
    assert e.value.reason == "bad_header_size"


def test_frame_rejects_wrong_magic_and_version() -> None:
    header, payload = m.encode_frame(_frame())
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(b"XXXX" + header[4:], payload)
    assert e.value.reason == "bad_magic"
    bad_version = header[:4] + struct.pack("<H", 99) + header[6:]
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(bad_version, payload)
    assert e.value.reason == "bad_version"


def test_frame_rejects_sizes_that_disagree_with_payload() -> None:
    header, payload = m.encode_frame(_frame())
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(header, bytes(payload)[:-4])
    assert e.value.reason == "size_mismatch"


def test_frame_rejects_corrupted_payload() -> None:
    header, payload = m.encode_frame(_frame())
    data = bytearray(payload)
    data[10] ^= 0x40
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(header, bytes(data))
    assert e.value.reason == "bad_crc"


def test_frame_codec_carries_nan_for_validation_to_reject() -> None:
    # The codec is about structure; NaN/Inf are judged by monitor validation (tested there).
    f = _frame()
    samples = f.samples.copy()
    samples[0, 0] = np.nan
    header, payload = m.encode_frame(m.Frame(1, 1, 1, 1, 6400.0, samples))
    assert np.isnan(m.decode_frame(header, payload).samples[0, 0])


def _verdict(**kw: object) -> m.Verdict:
    base = dict(source_id=2, seq=10, verdict_seq=11, t_acq_ns=5, t_verdict_ns=9, score=1.5,
                threshold=1.0, level=m.Level.TRIP, flags=m.VerdictFlag.GAP, tier=0,
                model_id=b"abcdefgh", channels=("vib_x", "temp"))
    base.update(kw)
    return m.Verdict(**base)  # type: ignore[arg-type]


def test_verdict_round_trip() -> None:
    v = _verdict()
    assert m.decode_verdict(m.encode_verdict(v)) == v
    assert m.decode_monitor_message(m.encode_verdict(v)) == v


def test_verdict_rejects_truncation_and_corruption() -> None:
    data = m.encode_verdict(_verdict())
    for cut in (3, 10, len(data) - 1):
        with pytest.raises(m.DecodeError):
            m.decode_verdict(data[:cut])
    flipped = bytearray(data)
    flipped[30] ^= 1
    with pytest.raises(m.DecodeError) as e:
        m.decode_verdict(bytes(flipped))
    assert e.value.reason == "bad_crc"


def test_heartbeat_round_trip_and_rejection() -> None:
    h = m.Heartbeat(1, 42, 99, 1000, 990, 10, 0, m.HeartbeatFlag.SOURCE_STALE)
    data = m.encode_heartbeat(h)
    assert m.decode_monitor_message(data) == h
    with pytest.raises(m.DecodeError):
        m.decode_heartbeat(data[:-1])
    with pytest.raises(m.DecodeError) as e:
        m.decode_monitor_message(b"JUNK" + data[4:])
    assert e.value.reason == "bad_magic"


def test_command_codec_rejects_unknown_and_malformed() -> None:
    c = m.Command("reset", token="t", reason="shift change")
    assert m.decode_command(m.encode_command(c)) == c
    for bad in (b"\xff", b"[]", b'{"v":1,"cmd":"format_disk"}', b'{"v":2,"cmd":"status"}',
                b'{"v":1,"cmd":"reset","token":5}'):
        with pytest.raises(m.DecodeError):
            m.decode_command(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=600))
def test_frame_decoder_never_crashes_on_arbitrary_bytes(header: bytes, payload: bytes) -> None:
    try:
        m.decode_frame(header, payload)
    except m.DecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_monitor_message_decoder_never_crashes(data: bytes) -> None:
    for prefix in (b"", m.VERDICT_MAGIC, m.HEARTBEAT_MAGIC):
        try:
            m.decode_monitor_message(prefix + data)
        except m.DecodeError:
            pass
