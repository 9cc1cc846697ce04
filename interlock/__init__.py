"""The interlock: watchdog, latch, stop writers, PLC heartbeat, journal (its own process).

Pure core: ``latch``, ``watchdog``, ``modbus_codec``, ``records``. Shell: the writers,
``journal``, ``stop``, ``controller`` and ``service`` (the process entry point, ``serve``).
"""
