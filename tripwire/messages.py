"""Wire schemas for every hop: Frame, Verdict, Heartbeat (binary), Command/Reply (JSON).

This is the one module that components share across a bus hop. Codecs are pure functions:
bytes in, objects out (or the reverse). They never touch a socket or a clock, and a
malformed message raises ``DecodeError`` naming what is wrong; callers count and drop it.

Frame on the wire (two ZeroMQ parts):
    part 0: FRAME_HEADER, little-endian, fixed size
    part 1: float32 payload, channel-major (channels x samples), C-contiguous
The header's crc32 covers the payload, so corruption on the way is detected (black channel).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Any

import numpy as np
import numpy.typing as npt

VERSION = 1

FRAME_MAGIC = b"TWFR"
VERDICT_MAGIC = b"TWVD"
HEARTBEAT_MAGIC = b"TWHB"

DTYPE_F32 = 1

# magic, version, dtype, flags, channels, reserved, samples, source_id, seq,
# t_acq_ns, t_pub_ns, sample_rate_hz, payload crc32
FRAME_HEADER = struct.Struct("<4sHBBHHIIQqqdI")
# magic, version, level, tier, flags, source_id, seq, verdict_seq, t_acq_ns, t_verdict_ns,
# score, threshold, model_id(8 bytes), channels text length
VERDICT_HEADER = struct.Struct("<4sHBBHIQQqqff8sH")
# magic, version, tier, flags, monitor_id, counter, t_ns, frames_received,
# frames_processed, frames_rejected
HEARTBEAT = struct.Struct("<4sHBBIQqQQQ")

MAX_CHANNELS = 4096
MAX_SAMPLES = 1 << 20
MAX_CHANNEL_TEXT = 256


class DecodeError(ValueError):
    """A message that cannot be accepted; ``reason`` is a short stable counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Level(IntEnum):
    OK = 0
    WARN = 1
    TRIP = 2


class VerdictFlag(IntFlag):
    NONE = 0
    STALE = 1
    GAP = 2
    INVALID_INPUT = 4
    LATE = 8
    DEGRADED_MODEL = 16
    INFERENCE_ERROR = 32
    SENSOR_FROZEN = 64
    IDLE = 128


class HeartbeatFlag(IntFlag):
    NONE = 0
    SOURCE_STALE = 1
    MODEL_ERROR = 2


@dataclass(frozen=True, slots=True)
class Frame:
    source_id: int
    seq: int
    t_acq_ns: int
    t_pub_ns: int
    sample_rate_hz: float
    samples: npt.NDArray[np.float32]  # shape (channels, n), float32, C-contiguous

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def length(self) -> int:
        return int(self.samples.shape[1])


@dataclass(frozen=True, slots=True)
class Verdict:
    source_id: int
    seq: int
    verdict_seq: int
    t_acq_ns: int
    t_verdict_ns: int
    score: float
    threshold: float
    level: Level
    flags: VerdictFlag
    tier: int
    model_id: bytes
    channels: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Heartbeat:
    monitor_id: int
    counter: int
    t_ns: int
    frames_received: int
    frames_processed: int
    frames_rejected: int
    tier: int
    flags: HeartbeatFlag


# --- Frame ---------------------------------------------------------------------------


def encode_frame_header(
    *,
    source_id: int,
    seq: int,
    t_acq_ns: int,
    t_pub_ns: int,
    sample_rate_hz: float,
    channels: int,
    samples: int,
    payload: bytes | memoryview,
) -> bytes:
    return FRAME_HEADER.pack(
        FRAME_MAGIC, VERSION, DTYPE_F32, 0, channels, 0, samples, source_id, seq,
        t_acq_ns, t_pub_ns, sample_rate_hz, zlib.crc32(payload),
    )


def encode_frame(frame: Frame) -> tuple[bytes, memoryview]:
    """Two parts for ``send_multipart``; the payload part is a view, not a copy."""
    data = np.ascontiguousarray(frame.samples, dtype=np.float32)
    payload = data.data.cast("B")
    header = encode_frame_header(
        source_id=frame.source_id, seq=frame.seq, t_acq_ns=frame.t_acq_ns,
        t_pub_ns=frame.t_pub_ns, sample_rate_hz=frame.sample_rate_hz,
        channels=data.shape[0], samples=data.shape[1], payload=payload,
    )
    return header, payload


def decode_frame(header: bytes | memoryview, payload: bytes | memoryview) -> Frame:
    """Validate structure and integrity; the samples array is a read-only view of payload."""
    if len(header) != FRAME_HEADER.size:
        raise DecodeError("bad_header_size", f"{len(header)} bytes")
    (magic, version, dtype, _flags, channels, _res, samples, source_id, seq,
     t_acq_ns, t_pub_ns, rate, crc) = FRAME_HEADER.unpack(header)
    if magic != FRAME_MAGIC:
        raise DecodeError("bad_magic", repr(bytes(magic)))
    if version != VERSION:
        raise DecodeError("bad_version", str(version))
    if dtype != DTYPE_F32:
        raise DecodeError("bad_dtype", str(dtype))
    if not (0 < channels <= MAX_CHANNELS) or not (0 < samples <= MAX_SAMPLES):
        raise DecodeError("bad_shape", f"{channels}x{samples}")
    if len(payload) != channels * samples * 4:
        raise DecodeError("size_mismatch", f"payload {len(payload)} != {channels}x{samples}x4")
    if not (rate > 0.0 and np.isfinite(rate)):
        raise DecodeError("bad_rate", str(rate))
    if zlib.crc32(payload) != crc:
        raise DecodeError("bad_crc")
    arr = np.frombuffer(payload, dtype="<f4").reshape(channels, samples)
    return Frame(source_id, seq, t_acq_ns, t_pub_ns, rate, arr)


