"""The capture stage: where `streamrec record` gets its frames and robot values, and its live display.

A camera source is opened once, then read once per tick by the capture loop; `read()` returns an
(H, W, 3) uint8 RGB image. Like a camera driver, a source may reuse its buffer: the image is valid
until the next `read()` (the recorder copies what it queues, unless it was filled into
`DatasetRecorder.frame_buffer()`).

| type | config | what it produces |
| --- | --- | --- |
| `synthetic` | `SyntheticCameraConfig` | a scrolling, textured, noisy pattern showing the frame number |
| `footage` | `FootageCameraConfig` | a recorded clip folder (lossless video + `data.npz`), looped |
| `opencv` | `OpenCVCameraConfig` | a USB/V4L2 camera, a video file (played in real time, looped) or an RTSP URL |
| `sim` | `SimCameraConfig` | a camera of the simulated ALOHA scene (MuJoCo via gym-aloha), arms moving; + depth |
| `synthetic_depth` | `SyntheticDepthCameraConfig` | a depth camera (uint16 mm): noisy, holed, objects moving |
| `realsense` | `RealSenseCameraConfig` | an Intel RealSense's colour and aligned depth (untested on hardware) |

`opencv` needs `pip install 'streamrec[opencv]'`, `sim` needs `pip install 'streamrec[sim]'`, `realsense`
`pip install 'streamrec[realsense]'`. A depth source returns (H, W, 1) uint16 millimetres (`_depth`). A new
kind of camera is a config dataclass (`_configs`) and a `CameraSource` subclass, added to `CAMERA_TYPES`.
"""

from __future__ import annotations

from ._configs import (
    CameraConfig,
    FootageCameraConfig,
    OpenCVCameraConfig,
    RealSenseCameraConfig,
    SimCameraConfig,
    SyntheticCameraConfig,
    SyntheticDepthCameraConfig,
    camera_config,
)
from ._depth import (
    DepthSource,
    RealSenseColorSource,
    SimDepthSource,
    SyntheticDepthSource,
    depth_companion,
    is_depth_source,
    realsense_sources,
)
from ._footage import FootageRobot, FootageSource
from ._opencv import OpenCVSource
from ._robot import RobotSource
from ._sim import SimRobot, SimSource, SimWorld, sim_world
from ._source import CameraSource, SourceError
from ._synthetic import SyntheticRobot, SyntheticSource

CAMERA_TYPES: dict[str, tuple[type, type[CameraSource]]] = {
    "synthetic": (SyntheticCameraConfig, SyntheticSource),
    "footage": (FootageCameraConfig, FootageSource),
    "opencv": (OpenCVCameraConfig, OpenCVSource),
    "sim": (SimCameraConfig, SimSource),
    "synthetic_depth": (SyntheticDepthCameraConfig, SyntheticDepthSource),
    "realsense": (RealSenseCameraConfig, RealSenseColorSource),
}
"""Camera `type` -> (config class, source class)."""


def make_source(name: str, config: CameraConfig, *, world: SimWorld | None = None) -> CameraSource:
    """The (unopened) source for a camera config; a sim camera renders `world` (see `sim_world`)."""
    if isinstance(config, SimCameraConfig):
        return SimSource(name, config, world)
    if isinstance(config, RealSenseCameraConfig):
        return realsense_sources(name, config)[0]
    return CAMERA_TYPES[config.type][1](name, config)


def camera_sources(name: str, config: CameraConfig, *, world: SimWorld | None = None) -> list[CameraSource]:
    """Every (unopened) source of a camera config: one, or its colour and its depth (`<name>_depth`) for a
    RealSense and for a sim camera with `depth: true`."""
    if isinstance(config, RealSenseCameraConfig):
        return list(realsense_sources(name, config))
    source = make_source(name, config, world=world)
    return [source, *depth_companion(name, config, source)]


__all__ = ["CAMERA_TYPES", "CameraConfig", "CameraSource", "DepthSource", "FootageCameraConfig", "FootageRobot",
           "FootageSource", "OpenCVCameraConfig", "OpenCVSource", "RealSenseCameraConfig", "RobotSource",
           "SimCameraConfig", "SimDepthSource", "SimRobot", "SimSource", "SimWorld", "SourceError",
           "SyntheticCameraConfig", "SyntheticDepthCameraConfig", "SyntheticDepthSource", "SyntheticRobot",
           "SyntheticSource", "camera_config", "camera_sources", "is_depth_source", "make_source", "sim_world"]
