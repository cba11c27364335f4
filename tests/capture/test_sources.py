"""Camera sources of `streamrec record`: the synthetic pattern, footage replay, OpenCV, their configs."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.frames import FOOTAGE, read_id, write_id_video
from streamrec import ConfigError
from streamrec.capture import (
    FootageRobot,
    FootageSource,
    OpenCVSource,
    SimRobot,
    SimSource,
    SourceError,
    SyntheticCameraConfig,
    SyntheticSource,
    camera_config,
    make_source,
    sim_world,
)
from streamrec.capture._synthetic import SEGMENTS_OF_DIGIT, DigitLayout

needs_footage = pytest.mark.skipif(not FOOTAGE.is_dir(), reason=f"footage clip not present at {FOOTAGE}")
needs_sim = pytest.mark.skipif(importlib.util.find_spec("gym_aloha") is None,
                               reason="gym-aloha not installed (pip install 'streamrec[sim]')")
needs_cv2 = pytest.mark.skipif(importlib.util.find_spec("cv2") is None,
                               reason="OpenCV not installed (pip install 'streamrec[opencv]')")


def read_number(image: np.ndarray, layout: DigitLayout) -> int:
    """Inverse of draw_number: a segment is lit when its centre pixel is bright (segments overlap
    at their ends, so only the centres tell them apart)."""
    lit_to_digit = {frozenset(segs): d for d, segs in enumerate(SEGMENTS_OF_DIGIT)}
    text = ""
    for position in range(layout.digits):
        lit = frozenset(name for name, (rows, cols) in layout.segments(position).items()
                        if image[(rows.start + rows.stop) // 2, (cols.start + cols.stop) // 2].mean() > 128)
        text += str(lit_to_digit[lit])
    return int(text)


def open_synthetic(name: str = "top", **spec) -> SyntheticSource:
    source = make_source(name, camera_config(name, spec))
    source.open()
    return source


def test_synthetic_draws_straight_into_a_queue_buffer() -> None:
    # read_into fills the recorder's buffer in place: the same frames as read(), no copy of them.
    a, b = open_synthetic(width=128, height=96), open_synthetic(width=128, height=96)
    out = np.full((96, 128, 3), 7, np.uint8)  # not a frame: what read_into leaves untouched shows
    for _ in range(5):
        before = time.time()
        assert b.read_into(out) >= before
        assert np.array_equal(out, a.read())


@pytest.mark.parametrize("size", [(480, 640), (96, 128), (16, 16)])
def test_synthetic_shows_the_frame_number(size: tuple[int, int]) -> None:
    h, w = size
    source = open_synthetic(width=w, height=h)
    assert source.shape == (h, w, 3)
    layout = DigitLayout.for_shape(h, w)
    previous = None
    for i in range(12):
        image = source.read()
        assert image.shape == (h, w, 3) and image.dtype == np.uint8
        assert read_number(image, layout) == i % 10**layout.digits
        if previous is not None:
            assert not np.array_equal(image, previous)  # it moves and its noise changes
        previous = image.copy()
    source.close()
    source.close()  # safe to repeat


def test_synthetic_is_textured_and_cameras_differ() -> None:
    a, b = open_synthetic("a").read().copy(), open_synthetic("b").read().copy()
    assert a[200:].std() > 20  # not flat: encoders should have real work to do
    assert not np.array_equal(a, b)
    assert np.array_equal(open_synthetic("a", seed=3).read(), open_synthetic("b", seed=3).read())


def test_read_timed_stamps_wall_clock() -> None:
    source = open_synthetic(width=32, height=32)
    before = time.time()
    image, t = source.read_timed()
    assert before <= t <= time.time() and image.shape == (32, 32, 3)


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"cameras\.top\.widht: .*did you mean 'width'"):
        camera_config("top", {"widht": 640})
    with pytest.raises(ConfigError, match=r"cameras\.top\.type = 'usb': must be one of \['footage', 'opencv', "
                       r"'realsense', 'sim', 'synthetic', 'synthetic_depth'\]"):
        camera_config("top", {"type": "usb"})
    with pytest.raises(ConfigError, match=r"cameras\.top: SyntheticCameraConfig\.width = 15: must be an even"):
        camera_config("top", {"width": 15})
    with pytest.raises(ConfigError, match=r"cameras\.top: .*'path'"):
        camera_config("top", {"type": "footage"})
    with pytest.raises(ConfigError, match=r"cameras\.top = 3: must be a mapping"):
        camera_config("top", 3)
    with pytest.raises(ConfigError, match="without '/' or '.'"):
        camera_config("a.b", {})
    assert camera_config("top", None) == SyntheticCameraConfig()


def test_footage_open_errors_name_the_camera(tmp_path) -> None:
    source = make_source("wrist", camera_config("wrist", {"type": "footage", "path": str(tmp_path / "nope")}))
    with pytest.raises(SourceError, match=r"camera 'wrist' \(footage\): .*nope is not a folder"):
        source.open()
    (tmp_path / "top.mkv").write_bytes(b"not a video")
    source = make_source("top", camera_config("top", {"type": "footage", "path": str(tmp_path)}))
    with pytest.raises(SourceError, match=r"camera 'top' \(footage\): could not open: ") as info:
        source.open()
    assert info.value.__cause__ is not None


@needs_footage
def test_footage_replays_exact_frames_and_loops() -> None:
    source = make_source("cam", camera_config("cam", {"type": "footage", "path": str(FOOTAGE), "camera": "top",
                                                     "max_frames": 4}))
    assert isinstance(source, FootageSource)
    with source:
        assert source.shape == (480, 640, 3)
        robot = FootageRobot(source)
        data = np.load(FOOTAGE / "data.npz")
        for i in range(6):
            image = source.read()
            assert hashlib.md5(image.tobytes()).hexdigest() == data["frame_md5.top"][i % 4]
            np.testing.assert_array_equal(robot.read()["observation.state"], data["observation.state"][i % 4])
            np.testing.assert_array_equal(robot.read()["action"], data["action"][i % 4])
        assert robot.features["observation.state"]["shape"] == [14]

    missing = make_source("front", camera_config("front", {"type": "footage", "path": str(FOOTAGE)}))
    with pytest.raises(SourceError, match=r"camera 'front' \(footage\): .* has no camera 'front'; it has \['angle'"):
        missing.open()


# -- opencv ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 frames of 160x120 at 30 fps; frame i shows identity i."""
    return write_id_video(tmp_path_factory.mktemp("opencv") / "clip.mp4")


