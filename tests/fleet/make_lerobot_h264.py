"""Run with LeRobot 0.6.1's Python (see tests/fleet/test_merge.py): write a dataset with LeRobot's own writer and
H.264 with B-frames (libx264 preset medium, g 12), so that packets come in decode order with dts before pts.
Two episodes (14 and 11 rows) whose row k shows identity 500 + k, with state 500 + k."""

import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lerobot.configs.video import RGBEncoderConfig  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from helpers.frames import id_frame  # noqa: E402

root = Path(sys.argv[1])
shutil.rmtree(root, ignore_errors=True)
features = {
    "observation.images.top": {"dtype": "video", "shape": (96, 128, 3), "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": (3,), "names": None},
    "action": {"dtype": "float32", "shape": (3,), "names": None},
}
ds = LeRobotDataset.create(repo_id="local/h264", fps=30, features=features, root=root, robot_type="test",
                           use_videos=True, image_writer_threads=2,
                           rgb_encoder=RGBEncoderConfig(vcodec="h264", g=12, crf=23, preset="medium"))
k = 500
for length in (14, 11):
    for _ in range(length):
        ds.add_frame({"observation.images.top": id_frame(k), "observation.state": np.full(3, k, np.float32),
                      "action": np.full(3, -k, np.float32), "task": "pick"})
        k += 1
    ds.save_episode()
ds.finalize()
