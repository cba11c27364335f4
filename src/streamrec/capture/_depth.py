"""Depth camera sources: `read()` returns an (H, W, 1) uint16 depth image in millimetres, 0 where there is no
reading. Like the colour sources, a source may reuse its buffer until the next `read()`.

| type | config | what it produces |
| --- | --- | --- |
| `synthetic_depth` | `SyntheticDepthCameraConfig` | a table, a wall and two moving objects, sensor noise and holes |
| `sim`, `depth: true` | `SimCameraConfig` | the depth of a camera of the simulated ALOHA scene (MuJoCo) |
| `realsense` | `RealSenseCameraConfig` | an Intel RealSense's colour and depth, aligned (or a recording of one) |

A camera config may bring several sources (`camera_sources`): a sim camera with `depth: true` and a RealSense
give `<name>` in colour and `<name>_depth`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError
from ._configs import CameraConfig, RealSenseCameraConfig, SimCameraConfig, SyntheticDepthCameraConfig
from ._sim import SimSource, SimWorld, _import_sim
from ._source import CameraSource, SourceError

MM_MAX = 65535
DEPTH_SUFFIX = "_depth"
"""`<camera><suffix>`: the depth camera that goes with a colour camera (sim with depth, RealSense)."""
SIM_DEPTH_RANGE_M = 10.0
"""A sim depth pixel at or beyond this reads 0, as a real sensor's range ends; the scene's empty background is
MuJoCo's far plane, 83 m away."""


class DepthSource(CameraSource):
    """A source of (H, W, 1) uint16 millimetre images: recorded as a depth feature (info.is_depth_map)."""


def is_depth_source(source: CameraSource) -> bool:
    return isinstance(source, DepthSource)


# -- synthetic -------------------------------------------------------------------------------------------------


