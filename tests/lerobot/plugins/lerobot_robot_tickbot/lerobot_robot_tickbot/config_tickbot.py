from dataclasses import dataclass, field

from lerobot.cameras import CameraConfig
from lerobot.robots.config import RobotConfig


@RobotConfig.register_subclass("tickbot")
@dataclass(kw_only=True)
class TickBotConfig(RobotConfig):
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    """OpenCV cameras whose index_or_path is a video file; width, height and fps must be the file's."""
    joints: int = 6
    """Joints j0.pos .. j<joints-1>.pos; each follows the last action sent."""
    stall_every: int = 0
    """Every stall_every-th observation (0: never) gets no new frame: it repeats the previous observation's
    images, as from a camera that missed a frame."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, cam in self.cameras.items():
            if cam.type != "opencv":
                raise ValueError(f"tickbot camera {name!r}: type must be opencv (a video file), got {cam.type}")
        if self.stall_every < 0:
            raise ValueError(f"tickbot stall_every = {self.stall_every}: must be >= 0")
