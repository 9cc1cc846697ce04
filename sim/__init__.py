"""Simulated plant and PLC for tests and the demo (never part of a protected cell).

Pure core: ``plant`` (with ``machine`` and ``faults``), ``plc_logic``, ``control``.
Shell: ``plc_runtime``, ``plc_modbus``, ``plc_opcua``, ``daq`` and ``service`` (the sim process).
"""