def open_opencv(name: str = "cam", **spec) -> OpenCVSource:
    source = make_source(name, camera_config(name, {"type": "opencv", **spec}))
    assert isinstance(source, OpenCVSource)
    source.open()
    return source


def camera_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("streamrec-camera-")]


def test_opencv_bad_input() -> None:
    for spec, message in [
        ({}, r"cameras\.c: .*'index_or_path'"),
        ({"index_or_path": -1}, r"OpenCVCameraConfig\.index_or_path = -1: must be a device index >= 0"),
        ({"index_or_path": True}, r"OpenCVCameraConfig\.index_or_path = True"),
        ({"index_or_path": 0, "width": 641, "height": 480}, r"OpenCVCameraConfig\.width = 641: must be an even"),
        ({"index_or_path": 0, "width": 640}, r"OpenCVCameraConfig\.width = 640, height = None: give both or neither"),
        ({"index_or_path": 0, "fps": 0}, r"OpenCVCameraConfig\.fps = 0: must be a number > 0, or null"),
        ({"index_or_path": 0, "warmup_s": -1}, r"OpenCVCameraConfig\.warmup_s = -1: must be a number of seconds"),
        ({"index_or_path": 0, "stall_timeout_s": "1"}, r"OpenCVCameraConfig\.stall_timeout_s = '1'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            camera_config("c", {"type": "opencv", **spec})


@needs_cv2
def test_opencv_plays_a_file_in_order_and_loops(clip: Path) -> None:
    source = open_opencv(index_or_path=str(clip), fps=200)  # 64 frames loop every 0.32 s
    assert source.shape == (120, 160, 3) and camera_threads() == ["streamrec-camera-cam"]
    ids, latency_s, age_s = [], [], []
    end = time.monotonic() + 0.8
    while time.monotonic() < end:
        t0 = time.perf_counter()
        image, captured_at = source.read_timed()
        latency_s.append(time.perf_counter() - t0)
        age_s.append(time.time() - captured_at)
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8
        ids.append(read_id(image))
        time.sleep(0.002)
    steps = [(b - a) % 64 for a, b in zip(ids, ids[1:])]
    assert all(s < 32 for s in steps), "frames went backwards"
    assert sum(b < a for a, b in zip(ids, ids[1:])) >= 2, "the file did not loop"
    source.close()
    source.close()  # safe to repeat
    assert camera_threads() == []
    lat = np.percentile(latency_s, [50, 99]) * 1e6
    age = np.percentile(age_s, [50, 99]) * 1e3
    print(f"opencv read_timed: p50 {lat[0]:.1f} us, p99 {lat[1]:.1f} us; frame age p50 {age[0]:.1f} ms, "
          f"p99 {age[1]:.1f} ms")


@needs_cv2
def test_opencv_image_stays_valid_until_the_next_read(clip: Path) -> None:
    with open_opencv(index_or_path=str(clip), fps=200) as source:
        first = source.read()
        shown = read_id(first)
        time.sleep(0.1)  # the thread publishes ~20 frames meanwhile, none into `first`
        assert read_id(first) == shown
        assert read_id(source.read()) != shown


@needs_cv2
def test_opencv_resizes_when_the_camera_cannot_deliver_the_size(clip: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="streamrec"), \
            open_opencv(index_or_path=str(clip), width=80, height=60) as source:
        assert source.shape == (60, 80, 3) and source.read().shape == (60, 80, 3)
    assert "delivers 160x120, not the configured 80x60; resizing" in caplog.text


def read_until_error(source: OpenCVSource, timeout_s: float = 5.0) -> SourceError:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            source.read()
        except SourceError as e:
            return e
        time.sleep(0.01)
    pytest.fail(f"{source!r} kept returning frames for {timeout_s} s")


@needs_cv2
def test_opencv_stall_raises_with_the_last_error(clip: Path, tmp_path: Path) -> None:
    # The file disappears while it plays: at its end it cannot be reopened and frames stop.
    path = shutil.copy(clip, tmp_path / "gone.mp4")
    source = open_opencv("wrist", index_or_path=str(path), fps=200, stall_timeout_s=0.3)
    Path(path).unlink()
    message = str(read_until_error(source))
    assert message.startswith(f"camera 'wrist' (opencv): no new frame from file {path} for ")
    assert f"(stall_timeout_s = 0.3); last error: could not reopen: {path} does not exist" in message
    source.close()
    assert camera_threads() == []


@needs_cv2
def test_opencv_stopped_thread_is_a_stall(clip: Path) -> None:
    source = open_opencv(index_or_path=str(clip), stall_timeout_s=0.2)
    source._stop.set()  # the reader thread ends, as if the camera went silent
    time.sleep(0.3)
    with pytest.raises(SourceError, match=r"camera 'cam' \(opencv\): no new frame from file .* last error: none"):
        source.read_timed()
    source.close()


@needs_cv2
def test_opencv_open_errors_name_the_camera(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    with pytest.raises(SourceError, match=rf"camera 'top' \(opencv\): could not open: {missing} does not exist"):
        open_opencv("top", index_or_path=str(missing))
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match=r"camera 'top' \(opencv\): could not open: OpenCV could not open file "):
        open_opencv("top", index_or_path=str(tmp_path / "junk.mp4"))
    assert camera_threads() == []


def test_opencv_without_cv2_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` raises ImportError
    with pytest.raises(SourceError, match=r"camera 'cam' \(opencv\): OpenCV is not installed .*"
                                          r"pip install 'streamrec\[opencv\]'"):
        open_opencv(index_or_path=0)


# -- sim ------------------------------------------------------------------------------------------


def sim_cameras(**extra: dict) -> dict:
    specs = {"top": {}, "top_again": {"camera": "top"}, "wrist": {"camera": "left_wrist"}, **extra}
    return {name: camera_config(name, {"type": "sim", "width": 96, "height": 64, **spec})
            for name, spec in specs.items()}


def test_sim_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"cameras\.top: SimCameraConfig\.env = 'gym_aloha/Nope-v0': must be one "
                                          r"of \['gym_aloha/AlohaInsertion-v0', 'gym_aloha/AlohaTransferCube-v0'\]"):
        camera_config("top", {"type": "sim", "env": "gym_aloha/Nope-v0"})
    with pytest.raises(ConfigError, match=r"cameras\.top: SimCameraConfig\.height = 33: must be an even integer"):
        camera_config("top", {"type": "sim", "height": 33})
    with pytest.raises(ConfigError, match=r"cameras\.top: SimCameraConfig\.seed = -1: must be an integer >= 0"):
        camera_config("top", {"type": "sim", "seed": -1})
    with pytest.raises(ConfigError, match=r"cameras\.wrist\.seed = 3: sim cameras share one simulation, so it must "
                                          r"equal cameras\.top\.seed = 0"):
        sim_world(sim_cameras(wrist={"seed": 3}), fps=30)
    assert sim_world({"top": camera_config("top", {})}, fps=30) is None  # no sim camera, no simulation


def test_sim_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gym_aloha", None)  # as if not installed
    source = make_source("top", camera_config("top", {"type": "sim"}))
    with pytest.raises(SourceError, match=r"camera 'top' \(sim\): the simulation needs gym-aloha and MuJoCo, not "
                                          r"installed \(no module gym_aloha\); pip install 'streamrec\[sim\]'"):
        source.open()


@needs_sim
def test_sim_cameras_share_one_simulation_and_the_arms_move() -> None:
    world = sim_world(sim_cameras(), fps=30)
    sources = [make_source(name, config, world=world) for name, config in sim_cameras().items()]
    assert all(isinstance(s, SimSource) and s.world is world for s in sources)
    robot = SimRobot(world)
    try:
        for source in sources:
            source.open()
        assert robot.features["observation.state"]["shape"] == [14]
        assert robot.features["action"]["names"][6] == "left_arm_gripper"
        robot.start_episode(0)
        rows, images = [], []
        for tick in range(60):  # 2 s at 30 fps
            if tick % 2:  # as the record command reads them: into queue buffers
                top, top_again, wrist = (np.empty((64, 96, 3), np.uint8), np.empty((64, 96, 3), np.uint8),
                                         np.empty(sources[2].shape, np.uint8))
                for source, out in zip(sources, (top, top_again, wrist)):
                    source.read_into(out)
                assert np.array_equal(top, top_again)  # rendered once into the first, copied to the second
            else:
                top, top_again, wrist = (s.read() for s in sources)
                assert top is top_again  # the same scene camera is rendered once per tick and shared
            assert top.shape == (64, 96, 3) and top.dtype == np.uint8
            images.append((top.copy(), wrist.copy()))
            rows.append(robot.read())
    finally:
        for source in sources:
            source.close()

    states = np.stack([r["observation.state"] for r in rows])
    actions = np.stack([r["action"] for r in rows])
    assert states.dtype == actions.dtype == np.float32 and states.shape == actions.shape == (60, 14)
    assert np.ptp(states[:, :6], axis=0).max() > 0.05  # the left arm moved
    assert np.abs(np.diff(actions, axis=0)).max() < 0.05  # smoothly: no jump between ticks (radians)
    for first, last in zip(images[0], images[-1]):
        assert np.abs(first.astype(int) - last).mean() > 1  # and the cameras show it


@needs_sim
def test_sim_episodes_restart_from_home_with_objects_placed_by_seed() -> None:
    source = make_source("top", camera_config("top", {"type": "sim", "width": 96, "height": 64}))
    robot = SimRobot(source.world)
    source.open()
    try:
        def first_tick(episode: int) -> tuple[np.ndarray, np.ndarray]:
            robot.start_episode(episode)
            image = source.read().copy()
            return image, robot.read()["observation.state"]

        image0, state0 = first_tick(0)
        for _ in range(30):
            source.read()
            robot.read()
        again, state_again = first_tick(0)
        np.testing.assert_array_equal(state_again, state0)  # an episode recorded again starts the same
        np.testing.assert_array_equal(again, image0)
        image1, state1 = first_tick(1)
        np.testing.assert_allclose(state1, state0, atol=1e-6)  # arms at home...
        assert (image1 != image0).any()  # ...but the peg and socket elsewhere
    finally:
        source.close()


@needs_sim
def test_sim_unknown_scene_camera_lists_the_scene_cameras() -> None:
    source = make_source("wrist", camera_config("wrist", {"type": "sim", "width": 64, "height": 48}))
    with pytest.raises(SourceError, match=r"camera 'wrist' \(sim\): the scene has no camera 'wrist'; it has \[.*"
                                          r"'left_wrist'.*\] \(set `camera:` in the spec\)"):
        source.open()


@needs_sim
def test_sim_gl_falls_back_from_egl_to_osmesa_or_says_what_failed() -> None:
    # A device id EGL does not have makes its context fail, as on a machine without EGL.
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env["MUJOCO_EGL_DEVICE_ID"] = "99"
    script = ("import os\nfrom streamrec.capture import SourceError\n"
              "from streamrec.capture._sim import choose_gl_backend\ntry:\n"
              "    print(choose_gl_backend(), os.environ.get('MUJOCO_GL'), os.environ.get('PYOPENGL_PLATFORM'))\n"
              "except SourceError as e:\n    print('error', e)\n")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180).stdout
    if out.startswith("osmesa"):  # libosmesa6 is installed
        assert out.split() == ["osmesa", "osmesa", "osmesa"]
    else:
        assert out.startswith("error no OpenGL for rendering without a window: egl: ") and "; osmesa: " in out
        assert "apt-get install libosmesa6" in out
    kept = subprocess.run([sys.executable, "-c", script], env={**env, "MUJOCO_GL": "osmesa"}, capture_output=True,
                          text=True, timeout=60).stdout
    assert kept.split()[0] == "osmesa"  # the user's choice is kept, not probed
