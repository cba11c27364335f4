"""`streamrec record` with depth cameras: synthetic depth, the sim cameras' depth, `--dataset.depth_encoder.*`,
resume, `info` and `verify` on what it recorded. Real recordings in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.depth import stored_rows
from helpers.frames import episodes
from streamrec import DepthEncoderConfig, verify
from streamrec.cli import _flags
from streamrec.cli._record import RecordConfig
from streamrec.encode._depth import LEROBOT_QUANTIZER

needs_sim = pytest.mark.skipif(importlib.util.find_spec("gym_aloha") is None,
                               reason="gym-aloha not installed (pip install 'streamrec[sim]')")
QUICK = ["--dataset.camera_encoder.vcodec=h264", "--dataset.camera_encoder.preset=ultrafast", "--dataset.fps=30",
         "--dataset.reset_time_s=0", "--dataset.single_task=look", "--dataset.episode_time_s=0.5"]
DEPTH_ONLY = "{d: {type: synthetic_depth, width: 96, height: 64}, top: {width: 96, height: 64}}"
D = "observation.images.d"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=timeout)


def test_depth_encoder_flags_build_the_config():
    config = _flags.parse(RecordConfig, ["--dataset.root=x", "--dataset.single_task=t", "--cameras={d: {}}",
                                         "--dataset.depth_encoder.vcodec=ffv1"])
    assert config.dataset.depth_encoder == DepthEncoderConfig(vcodec="ffv1")
    config = _flags.parse(RecordConfig, ["--dataset.root=x", "--dataset.single_task=t", "--cameras={d: {}}",
                                         "--dataset.depth_encoder.preset=medium",
                                         "--dataset.depth_encoder.depth_max=4.0"])
    assert config.dataset.depth_encoder.effective_preset == "medium"
    assert config.dataset.depth_encoder.quantizer.depth_max == 4.0
    with pytest.raises(_flags.FlagError, match=r"--dataset.depth_encoder.depth_min=0.01: .*must be null for ffv1 "
                                               r"\(the exact mode\)"):
        _flags.parse(RecordConfig, ["--dataset.root=x", "--dataset.single_task=t", "--cameras={d: {}}",
                                    "--dataset.depth_encoder.vcodec=ffv1", "--dataset.depth_encoder.depth_min=0.01"])


def test_records_a_synthetic_depth_camera_in_both_modes_then_resumes(tmp_path: Path):
    for vcodec in ("hevc", "ffv1"):
        root = tmp_path / vcodec
        done = cli("record", f"--dataset.root={root}", f"--cameras={DEPTH_ONLY}", "--dataset.num_episodes=2",
                   f"--dataset.depth_encoder.vcodec={vcodec}", *QUICK)
        assert done.returncode == 0, done.stderr
        assert "d 96x64 synthetic_depth" in done.stdout + done.stderr
        info = json.loads((root / "meta/info.json").read_text())["features"][D]
        assert info["shape"] == [64, 96, 1] and info["info"]["video.codec"] == vcodec
        rows = [r for ep in episodes(root) for r in stored_rows(root, ep, D, 30)]
        assert rows and all(r.shape == (64, 96) for r in rows)
        if vcodec == "hevc":
            assert max(int(r.max()) for r in rows) <= 4095  # codes
        else:
            assert 2900 < max(int(r.max()) for r in rows) <= 3100  # the scene's wall at 3 m, in mm
        checked = cli("verify", str(root))
        assert checked.returncode == 0, checked.stdout
    # resume with the flags at their defaults: the dataset's own depth settings are taken
    root = tmp_path / "ffv1"
    done = cli("record", f"--dataset.root={root}", f"--cameras={DEPTH_ONLY}", "--dataset.num_episodes=1",
               "--resume=true", *QUICK)
    assert done.returncode == 0, done.stderr
    assert len(episodes(root)) == 3
    info = json.loads((root / "meta/info.json").read_text())["features"][D]["info"]
    assert info["video.codec"] == "ffv1" and info["depth_quantized"] is False
    shown = cli("info", str(root))
    assert "Depth d: exact 16-bit mm (ffv1 gray16le)" in shown.stdout
    assert cli("verify", str(root)).returncode == 0


def test_a_depth_name_taken_by_another_camera_exits_2(tmp_path: Path):
    done = cli("record", f"--dataset.root={tmp_path / 'x'}", "--cameras={a: {type: sim, depth: true}, a_depth: {}}",
               *QUICK)
    assert done.returncode == 2 and "its depth is recorded as camera 'a_depth'" in done.stderr


@needs_sim
def test_records_sim_cameras_with_their_depth(tmp_path: Path):
    root = tmp_path / "sim"
    cameras = "{top: {type: sim, width: 96, height: 64, depth: true}}"
    done = cli("record", f"--dataset.root={root}", f"--cameras={cameras}", "--dataset.num_episodes=1", *QUICK,
               timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads((root / "meta/info.json").read_text())["features"]
    assert info["observation.images.top"]["shape"] == [64, 96, 3]
    assert info["observation.images.top_depth"]["shape"] == [64, 96, 1]
    assert info["observation.images.top_depth"]["info"]["is_depth_map"] is True
    rows = stored_rows(root, episodes(root)[0], "observation.images.top_depth", 30)
    mm = LEROBOT_QUANTIZER.mm(rows[0], zero_is_no_reading=True)
    seen = mm[mm > 0]
    assert 0.1 < np.mean(mm == 0) < 0.9 and seen.min() > 300 and seen.max() < 1500  # table and arms; no sky
    assert cli("verify", str(root)).returncode == 0


@pytest.mark.skipif(importlib.util.find_spec("pyrealsense2") is None,
                    reason="needs pyrealsense2 (pip install 'streamrec[realsense]'); untested on a real RealSense, "
                           "none exists here")
def test_records_a_realsense_played_back_from_a_recording(tmp_path: Path):
    from helpers.realsense import make_recording

    recording = tmp_path / "rs.db3"
    sent = make_recording(recording, frames=40)
    root = tmp_path / "rs"
    cameras = f"{{wrist: {{type: realsense, playback: {recording}, real_time: false, align: false}}}}"
    done = cli("record", f"--dataset.root={root}", f"--cameras={cameras}", "--dataset.num_episodes=1",
               "--dataset.depth_encoder.vcodec=ffv1", "--dataset.save_partial_episode=true",
               *[f for f in QUICK if "episode_time_s" not in f], "--dataset.episode_time_s=60")
    # the recording ends before the episode does: the camera stops the recording, the partial episode is kept
    assert done.returncode == 1 and "end of the recording" in done.stdout + done.stderr
    info = json.loads((root / "meta/info.json").read_text())["features"]
    assert info["observation.images.wrist"]["shape"] == [48, 64, 3]
    assert info["observation.images.wrist_depth"]["info"]["depth_quantized"] is False
    rows = stored_rows(root, episodes(root)[0], "observation.images.wrist_depth", 30)
    assert len(rows) >= 10
    # every row holds one of the recorded depth frames, exactly (ffv1), in the recorded order
    order = [next(i for i, s in enumerate(sent) if np.array_equal(r, s)) for r in rows]
    assert order == sorted(order)
    assert cli("verify", str(root)).returncode in (0, 1)  # a paced replay may drop or stall; the files are sound
    pacing = {"system_overloaded", "dropped_frames", "capture_rate", "capture_jitter", "capture_repeated",
              "capture_time_order", "camera_skew"}
    assert {f.code for f in verify(root).errors} <= pacing  # only the replay's timing, never a broken file
