"""Wire schemas for every hop: Frame, Verdict, Heartbeat (binary), Command/Reply (JSON).

This is the one module that components share across a bus hop. Codecs are pure functions:
bytes in, objects out (or the reverse). They never touch a socket or a clock, and a
malformed message raises ``DecodeError`` naming what is wrong; callers count and drop it.

Frame on the wire (two ZeroMQ parts):
    part 0: FRAME_HEADER, little-endian, fixed size (64 bytes), crc32 last
    part 1: float32 payload, channel-major (channels x samples), C-contiguous
Verdict and Heartbeat: a fixed header (a verdict then its channel names), crc32 last, each
part whole on its own. A heartbeat is a message of one part; the verdicts of one model batch
go as one message of a part per verdict (so a receiver wakes once per batch), and a
receiver may read the parts one by one: each decodes alone.

Black channel (the bus is not trusted to deliver what was sent, to whom it was meant):
- every message carries its connection identity: ``dest``, the address of the cell it is
  meant for (from ``bus.cell``), and ``origin``, the key of its sender (a source: its id and
  name; the monitor: its id). Keys are crc32 of a fixed text, so a mis-wired or mis-numbered
  peer carries a different key than the one the receiver expects of that id;
- the crc32 covers every byte before it: the whole header (identity, sequence, times,
  shape), the frame's payload, the verdict's text. A changed bit anywhere is ``bad_crc``.
The receiver states what it expects (``FrameLinks`` for frames, a ``Link`` for the monitor's
messages); after the crc, a message for another cell is ``wrong_address``, one whose origin
is not the key expected of the id it claims is ``masquerade``. Safety buses fold the
identity into the crc seed instead of sending it; sending it under the crc detects exactly
the same errors and lets each be told apart and counted under its own name. This guards
against accidents (a device of another cell, a mis-numbered source, a test publisher left
running), not against an attacker who knows the scheme: that is the bus encryption's job.
Decoding without an expectation (``links=None``) checks integrity only: for observers (the
SCADA view, tools), never for the monitor or the interlock.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Any

import numpy as np
import numpy.typing as npt

VERSION = 2

FRAME_MAGIC = b"TWFR"
VERDICT_MAGIC = b"TWVD"
HEARTBEAT_MAGIC = b"TWHB"

DTYPE_F32 = 1

# magic, version, dtype, flags, channels, reserved, samples, source_id, seq,
# t_acq_ns, t_pub_ns, sample_rate_hz, dest, origin, crc32 (of the header before it + payload)
FRAME_HEADER = struct.Struct("<4sHBBHHIIQqqdIII")
# magic, version, level, tier, flags, source_id, seq, verdict_seq, t_acq_ns, t_verdict_ns,
# score, threshold, model_id(8 bytes), dest, origin, channels text length
VERDICT_HEADER = struct.Struct("<4sHBBHIQQqqff8sIIH")
# magic, version, tier, flags, monitor_id, counter, t_ns, frames_received,
# frames_processed, frames_rejected, dest, origin
HEARTBEAT = struct.Struct("<4sHBBIQqQQQII")
CRC = struct.Struct("<I")

MAX_CHANNELS = 4096
MAX_SAMPLES = 1 << 20
MAX_CHANNEL_TEXT = 256
COUNTER_MODULUS = 1 << 64  # sequence numbers and counters are u64 on the wire and wrap


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


# Every value a decoder can meet, built once: constructing an enum member per message costs
# microseconds the interlock spends on every verdict.
LEVELS = (Level.OK, Level.WARN, Level.TRIP)
VERDICT_FLAGS = tuple(VerdictFlag(i) for i in range(256))
HEARTBEAT_FLAGS = tuple(HeartbeatFlag(i) for i in range(4))


# --- connection identity ---------------------------------------------------------------


def _key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def cell_address(cell: str) -> int:
    """The address a cell's messages carry (``bus.cell``)."""
    return _key(f"tripwire/cell/{cell}")


def source_key(source_id: int, name: str) -> int:
    """What a source's frames carry as origin: its configured id and name together."""
    return _key(f"tripwire/source/{source_id}/{name}")


def monitor_key(monitor_id: int) -> int:
    return _key(f"tripwire/monitor/{monitor_id}")


@dataclass(frozen=True, slots=True)
class Link:
    """One sender's connection identity: what it stamps, and what a receiver expects."""

    dest: int  # the cell's address
    origin: int  # the sender's key

    @classmethod
    def source(cls, cell: str, source_id: int, name: str) -> Link:
        return cls(cell_address(cell), source_key(source_id, name))

    @classmethod
    def monitor(cls, cell: str, monitor_id: int) -> Link:
        return cls(cell_address(cell), monitor_key(monitor_id))


