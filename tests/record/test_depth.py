"""Depth cameras through the recorder, end to end: both storage modes on both paths (streaming, PNG with batch
encoding), metres and millimetres, bad frames, resume (ours and a LeRobot-written depth dataset), repair after a
kill, adaptive overload, and LeRobot's own loader. Real encoders, real files, every row decoded back."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.depth import DEPTH, RGB, H, W, depth_features, depth_frame, depth_row, stored_rows
from helpers.frames import REPO, episodes, frames_of_episode, read_id
from streamrec import DatasetError, DatasetRecorder, DepthEncoderConfig, FrameError, repair, verify
from streamrec.encode._depth import DepthFrames

FPS = 30
QUANTIZED = DepthEncoderConfig()
EXACT = DepthEncoderConfig(vcodec="ffv1")
MODES = pytest.mark.parametrize("mode", [QUANTIZED, EXACT], ids=["hevc12", "ffv1"])
LEROBOT_DEPTH = REPO / "tests" / "data" / "lerobot_depth"
"""Written by LeRobot 0.6.1's own writer (tests/data/make_lerobot_depth.py): episodes of 8 and 10 frames."""
LOAD_CHECK = REPO.parent / "shared" / "tools" / "lerobot-load-check"
needs_lerobot = pytest.mark.skipif(not LOAD_CHECK.exists(), reason=f"{LOAD_CHECK} is absent (it is part of the "
                                   "development machines' shared tools, not of a clone)")


def record(root: Path, lengths: list[int], first: int = 0, **settings) -> list:
    settings.setdefault("queue_full_policy", "block")
    rec = DatasetRecorder.create(root, FPS, depth_features(), **settings)
    reports = add_episodes(rec, lengths, first)
    rec.finalize()
    return reports


def add_episodes(rec: DatasetRecorder, lengths: list[int], first: int = 0, **row_kwargs) -> list:
    reports, ident = [], first
    for n in lengths:
        for _ in range(n):
            rec.add_frame(depth_row(ident, **row_kwargs))
            ident += 1
        reports.append(rec.save_episode())
    return reports


def check_rows(root: Path, mode: DepthEncoderConfig, first_ids: list[int], lengths: list[int], *,
               rgb: bool = True) -> None:
    """Every episode has the rows recorded (`lengths`), every row's depth is what the mode stores for the frame
    added there (the codes of its millimetres, or the millimetres), and its colour frame the one added with it."""
    frames = DepthFrames(mode)
    eps = episodes(root)
    assert len(eps) == len(first_ids)
    assert [ep["length"] for ep in eps] == lengths
    for ep, first in zip(eps, first_ids):
        got = stored_rows(root, ep, DEPTH, FPS)
        for r, pixels in enumerate(got):
            assert np.array_equal(pixels, frames.stored(depth_frame(first + r))), (ep["episode_index"], r)
        if rgb:
            ids = [read_id(f) for f in frames_of_episode(root, ep, RGB, FPS)]
            assert ids == list(range(first, first + ep["length"]))


def starts(lengths: list[int], first: int = 0) -> list[int]:
    return [first + sum(lengths[:i]) for i in range(len(lengths))]


def load_check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LOAD_CHECK), str(root), "--all"], capture_output=True, text=True, timeout=600)


# -- both modes, both paths -------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize(("streaming", "batch"), [(True, 1), (False, 1), (False, 2)],
                         ids=["streaming", "png", "png-batch2"])
