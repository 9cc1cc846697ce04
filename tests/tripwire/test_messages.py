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


def _resealed(header: bytes, payload: bytes | memoryview) -> bytes:
    """The header with its crc recomputed: an edited field reaches the checks behind the crc."""
    body = header[:-4]
    return body + struct.pack("<I", m.frame_crc(body, payload))


def test_frame_rejects_wrong_magic_and_version() -> None:
    header, payload = m.encode_frame(_frame())
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(_resealed(b"XXXX" + header[4:], payload), payload)
    assert e.value.reason == "bad_magic"
    bad_version = header[:4] + struct.pack("<H", 99) + header[6:]
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(_resealed(bad_version, payload), payload)
    assert e.value.reason == "bad_version"


@pytest.mark.parametrize("bit", range(0, (m.FRAME_HEADER.size) * 8, 7))
def test_frame_crc_covers_every_header_bit(bit: int) -> None:
    header, payload = m.encode_frame(_frame())
    flipped = bytearray(header)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(bytes(flipped), payload)
    assert e.value.reason == "bad_crc"


def test_frame_rejects_sizes_that_disagree_with_payload() -> None:
    header, payload = m.encode_frame(_frame())
    short = bytes(payload)[:-4]
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(header, short)
    assert e.value.reason == "bad_crc"  # lost bytes on the way: corruption
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(_resealed(header, short), short)
    assert e.value.reason == "size_mismatch"  # sent that way: the header disagrees with it


def test_frame_rejects_corrupted_payload() -> None:
    header, payload = m.encode_frame(_frame())
    data = bytearray(payload)
    data[10] ^= 0x40
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(header, bytes(data))
    assert e.value.reason == "bad_crc"


CELL = m.FrameLinks.for_cell("cell-a", [(3, "pump-3"), (4, "fan-4")])


def test_frame_identity_round_trip() -> None:
    header, payload = m.encode_frame(_frame(), CELL.link(3))
    assert m.decode_frame(header, payload, CELL).seq == 7
    assert len(header) == m.FRAME_HEADER.size == 64


@pytest.mark.parametrize(("link", "reason"), [
    (m.UNADDRESSED, "wrong_address"),  # an encoder told nothing
    (m.Link.source("cell-b", 3, "pump-3"), "wrong_address"),  # the same source of another cell
    (m.Link.source("cell-a", 4, "fan-4"), "masquerade"),  # fan-4 sending as source 3
    (m.Link.source("cell-a", 3, "pump-9"), "masquerade"),  # a device of another name, id 3
])
def test_frame_from_the_wrong_connection_is_named(link: m.Link, reason: str) -> None:
    header, payload = m.encode_frame(_frame(), link)  # _frame() claims source 3
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(header, payload, CELL)
    assert e.value.reason == reason
    assert m.decode_frame(header, payload).seq == 7  # integrity alone: fine


def test_frame_of_an_unknown_source_is_left_to_the_validator() -> None:
    f = _frame()
    header, payload = m.encode_frame(m.Frame(77, 1, 1, 1, 6400.0, f.samples),
                                     m.Link.source("cell-a", 77, "x"))
    assert m.decode_frame(header, payload, CELL).source_id == 77


def test_corruption_is_told_apart_from_identity() -> None:
    header, payload = m.encode_frame(_frame(), m.Link.source("cell-b", 3, "pump-3"))
    data = bytearray(payload)
    data[0] ^= 1
    with pytest.raises(m.DecodeError) as e:
        m.decode_frame(header, bytes(data), CELL)
    assert e.value.reason == "bad_crc"  # the crc comes first: a corrupted frame is not judged


def test_identity_keys_differ_by_every_part() -> None:
    keys = {m.source_key(1, "pump-1"), m.source_key(2, "pump-1"), m.source_key(1, "pump-2"),
            m.monitor_key(1), m.cell_address("pump-1")}
    assert len(keys) == 5
    assert m.cell_address("a") != m.cell_address("b")


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


MONITOR = m.Link.monitor("cell-a", 1)


def test_monitor_messages_carry_the_monitor_identity() -> None:
    v = _verdict()
    h = m.Heartbeat(1, 42, 99, 1000, 990, 10, 0, m.HeartbeatFlag.NONE)
    for data, msg in ((m.encode_verdict(v, MONITOR), v), (m.encode_heartbeat(h, MONITOR), h)):
        assert m.decode_monitor_message(data, MONITOR) == msg
    for other, reason in ((m.UNADDRESSED, "wrong_address"),
                          (m.Link.monitor("cell-b", 1), "wrong_address"),
                          (m.Link.monitor("cell-a", 2), "masquerade")):
        for data in (m.encode_verdict(v, other), m.encode_heartbeat(h, other)):
            with pytest.raises(m.DecodeError) as e:
                m.decode_monitor_message(data, MONITOR)
            assert e.value.reason == reason


@pytest.mark.parametrize("kind", ["verdict", "heartbeat"])
def test_monitor_message_crc_covers_every_bit(kind: str) -> None:
    data = (m.encode_verdict(_verdict(), MONITOR) if kind == "verdict"
            else m.encode_heartbeat(m.Heartbeat(1, 2, 3, 4, 5, 6, 0, m.HeartbeatFlag.NONE), MONITOR))
    for bit in range(32, len(data) * 8):  # past the magic (which picks the decoder)
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(m.DecodeError) as e:
            m.decode_monitor_message(bytes(flipped), MONITOR)
        assert e.value.reason in ("bad_crc", "size_mismatch", "truncated"), bit


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
    v, wrong = m.VERSION, m.VERSION + 1
    for bad in (b"\xff", b"[]", b'{"v":%d,"cmd":"format_disk"}' % v, b'{"v":%d,"cmd":"status"}' % wrong,
                b'{"v":%d,"cmd":"reset","token":5}' % v):
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
