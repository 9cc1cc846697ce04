"""The SCADA gateway's exceptions, all translated from library errors at the boundary.

    ScadaError
    ├── GatewayStartError       the OPC-UA endpoint or a bus socket cannot be opened
    └── InterlockUnreachable    no valid reply from the interlock's command socket in time

asyncua, zmq and control-path errors never leave the shell modules (bus.py, server.py);
an unreachable interlock is shown (Interlock/Reachable = false), never raised to the top.
"""

from __future__ import annotations


class ScadaError(Exception):
    """Base of every gateway error."""


class GatewayStartError(ScadaError):
    """The gateway cannot serve: endpoint taken or malformed, bus socket refused."""


class InterlockUnreachable(ScadaError):
    """The interlock did not answer (or answered garbage) within the deadline."""