def test_every_row_reads_back_in_both_modes_on_both_paths(tmp_path, mode, streaming, batch):
    root = tmp_path / "ds"
    lengths = [5, 8, 3]
    reports = record(root, lengths, depth_encoder=mode, streaming_encoding=streaming, batch_encoding_size=batch)
    check_rows(root, mode, starts(lengths), lengths)
    assert {r.cameras[DEPTH].encoder for r in reports} - {None} == {mode.encoder}  # None: a batch's PNGs waiting
    info = json.loads((root / "meta/info.json").read_text())["features"][DEPTH]
    assert info["shape"] == [H, W, 1] and info["info"]["is_depth_map"] is True
    assert (info["info"]["video.codec"], info["info"]["video.pix_fmt"]) == (mode.vcodec, mode.effective_pix_fmt)
    assert ("video.depth_min" in info["info"]) == mode.quantized
    stats = json.loads((root / "meta/stats.json").read_text())[DEPTH]
    assert np.asarray(stats["mean"]).shape == (1, 1, 1)
    assert stats["min"] == [[[0.0]]] and stats["max"][0][0][0] > 4095  # millimetres, not codes; holes included
    report = verify(root)
    assert report.healthy and not report.findings, report.findings


def test_metres_are_stored_as_the_millimetres_they_round_to(tmp_path):
    root = tmp_path / "ds"
    rec = DatasetRecorder.create(root, FPS, depth_features(), depth_encoder=EXACT, queue_full_policy="block")
    add_episodes(rec, [6], metres=True)
    rec.finalize()
    check_rows(root, EXACT, [0], [6])  # depth_frame / 1000 in float32 rounds back to the very millimetres


def test_frame_buffer_lends_a_uint16_depth_buffer_that_goes_without_a_copy(tmp_path):
    root = tmp_path / "ds"
    rec = DatasetRecorder.create(root, FPS, depth_features(), depth_encoder=EXACT, queue_full_policy="block")
    for ident in range(9):
        buf = rec.frame_buffer(DEPTH)
        assert (buf.shape, buf.dtype) == ((H, W, 1), np.uint16)
        buf[..., 0] = depth_frame(ident)
        rec.add_frame(depth_row(ident) | {DEPTH: buf})
        assert rec._encoders.workers[DEPTH].queue._lent is None  # sent as it is: a copy would leave it lent
    rec.save_episode()
    rec.finalize()
    check_rows(root, EXACT, [0], [9])


@pytest.mark.parametrize(("value", "says"), [
    (np.zeros((H, W, 1), np.uint8), "dtype uint8; use uint16 for millimetres"),
    (np.zeros((H, W, 3), np.uint16), f"got shape ({H}, {W}, 3)"),
    (np.full((H, W), -0.25, np.float32), "negative value (-0.25 m)"),
    (np.zeros((H, W), np.float64), "dtype float64; use float32 for metres"),
])
def test_a_bad_depth_frame_is_refused_naming_the_feature_and_nothing_is_queued(tmp_path, value, says):
    root = tmp_path / "ds"
    rec = DatasetRecorder.create(root, FPS, depth_features(), queue_full_policy="block")
    add_episodes(rec, [3])
    for ident in (3, 4):
        rec.add_frame(depth_row(ident))
    queued = {name: w.queue.stats().frames_in for name, w in rec._encoders.workers.items()}
    with pytest.raises(FrameError) as e:
        rec.add_frame(depth_row(5) | {DEPTH: value})
    assert f"{DEPTH!r}" in str(e.value) and says in str(e.value)
    assert rec.episode_frames == 2
    assert {name: w.queue.stats().frames_in for name, w in rec._encoders.workers.items()} == queued
    for ident in (5, 6):
        rec.add_frame(depth_row(ident))
    rec.save_episode()
    rec.finalize()
    check_rows(root, QUANTIZED, [0, 3], [3, 4])


