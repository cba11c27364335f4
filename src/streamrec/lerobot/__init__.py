"""streamrec for LeRobot users: `streamrec lerobot-record`, and a dataset writer for custom LeRobot loops.

A loop written against LeRobot's `LeRobotDataset` records through streamrec by changing one import:

    from streamrec.lerobot import LeRobotDataset, VideoEncodingManager  # was: from lerobot.datasets import ...

`LeRobotDataset` here has the part of LeRobot's class a recording loop uses (`create`, `resume`,
`add_frame`, `save_episode`, `clear_episode_buffer`, `finalize`, `features`, `fps`, `num_episodes`,
`meta`, `push_to_hub`) and writes through `streamrec.DatasetRecorder`. Importing this package does not
import LeRobot; `aggregate_pipeline_dataset_features` and `sanity_check_dataset_robot_compatibility`
need it (`pip install 'streamrec[lerobot]'`, Python >= 3.12), as do `record` (what `streamrec
lerobot-record` runs, taking processor pipelines of your own as lerobot-record's `record()` does) and
`LeRobotRecordConfig` with its `DatasetSection` (its flags), which are imported on first use. See docs/lerobot.md.
"""

from typing import Any

from ._features import (
    aggregate_pipeline_dataset_features,
    create_initial_features,
    sanity_check_dataset_robot_compatibility,
)
from ._hub import PushError
from ._writer import (
    DEFAULT_FEATURES,
    LeRobotDataset,
    Meta,
    VideoEncodingManager,
    depth_encoder_config,
    encoder_config,
)

__all__ = [
    "DEFAULT_FEATURES",
    "DatasetSection",
    "LeRobotDataset",
    "LeRobotRecordConfig",
    "Meta",
    "PushError",
    "VideoEncodingManager",
    "aggregate_pipeline_dataset_features",
    "create_initial_features",
    "depth_encoder_config",
    "encoder_config",
    "record",
    "sanity_check_dataset_robot_compatibility",
]


def __getattr__(name: str) -> Any:
    # These import LeRobot (and torch): only when asked for.
    if name == "record":
        from ._record import record

        return record
    if name in ("LeRobotRecordConfig", "DatasetSection"):
        from . import _config

        return getattr(_config, name)
    raise AttributeError(f"module 'streamrec.lerobot' has no attribute {name!r}")
