"""Camera sources for `streamrec record`, and the robot state that goes with them.

A camera source is opened once, then read once per tick by the capture loop; `read()` returns
an (H, W, 3) uint8 RGB image. Like a camera driver, a source may reuse its buffer: the image is
valid until the next `read()` (the recorder copies what it queues). New kinds of camera (a
simulator) slot in by adding a config dataclass and a `CameraSource` subclass to
`CAMERA_TYPES`.

Built so far:

| type | config | what it produces |
| --- | --- | --- |
| `synthetic` | `SyntheticCameraConfig` | a scrolling, textured, noisy pattern showing the frame number |
| `footage` | `FootageCameraConfig` | a recorded clip folder (see /work/shared/footage), looped |
| `opencv` | `OpenCVCameraConfig` | a USB/V4L2 camera, a video file (played in real time, looped) or an RTSP URL |

`opencv` needs the optional dependency: `pip install 'streamrec[opencv]'`.
"""

from __future__ import annotations

import abc
import difflib
import logging
import math
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


def _positive_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


CameraConfig = SyntheticCameraConfig | FootageCameraConfig | OpenCVCameraConfig


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


CAMERA_TYPES: dict[str, tuple[type, type[CameraSource]]] = {
    "synthetic": (SyntheticCameraConfig, SyntheticSource),
    "footage": (FootageCameraConfig, FootageSource),
    "opencv": (OpenCVCameraConfig, OpenCVSource),
}
"""Camera `type` -> (config class, source class)."""


def make_source(name: str, config: CameraConfig) -> CameraSource:
    """The (unopened) source for a camera config."""
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
