"""The binary wire formats as the fuzz tests see them, in one place.

Frames, verdicts and heartbeats are encoded, decoded, field-edited and resealed (crc
recomputed) only through the functions here, so a change of the wire format is adapted here
and nowhere else; then ``python -m tests.fuzz.make_corpus`` regenerates the frame and
monitor-message corpora.

Senders stamp the connection identity of the demo cell ("cell-1"; sources 1 "pump-1" and
2 "fan-2"; monitor 1) and the decoders are called as the receivers call them: the monitor
with the cell's ``FrameLinks``, the interlock with the monitor's ``Link``.
"""

from __future__ import annotations

import math
import random
import re
import struct
import zlib
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tripwire import messages as m

Parts = list[bytes]

# Field names of the fixed headers, in struct order (for field edits and corpus names).
FRAME_FIELDS = ("magic", "version", "dtype", "flags", "channels", "reserved", "samples",
                "source_id", "seq", "t_acq_ns", "t_pub_ns", "sample_rate_hz", "dest", "origin",
                "crc")
VERDICT_FIELDS = ("magic", "version", "level", "tier", "flags", "source_id", "seq",
                  "verdict_seq", "t_acq_ns", "t_verdict_ns", "score", "threshold", "model_id",
                  "dest", "origin", "text_len")
HEARTBEAT_FIELDS = ("magic", "version", "tier", "flags", "monitor_id", "counter", "t_ns",
                    "frames_received", "frames_processed", "frames_rejected", "dest", "origin")
CRC = struct.Struct("<I")

CELL = "cell-1"
FRAME_LINKS = m.FrameLinks.for_cell(CELL, [(1, "pump-1"), (2, "fan-2")])
MONITOR_LINK = m.Link.monitor(CELL, 1)


def struct_codes(s: struct.Struct) -> list[str]:
    """One format code per field: ``<4sHB`` -> ['4s', 'H', 'B']."""
    return [n + c if c == "s" else c for n, c in re.findall(r"(\d*)([a-zA-Z?])", s.format)
            for _ in range(1 if c == "s" else int(n or 1))]


# --- frames --------------------------------------------------------------------------------


def encode_frame(frame: m.Frame) -> Parts:
    """As a source of this cell sends it (an unknown source id stamps a made-up key)."""
    origin = FRAME_LINKS.origins.get(frame.source_id, 0x5EED)
    header, payload = m.encode_frame(frame, m.Link(FRAME_LINKS.dest, origin))
    return [header, bytes(payload)]


def decode_frame(parts: Parts) -> m.Frame:
    """The monitor's call: zmq frames' buffers, header then payload, the cell's links."""
    return m.decode_frame(memoryview(parts[0]), memoryview(parts[1]), FRAME_LINKS)


def frame_with_field(parts: Parts, field: str, value: Any) -> Parts:
    values = list(m.FRAME_HEADER.unpack(parts[0]))
    values[FRAME_FIELDS.index(field)] = value
    return [m.FRAME_HEADER.pack(*values), *parts[1:]]


def reseal_frame(parts: Parts) -> Parts:
    """Recompute the integrity check, so edited fields reach the checks behind the crc."""
    if len(parts) != 2 or len(parts[0]) != m.FRAME_HEADER.size:
        return parts
    body = parts[0][:m.FRAME_HEADER.size - CRC.size]
    return frame_with_field(parts, "crc", m.frame_crc(body, parts[1]))


def sample_frame(source_id: int = 1, seq: int = 7, channels: int = 4, samples: int = 128,
                 rate_hz: float = 6400.0, t_acq_ns: int = 10**12, seed: int = 0) -> m.Frame:
    data = np.random.default_rng(seed).standard_normal((channels, samples)).astype(np.float32)
    return m.Frame(source_id, seq, t_acq_ns, t_acq_ns + 500_000, rate_hz, data)


# --- verdicts and heartbeats -----------------------------------------------------------------


def encode_verdict(v: m.Verdict) -> bytes:
    return m.encode_verdict(v, MONITOR_LINK)


def encode_heartbeat(h: m.Heartbeat) -> bytes:
    return m.encode_heartbeat(h, MONITOR_LINK)


def decode_monitor_message(data: bytes) -> m.Verdict | m.Heartbeat:
    """The interlock's call on one SUB message: integrity and the monitor's identity."""
    return m.decode_monitor_message(data, MONITOR_LINK)


def observe_monitor_message(data: bytes) -> m.Verdict | m.Heartbeat:
    """An observer's call (the SCADA gateway): integrity only."""
    return m.decode_monitor_message(data)


def message_with_field(data: bytes, field: str, value: Any) -> bytes:
    """Edit one header field of a verdict or heartbeat (told apart by its magic)."""
    layout, names = ((m.VERDICT_HEADER, VERDICT_FIELDS) if data[:4] == m.VERDICT_MAGIC
                     else (m.HEARTBEAT, HEARTBEAT_FIELDS))
    values = list(layout.unpack_from(data))
    values[names.index(field)] = value
    return layout.pack(*values) + data[layout.size:]


def reseal_message(data: bytes) -> bytes:
    """Recompute the trailing crc over everything before it."""
    if len(data) < CRC.size:
        return data
    body = data[:-CRC.size]
    return body + CRC.pack(zlib.crc32(body))


def sample_verdict(level: m.Level = m.Level.TRIP, channels: tuple[str, ...] = ("vib_x", "temp"),
                   seq: int = 41) -> m.Verdict:
    return m.Verdict(source_id=1, seq=seq, verdict_seq=seq + 100, t_acq_ns=10**12,
                     t_verdict_ns=10**12 + 3_000_000, score=3.5, threshold=1.25, level=level,
                     flags=m.VerdictFlag.GAP, tier=1, model_id=bytes.fromhex("0123456789abcdef"),
                     channels=channels)


def sample_heartbeat(counter: int = 9) -> m.Heartbeat:
    return m.Heartbeat(monitor_id=1, counter=counter, t_ns=10**12, frames_received=500,
                       frames_processed=498, frames_rejected=2, tier=1,
                       flags=m.HeartbeatFlag.SOURCE_STALE)


# --- values for one header field, by struct code ------------------------------------------------

_BITS = {"b": 8, "B": 8, "h": 16, "H": 16, "i": 32, "I": 32, "q": 64, "Q": 64}


def field_values(code: str) -> st.SearchStrategy[object]:
    """Any value the field's struct code can hold (NaN and infinities for floats)."""
    if code.endswith("s"):
        n = int(code[:-1] or 1)
        return st.binary(min_size=n, max_size=n)
    if code in "fd":
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if code == "f" else 64)
    bits = _BITS[code]
    if code.islower():
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return st.integers(0, 2**bits - 1)


def random_field_value(code: str, rng: random.Random) -> object:
    """A boundary or random value for the field's struct code."""
    if code.endswith("s"):
        return rng.randbytes(int(code[:-1] or 1))
    if code in "fd":
        return rng.choice((0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, 6400.0, 1e-300,
                           rng.random()))
    bits = _BITS[code]
    lo = -(2 ** (bits - 1)) if code.islower() else 0
    return rng.choice((lo, lo + 2**bits - 1, 0, 1, 2, 3, rng.randrange(lo, lo + 2**bits)))
