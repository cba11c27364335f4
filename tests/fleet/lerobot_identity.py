"""Run with LeRobot 0.6.1's Python (see tests/fleet/test_merge.py): load a dataset with LeRobotDataset and
print, for every row, the identity its camera frame shows and the row's observation.state[0], as JSON."""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from helpers.frames import read_id  # noqa: E402

root, camera = sys.argv[1], sys.argv[2]
ds = LeRobotDataset("local/merged", root=root, video_backend="pyav")
rows = []
for i in range(len(ds)):
    item = ds[i]
    image = (item[camera].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    rows.append({"index": int(item["index"]), "episode": int(item["episode_index"]), "task": item["task"],
                 "frame": read_id(image), "state": float(item["observation.state"][0])})
print(json.dumps({"fps": ds.fps, "episodes": ds.num_episodes, "rows": rows}))
