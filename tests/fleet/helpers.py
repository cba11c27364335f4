"""Datasets shaped like tests/data/lerobot_v3 (one 96x128 camera, state and action of 3), recorded by
streamrec with identities that tell every dataset's frames apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.frames import LEROBOT_V3, decode, episodes, id_frame, read_id
from streamrec import DatasetRecorder, EncoderConfig

FPS = 30
CAM = "observation.images.top"
LEROBOT_LENGTHS = (10, 12)
"""The LeRobot-written fixture: frame k of its rows shows identity k, state k, action -k."""


def features(cam: str = CAM, state: int = 3) -> dict:
    return {cam: {"dtype": "video", "shape": [96, 128, 3], "names": ["height", "width", "channels"]},
            "observation.state": {"dtype": "float32", "shape": [state], "names": None},
            "action": {"dtype": "float32", "shape": [3], "names": None}}


def record(root: Path, lengths, *, base: int, encoder: EncoderConfig | None = None, cam: str = CAM,
           tasks=None, fps: int = FPS, state: int = 3) -> None:
    """Row r of episode e shows identity base + (rows before) + r; state = that identity, action = -it."""
    rec = DatasetRecorder.create(root, fps, features(cam, state), robot_type="test", queue_full_policy="block",
                                 camera_encoder=encoder or EncoderConfig())
    ident = base
    for e, n in enumerate(lengths):
        for _ in range(n):
            rec.add_frame({cam: id_frame(ident), "observation.state": np.full(state, ident, np.float32),
                           "action": np.full(3, -ident, np.float32),
                           "task": tasks[e] if tasks else "pick"})
            ident += 1
        rec.save_episode()
    rec.finalize()


def identities(root: Path, cam: str = CAM) -> list[list[int]]:
    """Per episode, the identity each row's frame shows, looked up as the loader does (from_timestamp + row / fps)."""
    out = []
    for ep in episodes(root):
        path = root / "videos" / cam / f"chunk-{ep[f'videos/{cam}/chunk_index']:03d}" / \
            f"file-{ep[f'videos/{cam}/file_index']:03d}.mp4"
        video = decode(path)
        by_time = {round(float(t) * FPS): f for t, f in zip(video.pts_s, video.frames)}
        first = round(ep[f"videos/{cam}/from_timestamp"] * FPS)
        out.append([read_id(by_time[first + r]) for r in range(ep["length"])])
    return out


__all__ = ["CAM", "FPS", "LEROBOT_LENGTHS", "LEROBOT_V3", "features", "identities", "record"]
