"""Camera sources for `streamrec record`, and the robot state that goes with them.

A camera source is opened once, then read once per tick by the capture loop; `read()` returns
an (H, W, 3) uint8 RGB image. Like a camera driver, a source may reuse its buffer: the image is
valid until the next `read()` (the recorder copies what it queues). New kinds of camera slot in
by adding a config dataclass and a `CameraSource` subclass to `CAMERA_TYPES`.

Built so far:

| type | config | what it produces |
| --- | --- | --- |
| `synthetic` | `SyntheticCameraConfig` | a scrolling, textured, noisy pattern showing the frame number |
| `footage` | `FootageCameraConfig` | a recorded clip folder (see /work/shared/footage), looped |
| `opencv` | `OpenCVCameraConfig` | a USB/V4L2 camera, a video file (played in real time, looped) or an RTSP URL |
| `sim` | `SimCameraConfig` | a camera of the simulated ALOHA scene (MuJoCo via gym-aloha), arms moving |

`opencv` needs `pip install 'streamrec[opencv]'`, `sim` needs `pip install 'streamrec[sim]'`.
"""

from __future__ import annotations

import abc
import difflib
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ._errors import ConfigError, StreamrecError

log = logging.getLogger("streamrec")

class SourceError(StreamrecError, RuntimeError):
    """A camera or robot source could not be opened or read; the message names it and the cause."""


# -- configs --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticCameraConfig:
    """A generated test pattern: costs well under a millisecond per frame, needs no hardware."""

    type: ClassVar[str] = "synthetic"
    width: int = 640
    """Image width in pixels (even, >= 16)."""
    height: int = 480
    """Image height in pixels (even, >= 16)."""
    seed: int | None = None
    """Seed of the texture and noise; null derives one from the camera name, so cameras differ."""

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 16 or value % 2:
                raise ConfigError(f"SyntheticCameraConfig.{name} = {value!r}: must be an even integer >= 16 "
                                  "(the encoders need even sizes)")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ConfigError(f"SyntheticCameraConfig.seed = {self.seed!r}: must be an integer or null")


