"""The `--cameras` settings: one config dataclass per camera type, checked when built."""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .._errors import ConfigError

log = logging.getLogger("streamrec")


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
            _even_size("SyntheticCameraConfig", name, getattr(self, name))
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
    color_mode: str = "rgb"
    """Channel order stored, as LeRobot's OpenCV camera has it: rgb (what training code expects), or bgr
    (OpenCV's own order, kept as it comes)."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"OpenCVCameraConfig.{name} = {getattr(self, name)!r}: {rule}")

        if self.color_mode not in ("rgb", "bgr"):
            raise bad("color_mode", "must be rgb or bgr")

        value = self.index_or_path
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "" or (
                isinstance(value, int) and value < 0):
            raise bad("index_or_path", "must be a device index >= 0, or a device path, video file or URL")
        for name in ("width", "height"):
            if getattr(self, name) is not None:
                _even_size("OpenCVCameraConfig", name, getattr(self, name), ", or null")
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
    depth: bool = False
    """Also record what the camera sees as depth (MuJoCo's depth buffer, uint16 mm; nothing within 10 m reads
    0, no reading) as the depth camera <name>_depth."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"SimCameraConfig.{name} = {getattr(self, name)!r}: {rule}")

        if self.env not in SIM_ENVS:
            raise bad("env", f"must be one of {sorted(SIM_ENVS)}")
        if self.camera is not None and (not isinstance(self.camera, str) or not self.camera):
            raise bad("camera", "must be the name of a camera of the scene, such as 'top', or null for the "
                      "camera's own name")
        for name in ("width", "height"):
            _even_size(type(self).__name__, name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "must be an integer >= 0")
        for name in ("shadows", "depth"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")


def _even_size(cls: str, name: str, value: object, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 16 or value % 2:
        raise ConfigError(f"{cls}.{name} = {value!r}: must be an even integer >= 16 (the encoders need even "
                          f"sizes){alternative}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticDepthCameraConfig:
    """A generated depth camera (uint16 mm): a table and a wall seen from 1 m above, a box and a ball moving, with
    a stereo sensor's noise (1 mm at 1 m, growing with the square of the distance) and holes (0, no reading).
    The same for the same seed and frame; no hardware."""

    type: ClassVar[str] = "synthetic_depth"
    width: int = 640
    """Image width in pixels (even, >= 16)."""
    height: int = 480
    """Image height in pixels (even, >= 16)."""
    seed: int = 0
    """Seed of the noise, the holes and the objects' paths."""

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            _even_size("SyntheticDepthCameraConfig", name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"SyntheticDepthCameraConfig.seed = {self.seed!r}: must be an integer >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class RealSenseCameraConfig:
    """An Intel RealSense (D400 series) through pyrealsense2: its colour stream as <name> and its depth (uint16
    mm, aligned to the colour image) as the depth camera <name>_depth, from one device picked by serial number,
    or played back from a recording made with the RealSense SDK. Needs `pip install 'streamrec[realsense]'`.
    Untested on a real device: the tests play back a recording made with the SDK's software device."""

    type: ClassVar[str] = "realsense"
    serial_number: str | None = None
    """The device's serial number (see `rs-enumerate-devices`); null takes the only one connected."""
    playback: str | None = None
    """A RealSense recording (.bag, or .db3 from librealsense 2.57 on) to play instead of a device; its own sizes
    and rate apply."""
    width: int = 640
    """Image width in pixels of both streams (even, >= 16)."""
    height: int = 480
    """Image height in pixels of both streams (even, >= 16)."""
    fps: int = 30
    """Frame rate to ask the device for (6, 15, 30, 60 or 90 on a D400)."""
    align: bool = True
    """Align depth to the colour image (pixel (r, c) of both shows the same point); false: the depth sensor's
    own view."""
    real_time: bool = True
    """Playback only: at the recording's pace (true), or every frame as fast as it is read (false)."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"RealSenseCameraConfig.{name} = {getattr(self, name)!r}: {rule}")

        if self.serial_number is not None and (not isinstance(self.serial_number, str) or not self.serial_number):
            raise bad("serial_number", "must be the device's serial number as a string (quoted in YAML), or null")
        if self.playback is not None and (not isinstance(self.playback, str) or not self.playback):
            raise bad("playback", "must be the path of a .bag or .db3 recording, or null")
        if self.serial_number is not None and self.playback is not None:
            raise bad("playback", "a camera is either a device (serial_number) or a recording (playback)")
        for name in ("width", "height"):
            _even_size("RealSenseCameraConfig", name, getattr(self, name))
        if isinstance(self.fps, bool) or not isinstance(self.fps, int) or self.fps <= 0:
            raise bad("fps", "must be an integer > 0 (6, 15, 30, 60 or 90 on a D400)")
        for name in ("align", "real_time"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")


def _positive_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


CameraConfig = (SyntheticCameraConfig | FootageCameraConfig | OpenCVCameraConfig | SimCameraConfig
                | SyntheticDepthCameraConfig | RealSenseCameraConfig)
CONFIG_TYPES: dict[str, type] = {c.type: c for c in (SyntheticCameraConfig, FootageCameraConfig, OpenCVCameraConfig,
                                                     SimCameraConfig, SyntheticDepthCameraConfig,
                                                     RealSenseCameraConfig)}
"""Camera `type` -> its config class."""


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
    if kind not in CONFIG_TYPES:
        raise ConfigError(f"cameras.{name}.type = {kind!r}: must be one of {sorted(CONFIG_TYPES)}")
    config_cls = CONFIG_TYPES[kind]
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
