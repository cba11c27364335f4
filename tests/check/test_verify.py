"""`streamrec.verify` on real recorded datasets, healthy and damaged on purpose (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.damage import (
    CAMERAS,
    DATA_FILE,
    EPISODES_FILE,
    FPS,
    TOP,
    WRIST,
    add_column,
    copy_dataset,
    drop_column,
    record_dataset,
    remux,
    rewrite_column,
    truncate,
    update_info,
    video_file,
)
from helpers.frames import id_frame
from streamrec import DatasetRecorder, EncoderConfig, verify
from streamrec.check import Severity, VerifyReport
from streamrec.check._verify import OVERLOAD_REMEDIES

LENGTHS = (100, 20, 30)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_dataset(tmp_path_factory.mktemp("verify") / "healthy", LENGTHS)


@pytest.fixture
def dataset(healthy: Path, tmp_path: Path) -> Path:
    """A private copy of the healthy dataset, for a test to damage."""
    return copy_dataset(healthy, tmp_path / "ds")


def findings(report: VerifyReport, code: str) -> list:
    return [f for f in report.findings if f.code == code]


def test_healthy_dataset_passes(healthy: Path) -> None:
    report = verify(healthy)
    assert report.healthy and report.is_dataset and report.exit_code == 0
    assert [f for f in report.findings if f.severity is not Severity.INFO] == []
    assert report.episodes == 3 and report.frames == sum(LENGTHS) and report.cameras == CAMERAS and report.fps == FPS
    assert [(r.episode, r.camera) for r in report.rows] == [(e, c) for e in range(3) for c in CAMERAS]
    for r in report.rows:
        assert r.frames == r.rows == r.length == LENGTHS[r.episode]
        assert r.dropped == 0 and r.status == "ok" and r.interval_p50_ms is None
    as_json = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert as_json["summary"]["healthy"] is True and as_json["summary"]["exit_code"] == 0
    assert len(as_json["rows"]) == 6 and as_json["findings"] == []


def test_truncated_mp4_is_an_error_naming_the_file(dataset: Path) -> None:
    truncate(dataset / video_file(TOP), 0.6)  # our MP4s have their index at the end: FFmpeg cannot open it
    report = verify(dataset)
    [f] = findings(report, "video_truncated")
    assert f.severity is Severity.ERROR and f.camera == TOP and video_file(TOP) in f.message
    assert [f.code for f in report.findings] == ["video_truncated"]
    assert report.exit_code == 1
    assert {r.status for r in report.rows if r.camera == TOP} == {"error"}
    assert {r.status for r in report.rows if r.camera == WRIST} == {"ok"}
    assert all(r.frames is None for r in report.rows if r.camera == TOP)


def test_truncated_faststart_mp4_names_the_episodes_it_lost(dataset: Path) -> None:
    remux(dataset / video_file(TOP), faststart=True)
    assert verify(dataset).healthy
    truncate(dataset / video_file(TOP), 0.6)  # index first: what is left still decodes
    report = verify(dataset)
    assert findings(report, "video_truncated")[0].camera == TOP
    assert {f.episode for f in findings(report, "frame_count_mismatch")} == {0, 1, 2}
    assert findings(report, "video_duration")[0].file == video_file(TOP)
    frames = [r.frames for r in report.rows if r.camera == TOP]
    assert 0 < frames[0] < 100 and frames[1:] == [0, 0]


def test_mp4_that_is_not_a_video(dataset: Path) -> None:
    (dataset / video_file(WRIST)).write_bytes(b"\x00\x00\x00\x08free" + b"not a video" * 50)
    report = verify(dataset)
    assert findings(report, "video_unreadable")[0].camera == WRIST
    assert report.exit_code == 1


def test_missing_frame_is_found_in_its_episode(dataset: Path) -> None:
    remux(dataset / video_file(TOP), drop=5)  # row 5 of episode 0; a non-key frame
    report = verify(dataset)
    [count] = findings(report, "frame_count_mismatch")
    [lookup] = findings(report, "frame_lookup")
    assert (count.episode, count.camera) == (0, TOP) and "99 frame(s)" in count.message
    assert (lookup.episode, lookup.camera) == (0, TOP) and "row 5" in lookup.message
    assert report.exit_code == 1
    assert [r.frames for r in report.rows if r.camera == TOP] == [99, 20, 30]


def test_shifted_from_timestamp(dataset: Path) -> None:
    column = f"videos/{TOP}/from_timestamp"
    rewrite_column(dataset / EPISODES_FILE, column, lambda v: [v[0], v[1] + 0.5 / FPS, v[2]])
    report = verify(dataset)
    assert {(f.code, f.episode) for f in report.errors} == {
        ("video_span", 1), ("frame_count_mismatch", 1), ("frame_lookup", 1)}
    assert report.exit_code == 1


def test_episode_moved_by_one_frame_overlaps_the_next(dataset: Path) -> None:
    # Every row still finds a frame on the grid; only the overlap shows that episode 1's last
    # row now decodes episode 2's first frame.
    for end in ("from", "to"):
        rewrite_column(dataset / EPISODES_FILE, f"videos/{TOP}/{end}_timestamp", lambda v: [v[0], v[1] + 1 / FPS, v[2]])
    report = verify(dataset)
    assert [(f.code, f.episode) for f in report.errors] == [("video_overlap", 2)]
    assert [(f.code, f.episode) for f in report.warnings] == [("video_gap", 1)]
    assert report.exit_code == 1


def test_missing_video_file(dataset: Path) -> None:
    (dataset / video_file(WRIST)).unlink()
    report = verify(dataset)
    [f] = findings(report, "video_file_missing")
    assert f.camera == WRIST and video_file(WRIST) in f.message
    assert report.exit_code == 1
    assert all(r.frames is None and r.status == "error" for r in report.rows if r.camera == WRIST)


@pytest.mark.parametrize(("key", "code"), [("total_frames", "total_frames_mismatch"),
                                           ("total_episodes", "total_episodes_mismatch"),
                                           ("total_tasks", "total_tasks_mismatch")])
def test_wrong_total_in_info(dataset: Path, key: str, code: str) -> None:
    info = json.loads((dataset / "meta/info.json").read_text())
    update_info(dataset, **{key: info[key] + 1})
    report = verify(dataset)
    assert [f.code for f in report.errors] == [code]
    assert report.exit_code == 1


def test_wrong_codebase_version(dataset: Path) -> None:
    update_info(dataset, codebase_version="v2.1")
    assert [f.code for f in verify(dataset).errors] == ["codebase_version"]


@pytest.mark.parametrize("content", [None, "", "{not json", "[1, 2]"])
def test_not_a_dataset(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "meta").mkdir()
        if content:
            (tmp_path / "meta/info.json").write_text(content)
    report = verify(tmp_path)
    assert [f.code for f in report.findings] == ["not_a_dataset"]
    assert not report.is_dataset and not report.healthy and report.exit_code == 2
    assert report.rows == ()


def test_missing_folder_is_not_a_dataset(tmp_path: Path) -> None:
    assert verify(tmp_path / "nope").exit_code == 2


def test_interrupted_recording(dataset: Path) -> None:
    (dataset / ".streamrec").mkdir()
    report = verify(dataset)
    [f] = findings(report, "interrupted")
    assert "was interrupted" in f.message and "streamrec repair" in f.message
    assert report.exit_code == 1


@pytest.mark.parametrize(("dropped", "code", "severity", "exit_code"), [
    (2, "dropped_frames_ok", Severity.INFO, 0),
    (3, "dropped_frames", Severity.WARNING, 0),
    (6, "system_overloaded", Severity.ERROR, 1),
])
def test_drop_counts(dataset: Path, dropped: int, code: str, severity: Severity, exit_code: int) -> None:
    # Episode 0 has 100 frames, so the count is the percentage.
    rewrite_column(dataset / EPISODES_FILE, f"videos/{TOP}/dropped_frames", lambda v: [dropped, 0, 0])
    rewrite_column(dataset / EPISODES_FILE, f"videos/{TOP}/dropped_slots", lambda v: [list(range(dropped)), [], []])
    # As if recorded in real time (the fixture was fed as fast as the encoder took frames).
    rewrite_column(dataset / EPISODES_FILE, "wall_time_s", lambda v: [100 / FPS, 20 / FPS, 30 / FPS])
    report = verify(dataset)
    assert [(f.code, f.severity, f.episode, f.camera) for f in report.findings] == [(code, severity, 0, TOP)]
    assert report.exit_code == exit_code
    row = report.rows[0]
    assert (row.camera, row.dropped, row.dropped_pct) == (TOP, dropped, float(dropped))
    message = report.findings[0].message
    if code == "dropped_frames_ok":
        assert "ok: expected transient spikes" in message
    if code == "system_overloaded":
        assert "system overloaded" in message and all(remedy in message for remedy in OVERLOAD_REMEDIES)
        for flag in ("--dataset.encoder_threads", "--dataset.camera_encoder.vcodec=h264",
                     "--dataset.streaming_encoding=false"):
            assert flag in message


@pytest.mark.parametrize("slots", [[3], [5, 3], [4, 4], [99, 100]])
def test_drop_positions_must_match_the_count(dataset: Path, slots: list[int]) -> None:
    rewrite_column(dataset / EPISODES_FILE, f"videos/{TOP}/dropped_frames", lambda v: [2, 0, 0])
    rewrite_column(dataset / EPISODES_FILE, f"videos/{TOP}/dropped_slots", lambda v: [slots, [], []])
    report = verify(dataset)
    [f] = report.errors
    assert (f.code, f.episode, f.camera) == ("dropped_frames_invalid", 0, TOP)
    assert f"dropped_slots lists {len(slots)} row(s)" in f.message and "in 0..99" in f.message


def test_drop_column_of_other_writers_is_optional(dataset: Path) -> None:
    for camera in CAMERAS:
        drop_column(dataset / EPISODES_FILE, f"videos/{camera}/dropped_frames")
        drop_column(dataset / EPISODES_FILE, f"videos/{camera}/dropped_slots")
        drop_column(dataset / EPISODES_FILE, f"videos/{camera}/adaptations")
    report = verify(dataset)
    assert report.healthy and report.findings == ()
    assert all(r.dropped is None and r.dropped_pct is None for r in report.rows)


def test_data_timestamps_off_the_grid(dataset: Path) -> None:
    rewrite_column(dataset / DATA_FILE, "timestamp", lambda v: [t + (0.01 if i == 7 else 0) for i, t in enumerate(v)])
    report = verify(dataset)
    [f] = report.errors
    assert (f.code, f.episode) == ("timestamp_grid", 0) and "row 7" in f.message


def test_dataset_index_range(dataset: Path) -> None:
    rewrite_column(dataset / EPISODES_FILE, "dataset_from_index", lambda v: [v[0], v[1] + 1, v[2]])
    report = verify(dataset)
    assert {(f.code, f.episode) for f in report.errors} == {("index_range", 1)}


def test_episode_rows_missing_from_data(dataset: Path) -> None:
    rewrite_column(dataset / EPISODES_FILE, "length", lambda v: [v[0], v[1], v[2] + 1])
    report = verify(dataset)
    # total_frames still matches the rows on disk; the episode's own row count is what is wrong.
    assert {(f.code, f.episode) for f in report.errors} == {
        ("rows_mismatch", 2), ("index_range", 2), ("video_span", 2), ("frame_count_mismatch", 2),
        ("frame_lookup", 2)}


def _add_capture_times(root: Path, times: dict[str, np.ndarray]) -> None:
    for camera, t in times.items():
        add_column(root / DATA_FILE, camera + ".capture_time", t)
    info = json.loads((root / "meta/info.json").read_text())
    features = info["features"] | {c + ".capture_time": {"dtype": "float64", "shape": [1], "names": None}
                                   for c in times}
    update_info(root, features=features)


def test_capture_times_regular(dataset: Path) -> None:
    t = 1.7e9 + np.arange(sum(LENGTHS)) / FPS
    _add_capture_times(dataset, {TOP: t, WRIST: t + 0.002})
    report = verify(dataset)
    assert report.healthy and report.findings == ()
    for r in report.rows:
        assert r.interval_p50_ms == pytest.approx(1000 / FPS, abs=0.01)
        assert r.interval_p99_ms == pytest.approx(1000 / FPS, abs=0.01)
        assert r.skew_p99_ms == pytest.approx(2.0, abs=0.01)


def test_capture_jitter_and_camera_skew(dataset: Path) -> None:
    intervals = np.full(sum(LENGTHS), 1 / FPS)
    intervals[[30, 60, 90]] += 0.040  # three stalls in episode 0, seen by both cameras
    t = 1.7e9 + np.cumsum(intervals)
    wrist = t.copy()
    wrist[100:120] += 0.025  # episode 1: the wrist camera lags by 25 ms, more than half a frame
    _add_capture_times(dataset, {TOP: t, WRIST: wrist})
    report = verify(dataset)
    assert report.healthy  # timing problems are warnings
    assert sorted((f.code, f.episode, f.camera) for f in report.warnings) == [
        ("camera_skew", 1, None), ("capture_jitter", 0, TOP), ("capture_jitter", 0, WRIST)]
    assert report.rows[0].interval_p99_ms > 70
    assert report.rows[2].skew_p99_ms == pytest.approx(25.0, abs=0.1)


def test_a_repeated_camera_frame_is_named(dataset: Path) -> None:
    # A camera that had no new frame when the loop read it: the row holds its previous frame again.
    t = 1.7e9 + np.arange(sum(LENGTHS)) / FPS
    top = t.copy()
    top[78] = top[77]
    top[90] = top[89] - 0.01  # a clock that went back
    _add_capture_times(dataset, {TOP: top, WRIST: t})
    report = verify(dataset)
    found = {f.code: f for f in report.warnings}
    assert found["capture_repeated"].row == 78 and "1 row(s) hold the same camera frame" in \
        found["capture_repeated"].message
    assert found["capture_time_order"].row == 90


def test_capture_time_column_not_in_features_is_an_error(dataset: Path) -> None:
    # The LeRobot loader (0.6.1) fails on a data column that info.json features do not list.
    add_column(dataset / DATA_FILE, TOP + ".capture_time", 1.7e9 + np.arange(sum(LENGTHS)) / FPS)
    report = verify(dataset)
    assert [f.code for f in report.findings] == ["data_columns_unlisted"] and report.exit_code == 1
    assert report.rows[0].interval_p50_ms == pytest.approx(1000 / FPS, abs=0.01)


def test_drops_from_a_loop_faster_than_fps_name_pacing_and_block(tmp_path: Path) -> None:
    # The README's first snippet, unpaced: rows come far faster than 30 fps and the encoder falls behind.
    root = tmp_path / "fast"
    rec = DatasetRecorder.create(root, FPS, {TOP: {"dtype": "video", "shape": [96, 128, 3]}},
                                 camera_encoder=EncoderConfig(vcodec="h264", preset="veryslow"),
                                 encoder_queue_maxsize=1)
    for i in range(60):
        rec.add_frame({TOP: id_frame(i, 96, 128), "task": "t"})
    rec.save_episode()
    rec.finalize()
    report = verify(root)
    [f] = [f for f in report.findings if f.code == "system_overloaded"]
    assert "times faster than 30 fps" in f.message and "pace it to fps" in f.message
    assert "queue_full_policy='block'" in f.message and "encoder threads" not in f.message


def test_non_finite_values_in_the_data_are_errors(dataset: Path) -> None:
    # Row 7 of episode 1 (global row 107): a NaN that add_frame would have refused, written by another writer.
    rewrite_column(dataset / DATA_FILE, "observation.state",
                   lambda v: [[float("nan"), *r[1:]] if i == 107 else r for i, r in enumerate(v)])
    report = verify(dataset)
    [f] = [f for f in report.errors if f.code == "nonfinite_values"]
    assert (f.episode, f.row) == (1, 7) and "observation.state holds NaN or infinite values in 1 row(s)" in f.message
    assert report.exit_code == 1


def test_non_finite_stats_are_errors(dataset: Path) -> None:
    stats = json.loads((dataset / "meta/stats.json").read_text())
    stats["observation.state"]["mean"][0] = float("nan")
    (dataset / "meta/stats.json").write_text(json.dumps(stats))
    report = verify(dataset)
    [f] = [f for f in report.errors if f.code == "stats_nonfinite"]
    assert "observation.state has NaN or infinite mean" in f.message


def test_allow_nonfinite_records_them_and_verify_still_reports_them(tmp_path: Path) -> None:
    root = tmp_path / "nan"
    features = {TOP: {"dtype": "video", "shape": [48, 64, 3]}, "observation.state": {"dtype": "float32", "shape": [2]}}
    with DatasetRecorder.create(root, FPS, features, allow_nonfinite=True, queue_full_policy="block",
                                camera_encoder=EncoderConfig(vcodec="h264", preset="ultrafast")) as rec:
        for i in range(10):
            state = np.array([np.nan if i == 4 else i, 1.0], np.float32)
            rec.add_frame({TOP: np.full((48, 64, 3), i, np.uint8), "observation.state": state, "task": "t"})
        report = rec.save_episode()
    assert report.nonfinite == {"observation.state": 1}
    stats = json.loads((root / "meta/stats.json").read_text())["observation.state"]
    assert stats["max"] == [9.0, 1.0] and all(np.isfinite(stats[k]).all() for k in ("mean", "std", "q50"))
    found = [(f.code, f.episode, f.row) for f in verify(root).errors]
    assert found == [("nonfinite_values", 0, 4)]