class SyntheticDepthSource(DepthSource):
    """What a depth camera 1 m above a table, tilted 35 degrees down, sees: the table plane (1.2 to 3 m away,
    nearer at the bottom of the image), a wall at 3 m behind it, a box sliding across the table and a ball
    circling above it. Noise grows with the square of the distance (1 mm at 1 m), as a stereo sensor's does;
    about 1 % of the pixels drop out, and a band beside the box that one of the two sensors cannot see (stereo
    shadow) reads 0.

    `frame(i)` is the image of frame i, whatever was read before; `read()` returns frame 0, 1, 2, ... since
    open. The noise and dropouts cycle through `_VARIANTS` precomputed patterns so that a read costs a few
    array copies, not a fresh random draw.
    """

    _VARIANTS = 8
    _CAMERA_HEIGHT_M = 1.0
    _TILT_RAD = math.radians(35)
    _WALL_M = 3.0
    _NOISE_PER_M2 = 0.001
    """Noise standard deviation (m) per square metre of depth."""
    _DROPOUT = 0.01
    _PERIOD = 120
    """Frames for the objects to go round once."""

    config: SyntheticDepthCameraConfig

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.config.height, self.config.width, 1)

    def _open_impl(self) -> None:
        h, w = self.config.height, self.config.width
        rng = np.random.default_rng(self.config.seed)
        self._focal = 0.8 * w  # about 70 degrees across, as a RealSense D435's depth stream
        y = (np.arange(h, dtype=np.float64)[:, None] - h / 2) / self._focal
        facing = np.cos(self._TILT_RAD) * y + np.sin(self._TILT_RAD)  # ray . floor normal, per row
        with np.errstate(divide="ignore"):
            floor = np.where(facing > 0, self._CAMERA_HEIGHT_M / facing, np.inf)
        self._floor_m = np.repeat(np.minimum(floor, self._WALL_M), w, axis=1)
        noise = rng.standard_normal((self._VARIANTS, h, w)) * (self._NOISE_PER_M2 * self._floor_m**2)
        scene = np.rint((self._floor_m + noise) * 1000)
        scene[rng.random(scene.shape) < self._DROPOUT] = 0
        self._backgrounds = np.clip(scene, 0, MM_MAX).astype(np.uint16)
        self._ball_noise = rng.standard_normal((self._VARIANTS, h, w)).astype(np.float32)
        self._out = np.empty((h, w, 1), np.uint16)
        self._count = 0

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` of the scene, (H, W, 1) uint16 mm (a new array)."""
        h, w = self.config.height, self.config.width
        out = self._backgrounds[index % self._VARIANTS].copy()
        t = 2 * math.pi * (index % self._PERIOD) / self._PERIOD
        # The box: its front face 0.25 m nearer than the table where it stands, sliding left and right.
        bw, bh = w // 5, h // 5
        x0 = int((w - bw) * (0.5 + 0.45 * math.sin(t)))
        y0 = int(h * 0.55)
        box_mm = int(self._floor_m[min(h - 1, y0 + bh), 0] * 1000) - 250
        shadow = max(2, w // 64)
        out[y0: y0 + bh, max(0, x0 - shadow): x0] = 0  # stereo shadow on its left
        out[y0: y0 + bh, x0: x0 + bw] = box_mm + (index % 7)
        # The ball: a sphere of radius 0.12 m, 1.4 m away, going round above the table.
        radius_px = max(4, int(0.12 * self._focal / 1.4))
        cx = int(w / 2 + 0.3 * w * math.cos(t))
        cy = int(h * 0.3 + 0.1 * h * math.sin(t))
        ys, xs = np.ogrid[-radius_px: radius_px + 1, -radius_px: radius_px + 1]
        inside = (ys**2 + xs**2) <= radius_px**2
        bulge = np.sqrt(np.clip(1 - (ys**2 + xs**2) / radius_px**2, 0, 1))
        ball_m = 1.4 - 0.12 * bulge
        rows = slice(max(0, cy - radius_px), min(h, cy + radius_px + 1))
        cols = slice(max(0, cx - radius_px), min(w, cx + radius_px + 1))
        sub = (slice(rows.start - (cy - radius_px), rows.stop - (cy - radius_px)),
               slice(cols.start - (cx - radius_px), cols.stop - (cx - radius_px)))
        noise = self._ball_noise[index % self._VARIANTS][rows, cols] * (self._NOISE_PER_M2 * 1.4**2)
        ball_mm = np.rint((ball_m[sub] + noise) * 1000).astype(np.uint16)
        patch = out[rows, cols]
        patch[inside[sub]] = ball_mm[inside[sub]]
        return out[..., None]

    def read(self) -> np.ndarray:
        np.copyto(self._out, self.frame(self._count))
        self._count += 1
        return self._out


# -- MuJoCo ------------------------------------------------------------------------------------------------------


class SimDepthSource(DepthSource):
    """The depth of one camera of a `SimWorld`, rendered each read by its own MuJoCo renderer in depth mode (made
    on the first read, in the capture thread that owns the OpenGL context), from the state the colour cameras
    of the same tick show.

    Args:
        name: The depth camera's name (`<colour camera>_depth`).
        config: The colour camera's `SimCameraConfig` (its scene camera and size).
        world: The simulation shared with the recording's other sim cameras.
        scene_camera: The scene camera to render (the colour camera's).
    """

    config: SimCameraConfig

    def __init__(self, name: str, config: SimCameraConfig, world: SimWorld, scene_camera: str) -> None:
        super().__init__(name, config)
        self.world = world
        self.camera = scene_camera
        self._renderer: Any = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.config.height, self.config.width, 1)

    def _open_impl(self) -> None:
        _import_sim(self.name)
        self.world.attach(self.name)
        if self.camera not in self.world.cameras:
            self.world.detach()
            raise SourceError(f"camera {self.name!r} (sim depth): the scene has no camera {self.camera!r}; it has "
                              f"{self.world.cameras}")
        self._out = np.empty(self.shape, np.uint16)

    def metres(self) -> np.ndarray:
        """The depth MuJoCo renders now, (H, W) float32 metres along the camera axis (the far plane where the
        scene is empty)."""
        c, world = self.config, self.world
        if self._renderer is None:
            mujoco = world._mujoco  # SimWorld's MuJoCo module and physics: the scene the colour cameras render
            model = world._physics.model.ptr
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, c.width)
            model.vis.global_.offheight = max(model.vis.global_.offheight, c.height)
            self._renderer = mujoco.Renderer(model, c.height, c.width)
            self._renderer.enable_depth_rendering()
        self._renderer.update_scene(world._physics.data.ptr, camera=self.camera)
        return self._renderer.render()

    def read_into(self, out: np.ndarray) -> float:
        metres = self.metres()
        beyond = metres >= SIM_DEPTH_RANGE_M
        np.multiply(metres, 1000, out=metres)
        np.rint(metres, out=metres)
        metres[beyond] = 0
        np.copyto(out[..., 0], metres, casting="unsafe")
        return time.time()

    def read(self) -> np.ndarray:
        self.read_into(self._out)
        return self._out

    def _close_impl(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.world.detach()


# -- RealSense ----------------------------------------------------------------------------------------------------


def _import_realsense(camera: str) -> Any:
    try:
        import pyrealsense2
    except ImportError as e:
        raise SourceError(f"camera {camera!r} (realsense): needs pyrealsense2, which is not installed ({e}); "
                          "pip install 'streamrec[realsense]'") from e
    return pyrealsense2


class RealSenseDevice:
    """One RealSense pipeline shared by the colour and the depth source of a camera.

    Both sources see the same frameset each tick whatever order they read in: a source that has already had
    the current frameset fetches the next one. Untested on hardware (see `RealSenseCameraConfig`); playback
    through librealsense 2.59's pipeline loses frames at the start of a recording, a different number each run.
    """

    _TIMEOUT_MS = 5000
    _PLAYBACK_END_MS = 1000
    """A recording that delivers nothing for this long has ended."""

    def __init__(self, name: str, config: RealSenseCameraConfig) -> None:
        self.name = name
        self.config = config
        self._users = 0
        self.serial = 0
        """Count of framesets fetched so far."""
        self.color: np.ndarray | None = None
        self.depth: np.ndarray | None = None
        self.color_size = (config.height, config.width)
        self.depth_size = (config.height, config.width)
        """(height, width) of the streams once started (a recording brings its own)."""
        self.captured_at = 0.0
        self.depth_scale_mm = 1.0

    def attach(self) -> None:
        if self._users == 0:
            self._open()
        self._users += 1

    def detach(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._pipeline.stop()

    def _open(self) -> None:
        rs = _import_realsense(self.name)
        c = self.config
        config = rs.config()
        if c.playback is not None:
            if not os.path.isfile(c.playback):
                raise SourceError(f"camera {self.name!r} (realsense): no recording at {c.playback}")
            config.enable_device_from_file(str(Path(c.playback)), repeat_playback=False)
        else:
            if c.serial_number is not None:
                config.enable_device(c.serial_number)
            config.enable_stream(rs.stream.depth, c.width, c.height, rs.format.z16, c.fps)
            config.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, c.fps)
        self._pipeline = rs.pipeline()
        try:
            profile = self._pipeline.start(config)
        except RuntimeError as e:
            where = f"recording {c.playback}" if c.playback else f"device {c.serial_number or '(any)'}"
            raise SourceError(f"camera {self.name!r} (realsense): could not start {where}: {e}") from e
        device = profile.get_device()
        if c.playback is not None:
            device.as_playback().set_real_time(c.real_time)
        # z16 counts depth units: 1 mm on a D400 by default, some are set to 0.1 mm or 0.25 mm
        self.depth_scale_mm = float(device.first_depth_sensor().get_depth_scale()) * 1000
        self._align = rs.align(rs.stream.color) if c.align else None
        sizes = {}
        for kind in (rs.stream.color, rs.stream.depth):
            stream = profile.get_stream(kind).as_video_stream_profile()
            sizes[kind] = (stream.height(), stream.width())
        self.color_size = sizes[rs.stream.color]
        self.depth_size = self.color_size if c.align else sizes[rs.stream.depth]

    def fetch(self) -> None:
        """Wait for the next frameset; colour as (H, W, 3) uint8 RGB, depth as (H, W, 1) uint16 mm."""
        timeout = self._TIMEOUT_MS if self.config.playback is None else self._PLAYBACK_END_MS
        ok, frames = self._pipeline.try_wait_for_frames(timeout)
        if not ok:
            raise SourceError(f"camera {self.name!r} (realsense): no frames within {timeout} ms"
                              + (" (end of the recording)" if self.config.playback else ""))
        self.captured_at = time.time()
        if self._align is not None:
            frames = self._align.process(frames)
        color, depth = frames.get_color_frame(), frames.get_depth_frame()
        if not color or not depth:
            raise SourceError(f"camera {self.name!r} (realsense): a frameset without "
                              f"{'colour' if not color else 'depth'}")
        self.color = np.asanyarray(color.get_data())
        raw = np.asanyarray(depth.get_data())
        if self.depth_scale_mm != 1.0:
            raw = np.clip(np.rint(raw * self.depth_scale_mm), 0, MM_MAX).astype(np.uint16)
        self.depth = raw[..., None]
        self.serial += 1


class _RealSenseStream(CameraSource):
    config: RealSenseCameraConfig

    def __init__(self, name: str, config: RealSenseCameraConfig, device: RealSenseDevice) -> None:
        super().__init__(name, config)
        self.device = device
        self._seen = 0

    def _open_impl(self) -> None:
        self.device.attach()

    def _next(self) -> None:
        if self._seen == self.device.serial:
            self.device.fetch()
        self._seen = self.device.serial

    def read_timed(self) -> tuple[np.ndarray, float]:
        image = self.read()
        return image, self.device.captured_at

    def _close_impl(self) -> None:
        self.device.detach()


class RealSenseColorSource(_RealSenseStream):
    """The colour stream of a RealSense, (H, W, 3) uint8 RGB."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.device.color_size, 3)

    def read(self) -> np.ndarray:
        self._next()
        assert self.device.color is not None
        return self.device.color


class RealSenseDepthSource(_RealSenseStream, DepthSource):
    """The depth of a RealSense, (H, W, 1) uint16 millimetres (aligned to the colour image by default)."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.device.depth_size, 1)

    def read(self) -> np.ndarray:
        self._next()
        assert self.device.depth is not None
        return self.device.depth


def realsense_sources(name: str, config: RealSenseCameraConfig) -> tuple[RealSenseColorSource, RealSenseDepthSource]:
    """The colour and depth sources of one RealSense, sharing its pipeline (open both, read both each tick)."""
    device = RealSenseDevice(name, config)
    return RealSenseColorSource(name, config, device), RealSenseDepthSource(name + DEPTH_SUFFIX, config, device)


def check_source_names(cameras: Mapping[str, CameraConfig]) -> None:
    """Raise ConfigError when a camera's depth companion (`<name>_depth`) has the name of another camera."""
    for name, config in cameras.items():
        with_depth = isinstance(config, RealSenseCameraConfig) or (isinstance(config, SimCameraConfig)
                                                                   and config.depth)
        if with_depth and name + DEPTH_SUFFIX in cameras:
            raise ConfigError(f"cameras.{name}: its depth is recorded as camera {name + DEPTH_SUFFIX!r}, the name "
                              "of another camera; rename one of them")


def depth_companion(name: str, config: CameraConfig, colour: CameraSource) -> list[CameraSource]:
    """The depth source that goes with a colour camera's source, if its config asks for one."""
    if isinstance(config, SimCameraConfig) and config.depth:
        assert isinstance(colour, SimSource)
        return [SimDepthSource(name + DEPTH_SUFFIX, config, colour.world, colour.camera)]
    return []
