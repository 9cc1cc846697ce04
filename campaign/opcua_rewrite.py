"""Rewrites the service result of OPC-UA WriteResponses on the wire, for the fault proxy.

A real gateway or PLC can answer a Write with a response header whose ServiceResult is not
plain Good (Good_CompletesAsynchronously, an Uncertain or a Bad code) while the per-node
results say Good. asyncua's own server never does, so the campaign puts this filter in the
fault proxy's PLC-to-interlock direction: it frames the byte stream into OPC-UA messages
(8-byte header: type, chunk type, little-endian size) and, while ``ServiceResultRewrite.code``
is set, overwrites the ServiceResult of every single-chunk WriteResponse.

Only SecurityPolicy None is understood (the message body is plaintext at a fixed offset):
24 bytes of message, channel, token and sequence headers, the 4-byte type id, then the
ResponseHeader (timestamp 8, request handle 4, service result 4).

Pure bytes in, bytes out; no sockets, no clock.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("<3scI")
TYPE_ID_AT = 24
WRITE_RESPONSE_TYPE_ID = bytes((0x01, 0x00)) + struct.pack("<H", 676)  # four-byte NodeId i=676
SERVICE_RESULT_AT = TYPE_ID_AT + 4 + 8 + 4


class ServiceResultRewrite:
    """Shared switch: the status code WriteResponses get (None: leave them alone)."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.rewritten = 0

    def filter(self) -> "WriteResponseFilter":
        return WriteResponseFilter(self)


class WriteResponseFilter:
    """One connection's filter: whole messages out, partial ones held back."""

    def __init__(self, switch: ServiceResultRewrite) -> None:
        self._switch = switch
        self._buf = bytearray()

    def __call__(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while len(self._buf) >= HEADER.size:
            kind, chunk, size = HEADER.unpack_from(self._buf)
            if size < HEADER.size:  # not OPC-UA framing: pass everything through untouched
                out += self._buf
                self._buf.clear()
                break
            if len(self._buf) < size:
                break
            msg = bytearray(self._buf[:size])
            del self._buf[:size]
            code = self._switch.code
            if (code is not None and kind == b"MSG" and chunk == b"F" and size >= SERVICE_RESULT_AT + 4
                    and msg[TYPE_ID_AT:TYPE_ID_AT + 4] == WRITE_RESPONSE_TYPE_ID):
                struct.pack_into("<I", msg, SERVICE_RESULT_AT, code)
                self._switch.rewritten += 1
            out += msg
        return bytes(out)