UNADDRESSED = Link(0, 0)  # what an encoder stamps when told nothing: every receiver refuses it


@dataclass(frozen=True, slots=True)
class FrameLinks:
    """What a frame receiver expects: its cell's address and the key of each known source.
    A source id it does not know is left to the validator (``unknown_source``)."""

    dest: int
    origins: Mapping[int, int] = field(hash=False)

    @classmethod
    def for_cell(cls, cell: str, sources: Iterable[tuple[int, str]]) -> FrameLinks:
        """``sources``: (id, name) of each configured source."""
        return cls(cell_address(cell), {sid: source_key(sid, name) for sid, name in sources})

    def link(self, source_id: int) -> Link:
        """What a sender of that (configured) source stamps."""
        return Link(self.dest, self.origins[source_id])


def _check_identity(dest: int, origin: int, want: Link | None) -> None:
    if want is None:
        return
    if dest != want.dest:
        raise DecodeError("wrong_address", f"dest {dest:#010x}, this cell is {want.dest:#010x}")
    if origin != want.origin:
        raise DecodeError("masquerade", f"origin {origin:#010x}, expected {want.origin:#010x}")


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
    t_acq_ns: int  # on the monitor's monotonic clock (a skewed source's time translated)
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

_FRAME_BODY = FRAME_HEADER.size - CRC.size


def frame_crc(header_body: bytes | memoryview, payload: bytes | memoryview) -> int:
    """The frame's crc32: the header up to its crc field, then the payload (no copy)."""
    return zlib.crc32(payload, zlib.crc32(header_body))


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
    link: Link = UNADDRESSED,
) -> bytes:
    header = FRAME_HEADER.pack(
        FRAME_MAGIC, VERSION, DTYPE_F32, 0, channels, 0, samples, source_id, seq,
        t_acq_ns, t_pub_ns, sample_rate_hz, link.dest, link.origin, 0,
    )
    body = header[:_FRAME_BODY]
    return body + CRC.pack(frame_crc(body, payload))


def encode_frame(frame: Frame, link: Link = UNADDRESSED) -> tuple[bytes, memoryview]:
    """Two parts for ``send_multipart``; the payload part is a view, not a copy."""
    data = np.ascontiguousarray(frame.samples, dtype=np.float32)
    payload = data.data.cast("B")
    header = encode_frame_header(
        source_id=frame.source_id, seq=frame.seq, t_acq_ns=frame.t_acq_ns,
        t_pub_ns=frame.t_pub_ns, sample_rate_hz=frame.sample_rate_hz,
        channels=data.shape[0], samples=data.shape[1], payload=payload, link=link,
    )
    return header, payload


def decode_frame(header: bytes | memoryview, payload: bytes | memoryview,
                 links: FrameLinks | None = None) -> Frame:
    """Integrity first (a corrupted field must not be judged as if it were meant), then
    structure, then identity against ``links``. The samples are a read-only view of payload."""
    if len(header) != FRAME_HEADER.size:
        raise DecodeError("bad_header_size", f"{len(header)} bytes")
    (magic, version, dtype, _flags, channels, _res, samples, source_id, seq,
     t_acq_ns, t_pub_ns, rate, dest, origin, crc) = FRAME_HEADER.unpack(header)
    if frame_crc(header[:_FRAME_BODY], payload) != crc:
        raise DecodeError("bad_crc")
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
    if links is not None:
        expected = links.origins.get(source_id)
        _check_identity(dest, origin, Link(links.dest, origin if expected is None else expected))
    arr = np.frombuffer(payload, dtype="<f4").reshape(channels, samples)
    return Frame(source_id, seq, t_acq_ns, t_pub_ns, rate, arr)


# --- Verdict -------------------------------------------------------------------------


def _seal(body: bytes) -> bytes:
    return body + CRC.pack(zlib.crc32(body))


def _unseal(data: bytes) -> bytes:
    """The body of a one-part message whose last four bytes are the crc32 of the rest."""
    if len(data) < CRC.size:
        raise DecodeError("truncated", f"{len(data)} bytes")
    if zlib.crc32(data[:-CRC.size]) != CRC.unpack_from(data, len(data) - CRC.size)[0]:
        raise DecodeError("bad_crc")
    return data[:-CRC.size]


