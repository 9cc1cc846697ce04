"""Every exception the monitor package raises, in one tree.

    MonitorError                      base; never raised itself
    ├── FeatureSpecError (ValueError) a feature spec that cannot be built or read
    │                                 (bad bands, window not a multiple of hop, wrong names)
    ├── BundleRefused                 the model bundle must not be used: it failed to load or
    │                                 verify, or its feature spec does not match the config;
    │                                 ``reason`` is a short stable key for the log line
    └── BusError                      a monitor socket could not be set up (translated from
                                      zmq.ZMQError at the boundary, in the shell)

Bad frames are not exceptions: validation returns an outcome and counts it. Only programmer
and configuration errors raise.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every monitor exception."""


class FeatureSpecError(MonitorError, ValueError):
    """A feature spec that cannot be built, or a serialized spec that does not parse."""


class BundleRefused(MonitorError):
    """The model bundle cannot be used; the monitor refuses to start."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class BusError(MonitorError):
    """A monitor socket could not be bound or configured."""
