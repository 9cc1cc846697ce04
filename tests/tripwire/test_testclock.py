"""The test clock: wall-clock readers shift by the control file's offset, monotonic never."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.journal import Journal
from tripwire import cli, testclock

HOUR_S = 3600.0
SLACK_S = 30.0  # generous: a loaded machine may pause between two reads


@pytest.fixture
def clock_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "offset"
    yield path
    testclock.uninstall()


def _near(a: float, b: float) -> bool:
    return abs(a - b) < SLACK_S


def test_jumps_follow_the_file_and_monotonic_does_not(clock_file: Path) -> None:
    real_time = time.time
    testclock.install(clock_file)
    assert testclock.installed()
    assert _near(time.time(), real_time())  # no file: no offset
    mono0 = time.monotonic_ns()
    testclock.write_offset(clock_file, HOUR_S)
    assert _near(time.time() - real_time(), HOUR_S)
    assert _near(time.time_ns() / 1e9 - real_time(), HOUR_S)
    testclock.write_offset(clock_file, -HOUR_S)
    assert _near(time.time() - real_time(), -HOUR_S)
    assert abs(time.monotonic_ns() - mono0) < SLACK_S * 1e9
    clock_file.unlink()
    assert _near(time.time(), real_time())


def test_datetime_and_struct_time_readers_shift(clock_file: Path) -> None:
    real_now = dt.datetime.now(dt.timezone.utc)
    testclock.install(clock_file)
    testclock.write_offset(clock_file, HOUR_S)
    shifted = dt.datetime.now(dt.timezone.utc)
    assert isinstance(shifted, dt.datetime)
    assert _near((shifted - real_now).total_seconds(), HOUR_S)
    assert _near((dt.datetime.utcnow() - real_now.replace(tzinfo=None)).total_seconds(), HOUR_S)
    assert _near(time.mktime(time.localtime()) - time.mktime(time.localtime(time.time() - HOUR_S)), HOUR_S)
    assert time.gmtime(0).tm_year == 1970  # an explicit time is never shifted
    testclock.uninstall()
    assert not testclock.installed()
    assert _near(dt.datetime.now(dt.timezone.utc).timestamp(), real_now.timestamp())


def test_garbled_file_keeps_the_last_good_offset(clock_file: Path) -> None:
    offset = testclock.install(clock_file)
    testclock.write_offset(clock_file, 120.0)
    assert offset.get_ns() == 120 * 10**9
    clock_file.write_text("soon")
    assert offset.get_ns() == 120 * 10**9
    clock_file.write_text("")
    assert offset.get_ns() == 0


def test_install_twice_is_refused(clock_file: Path) -> None:
    testclock.install(clock_file)
    with pytest.raises(RuntimeError):
        testclock.install(clock_file)


def test_journal_stamps_the_shifted_wall_clock(clock_file: Path, tmp_path: Path) -> None:
    testclock.install(clock_file)
    with Journal(tmp_path / "j.sqlite") as j:
        j.append("start", 1, {})
        testclock.write_offset(clock_file, -HOUR_S)
        j.append("trip", 2, {})
        before, after = j.entries()
    assert _near((after.wall_ns - before.wall_ns) / 1e9, -HOUR_S)
    assert j.path.exists()


def test_cli_installs_it_only_when_the_environment_names_a_file(
        clock_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(testclock.ENV, raising=False)
    cli._install_test_clock()
    assert not testclock.installed()
    monkeypatch.setenv(testclock.ENV, str(clock_file))
    cli._install_test_clock()
    assert testclock.installed()
