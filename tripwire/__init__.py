"""Tripwire: anomaly monitor with a machine interlock (shared schemas, config, CLI)."""

__version__ = "0.1.0"