def encode_verdict(v: Verdict, link: Link = UNADDRESSED) -> bytes:
    text = ",".join(v.channels).encode()[:MAX_CHANNEL_TEXT]
    head = VERDICT_HEADER.pack(
        VERDICT_MAGIC, VERSION, int(v.level), v.tier, int(v.flags), v.source_id, v.seq,
        v.verdict_seq, v.t_acq_ns, v.t_verdict_ns, v.score, v.threshold,
        v.model_id[:8].ljust(8, b"\0"), link.dest, link.origin, len(text),
    )
    return _seal(head + text)


def decode_verdict(data: bytes | memoryview, link: Link | None = None) -> Verdict:
    data = bytes(data)
    if data[:4] != VERDICT_MAGIC:
        raise DecodeError("bad_magic", repr(data[:4]))
    n = VERDICT_HEADER.size
    if len(data) < n + CRC.size:
        raise DecodeError("truncated", f"{len(data)} bytes")
    body = _unseal(data)
    (_m, version, level, tier, flags, source_id, seq, vseq, t_acq, t_verdict, score,
     threshold, model_id, dest, origin, text_len) = VERDICT_HEADER.unpack_from(body)
    if version != VERSION:
        raise DecodeError("bad_version", str(version))
    if len(body) != n + text_len:
        raise DecodeError("size_mismatch", f"{len(data)} bytes, text {text_len}")
    _check_identity(dest, origin, link)
    if level not in (0, 1, 2):
        raise DecodeError("bad_level", str(level))
    text = body[n:].decode("utf-8", errors="replace")
    return Verdict(
        source_id, seq, vseq, t_acq, t_verdict, score, threshold, LEVELS[level],
        VERDICT_FLAGS[flags & 0xFF], tier, model_id, tuple(t for t in text.split(",") if t),
    )


# --- Heartbeat -----------------------------------------------------------------------


def encode_heartbeat(h: Heartbeat, link: Link = UNADDRESSED) -> bytes:
    return _seal(HEARTBEAT.pack(
        HEARTBEAT_MAGIC, VERSION, h.tier, int(h.flags), h.monitor_id, h.counter, h.t_ns,
        h.frames_received, h.frames_processed, h.frames_rejected, link.dest, link.origin,
    ))


def decode_heartbeat(data: bytes | memoryview, link: Link | None = None) -> Heartbeat:
    data = bytes(data)
    if data[:4] != HEARTBEAT_MAGIC:
        raise DecodeError("bad_magic", repr(data[:4]))
    if len(data) != HEARTBEAT.size + CRC.size:
        raise DecodeError("size_mismatch", f"{len(data)} bytes")
    body = _unseal(data)
    (_m, version, tier, flags, monitor_id, counter, t_ns, rx, done, rej, dest,
     origin) = HEARTBEAT.unpack(body)
    if version != VERSION:
        raise DecodeError("bad_version", str(version))
    _check_identity(dest, origin, link)
    return Heartbeat(monitor_id, counter, t_ns, rx, done, rej, tier, HEARTBEAT_FLAGS[flags & 0x3])


def decode_monitor_message(data: bytes | memoryview, link: Link | None = None) -> Verdict | Heartbeat:
    """Verdicts and heartbeats share the monitor's output socket; the magic tells them apart.
    ``link``: the monitor this receiver listens to (None: integrity only, for observers)."""
    magic = bytes(data[:4])
    if magic == VERDICT_MAGIC:
        return decode_verdict(data, link)
    if magic == HEARTBEAT_MAGIC:
        return decode_heartbeat(data, link)
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


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    # ValueError: besides JSONDecodeError, an integer of more than 4300 digits; RecursionError:
    # nesting deeper than the interpreter's recursion limit.
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DecodeError("bad_json", str(e)[:200]) from None


def decode_command(data: bytes) -> Command:
    obj = _json(data)
    if not isinstance(obj, dict):
        raise DecodeError("bad_command", "not an object")
    if obj.get("v") != VERSION:
        raise DecodeError("bad_version", repr(obj.get("v")))
    cmd, token, reason = obj.get("cmd"), obj.get("token", ""), obj.get("reason", "")
    if not isinstance(cmd, str) or cmd not in COMMANDS:  # an unhashable cmd must not raise
        raise DecodeError("unknown_command", repr(cmd))
    if not isinstance(token, str) or not isinstance(reason, str):
        raise DecodeError("bad_command", "token and reason must be strings")
    return Command(cmd, token, reason[:200])


def encode_reply(ok: bool, **fields: Any) -> bytes:
    return json.dumps({"v": VERSION, "ok": ok, **fields}).encode()


def decode_reply(data: bytes) -> dict[str, Any]:
    obj = _json(data)
    if not isinstance(obj, dict) or obj.get("v") != VERSION or not isinstance(obj.get("ok"), bool):
        raise DecodeError("bad_reply")
    return obj
