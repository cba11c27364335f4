"""Writes tests/data/lerobot_depth: a tiny dataset with a depth camera, made by LeRobot 0.6.1's own writer
(default DepthEncoderConfig: HEVC gray12le lossless, 12-bit log codes), for the tests that resume it. Run with
the venv that ../shared/tools/lerobot-load-check builds (Python 3.12, lerobot 0.6.1):

    HF_HUB_OFFLINE=1 ~/.cache/streamrec-lerobot-venv/bin/python tests/data/make_lerobot_depth.py

Two episodes (8 and 10 frames) of a 48x64 colour camera whose frame k shows identity k (tests/helpers/frames.py)
and a 48x64 depth camera whose frame k is depth_frame(k) (tests/helpers/depth.py), uint16 millimetres; state
= (k, -k).
"""

import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from helpers.depth import DEPTH, RGB, H, W, depth_features, depth_frame  # noqa: E402
from helpers.frames import id_frame  # noqa: E402

root = HERE / "lerobot_depth"
shutil.rmtree(root, ignore_errors=True)
ds = LeRobotDataset.create(repo_id="local/lerobot_depth", fps=30, features=depth_features(), root=root,
                           robot_type="test", use_videos=True)
k = 0
for episode, length in enumerate([8, 10]):
    for _ in range(length):
        ds.add_frame({RGB: id_frame(k, H, W), DEPTH: depth_frame(k)[..., None],
                      "observation.state": np.array([k, -k], np.float32), "task": ["pick", "place"][episode]})
        k += 1
    ds.save_episode()
ds.finalize()
