"""Replaying CSV and NPY recordings: frames, pacing, and clear errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from sensors.errors import MissingColumn, ReplayError, ReplayFormatError, SourceStateError
from sensors.replay import ReplaySource, load_csv, load_npy
from sensors.source import SourceState
from tests.sensors.common import FakeClock, read_all
from tripwire.config import SourceConfig

CHANNELS = ["vib_x", "current"]


def write_csv(path: Path, n: int, *, extra: bool = True, time_col: str | None = None,
              delimiter: str = ",", rate_hz: float = 100.0) -> np.ndarray:
    data = np.stack([np.arange(n) * 0.5, -np.arange(n) * 1.0]).astype(np.float32)
    header = ([time_col] if time_col else []) + ["current", "junk", "vib_x"] if extra else CHANNELS
    lines = [delimiter.join(header)]
    for i in range(n):
        cells = {"vib_x": f"{data[0, i]:g}", "current": f"{data[1, i]:g}", "junk": "text"}
        row = ([f"{i / rate_hz:.6f}"] if time_col else []) + [cells[h] for h in header[int(bool(time_col)):]]
        lines.append(delimiter.join(row))
    path.write_text("\n".join(lines) + "\n")
    return data


def source(path: Path, frame: int = 4, rate: float = 100.0, **kw: object) -> ReplaySource:
    return ReplaySource(path, source_id=7, channels=CHANNELS, sample_rate_hz=rate,
                        frame_samples=frame, **kw)  # type: ignore[arg-type]


def test_csv_frames_pick_channels_by_name_in_config_order(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "r.csv", 10)
    with source(tmp_path / "r.csv", paced=False) as src:
        frames = read_all(src)
    assert [f.seq for f in frames] == [0, 1]  # 10 samples -> 2 frames of 4, the rest dropped
    assert all(f.source_id == 7 and f.sample_rate_hz == 100.0 and f.t_pub_ns == 0 for f in frames)
    np.testing.assert_array_equal(frames[0].samples, data[:, 0:4])
    np.testing.assert_array_equal(frames[1].samples, data[:, 4:8])
    for f in frames:
        assert f.samples.dtype == np.float32 and f.samples.flags.c_contiguous
        assert f.samples.shape == (2, 4) and not f.samples.flags.writeable
    assert frames[0].t_acq_ns <= frames[1].t_acq_ns


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiters(tmp_path: Path, delimiter: str) -> None:
    data = write_csv(tmp_path / "r.csv", 8, delimiter=delimiter)
    rec = load_csv(tmp_path / "r.csv", CHANNELS)
    np.testing.assert_array_equal(rec.samples, data)


def test_nan_is_data_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("vib_x,current\n1,2\nnan,3\n")
    rec = load_csv(tmp_path / "r.csv", CHANNELS)
    assert np.isnan(rec.samples[0, 1]) and rec.samples[1, 1] == 3.0


def test_missing_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("vib_x,temp\n1,2\n")
    with pytest.raises(MissingColumn) as err:
        load_csv(tmp_path / "r.csv", CHANNELS)
    assert err.value.column == "current" and "'current'" in str(err.value)


def test_ragged_row_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("vib_x,current\n1,2\n3,4\n5\n")
    with pytest.raises(ReplayFormatError) as err:
        load_csv(tmp_path / "r.csv", CHANNELS)
    assert err.value.line == 4 and "line 4" in str(err.value) and "1 fields" in str(err.value)


def test_non_numeric_value_names_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("vib_x,current\n1,2\n3,oops\n")
    with pytest.raises(ReplayFormatError) as err:
        load_csv(tmp_path / "r.csv", CHANNELS)
    assert err.value.line == 3
    assert "'current'" in str(err.value) and "'oops'" in str(err.value)


def test_empty_cell_is_not_a_number(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("vib_x,current\n1,\n")
    with pytest.raises(ReplayFormatError, match="line 2"):
        load_csv(tmp_path / "r.csv", CHANNELS)


def test_empty_and_headerless_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ReplayFormatError, match="no header"):
        load_csv(tmp_path / "empty.csv", CHANNELS)
    (tmp_path / "header.csv").write_text("vib_x,current\n")
    with pytest.raises(ReplayFormatError, match="no data rows"):
        load_csv(tmp_path / "header.csv", CHANNELS)
    with pytest.raises(ReplayError, match="cannot open"):
        load_csv(tmp_path / "absent.csv", CHANNELS)


def test_time_column_paces_on_recorded_times_with_gaps(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(
        "t,vib_x,current\n0,1,1\n0.5,2,2\n1.0,3,3\n1.5,4,4\n11.5,5,5\n12.0,6,6\n"
    )
    clock = FakeClock()
    with source(tmp_path / "r.csv", frame=2, rate=2.0, time_column="t", poll_s=100.0,
                clock=clock, sleep=clock.sleep) as src:
        start = clock.now_ns
        due = [(f.t_acq_ns - start) / 1e9 for f in read_all(src)]
    # Each frame is handed out once its last sample's recorded time (+ one period) has passed.
    assert due == pytest.approx([1.0, 2.0, 12.5])


def test_time_column_must_go_forward_and_match_the_rate(tmp_path: Path) -> None:
    (tmp_path / "back.csv").write_text("t,vib_x,current\n0,1,1\n1,2,2\n0.5,3,3\n")
    with pytest.raises(ReplayFormatError) as err:
        load_csv(tmp_path / "back.csv", CHANNELS, time_column="t")
    assert err.value.line == 4 and "backwards" in str(err.value)
    (tmp_path / "bad.csv").write_text("t,vib_x,current\n0,1,1\nlater,2,2\n")
    with pytest.raises(ReplayFormatError, match="line 3"):
        load_csv(tmp_path / "bad.csv", CHANNELS, time_column="t")
    write_csv(tmp_path / "rate.csv", 8, time_col="t", rate_hz=100.0)
    with pytest.raises(ReplayError, match="100 Hz"):
        with source(tmp_path / "rate.csv", rate=6400.0, time_column="t"):
            pass


def test_paced_replay_follows_the_sample_rate(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", 40)  # 10 frames of 4 samples at 100 Hz: one per 40 ms
    clock = FakeClock()
    with source(tmp_path / "r.csv", paced=True, poll_s=0.01, clock=clock, sleep=clock.sleep) as src:
        start = clock.now_ns
        frames = read_all(src)
    offsets_ms = [(f.t_acq_ns - start) / 1e6 for f in frames]
    assert offsets_ms == pytest.approx([40.0 * (k + 1) for k in range(10)])
    assert max(clock.sleeps) <= 0.01 + 1e-12  # never blocks longer than one poll


def test_paced_replay_on_the_real_clock(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", 40, rate_hz=400.0)  # 10 frames, 10 ms each: 100 ms in all
    t0 = time.monotonic()
    with source(tmp_path / "r.csv", rate=400.0, paced=True) as src:
        frames = read_all(src)
    elapsed = time.monotonic() - t0
    assert len(frames) == 10
    assert elapsed >= 0.09  # cannot run ahead of the recording
    assert elapsed < 5.0  # generous: a loaded 2-core machine


def test_unpaced_replay_never_sleeps(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", 400)
    clock = FakeClock()
    with source(tmp_path / "r.csv", paced=False, clock=clock, sleep=clock.sleep) as src:
        assert len(read_all(src)) == 100
    assert clock.sleeps == []


def test_loop_replays_again_with_continuing_seq_and_time(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", 8)
    clock = FakeClock()
    with source(tmp_path / "r.csv", loop=True, poll_s=1.0, clock=clock, sleep=clock.sleep) as src:
        start = clock.now_ns
        frames = [src.read() for _ in range(5)]
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(frames[2].samples, frames[0].samples)
    assert [(f.t_acq_ns - start) / 1e6 for f in frames] == pytest.approx([40, 80, 120, 160, 200])


def test_npy_layouts(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(2, 12)).astype(np.float32)
    np.save(tmp_path / "cf.npy", data)
    np.save(tmp_path / "sf.npy", data.T.astype(np.float64))
    for name in ("cf.npy", "sf.npy"):
        with source(tmp_path / name, paced=False) as src:
            frames = read_all(src)
        assert len(frames) == 3
        np.testing.assert_allclose(np.concatenate([f.samples for f in frames], axis=1), data, rtol=1e-6)


def test_npy_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "square.npy", np.zeros((2, 2)))
    with pytest.raises(ReplayError, match="ambiguous"):
        load_npy(tmp_path / "square.npy", CHANNELS)
    np.testing.assert_array_equal(load_npy(tmp_path / "square.npy", CHANNELS, "samples_first").samples,
                                  np.zeros((2, 2)))
    np.save(tmp_path / "wide.npy", np.zeros((3, 10)))
    with pytest.raises(ReplayError, match="no axis of 2 channels"):
        load_npy(tmp_path / "wide.npy", CHANNELS)
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    with pytest.raises(ReplayError, match="2-D"):
        load_npy(tmp_path / "cube.npy", CHANNELS)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ReplayError):
        load_npy(tmp_path / "obj.npy", CHANNELS)  # never unpickles
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ReplayError, match="not a readable"):
        load_npy(tmp_path / "junk.npy", CHANNELS)


def test_unknown_suffix_and_too_short(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("vib_x,current\n1,2\n")
    with pytest.raises(ReplayError, match=r"\.csv or \.npy"):
        with source(tmp_path / "r.txt"):
            pass
    write_csv(tmp_path / "short.csv", 3)
    src = source(tmp_path / "short.csv")
    with pytest.raises(ReplayError, match="fewer than one frame"):
        src.__enter__()
    assert src.state is SourceState.CLOSED


def test_lifecycle(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", 8)
    src = source(tmp_path / "r.csv", paced=False)
    assert src.state is SourceState.NEW
    with pytest.raises(SourceStateError):
        src.read()
    with src:
        assert src.state is SourceState.OPEN
        read_all(src)
        assert src.state is SourceState.DRAINED
        assert src.read() is None
    assert src.state is SourceState.CLOSED
    with pytest.raises(SourceStateError):
        src.read()
    with pytest.raises(SourceStateError, match="closed"):
        src.__enter__()


def test_from_config(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "r.csv", 8)
    cfg = SourceConfig(id=3, name="r", channels=CHANNELS, sample_rate_hz=100.0, frame_samples=4,
                       kind="replay", path=str(tmp_path / "r.csv"))
    with ReplaySource.from_config(cfg, paced=False) as src:
        frames = read_all(src)
    assert [f.source_id for f in frames] == [3, 3]
    np.testing.assert_array_equal(frames[1].samples, data[:, 4:8])


def test_skab_recording(skab_dir: Path) -> None:
    """A real recording: semicolon CSV, ISO timestamps, 1 Hz with gaps, spaces in names."""
    channels = ["Accelerometer1RMS", "Current", "Volume Flow RateRMS"]
    clock = FakeClock()
    with ReplaySource(skab_dir / "valve1" / "0.csv", source_id=1, channels=channels,
                      sample_rate_hz=1.0, frame_samples=10, time_column="datetime",
                      poll_s=1e6, clock=clock, sleep=clock.sleep) as src:
        start = clock.now_ns
        frames = read_all(src)
    assert len(frames) == 1147 // 10
    assert frames[0].samples.shape == (3, 10)
    assert frames[0].samples[0, 0] == pytest.approx(0.0265878)
    # Paced on the recorded timestamps: the replay spans the recording's wall-clock length.
    span_s = (frames[-1].t_acq_ns - start) / 1e9
    assert 1000 < span_s < 1300
