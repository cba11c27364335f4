"""The camera input the benchmarks share: the ALOHA simulation clip beside the repository."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FOOTAGE = REPO.parent / "shared" / "footage" / "aloha_insertion"
CAMERAS = ("top", "angle", "left_wrist")


def load_video(folder: Path, frames: int, cameras: tuple[str, ...] = CAMERAS) -> dict[str, list[np.ndarray]]:
    """The first `frames` frames of each camera's clip, decoded to rgb24 once."""
    video = {}
    for name in cameras:
        with av.open(str(folder / f"{name}.mkv")) as c:
            video[name] = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), c.decode(video=0))]
    return video


def load_footage(folder: Path, frames: int) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
    """The clips and the robot's recorded state and action arrays."""
    data = np.load(folder / "data.npz")
    return load_video(folder, frames), {"observation.state": data["observation.state"], "action": data["action"]}