# --- Verdict -------------------------------------------------------------------------


def encode_verdict(v: Verdict) -> bytes:
    text = ",".join(v.channels).encode()[:MAX_CHANNEL_TEXT]
    head = VERDICT_HEADER.pack(
        VERDICT_MAGIC, VERSION, int(v.level), v.tier, int(v.flags), v.source_id, v.seq,
        v.verdict_seq, v.t_acq_ns, v.t_verdict_ns, v.score, v.threshold,
        v.model_id[:8].ljust(8, b"\0"), len(text),
    )
    body = head + text
    return body + struct.pack("<I", zlib.crc32(body))


def decode_verdict(data: bytes | memoryview) -> Verdict:
    data = bytes(data)
    n = VERDICT_HEADER.size
    if len(data) < n + 4 or data[:4] != VERDICT_MAGIC:
        raise DecodeError("bad_magic" if data[:4] != VERDICT_MAGIC else "truncated")
    (_m, version, level, tier, flags, source_id, seq, vseq, t_acq, t_verdict, score,
     threshold, model_id, text_len) = VERDICT_HEADER.unpack_from(data)
    if version != VERSION:
        raise DecodeError("bad_version", str(version))
    if len(data) != n + text_len + 4:
        raise DecodeError("size_mismatch", f"{len(data)} bytes, text {text_len}")
    (crc,) = struct.unpack_from("<I", data, n + text_len)
    if zlib.crc32(data[: n + text_len]) != crc:
        raise DecodeError("bad_crc")
    if level not in (0, 1, 2):
        raise DecodeError("bad_level", str(level))
    text = data[n : n + text_len].decode("utf-8", errors="replace")
    return Verdict(
        source_id, seq, vseq, t_acq, t_verdict, score, threshold, Level(level),
        VerdictFlag(flags & 0xFF), tier, model_id, tuple(t for t in text.split(",") if t),
    )


# --- Heartbeat -----------------------------------------------------------------------


def encode_heartbeat(h: Heartbeat) -> bytes:
    body = HEARTBEAT.pack(
        HEARTBEAT_MAGIC, VERSION, h.tier, int(h.flags), h.monitor_id, h.counter, h.t_ns,
        h.frames_received, h.frames_processed, h.frames_rejected,
    )
    return body + struct.pack("<I", zlib.crc32(body))


def decode_heartbeat(data: bytes | memoryview) -> Heartbeat:
    data = bytes(data)
    if data[:4] != HEARTBEAT_MAGIC:
        raise DecodeError("bad_magic")
    if len(data) != HEARTBEAT.size + 4:
        raise DecodeError("size_mismatch", f"{len(data)} bytes")
    (crc,) = struct.unpack_from("<I", data, HEARTBEAT.size)
    if zlib.crc32(data[: HEARTBEAT.size]) != crc:
        raise DecodeError("bad_crc")
    (_m, version, tier, flags, monitor_id, counter, t_ns, rx, done, rej) = HEARTBEAT.unpack_from(data)
    if version != VERSION:
        raise DecodeError("bad_version", str(version))
    return Heartbeat(monitor_id, counter, t_ns, rx, done, rej, tier, HeartbeatFlag(flags & 0x3))


def decode_monitor_message(data: bytes | memoryview) -> Verdict | Heartbeat:
    """Verdicts and heartbeats share the monitor's output socket; the magic tells them apart."""
    magic = bytes(data[:4])
    if magic == VERDICT_MAGIC:
        return decode_verdict(data)
    if magic == HEARTBEAT_MAGIC:
        return decode_heartbeat(data)
    raise DecodeError("bad_magic", repr(magic))


# --- Command / Reply (control path: structured JSON, versioned) -----------------------

# "inhibit" is part of the schema so that a gateway can ask; the interlock refuses it
# (a bypass of the interlock is not something this layer offers).
COMMANDS = frozenset({"status", "reset", "trip", "shutdown", "acknowledge", "inhibit"})


@dataclass(frozen=True, slots=True)
class Command:
    cmd: str
    token: str = ""
    reason: str = ""


def encode_command(c: Command) -> bytes:
    return json.dumps({"v": VERSION, "cmd": c.cmd, "token": c.token, "reason": c.reason}).encode()


def decode_command(data: bytes) -> Command:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DecodeError("bad_json", str(e)) from None
    if not isinstance(obj, dict):
        raise DecodeError("bad_command", "not an object")
    if obj.get("v") != VERSION:
        raise DecodeError("bad_version", repr(obj.get("v")))
    cmd, token, reason = obj.get("cmd"), obj.get("token", ""), obj.get("reason", "")
    if cmd not in COMMANDS:
        raise DecodeError("unknown_command", repr(cmd))
    if not isinstance(token, str) or not isinstance(reason, str):
        raise DecodeError("bad_command", "token and reason must be strings")
    return Command(cmd, token, reason[:200])


def encode_reply(ok: bool, **fields: Any) -> bytes:
    return json.dumps({"v": VERSION, "ok": ok, **fields}).encode()


def decode_reply(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DecodeError("bad_json", str(e)) from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION or not isinstance(obj.get("ok"), bool):
        raise DecodeError("bad_reply")
    return obj
