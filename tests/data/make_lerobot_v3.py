"""Writes tests/data/lerobot_v3: a tiny dataset made by LeRobot 0.6.1's own writer, for the
tests that resume another writer's dataset. Run with the venv that
../shared/tools/lerobot-load-check builds (Python 3.12, lerobot 0.6.1):

    HF_HUB_OFFLINE=1 ~/.cache/streamrec-lerobot-venv/bin/python tests/data/make_lerobot_v3.py

Two episodes (10 and 12 frames) of one 96x128 camera whose frame k shows identity k (see
tests/utils.id_frame), with state = k and action = -k.
"""

import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from helpers.frames import id_frame  # noqa: E402

root = HERE / "lerobot_v3"
shutil.rmtree(root, ignore_errors=True)
features = {
    "observation.images.top": {"dtype": "video", "shape": (96, 128, 3), "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": (3,), "names": None},
    "action": {"dtype": "float32", "shape": (3,), "names": None},
}
ds = LeRobotDataset.create(repo_id="local/lerobot_v3", fps=30, features=features, root=root, robot_type="test",
                           use_videos=True, image_writer_threads=2)
k = 0
for episode, length in enumerate([10, 12]):
    for _ in range(length):
        ds.add_frame({"observation.images.top": id_frame(k), "observation.state": np.full(3, k, np.float32),
                      "action": np.full(3, -k, np.float32), "task": ["pick", "place"][episode]})
        k += 1
    ds.save_episode()
ds.finalize()
