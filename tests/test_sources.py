"""Camera sources of `streamrec record`: the synthetic pattern, footage replay, their configs."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
from utils import FOOTAGE

from streamrec import ConfigError
from streamrec._sources import (
    SEGMENTS_OF_DIGIT,
    DigitLayout,
    FootageRobot,
    FootageSource,
    SourceError,
    SyntheticCameraConfig,
    SyntheticSource,
    camera_config,
    make_source,
)

needs_footage = pytest.mark.skipif(not FOOTAGE.is_dir(), reason=f"footage clip not present at {FOOTAGE}")


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


def test_synthetic_frame_time() -> None:
    source = open_synthetic(width=640, height=480)
    for _ in range(20):
        source.read()
    n = 500
    t0 = time.perf_counter()
    for _ in range(n):
        source.read()
    per_frame_ms = (time.perf_counter() - t0) / n * 1e3
    # Printed, not asserted: timing depends on the machine and its load (see with `pytest -s`).
    print(f"synthetic 640x480: {per_frame_ms:.3f} ms per frame")


def test_read_timed_stamps_wall_clock() -> None:
    source = open_synthetic(width=32, height=32)
    before = time.time()
    image, t = source.read_timed()
    assert before <= t <= time.time() and image.shape == (32, 32, 3)


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"cameras\.top\.widht: .*did you mean 'width'"):
        camera_config("top", {"widht": 640})
    with pytest.raises(ConfigError, match=r"cameras\.top\.type = 'opencv': must be one of \['footage', 'synthetic'\]"):
        camera_config("top", {"type": "opencv"})
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