def test_the_exact_mode_warns_that_lerobot_cannot_load_it(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="streamrec"):
        rec = DatasetRecorder.create(tmp_path / "ds", FPS, depth_features(), depth_encoder=EXACT)
        rec.finalize()
    assert any("LeRobot 0.6.1 cannot load this dataset" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streamrec"):
        DatasetRecorder.create(tmp_path / "rgb", FPS, {RGB: depth_features()[RGB]}, depth_encoder=EXACT).finalize()
    assert not caplog.records  # no depth camera, nothing to warn about


# -- LeRobot's loader --------------------------------------------------------------------------------------------


@needs_lerobot
@pytest.mark.parametrize("size", [(H, W), (96, 128)], ids=["48x64", "96x128-64x64-units"])
def test_lerobot_loads_the_default_mode_within_the_quantizers_round_trip(tmp_path, size):
    # From 64 pixels on x265 codes 64x64 units (encode._depth._X265_FAST), below it its own: both must load.
    root = tmp_path / "ds"
    rec = DatasetRecorder.create(root, FPS, depth_features(*size, rgb=False), queue_full_policy="block")
    for n in (7, 4):
        for i in range(n):
            rec.add_frame({DEPTH: depth_frame(i, *size), "observation.state": np.zeros(2, np.float32), "task": "t"})
        rec.save_episode()
    rec.finalize()
    result = load_check(root)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["checked"] == 11 and report["ok"] and not report["mismatches"]


@needs_lerobot
def test_lerobot_refuses_the_exact_mode_as_the_docs_say(tmp_path):
    root = tmp_path / "ds"
    record(root, [3], depth_encoder=EXACT)
    result = load_check(root)
    assert result.returncode != 0
    assert "Invalid vcodec 'ffv1'" in result.stdout + result.stderr


# -- resume -----------------------------------------------------------------------------------------------------


@MODES
def test_resume_takes_the_depth_settings_from_the_dataset(tmp_path, mode):
    root = tmp_path / "ds"
    record(root, [4, 3], depth_encoder=mode)
    other = EXACT if mode.quantized else QUANTIZED
    with pytest.raises(DatasetError, match=r"resume: depth_encoder video\.codec = .* but the dataset's depth videos"):
        DatasetRecorder.resume(root, depth_encoder=other)
    rec = DatasetRecorder.resume(root, queue_full_policy="block")
    assert rec.config.depth_encoder.same_stream(mode) == []
    add_episodes(rec, [5], first=7)
    rec.finalize()
    check_rows(root, mode, [0, 4, 7], [4, 3, 5])
    files = sorted(p.name for p in (root / "videos" / DEPTH).rglob("*.mp4"))
    assert files == ["file-000.mp4", "file-001.mp4"]  # appended episodes go to a new file
    assert verify(root).healthy


def test_resume_refuses_a_feature_that_stopped_being_depth(tmp_path):
    root = tmp_path / "ds"
    record(root, [2])
    features = depth_features()
    features[DEPTH] = {k: v for k, v in features[DEPTH].items() if k != "info"} | {"shape": [H, W, 3]}
    with pytest.raises(DatasetError, match=f"feature {DEPTH!r} is dtype video shape"):
        DatasetRecorder.resume(root, features=features)


def test_resume_a_depth_dataset_written_by_lerobot(tmp_path):
    root = tmp_path / "lr"
    shutil.copytree(LEROBOT_DEPTH, root)
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    old_features = json.loads((root / "meta/info.json").read_text())["features"]
    rec = DatasetRecorder.resume(root, queue_full_policy="block")
    depth = rec.config.depth_encoder
    assert depth.quantized and depth.same_stream(QUANTIZED) == [] and depth.effective_crf == 30
    add_episodes(rec, [6, 5], first=18)
    rec.finalize()

    after = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    changed = {p for p in before if before[p] != after[p]}
    assert changed == {Path("meta/info.json"), Path("meta/tasks.parquet"), Path("meta/stats.json")}
    # LeRobot's writer stored exactly the codes streamrec's quantizer makes, and the appended episodes follow
    check_rows(root, QUANTIZED, [0, 8, 18, 24], [8, 10, 6, 5])
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"] == old_features  # LeRobot's own info blocks kept
    assert (info["total_episodes"], info["total_frames"]) == (4, 29)
    report = verify(root)
    assert report.healthy, report.findings
    if LOAD_CHECK.exists():
        result = load_check(root)
        assert result.returncode == 0, result.stdout + result.stderr


# -- repair -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("streaming", "kill_at", "everything"), [
    (True, "recording 2", False), (True, "saved 1", True), (False, "recording 2", True)],
    ids=["streaming-mid-episode", "streaming-after-save-with-its-encoders", "png-batch-pending"])