@dataclass(frozen=True, slots=True, kw_only=True)
class FootageCameraConfig:
    """Replays one camera of a clip folder (`<camera>.mkv` plus `data.npz`), looping at the end.

    Frames are replayed one per tick, whatever the clip's own frame rate, so row i of the
    dataset always shows clip frame i (mod the clip length) and carries that frame's state.
    """

    type: ClassVar[str] = "footage"
    path: str
    """Clip folder, e.g. /work/shared/footage/aloha_insertion."""
    camera: str | None = None
    """Which camera file of the clip to play (`top`, `angle`, `left_wrist`); null uses the camera's name."""
    max_frames: int | None = None
    """Decode only the first this many frames (null: all). Every frame is kept in memory, ~0.9 MB at 640x480."""

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError(f"FootageCameraConfig.path = {self.path!r}: must be a folder path")
        if self.camera is not None and (not isinstance(self.camera, str) or not self.camera):
            raise ConfigError(f"FootageCameraConfig.camera = {self.camera!r}: must be a camera name such as "
                              "'top', or null for the camera's own name")
        if self.max_frames is not None and (isinstance(self.max_frames, bool) or not isinstance(self.max_frames, int)
                                            or self.max_frames < 1):
            raise ConfigError(f"FootageCameraConfig.max_frames = {self.max_frames!r}: must be an integer >= 1 or null")


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenCVCameraConfig:
    """A camera read through OpenCV on its own thread: a device index (USB/V4L2), a device path, a video file
    (played at its frame rate and looped) or a stream URL (rtsp://...). Each tick takes the latest frame.
    Needs `pip install 'streamrec[opencv]'`."""

    type: ClassVar[str] = "opencv"
    index_or_path: int | str
    """Device index (0 is /dev/video0), or a device path, video file or URL."""
    width: int | None = None
    """Image width in pixels (even, >= 16); null keeps the camera's own. Resized if the camera cannot deliver it."""
    height: int | None = None
    """Image height in pixels (even, >= 16); give both width and height or neither."""
    fps: float | None = None
    """Frame rate to ask a device for, or to play a file at; null: the device's default or the file's own rate."""
    warmup_s: float = 5.0
    """Seconds open() waits for the first frame before giving up."""
    stall_timeout_s: float = 2.0
    """A camera that delivers no new frame for this many seconds fails the recording, naming its last error."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"OpenCVCameraConfig.{name} = {getattr(self, name)!r}: {rule}")

        value = self.index_or_path
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "" or (
                isinstance(value, int) and value < 0):
            raise bad("index_or_path", "must be a device index >= 0, or a device path, video file or URL")
        for name in ("width", "height"):
            size = getattr(self, name)
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16 or size % 2):
                raise bad(name, "must be an even integer >= 16 (the encoders need even sizes), or null")
        if (self.width is None) != (self.height is None):
            raise ConfigError(f"OpenCVCameraConfig.width = {self.width!r}, height = {self.height!r}: give both or "
                              "neither")
        if self.fps is not None and not _positive_number(self.fps):
            raise bad("fps", "must be a number > 0, or null")
        for name in ("warmup_s", "stall_timeout_s"):
            if not _positive_number(getattr(self, name)):
                raise bad(name, "must be a number of seconds > 0")


SIM_ENVS = {"gym_aloha/AlohaInsertion-v0": "insertion", "gym_aloha/AlohaTransferCube-v0": "transfer_cube"}
"""gym-aloha environments the sim source can reset: env id -> gym-aloha task (each places its objects its own way)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimCameraConfig:
    """A camera of the simulated ALOHA scene (MuJoCo, through gym-aloha), rendered on the capture tick. All sim
    cameras of a recording share one simulation, stepped once per tick while a scripted, smooth motion drives
    both arms; the joint positions and the commands sent are recorded as observation.state and action.
    Needs `pip install 'streamrec[sim]'`."""

    type: ClassVar[str] = "sim"
    env: str = "gym_aloha/AlohaInsertion-v0"
    """gym-aloha environment: gym_aloha/AlohaInsertion-v0 (peg and socket) or gym_aloha/AlohaTransferCube-v0
    (a cube); the same for every sim camera (they share one simulation)."""
    camera: str | None = None
    """Camera of the scene to render (top, angle, front_close, left_pillar, right_pillar, left_wrist,
    right_wrist); null uses the camera's name. Two cameras may render the same one."""
    width: int = 640
    """Image width in pixels (even, >= 16)."""
    height: int = 480
    """Image height in pixels (even, >= 16)."""
    seed: int = 0
    """Seeds where the objects are placed and how the arms move; episode k uses seed + k. The same for every
    sim camera."""
    shadows: bool = False
    """Render shadows. Off by default: with software OpenGL (no GPU) they make a render about 4x slower
    (640x480 here: 68 instead of 17 ms)."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"SimCameraConfig.{name} = {getattr(self, name)!r}: {rule}")

        if self.env not in SIM_ENVS:
            raise bad("env", f"must be one of {sorted(SIM_ENVS)}")
        if self.camera is not None and (not isinstance(self.camera, str) or not self.camera):
            raise bad("camera", "must be the name of a camera of the scene, such as 'top', or null for the "
                      "camera's own name")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 16 or value % 2:
                raise bad(name, "must be an even integer >= 16 (the encoders need even sizes)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "must be an integer >= 0")
        if not isinstance(self.shadows, bool):
            raise bad("shadows", "must be true or false")


def _positive_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


CameraConfig = SyntheticCameraConfig | FootageCameraConfig | OpenCVCameraConfig | SimCameraConfig


def camera_config(name: str, spec: Mapping[str, Any] | None) -> CameraConfig:
    """Turn one camera's spec from `--cameras` (a mapping with an optional `type`) into its config.

    Raises:
        ConfigError: unknown type or parameter, or a bad value; the message names the camera.
    """
    if not isinstance(name, str) or not name or "/" in name or "." in name:
        raise ConfigError(f"cameras: camera name {name!r} must be a non-empty string without '/' or '.'")
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"cameras.{name} = {spec!r}: must be a mapping such as {{type: synthetic, width: 640}}")
    kind = spec.get("type", "synthetic")
    if kind not in CAMERA_TYPES:
        raise ConfigError(f"cameras.{name}.type = {kind!r}: must be one of {sorted(CAMERA_TYPES)}")
    config_cls = CAMERA_TYPES[kind][0]
    allowed = [f.name for f in fields(config_cls)]
    for key in spec:
        if key != "type" and key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"cameras.{name}.{key}: a {kind} camera has no parameter {key!r}; {hint}"
                              f"it takes {['type', *allowed]}")
    try:
        return config_cls(**{k: v for k, v in spec.items() if k != "type"})
    except TypeError as e:  # a required parameter is missing
        raise ConfigError(f"cameras.{name}: {e}".replace(f"{config_cls.__name__}.__init__() ", "")) from None
    except ConfigError as e:
        raise ConfigError(f"cameras.{name}: {e}") from None


# -- camera sources -------------------------------------------------------------------------------


class CameraSource(abc.ABC):
    """One camera: `open()` once, `read()` once per tick, `close()` once (safe to repeat).

    Args:
        name: The camera's name (the `<name>` of `observation.images.<name>`).
        config: Its config dataclass.
    """

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self._open = False

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int, int]:
        """(height, width, 3) of the images `read()` returns; known once the source is open."""

    @abc.abstractmethod
    def _open_impl(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> np.ndarray:
        """The next image, (H, W, 3) uint8 RGB; valid until the next call."""

    def _close_impl(self) -> None:  # noqa: B027 - most sources hold nothing to release
        pass

    def read_timed(self) -> tuple[np.ndarray, float]:
        """The next image and its capture time (wall clock, seconds since the epoch).

        This default stamps the image when `read()` returns; a source whose driver stamps its
        frames (at exposure) overrides it to return that time instead.
        """
        image = self.read()
        return image, time.time()

    def open(self) -> None:
        """Acquire the camera (or decode the clip).

        Raises:
            SourceError: it could not be opened; the message names the camera and the cause.
        """
        try:
            self._open_impl()
        except SourceError:
            raise
        except Exception as e:
            raise SourceError(f"camera {self.name!r} ({self.config.type}): could not open: {e}") from e
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._close_impl()

    def __enter__(self) -> CameraSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"{self.shape[1]}x{self.shape[0]}" if self._open else "closed"
        return f"<{type(self).__name__} {self.name!r} {state}>"


@dataclass(frozen=True, slots=True)
class DigitLayout:
    """Where the frame number is drawn: `digits` seven-segment digits in a dark panel at top left."""

    top: int
    left: int
    height: int
    """Digit height in pixels."""
    width: int
    stroke: int
    gap: int
    digits: int

    @classmethod
    def for_shape(cls, height: int, width: int) -> DigitLayout:
        dh = max(10, height // 4)
        dw, stroke, gap = dh // 2, max(2, dh // 8), max(2, dh // 6)
        margin = max(2, height // 32)
        digits = max(1, min(6, (width - 3 * margin) // (dw + gap)))
        return cls(2 * margin, 2 * margin, dh, dw, stroke, gap, digits)

    def segments(self, position: int) -> dict[str, tuple[slice, slice]]:
        """Row and column slices of the 7 segments (a..g, clockwise from the top, g in the middle)."""
        t, s = self.top, self.stroke
        x = self.left + position * (self.width + self.gap)
        mid = t + (self.height - s) // 2
        w, h = self.width, self.height
        return {
            "a": (slice(t, t + s), slice(x, x + w)),
            "b": (slice(t, mid + s), slice(x + w - s, x + w)),
            "c": (slice(mid, t + h), slice(x + w - s, x + w)),
            "d": (slice(t + h - s, t + h), slice(x, x + w)),
            "e": (slice(mid, t + h), slice(x, x + s)),
            "f": (slice(t, mid + s), slice(x, x + s)),
            "g": (slice(mid, mid + s), slice(x, x + w)),
        }

    @property
    def panel(self) -> tuple[slice, slice]:
        pad = self.gap
        right = self.left + self.digits * (self.width + self.gap) - self.gap
        return slice(self.top - pad, self.top + self.height + pad), slice(self.left - pad, right + pad)


SEGMENTS_OF_DIGIT = ("abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg")
"""Seven-segment encoding of 0..9."""


class SyntheticSource(CameraSource):
    """A test scene that costs an encoder about what a robot camera does: a static textured
    background with sensor-like noise, a textured object sweeping across it, and the frame
    number (since open) drawn as large seven-segment digits.

    Everything expensive happens once in `open()`; a read is one frame copy, one small patch
    copy and a few dozen rectangle fills, well under a millisecond at 640x480.
    """

    _VARIANTS = 4
    """Noise variants of the background; consecutive frames use different ones."""
    _NOISE_SIGMA = 2.0
    """Standard deviation of the per-pixel noise, in 8-bit levels (a camera in good light)."""
    _OBJECT_FRACTION = 0.25
    """Side of the moving object as a fraction of the frame height."""
    _PERIOD_FRAMES = 150
    """Frames for the object to sweep back and forth once (5 s at 30 fps)."""

    config: SyntheticCameraConfig

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.config.height, self.config.width, 3)

    def _open_impl(self) -> None:
        h, w = self.config.height, self.config.width
        seed = self.config.seed
        if seed is None:
            seed = sum(ord(c) * 31**i for i, c in enumerate(self.name)) % 2**32
        rng = np.random.default_rng(seed)
        x = np.arange(w, dtype=np.float32)[None, :, None]
        y = np.arange(h, dtype=np.float32)[:, None, None]
        phase = rng.uniform(0, 2 * math.pi, 3).astype(np.float32)
        # Smooth shading plus 16-pixel blocks: edges and texture like a table and a wall.
        waves = 50 * np.sin(2 * math.pi * 2 * x / w + phase) + 30 * np.cos(2 * math.pi * 2 * y / h + phase)
        blocks = rng.integers(-20, 21, (h // 16 + 1, w // 16 + 1, 3)).astype(np.float32)
        blocks = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:h, :w]
        base = 128 + waves + blocks
        self._backgrounds = [np.clip(base + rng.normal(0, self._NOISE_SIGMA, base.shape), 0, 255).astype(np.uint8)
                             for _ in range(self._VARIANTS)]
        side = max(8, int(h * self._OBJECT_FRACTION)) // 2 * 2
        checker = (np.indices((side, side)).sum(axis=0) // 8 % 2)[..., None]
        self._object = np.where(checker, rng.integers(150, 256, 3), rng.integers(0, 100, 3)).astype(np.uint8)
        self._out = np.empty((h, w, 3), np.uint8)
        self._layout = DigitLayout.for_shape(h, w)
        self._count = 0

    def read(self) -> np.ndarray:
        i = self._count
        self._count += 1
        h, w = self.config.height, self.config.width
        np.copyto(self._out, self._backgrounds[i % self._VARIANTS])
        side = self._object.shape[0]
        # Back and forth along the lower half, bobbing a little: like an arm reaching.
        t = 2 * math.pi * i / self._PERIOD_FRAMES
        x0 = int((w - side) * (0.5 - 0.5 * math.cos(t)))
        y0 = int((h - side) * (0.7 + 0.2 * math.sin(2 * t)))
        self._out[y0: y0 + side, x0: x0 + side] = self._object
        draw_number(self._out, i, self._layout)
        return self._out


def draw_number(image: np.ndarray, number: int, layout: DigitLayout) -> None:
    """Draw the last `layout.digits` decimal digits of `number`, zero-padded, white on black."""
    image[layout.panel] = 0
    text = str(number % 10**layout.digits).zfill(layout.digits)
    for position, char in enumerate(text):
        segments = layout.segments(position)
        for seg in SEGMENTS_OF_DIGIT[int(char)]:
            image[segments[seg]] = 255


class FootageSource(CameraSource):
    """Replays `<camera>.mkv` of a clip folder; decodes every frame at open, then loops.

    `frame_index` is the clip frame the last `read()` returned, so `FootageRobot` can give the
    state recorded with it.
    """

    config: FootageCameraConfig

    @property
    def folder(self) -> Path:
        return Path(self.config.path)

    @property
    def camera(self) -> str:
        return self.config.camera or self.name

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._frames[0].shape  # type: ignore[return-value]

    @property
    def frame_count(self) -> int:
        """Frames decoded from the clip (the loop length)."""
        return len(self._frames)

    def _open_impl(self) -> None:
        import av

        folder = self.folder
        if not folder.is_dir():
            raise SourceError(f"camera {self.name!r} (footage): {folder} is not a folder")
        video = folder / f"{self.camera}.mkv"
        if not video.is_file():
            have = sorted(p.stem for p in folder.glob("*.mkv"))
            raise SourceError(f"camera {self.name!r} (footage): {folder} has no camera {self.camera!r}; "
                              f"it has {have} (set `camera:` in the spec)")
        limit = self.config.max_frames
        frames = []
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # FFV1 decodes slices in parallel
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24")
                image.flags.writeable = False  # shared by every loop of the clip
                frames.append(image)
                if limit is not None and len(frames) >= limit:
                    break
        if not frames:
            raise SourceError(f"camera {self.name!r} (footage): {video} holds no frames")
        if frames[0].shape[0] % 2 or frames[0].shape[1] % 2:
            raise SourceError(f"camera {self.name!r} (footage): {video} is {frames[0].shape[1]}x"
                              f"{frames[0].shape[0]}; the encoders need even sizes")
        self._frames = frames
        self.frame_index = -1

    def read(self) -> np.ndarray:
        self.frame_index = (self.frame_index + 1) % len(self._frames)
        return self._frames[self.frame_index]

    def _close_impl(self) -> None:
        self._frames = []


def _import_cv2(name: str) -> Any:
    """OpenCV is optional: imported only when an `opencv` camera opens."""
    try:
        import cv2
    except ImportError as e:
        raise SourceError(f"camera {name!r} (opencv): OpenCV is not installed ({e}); "
                          "pip install 'streamrec[opencv]'") from e
    return cv2


class OpenCVSource(CameraSource):
    """A camera read by `cv2.VideoCapture` on its own thread, `streamrec-camera-<name>`.

    The thread grabs frames as the camera delivers them, converts each to RGB (resizing only if
    the camera cannot deliver the configured size) and keeps the latest one with its capture
    time. `read_timed()` takes that frame without waiting for the camera, so a slow or stalled
    camera never holds up the capture loop or the other cameras; it raises `SourceError` once no
    new frame has arrived for `stall_timeout_s`. When no new frame arrived since the last read,
    the same frame (and capture time) is returned again.

    Three buffers rotate: the thread writes into its own, then swaps it with the "latest" one
    under the lock; a read swaps "latest" with the one it hands out. The thread never touches the
    buffer handed out, so no frame is copied and it stays valid until the next read.

    A video file is played at its frame rate (or `fps`), like a camera, and starts again at its
    end (reopened), so a short clip can stand in for a camera in demos and tests.
    """

    config: OpenCVCameraConfig

    _RETRY_S = 0.01
    """Wait after a failed grab or reopen before trying again, so that a dead camera does not spin a core."""
    _JOIN_MARGIN_S = 10.0
    """close() waits this much longer than stall_timeout_s for the thread: V4L2 gives up a grab after ~10 s."""

    def __init__(self, name: str, config: OpenCVCameraConfig) -> None:
        super().__init__(name, config)
        self._kind = "device"
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first = threading.Event()
        self._lock = threading.Lock()
        self._shape: tuple[int, int, int] | None = None
        self._reset()

    def _reset(self) -> None:
        # Owned by the thread: the buffer it writes into.
        self._back: np.ndarray | None = None
        self._resize_warned = False
        # Shared, under the lock.
        self._ready: np.ndarray | None = None
        self._ready_time = 0.0
        self._fresh = False
        self._last_frame_at = 0.0
        self._last_error: str | None = None
        self._failure: BaseException | None = None
        self.frames_read = 0  # frames taken from the camera since open
        # Owned by the reader (the capture loop): the buffer last handed out.
        self._front: np.ndarray | None = None
        self._front_time = 0.0

    @property
    def shape(self) -> tuple[int, int, int]:
        assert self._shape is not None, "known once the source is open"
        return self._shape

    @property
    def what(self) -> str:
        """The camera as a person would name it: `device 0`, `file clip.mp4`, `stream rtsp://...`."""
        return f"{self._kind} {self.config.index_or_path}"

    def _open_impl(self) -> None:
        cv2 = _import_cv2(self.name)
        target = self.config.index_or_path
        self._kind = ("device" if isinstance(target, int) else "stream" if "://" in target
                      else "file" if Path(target).is_file() else "device")  # /dev/video0 is not a regular file
        self._reset()
        self._stop.clear()
        self._first.clear()
        capture = self._open_capture(cv2)
        period_s = None
        if self._kind == "file":
            fps = self.config.fps or capture.get(cv2.CAP_PROP_FPS)
            period_s = 1.0 / fps if 0 < fps <= 1000 else 1.0 / 30  # some containers report 0 or nonsense
        self._thread = threading.Thread(target=self._run, args=(cv2, capture, period_s),
                                        name=f"streamrec-camera-{self.name}")
        self._thread.start()
        self._first.wait(self.config.warmup_s)
        with self._lock:
            failure, frames, error = self._failure, self.frames_read, self._last_error
        if failure is None and frames:
            return
        self._stop_thread()
        if failure is not None:
            raise SourceError(f"camera {self.name!r} (opencv): {self.what}: {failure}") from failure
        raise SourceError(f"camera {self.name!r} (opencv): {self.what} opened but gave no frame within "
                          f"warmup_s = {self.config.warmup_s:g} s; last error: {error or 'none'}")

    def _open_capture(self, cv2: Any) -> Any:
        """A new, opened VideoCapture; OSError saying why not (the base class names the camera)."""
        target = self.config.index_or_path
        if self._kind == "stream":
            # Bound the FFmpeg backend's blocking calls, so a dead server cannot hang open() or close().
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(self.config.warmup_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(self.config.stall_timeout_s * 1000)]
            capture = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        else:
            if isinstance(target, str) and not Path(target).exists():
                raise OSError(f"{target} does not exist")
            capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            raise OSError(f"OpenCV could not open {self.what}")
        if self._kind == "device":
            # Requests only: a camera picks its nearest mode; the size it really delivers is checked per frame.
            if self.config.width is not None:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
            if self.config.fps is not None:
                capture.set(cv2.CAP_PROP_FPS, self.config.fps)
        return capture

    def _run(self, cv2: Any, capture: Any, period_s: float | None) -> None:
        """The reader thread: grab until stopped; a file is paced to `period_s` and reopened at its end."""
        bgr = None
        due = None
        frames_since_open = 0
        try:
            while not self._stop.is_set():
                if capture is None:
                    try:
                        capture = self._open_capture(cv2)
                        frames_since_open = 0
                    except OSError as e:
                        self._note_error(f"could not reopen: {e}")
                        self._stop.wait(self._RETRY_S)
                        continue
                if not capture.grab():
                    if self._kind == "file" and frames_since_open:
                        capture.release()  # end of the file: play it again
                        capture = None
                        continue
                    self._note_error(f"grab() got no frame from {self.what}")
                    self._stop.wait(self._RETRY_S)
                    continue
                frames_since_open += 1
                if period_s is not None:
                    # Play a file at its frame rate, as a camera would deliver it, not as fast as it decodes.
                    now = time.monotonic()
                    due = now if due is None or now > due + period_s else due
                    if self._stop.wait(max(0.0, due - now)):
                        break
                    due += period_s
                captured_at = time.time()
                ok, bgr = capture.retrieve(bgr)
                if not ok or bgr is None:
                    self._note_error(f"retrieve() could not decode the frame grabbed from {self.what}")
                    continue
                self._publish(cv2, bgr, captured_at)
        except BaseException as e:  # stored, and raised by the next read() in the capture loop
            with self._lock:
                self._failure = e
        finally:
            if capture is not None:
                capture.release()
            self._first.set()  # wake open() at once if the thread ends before a first frame

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message

    def _publish(self, cv2: Any, bgr: np.ndarray, captured_at: float) -> None:
        if self._back is None:  # the first frame decides the buffers' size
            if self.config.width is not None:
                h, w = self.config.height, self.config.width
            else:
                h, w = bgr.shape[:2]
                if h % 2 or w % 2:
                    raise SourceError(f"it delivers {w}x{h} images; the encoders need even sizes: set width and "
                                      "height in the camera's spec (frames are then resized)")
            self._shape = (h, w, 3)
            self._back, self._ready, self._front = (np.zeros(self._shape, np.uint8) for _ in range(3))
        h, w, _ = self.shape
        if bgr.shape[:2] != (h, w):
            if not self._resize_warned:
                self._resize_warned = True
                log.warning("camera %r (opencv): %s delivers %dx%d, not the configured %dx%d; resizing every "
                            "frame (costs CPU; pick a size the camera supports to avoid it)",
                            self.name, self.what, bgr.shape[1], bgr.shape[0], w, h)
            bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        code = (cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGRA2RGB if bgr.shape[2] == 4
                else cv2.COLOR_BGR2RGB)
        self._back = cv2.cvtColor(bgr, code, dst=self._back)  # writes into _back; keep what it returns anyway
        with self._lock:
            self._back, self._ready = self._ready, self._back
            self._ready_time = captured_at
            self._fresh = True
            self._last_frame_at = time.monotonic()
            self.frames_read += 1
        self._first.set()

    def read_timed(self) -> tuple[np.ndarray, float]:
        """The latest frame and its capture time (time.time() when it was grabbed); never waits for the camera.

        Raises:
            SourceError: no new frame for `stall_timeout_s`, or the reader thread failed; the message
                names the camera and its last error.
        """
        with self._lock:
            if self._fresh:
                self._front, self._ready = self._ready, self._front
                self._front_time, self._fresh = self._ready_time, False
            silent_s = time.monotonic() - self._last_frame_at
            failure, error = self._failure, self._last_error
        if failure is not None:
            raise SourceError(f"camera {self.name!r} (opencv): reading {self.what} failed: {failure}") from failure
        if silent_s > self.config.stall_timeout_s:
            raise SourceError(f"camera {self.name!r} (opencv): no new frame from {self.what} for {silent_s:.1f} s "
                              f"(stall_timeout_s = {self.config.stall_timeout_s:g}); last error: {error or 'none'}")
        assert self._front is not None
        return self._front, self._front_time

    def read(self) -> np.ndarray:
        return self.read_timed()[0]

    def _close_impl(self) -> None:
        self._stop_thread()
        self._back = self._ready = self._front = None

    def _stop_thread(self) -> None:
        """Stop the thread and wait for it; it releases the capture itself (never while it is inside a grab)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(self.config.stall_timeout_s + self._JOIN_MARGIN_S)
        if thread.is_alive():
            log.warning("camera %r (opencv): its reader thread is still blocked in the camera driver; "
                        "leaving it to finish on its own", self.name)


