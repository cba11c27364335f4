"""A robot for tests whose every observation can be identified in the recorded dataset.

`observation.state` holds `tick` (the how-many-th observation since connect), `<camera>.frame` (the
number the camera image of this observation shows, read back from its pixels) and the joints (the
last action sent). Each camera is LeRobot's own `OpenCVCamera`, reading a video file whose frame k
shows k (written by the tests' `write_id_video`).
"""

from .config_tickbot import TickBotConfig
from .tickbot import TickBot, read_id

__all__ = ["TickBot", "TickBotConfig", "read_id"]
