"""Every exception the sim package raises, in one tree.

::

    SimError                          base; never raised itself
    ├── SimConfigError (ValueError)   a plant or PLC set-up that cannot be built: a fault on an
    │                                 unknown source, an unknown source id, a Modbus register
    │                                 map whose addresses collide
    ├── PlcStartError                 a simulated PLC server could not start (port taken, bind
    │                                 refused); translated from OSError / pymodbus / asyncua
    │                                 errors at the server that met them
    ├── BusSetupError                 the frame PUB or control REP socket could not be set up
    │                                 (translated from zmq.ZMQError in the sim process)
    └── BadControlRequest (ValueError) a control request that gets an error reply; it never
                                      escapes ``sim.control.handle``

This module must not import anything but the standard library.
"""

from __future__ import annotations


class SimError(Exception):
    """Base of every sim exception."""


class SimConfigError(SimError, ValueError):
    """A plant or PLC configuration that cannot be built; the message names what is wrong."""


class PlcStartError(SimError):
    """A simulated PLC server did not start; ``target`` is "modbus" or "opcua"."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"{target}: {detail}")
        self.target = target
        self.detail = detail


class BusSetupError(SimError):
    """A sim socket could not be created, bound or connected."""


class BadControlRequest(SimError, ValueError):
    """A control request that is answered with ``{"ok": false, "error": str(e)}``."""
