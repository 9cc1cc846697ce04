"""The bench PLC process: it reports its port, takes Modbus writes, and stops with its block."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench.plc_host import PlcProcess
from interlock.modbus_writer import ModbusStopWriter
from tripwire.config import ModbusTargetConfig


def test_plc_process_serves_modbus_and_ends_with_its_block(ipc_dir: Path, tmp_path: Path) -> None:
    with PlcProcess(f"ipc://{ipc_dir / 'plc'}", tmp_path / "plc.log") as plc:
        port = plc.port
        proc = plc.proc
        assert proc is not None and proc.poll() is None
        target = ModbusTargetConfig(port=port, timeout_ms=2000.0)
        with ModbusStopWriter(target) as writer:
            writer.connect()
            writer.write_permit(True)
            assert writer.read_watchdog_ms() == 300
        status = plc.status()
        assert status["plc"]["permit"] is True and status["writes_total"] >= 1
        assert status["writes"][-1]["name"] == "permit"
    assert proc.poll() is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
