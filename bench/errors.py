"""Every exception the bench package raises, in one tree.

    BenchError                        base; never raised itself
    ├── BenchConfigError (ValueError) a load, fault or option that cannot be run (a channel
    │                                 out of range, a rate too low for the feature bands)
    └── BenchSetupError               a real component of a measurement could not be set up:
                                      a socket, the PLC server, the model session or the
                                      frame feeder (library errors translated at the boundary)

A measurement that sees bad data (a lost frame, a refused write) counts it in its figures;
only programmer, configuration and set-up errors raise.
"""

from __future__ import annotations


class BenchError(Exception):
    """Base of every bench exception."""


class BenchConfigError(BenchError, ValueError):
    """A bench load or option that cannot be run."""


class BenchSetupError(BenchError):
    """A socket, server, session or process that a measurement needs did not come up."""