# -- simulation -----------------------------------------------------------------------------------

_GL_BACKENDS = ("egl", "osmesa")
"""Headless OpenGL for MuJoCo, in the order tried: EGL (a GPU's, or Mesa's software renderer), then OSMesa."""
_GL_PROBE = "import mujoco; context = mujoco.GLContext(16, 16); context.make_current(); context.free()"
_GL_PROBE_TIMEOUT_S = 60.0


def choose_gl_backend() -> str:
    """Set MUJOCO_GL (and PYOPENGL_PLATFORM) for rendering without a window, before MuJoCo is imported.

    A MUJOCO_GL set by the user is kept. Otherwise, on Linux, each of `_GL_BACKENDS` is tried in a
    short-lived child process, because the choice is fixed once MuJoCo and PyOpenGL are imported: a
    backend that failed in this process could not be swapped for the next one.

    Returns:
        The backend in use.

    Raises:
        SourceError: no backend could make a context; the message gives each one's error.
    """
    import platform
    import subprocess
    import sys

    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen or platform.system() != "Linux":
        return chosen or "default"
    if "mujoco" in sys.modules:  # already imported without MUJOCO_GL: too late to choose
        return "default"
    errors = []
    for backend in _GL_BACKENDS:
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        try:
            probe = subprocess.run([sys.executable, "-c", _GL_PROBE], env=env, capture_output=True, text=True,
                                   timeout=_GL_PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            errors.append(f"{backend}: no context within {_GL_PROBE_TIMEOUT_S:g} s")
            continue
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
        # The error is the traceback's last line; noise from destructors at exit may follow it.
        lines = probe.stderr.split("Exception ignored in")[0].strip().splitlines()
        errors.append(f"{backend}: {lines[-1] if lines else f'exit code {probe.returncode}'}")
    raise SourceError("no OpenGL for rendering without a window: " + "; ".join(errors) + ". Install Mesa's EGL "
                      "(apt-get install libegl1 libgl1-mesa-dri) or OSMesa (apt-get install libosmesa6), or set "
                      "MUJOCO_GL to a backend that works here")


_SIM_MODULES = ("gym_aloha", "gymnasium", "mujoco", "dm_control")


def _import_sim(camera: str) -> Any:
    """gym-aloha (with MuJoCo and dm_control) is optional: imported when the first sim camera opens.

    Whether they are installed is checked before anything is imported, since the OpenGL backend
    must be chosen before MuJoCo is (see `choose_gl_backend`).
    """
    import importlib.util

    missing = [name for name in _SIM_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise SourceError(f"camera {camera!r} (sim): the simulation needs gym-aloha and MuJoCo, not installed "
                          f"(no module {', '.join(missing)}); pip install 'streamrec[sim]'")
    choose_gl_backend()
    try:
        import gym_aloha
        import gymnasium
        import mujoco
        from gym_aloha import constants, utils
        from gym_aloha.tasks import sim
    except ImportError as e:
        raise SourceError(f"camera {camera!r} (sim): the simulation needs gym-aloha and MuJoCo, which are not "
                          f"installed ({e}); pip install 'streamrec[sim]'") from e
    return gym_aloha, gymnasium, mujoco, constants, utils, sim


class SimWorld:
    """One simulated ALOHA scene shared by the sim cameras of a recording, and its two arms.

    Each tick the cameras render the current state (a scene camera is rendered once per tick, however
    many camera keys show it), then `SimRobot.read()` takes the state, the command the scripted
    motion sends next, and steps the physics by one tick: `substeps` physics steps, the nearest to
    1/fps s of simulated time, so that the arms move at the speed a viewer of the video expects.

    The gym-aloha environment provides the model, the task (how an action drives the joints and
    grippers, where objects start) and the joint readout; its own `step()`/`reset()` are not used:
    they render three fixed 640x480 views each call (~200 ms here without a GPU) that would be
    thrown away, and step a fixed 20 ms whatever the recording's fps.

    Opened by the first camera that attaches, closed when the last one detaches.

    Args:
        env_id: A key of `SIM_ENVS`.
        seed: Episode k places the objects and moves the arms from seed + k.
        fps: Ticks per second of the recording.
    """

    _RAMP_S = 2.0
    """The motion grows from the home pose over this many seconds, so that an episode starts without a jump."""
    _FREQ_HZ = (0.08, 0.3)
    """Range of each joint's oscillation frequency: slow, like a person teleoperating."""
    _AMPLITUDE = np.array([0.35, 0.2, 0.2, 0.4, 0.35, 0.6, 0.45] * 2)
    """Peak offset from the home pose per action (radians; the gripper's in its 0..1 opening)."""

    def __init__(self, env_id: str, seed: int, fps: int) -> None:
        self.env_id = env_id
        self.seed = seed
        self.fps = fps
        self._users = 0
        self._renderers: dict[tuple[int, int], Any] = {}
        self._frames: dict[tuple[str, int, int, bool], np.ndarray] = {}
        self._fresh: set[tuple[str, int, int, bool]] = set()
        self.tick = 0
        self.episode = 0
        self.gl_backend = ""

    # -- lifecycle ---------------------------------------------------------------------------------

    def attach(self, camera: str) -> None:
        """A camera starts using the world; the first one opens it (SourceError if it cannot)."""
        if self._users == 0:
            self._open(camera)
        self._users += 1

    def detach(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._close()

    def _open(self, camera: str) -> None:
        _, gymnasium, self._mujoco, constants, self._utils, self._sim = _import_sim(camera)
        self.gl_backend = os.environ.get("MUJOCO_GL", "default")
        aloha = gymnasium.make(self.env_id, disable_env_checker=True).unwrapped
        self._env = aloha
        self._physics = aloha._env.physics  # the dm_control environment inside (see the class docstring)
        self._task = aloha._env.task
        self._task_name = SIM_ENVS[self.env_id]
        self.state_names = list(constants.JOINTS)
        self.action_names = list(constants.ACTIONS)
        timestep = float(self._physics.model.opt.timestep)
        self.substeps = max(1, round(1.0 / (self.fps * timestep)))
        self.tick_s = self.substeps * timestep
        arm = list(constants.START_ARM_POSE[:6])
        gripper = float(constants.normalize_puppet_gripper_position(constants.START_ARM_POSE[6]))
        self._home = np.array(arm + [gripper] + arm + [gripper])
        self.reset(0)

    def _close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self._frames.clear()
        self._env.close()

    @property
    def cameras(self) -> list[str]:
        """Names of the scene's cameras."""
        model = self._physics.model
        return [model.id2name(i, "camera") for i in range(model.ncam)]

    # -- per episode and per tick -----------------------------------------------------------------

    def reset(self, episode: int) -> None:
        """Arms to the home pose, objects to the places drawn from seed + episode; the motion starts over."""
        seed = self.seed + episode
        if self._task_name == "insertion":
            pose = np.concatenate(self._utils.sample_insertion_pose(seed))
        else:
            pose = self._utils.sample_box_pose(seed)
        self._sim.BOX_POSE[0] = pose  # gym-aloha's tasks read the objects' start pose from here
        with self._physics.reset_context():
            self._task.initialize_episode(self._physics)
        rng = np.random.default_rng(seed)
        self._freq_hz = rng.uniform(*self._FREQ_HZ, self._home.shape)
        self._phase = rng.uniform(0, 2 * math.pi, self._home.shape)
        self.episode = episode
        self.tick = 0
        self._fresh.clear()

    def render(self, camera: str, width: int, height: int, shadows: bool) -> np.ndarray:
        """The scene seen by `camera` now; rendered on the first call of the tick, then shared.

        The image is valid until the next tick's render of the same view.
        """
        key = (camera, width, height, shadows)
        if key not in self._fresh:
            renderer = self._renderers.get((width, height))
            if renderer is None:
                model = self._physics.model.ptr
                # The offscreen framebuffer must hold the image; the model's own is 640x480.
                model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
                model.vis.global_.offheight = max(model.vis.global_.offheight, height)
                renderer = self._renderers[(width, height)] = self._mujoco.Renderer(model, height, width)
            renderer.update_scene(self._physics.data.ptr, camera=camera)
            renderer.scene.flags[self._mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
            out = self._frames.get(key)
            if out is None:
                out = self._frames[key] = np.empty((height, width, 3), np.uint8)
            renderer.render(out=out)
            self._fresh.add(key)
        return self._frames[key]

    def state(self) -> np.ndarray:
        """Joint positions of both arms, grippers as their 0..1 opening (gym-aloha's `qpos` observation)."""
        return np.asarray(self._task.get_qpos(self._physics), np.float32)

    def action(self) -> np.ndarray:
        """What the scripted motion commands for the next tick: every joint swings smoothly about the home pose
        at its own slow frequency, growing in over the first `_RAMP_S` seconds."""
        t = (self.tick + 1) * self.tick_s
        ramp = min(1.0, t / self._RAMP_S)
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no jerk when the motion starts
        target = self._home + ramp * self._AMPLITUDE * np.sin(2 * math.pi * self._freq_hz * t + self._phase)
        for gripper in (6, 13):
            target[gripper] = min(1.0, max(0.0, target[gripper]))
        return target.astype(np.float32)

    def step(self, action: np.ndarray) -> None:
        """Send `action` and advance the physics by one tick."""
        self._task.before_step(np.asarray(action, np.float64), self._physics)
        self._physics.step(self.substeps)
        self._task.after_step(self._physics)
        self.tick += 1
        self._fresh.clear()


def sim_world(cameras: Mapping[str, CameraConfig], fps: int) -> SimWorld | None:
    """The one simulation the sim cameras among `cameras` share (None without sim cameras).

    Raises:
        ConfigError: the sim cameras disagree on `env` or `seed`.
    """
    sims = {name: c for name, c in cameras.items() if isinstance(c, SimCameraConfig)}
    if not sims:
        return None
    first_name, first = next(iter(sims.items()))
    for name, config in sims.items():
        for setting in ("env", "seed"):
            if getattr(config, setting) != getattr(first, setting):
                raise ConfigError(f"cameras.{name}.{setting} = {getattr(config, setting)!r}: sim cameras share one "
                                  f"simulation, so it must equal cameras.{first_name}.{setting} = "
                                  f"{getattr(first, setting)!r}")
    return SimWorld(first.env, first.seed, fps)


class SimSource(CameraSource):
    """Renders one camera of a `SimWorld` each tick (see `SimWorld` for who steps it).

    Args:
        name: The camera's name.
        config: Its `SimCameraConfig`.
        world: The simulation shared with the recording's other sim cameras; None gives the camera
            one of its own, at 30 fps.
    """

    config: SimCameraConfig

    def __init__(self, name: str, config: SimCameraConfig, world: SimWorld | None = None) -> None:
        super().__init__(name, config)
        self.world = world if world is not None else SimWorld(config.env, config.seed, fps=30)

    @property
    def camera(self) -> str:
        return self.config.camera or self.name

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.config.height, self.config.width, 3)

    def _open_impl(self) -> None:
        self.world.attach(self.name)
        if self.camera not in self.world.cameras:
            self.world.detach()
            hint = "" if self.config.camera else " (set `camera:` in the spec)"
            raise SourceError(f"camera {self.name!r} (sim): the scene has no camera {self.camera!r}; it has "
                              f"{self.world.cameras}{hint}")

    def read(self) -> np.ndarray:
        c = self.config
        return self.world.render(self.camera, c.width, c.height, c.shadows)

    def _close_impl(self) -> None:
        self.world.detach()


CAMERA_TYPES: dict[str, tuple[type, type[CameraSource]]] = {
    "synthetic": (SyntheticCameraConfig, SyntheticSource),
    "footage": (FootageCameraConfig, FootageSource),
    "opencv": (OpenCVCameraConfig, OpenCVSource),
    "sim": (SimCameraConfig, SimSource),
}
"""Camera `type` -> (config class, source class)."""


def make_source(name: str, config: CameraConfig, *, world: SimWorld | None = None) -> CameraSource:
    """The (unopened) source for a camera config; a sim camera renders `world` (see `sim_world`)."""
    if isinstance(config, SimCameraConfig):
        return SimSource(name, config, world)
    return CAMERA_TYPES[config.type][1](name, config)


# -- robot state ----------------------------------------------------------------------------------


class RobotSource(abc.ABC):
    """Table features read once per tick, after the cameras: `observation.state` and `action`."""

    @property
    @abc.abstractmethod
    def features(self) -> dict[str, dict[str, Any]]:
        """Feature specs for `DatasetRecorder.create`."""

    @abc.abstractmethod
    def read(self) -> dict[str, np.ndarray]:
        """One value per feature for the current tick."""

    def start_episode(self, index: int) -> None:  # noqa: B027 - only a simulated robot has a scene to reset
        """Called before episode `index` (0-based) is recorded, again if it is recorded again."""


class SyntheticRobot(RobotSource):
    """A small made-up arm so that a camera-only recording still has table features: slow
    sinusoids of wall time, and an action that leads the state by one tick."""

    def __init__(self, dim: int = 6, fps: int = 30) -> None:
        self.dim = dim
        self._lead_s = 1.0 / fps
        self._freq = np.linspace(0.1, 0.5, dim)
        self._t0 = time.monotonic()

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        names = [f"joint_{i}" for i in range(self.dim)]
        return {"observation.state": {"dtype": "float32", "shape": [self.dim], "names": names},
                "action": {"dtype": "float32", "shape": [self.dim], "names": names}}

    def read(self) -> dict[str, np.ndarray]:
        t = time.monotonic() - self._t0
        return {"observation.state": np.sin(2 * np.pi * self._freq * t).astype(np.float32),
                "action": np.sin(2 * np.pi * self._freq * (t + self._lead_s)).astype(np.float32)}


class FootageRobot(RobotSource):
    """The `observation.state` and `action` rows of `data.npz` that belong to the frame a
    footage camera returned last."""

    def __init__(self, camera: FootageSource) -> None:
        self.camera = camera
        path = camera.folder / "data.npz"
        try:
            with np.load(path) as data:
                self._state = np.asarray(data["observation.state"], np.float32)
                self._action = np.asarray(data["action"], np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise SourceError(f"camera {camera.name!r} (footage): cannot read observation.state and action "
                              f"from {path}: {e}") from e
        n = camera.frame_count
        if len(self._state) < n or len(self._action) < n:
            raise SourceError(f"camera {camera.name!r} (footage): {path} has {len(self._state)} rows for "
                              f"{n} video frames")
        self._names = None
        manifest = camera.folder / "manifest.json"
        if manifest.is_file():
            import json

            names = json.loads(manifest.read_text()).get("state_names")
            if isinstance(names, list) and len(names) == self._state.shape[1]:
                self._names = names

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        dim = int(self._state.shape[1])
        return {"observation.state": {"dtype": "float32", "shape": [dim], "names": self._names},
                "action": {"dtype": "float32", "shape": [dim], "names": self._names}}

    def read(self) -> dict[str, np.ndarray]:
        i = max(self.camera.frame_index, 0)
        return {"observation.state": self._state[i], "action": self._action[i]}


class SimRobot(RobotSource):
    """The arms of a `SimWorld`: each `read()` returns the joint state the cameras just showed and the
    command the scripted motion sends, then steps the simulation with that command.

    So row i holds the image and state at tick i and the action taken from there, as a policy would
    see them; the next row shows where that action led.
    """

    def __init__(self, world: SimWorld) -> None:
        self.world = world

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        w = self.world
        return {"observation.state": {"dtype": "float32", "shape": [len(w.state_names)], "names": w.state_names},
                "action": {"dtype": "float32", "shape": [len(w.action_names)], "names": w.action_names}}

    def start_episode(self, index: int) -> None:
        self.world.reset(index)

    def read(self) -> dict[str, np.ndarray]:
        state = self.world.state()
        action = self.world.action()
        self.world.step(action)
        return {"observation.state": state, "action": action}
