"""A small dataset recorded the same way every time, to tell a change of code from a change of output.

`record_golden(root, path)` records two cameras, two tasks and three episodes through the public API
(a first session, then a resumed one), with encoder settings whose output is deterministic: one codec
thread, no adaptation, a blocking queue (no drops). `tests/data/golden/<path>/` holds what the code
wrote when the fixture was made; `tests/test_golden.py` records again and compares tables, metadata and
decoded frames. Regenerate only on purpose (a format change), with

    .venv/bin/python tests/helpers/golden.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from helpers.frames import id_frame  # noqa: E402
from streamrec import DatasetRecorder, EncoderConfig  # noqa: E402

GOLDEN = TESTS / "data" / "golden"
PATHS = ("streaming", "png")
FPS = 30
H, W = 48, 64
CAMERAS = ("observation.images.top", "observation.images.wrist")
LENGTHS = (12, 9, 7)
"""Episodes 0 and 1 in the first session, episode 2 after resuming."""


def features() -> dict:
    f = {c: {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]} for c in CAMERAS}
    f["observation.state"] = {"dtype": "float32", "shape": [4], "names": ["a", "b", "c", "d"]}
    f["action"] = {"dtype": "float32", "shape": [4], "names": None}
    f["observation.gripper"] = {"dtype": "int64", "shape": [1], "names": None}
    return f


def _row(k: int, task: str) -> dict:
    row = {c: id_frame(k, H, W, tint=30 * i) for i, c in enumerate(CAMERAS)}
    row["observation.state"] = np.array([k, -k, k / 7, np.sin(k)], np.float32)
    row["action"] = np.array([k + 1, 0.5, -k / 3, np.cos(k)], np.float32)
    row["observation.gripper"] = k % 3
    row["task"] = task
    return row


def record_golden(root: Path, path: str) -> None:
    """Record the golden episodes into `root` (new) on the streaming or the PNG path."""
    streaming = path == "streaming"
    settings = dict(camera_encoder=EncoderConfig(vcodec="libsvtav1", preset=12, crf=35), encoder_threads=1,
                    streaming_encoding=streaming, queue_full_policy="block", adapt_on_overload=False)
    k = 0
    tasks = ("pick the cube", "place the cube", "pick the cube")
    rec = DatasetRecorder.create(root, FPS, features(), robot_type="golden", batch_encoding_size=1 if streaming else 2,
                                 **settings)
    for e in (0, 1):
        for _ in range(LENGTHS[e]):
            rec.add_frame(_row(k, tasks[e]))
            k += 1
        rec.save_episode()
    rec.finalize()
    rec = DatasetRecorder.resume(root, **settings)
    for _ in range(LENGTHS[2]):
        rec.add_frame(_row(k, tasks[2]))
        k += 1
    rec.save_episode()
    rec.finalize()


if __name__ == "__main__":
    for name in PATHS:
        target = GOLDEN / name
        shutil.rmtree(target, ignore_errors=True)
        record_golden(target, name)
        print("wrote", target)