def test_a_killed_depth_recording_is_repaired_with_every_saved_episode(tmp_path, streaming, kill_at, everything):
    """Killed with SIGKILL (`everything`: its encoder processes too, so that their open MP4s are rebuilt from the
    spools); PNG path with batches of 3, so that the two saved episodes are still PNGs that repair encodes."""
    root = tmp_path / "ds"
    batch = 1 if streaming else 3
    kill = ("import psutil\n        for c in psutil.Process().children(): c.kill()\n        " if everything
            else "") + "os.kill(os.getpid(), 9)"
    code = (f"import sys, os; sys.path.insert(0, {str(REPO / 'tests')!r})\n"
            "from helpers.depth import depth_features, depth_row\n"
            "from streamrec import DatasetRecorder, DepthEncoderConfig\n"
            f"rec = DatasetRecorder.create({str(root)!r}, 30, depth_features(), queue_full_policy='block', "
            f"streaming_encoding={streaming}, batch_encoding_size={batch}, "
            "depth_encoder=DepthEncoderConfig(vcodec='ffv1'))\n"
            "def die():\n"
            f"        {kill}\n"
            "ident = 0\n"
            "for e, n in enumerate([6, 9, 7]):\n"
            "    for i in range(n):\n"
            f"        if {kill_at!r} == f'recording {{e}}' and i == 4: die()\n"
            "        rec.add_frame(depth_row(ident)); ident += 1\n"
            "    rec.save_episode()\n"
            f"    if {kill_at!r} == f'saved {{e}}': die()\n")
    killed = subprocess.run([sys.executable, "-c", code], check=False, timeout=300)
    assert killed.returncode == -9, killed  # killed where planned, not crashed before
    assert (root / ".streamrec").exists()
    report = repair(root)
    assert report.episodes_kept == [0, 1]
    assert report.episodes_encoded == ([] if streaming else [0, 1])
    check_rows(root, EXACT, [0, 6], [6, 9])
    assert verify(root).healthy
    info = json.loads((root / "meta/info.json").read_text())["features"][DEPTH]["info"]
    assert (info["video.codec"], info["depth_quantized"]) == ("ffv1", False)


# -- adaptive overload ------------------------------------------------------------------------------------------


def test_adaptive_overload_moves_depth_to_a_faster_preset_that_is_still_lossless(tmp_path):
    """A depth camera fed faster than x265 medium encodes it: the queue stays full (block: no frame lost), the
    camera takes a faster preset from the next episode, in a new file, and every code is still exact."""
    root = tmp_path / "ds"
    features = {DEPTH: depth_features(240, 320, rgb=False)[DEPTH]}
    rec = DatasetRecorder.create(root, FPS, features, depth_encoder=DepthEncoderConfig(preset="medium"),
                                 encoder_queue_maxsize=4, queue_full_policy="block", encoder_threads=1)
    big = [depth_frame(i, 240, 320) for i in range(8)]
    reports = []
    for n in (90, 10):
        for i in range(n):
            rec.add_frame({DEPTH: big[i % 8][..., None], "task": "t"})
        reports.append(rec.save_episode().cameras[DEPTH])
    rec.finalize()
    steps = [a.change for a in reports[0].adaptations]
    assert steps == ["libx265 preset medium -> libx265 preset fast"], steps
    assert reports[1].video_file.name == "file-001.mp4"
    frames = DepthFrames(QUANTIZED)
    assert [ep["length"] for ep in episodes(root)] == [90, 10]
    for ep in episodes(root):
        got = stored_rows(root, ep, DEPTH, FPS)
        assert all(np.array_equal(g, frames.stored(big[r % 8])) for r, g in enumerate(got))
    info = json.loads((root / "meta/info.json").read_text())["features"][DEPTH]["info"]
    assert info["video.extra_options"] == {"x265-params": "lossless=1"} and "video.codec_by_file" not in info
    assert verify(root).healthy
