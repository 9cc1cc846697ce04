"""Suite-wide guards: a test that leaks threads or child processes fails."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _children() -> set[int]:
    me = str(os.getpid())
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and fields[0] != "Z":
            pids.add(int(entry.name))
    return pids


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    threads_before = set(threading.enumerate())
    children_before = _children()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra_threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        extra_children = _children() - children_before
        if not extra_threads and not extra_children:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    problems = []
    if extra_threads:
        problems.append(f"leaked threads: {[t.name for t in extra_threads]}")
    if extra_children:
        problems.append(f"leaked child processes: {sorted(extra_children)}")
    pytest.fail("; ".join(problems))


@pytest.fixture(autouse=True)
def structlog_restored() -> Iterator[None]:
    """A command run in-process (``cli.main``) configures logging onto the test's captured
    stream, which is closed after the test: later tests must not log into it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def ipc_dir() -> Iterator[Path]:
    """A short private folder for ipc:// endpoints (their paths are limited to ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="tw-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def skab_dir() -> Path:
    path = SHARED / "data" / "skab"
    if not path.is_dir():
        pytest.skip(f"SKAB data not found at {path} (it lives in ../shared beside the checkout)")
    return path
