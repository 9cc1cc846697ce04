"""Every exception the interlock package raises, in one tree.

::

    InterlockError                    base of everything below
    ├── ModbusReplyError              modbus_codec: a reply that does not confirm the request
    │   ├── ModbusTruncated           fewer bytes than the header or length field promise
    │   ├── ModbusMismatch            wrong transaction id, protocol, length, unit or function
    │   ├── ModbusBadEcho             FC05/FC06 echo differs from what was written
    │   └── ModbusExceptionReply      the device answered fc | 0x80 with an exception code
    ├── StopWriteFailed               a stop sink did not confirm a write or read
    │   ├── TargetUnavailable         not connected, connect refused or timed out
    │   ├── WriteTimeout              no confirmed reply before the request's deadline
    │   ├── WriteRefused              the PLC answered and refused (Modbus exception, OPC-UA Bad)
    │   └── BadReply                  the PLC answered something that is not a confirmation
    └── JournalError                  the SQLite journal could not open or commit

Library exceptions (OSError, socket.timeout, asyncua's, sqlite3's) are translated into these
at the adapter that met them and never cross a layer. This module must not import anything
but the standard library.
"""

from __future__ import annotations


class InterlockError(Exception):
    """Base of every interlock error."""


# --- Modbus codec (pure) ---------------------------------------------------------------


class ModbusReplyError(InterlockError):
    """A Modbus reply that cannot be taken as confirmation; ``reason`` is a counter key."""

    reason = "bad_reply"


class ModbusTruncated(ModbusReplyError):
    reason = "truncated"


class ModbusMismatch(ModbusReplyError):
    """A header or PDU field differs from the request (``field`` names which)."""

    reason = "mismatch"

    def __init__(self, field: str, expected: int, got: int) -> None:
        super().__init__(f"{field}: expected {expected}, got {got}")
        self.field = field
        self.expected = expected
        self.got = got


class ModbusBadEcho(ModbusReplyError):
    reason = "bad_echo"


class ModbusExceptionReply(ModbusReplyError):
    """The device refused the request with Modbus exception ``code`` (1..11)."""

    reason = "exception_reply"

    def __init__(self, function: int, code: int, name: str) -> None:
        super().__init__(f"function {function:#04x}: exception {code:#04x} {name}")
        self.function = function
        self.code = code
        self.name = name


# --- Stop sinks (shell) ----------------------------------------------------------------


class StopWriteFailed(InterlockError):
    """A write (or read) that the PLC did not confirm; it counts as not delivered."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"{target}: {detail}")
        self.target = target
        self.detail = detail


class TargetUnavailable(StopWriteFailed):
    """No usable connection to the target."""


class WriteTimeout(StopWriteFailed):
    """No confirmed reply before the deadline; the connection is dropped, never reused."""


class WriteRefused(StopWriteFailed):
    """The PLC answered with a refusal."""


class BadReply(StopWriteFailed):
    """The PLC answered, but not with a confirmation of this request."""


# --- Journal ---------------------------------------------------------------------------


class JournalError(InterlockError):
    """The journal could not open, read or commit."""
