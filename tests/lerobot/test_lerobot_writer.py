"""`streamrec.lerobot.LeRobotDataset` as a custom LeRobot loop uses it, with LeRobot's feature dicts and
frame forms. It imports no LeRobot, so these run under the suite's own Python."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.depth import DEPTH, depth_frame, stored_rows
from helpers.frames import episodes, frames_of_episode, id_frame, read_id
from streamrec import ConfigError, DatasetError, DepthEncoderConfig, EncoderConfig, verify
from streamrec.encode._depth import DepthFrames
from streamrec.lerobot import (
    DEFAULT_FEATURES,
    LeRobotDataset,
    PushError,
    VideoEncodingManager,
    depth_encoder_config,
    encoder_config,
)

H, W = 96, 128
DH, DW = 48, 64
H264 = {"vcodec": "h264", "preset": "ultrafast", "crf": 18, "g": 2, "extra_options": {"tune": "zerolatency"}}


def lerobot_features() -> dict:
    """Features as lerobot-record builds them: tuples, names, an info block, the default columns included."""
    video = {"dtype": "video", "shape": (H, W, 3), "names": ["height", "width", "channels"]}
    return {
        "action": {"dtype": "float32", "shape": (2,), "names": ["a.pos", "b.pos"]},
        "observation.state": {"dtype": "float32", "shape": (3,), "names": ["a.pos", "b.pos", "tick"]},
        "observation.images.top": {**video, "info": {"video.fps": 30}},
        "observation.images.wrist": dict(video),
        **DEFAULT_FEATURES,
    }


def frame(ident: int) -> dict:
    """Row `ident`: the top camera as cameras give it (uint8 HWC), the wrist one channel-first float in [0, 1]."""
    wrist = id_frame(ident + 1000, H, W).astype(np.float32).transpose(2, 0, 1) / 255.0
    return {"observation.images.top": id_frame(ident, H, W), "observation.images.wrist": wrist,
            "observation.state": np.array([ident, -ident, ident], np.float32),
            "action": np.array([ident + 0.5, 0], np.float32), "task": "stack the blocks"}


def stored_ids(root: Path) -> dict[int, dict[str, list[int]]]:
    out = {}
    for ep in episodes(root):
        out[ep["episode_index"]] = {
            cam: [read_id(f) for f in frames_of_episode(root, ep, f"observation.images.{cam}", 30)]
            for cam in ("top", "wrist")}
    return out


def test_a_loop_records_as_with_lerobot(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    ds = LeRobotDataset.create("me/blocks", 30, lerobot_features(), root=root, robot_type="so101_follower",
                               rgb_encoder=H264, streaming_encoding=True, image_writer_threads=8)
    with VideoEncodingManager(ds):
        assert ds.fps == 30 and ds.num_episodes == 0
        assert set(DEFAULT_FEATURES) <= set(ds.features) and ds.meta.video_keys == ["observation.images.top",
                                                                                     "observation.images.wrist"]
        for i in range(10):
            ds.add_frame(frame(i))
        report = ds.save_episode()
        assert report.frames == 10 and report.episode_index == 0
        for i in range(10, 15):
            ds.add_frame(frame(i))
        assert ds.has_pending_frames()
        ds.clear_episode_buffer()  # re-record: those five rows are gone
        assert not ds.has_pending_frames()
        for i in range(15, 23):
            ds.add_frame(frame(i))
        ds.save_episode()
        assert ds.num_episodes == 2 and ds.num_frames == 18 and ds.meta.total_episodes == 2
    assert stored_ids(root) == {0: {"top": list(range(10)), "wrist": list(range(1000, 1010))},
                                1: {"top": list(range(15, 23)), "wrist": list(range(1015, 1023))}}
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["robot_type"] == "so101_follower" and info["total_frames"] == 18
    assert info["features"]["observation.state"]["names"] == ["a.pos", "b.pos", "tick"]
    assert info["features"]["observation.images.top"]["info"]["video.codec"] == "h264"
    assert ds.meta.total_tasks == 1
    assert verify(root).healthy, verify(root).findings

    more = LeRobotDataset.resume("me/blocks", root=root, streaming_encoding=True)
    assert more.num_episodes == 2 and more.num_frames == 18
    assert more.recorder.encoders == {"observation.images.top": "libx264", "observation.images.wrist": "libx264"}
    with more:
        for i in range(30, 34):
            more.add_frame(frame(i))
        more.save_episode()
    assert stored_ids(root)[2] == {"top": [30, 31, 32, 33], "wrist": [1030, 1031, 1032, 1033]}
    assert more.num_episodes == 3 and more.num_frames == 22


def test_an_exception_in_the_loop_keeps_the_saved_episodes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    ds = LeRobotDataset.create("me/x", 30, lerobot_features(), root=root, rgb_encoder=H264, streaming_encoding=True)
    with pytest.raises(RuntimeError, match="robot unplugged"), VideoEncodingManager(ds):
        for i in range(6):
            ds.add_frame(frame(i))
        ds.save_episode()
        for i in range(6, 9):
            ds.add_frame(frame(i))
        raise RuntimeError("robot unplugged")
    assert stored_ids(root) == {0: {"top": list(range(6)), "wrist": list(range(1000, 1006))}}
    assert verify(root).healthy


def test_the_png_path_by_default(tmp_path: Path) -> None:
    """streaming_encoding defaults to False, as in LeRobot: PNGs while recording, encoded at save."""
    root = tmp_path / "ds"
    with LeRobotDataset.create("me/x", 30, lerobot_features(), root=root, rgb_encoder=H264) as ds:
        assert ds.recorder.config.streaming_encoding is False
        for i in range(5):
            ds.add_frame(frame(i))
        ds.save_episode()
    assert stored_ids(root)[0]["top"] == list(range(5))


def test_default_root_is_lerobots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    with LeRobotDataset.create("me/here", 30, lerobot_features(), rgb_encoder=H264) as ds:
        assert ds.root == tmp_path / "home" / "me" / "here"
        ds.add_frame(frame(0))
        ds.save_episode()
    assert (tmp_path / "home" / "me" / "here" / "meta" / "info.json").is_file()


@pytest.mark.parametrize(("change", "message"), [
    ({"observation.images.top": {"dtype": "image", "shape": (H, W, 3), "names": None}}, "video only"),
    ({"observation.state": {"dtype": "float32", "shape": (3,), "names": None},
      "observation.images.top": {"dtype": "video", "shape": (H, W - 1, 3), "names": None}}, "even"),
])
def test_features_it_cannot_record_are_named(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LeRobotDataset.create("me/x", 30, {**lerobot_features(), **change}, root=tmp_path / "ds", rgb_encoder=H264)
    assert not (tmp_path / "ds").exists()


def test_misuse_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="use_videos"):
        LeRobotDataset.create("me/x", 30, lerobot_features(), root=tmp_path / "a", use_videos=False)
    ds = LeRobotDataset.create("me/x", 30, lerobot_features(), root=tmp_path / "ds", rgb_encoder=H264,
                               streaming_encoding=True)
    with ds:
        bad = frame(0)
        bad["observation.state"] = np.zeros(4, np.float32)
        with pytest.raises(ValueError, match=r"observation.state.*shape \(3,\)"):
            ds.add_frame(bad)
        ds.add_frame(frame(0))
        with pytest.raises(ConfigError, match="episode_data"):
            ds.save_episode(episode_data={"size": 1})
        ds.save_episode()
        with pytest.raises(DatasetError, match="finalize"):
            ds.push_to_hub()
    with pytest.raises(DatasetError, match="resume"):
        LeRobotDataset.resume("me/x", root=tmp_path / "nothing")


def test_push_failure_leaves_the_dataset(tmp_path: Path) -> None:
    """Without huggingface_hub (the core's environment) or without a network (the LeRobot tests), the
    push fails with what to do, and the finalized dataset is untouched."""
    root = tmp_path / "ds"
    with LeRobotDataset.create("me/x", 30, lerobot_features(), root=root, rgb_encoder=H264,
                               streaming_encoding=True) as ds:
        ds.add_frame(frame(0))
        ds.save_episode()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        with pytest.raises(PushError, match="needs huggingface_hub"):
            ds.push_to_hub()
    else:
        pytest.skip("huggingface_hub is installed here; the push without a network is tested in test_lerobot_record")
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


@pytest.mark.parametrize(("depth_encoder", "codec"), [(None, "hevc"), ({"vcodec": "ffv1"}, "ffv1")])
def test_a_depth_camera_is_recorded_as_lerobot_stores_it_or_exactly(tmp_path: Path, depth_encoder, codec) -> None:
    """A RealSense's depth as LeRobot's features give it ([H, W, 1], is_depth_map) and as its camera gives it
    ((H, W) uint16 millimetres); LeRobot's default depth settings give LeRobot's 12-bit codes, ffv1 the mm."""
    root = tmp_path / "ds"
    features = {**lerobot_features(), DEPTH: {"dtype": "video", "shape": (DH, DW, 1),
                                              "names": ["height", "width", "channels"], "info": {"is_depth_map": True}}}
    lerobot_default = {"vcodec": "hevc", "pix_fmt": "gray12le", "g": 2, "crf": 30, "preset": None, "fast_decode": 0,
                       "extra_options": {"x265-params": "lossless=1"}, "depth_min": 0.01, "depth_max": 10.0,
                       "shift": 3.5, "use_log": True, "video_backend": "pyav"}
    ds = LeRobotDataset.create("me/depth", 30, features, root=root, rgb_encoder=H264, streaming_encoding=True,
                               depth_encoder=lerobot_default | (depth_encoder or {}))
    for ident in range(5):
        ds.add_frame(frame(ident) | {DEPTH: depth_frame(ident, DH, DW)})
    ds.save_episode()
    ds.finalize()
    info = json.loads((root / "meta/info.json").read_text())["features"][DEPTH]["info"]
    assert info["is_depth_map"] is True and info["video.codec"] == codec
    mode = DepthEncoderConfig(vcodec=codec)
    expected = [DepthFrames(mode).stored(depth_frame(i, DH, DW)) for i in range(5)]
    got = stored_rows(root, episodes(root)[0], DEPTH, 30)
    assert len(got) == 5 and all(np.array_equal(g, e) for g, e in zip(got, expected))
    assert stored_ids(root) == {0: {"top": list(range(5)), "wrist": list(range(1000, 1005))}}
    assert verify(root).healthy


def test_depth_settings_from_lerobots_config() -> None:
    assert depth_encoder_config(None) is None
    assert depth_encoder_config({"vcodec": "hevc", "pix_fmt": "gray12le", "crf": 30, "depth_max": 10.0,
                                 "extra_options": {"x265-params": "lossless=1"}}) == DepthEncoderConfig()
    assert depth_encoder_config({"vcodec": "hevc", "depth_max": 6.0, "preset": "fast"}) == DepthEncoderConfig(
        depth_max=6.0, preset="fast")
    assert depth_encoder_config({"vcodec": "ffv1", "crf": 30, "depth_min": 0.01}) == DepthEncoderConfig(vcodec="ffv1")
    with pytest.raises(ConfigError, match="video_backend"):
        depth_encoder_config({"video_backend": "torchcodec"})


def test_encoder_settings_from_lerobots_config() -> None:
    class RGBEncoderConfig:  # the fields of LeRobot's class, as a loop would pass it
        vcodec, pix_fmt, g, crf, preset, fast_decode, video_backend = "h264", "yuv420p", 4, 23, "veryfast", 1, "pyav"
        extra_options = {"bf": 0, "tune": "film"}

    assert encoder_config(RGBEncoderConfig()) == EncoderConfig(vcodec="h264", g=4, crf=23, preset="veryfast",
                                                               fast_decode=1, extra_options={"bf": "0", "tune": "film"})
    assert encoder_config(None) is None
    with pytest.raises(ConfigError, match="video_backend"):
        encoder_config({"video_backend": "torchcodec"})


def test_the_command_says_what_it_needs(tmp_path: Path) -> None:
    """Under a Python without LeRobot (this suite's own, usually), the command says what to install."""
    import subprocess
    import sys

    from streamrec.lerobot._command import missing_lerobot

    problem = missing_lerobot()
    if problem is None:
        pytest.skip("this Python has LeRobot 0.6: the command itself is tested in test_lerobot_record")
    done = subprocess.run([sys.executable, "-m", "streamrec.cli", "lerobot-record", "--robot.type=so101_follower"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert problem in done.stderr and "streamrec[lerobot]" in done.stderr
