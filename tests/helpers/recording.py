"""Recording a few episodes whose frames carry their identity, and checking every row's frame after."""

from __future__ import annotations

import numpy as np

from streamrec import DatasetRecorder, EncoderConfig

from .frames import episodes, frames_of_episode, id_frame, read_id

FPS = 30
H, W = 96, 128
CAMS = ("observation.images.top", "observation.images.wrist")
H264 = EncoderConfig(vcodec="h264", preset="ultrafast")


def features(h=H, w=W, cams=CAMS):
    f = {c: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]} for c in cams}
    f["observation.state"] = {"dtype": "float32", "shape": [6], "names": None}
    f["action"] = {"dtype": "float32", "shape": [6], "names": None}
    return f


def frame_for(ident: int, cam_no: int, state_value: float, task: str = "pick"):
    frame = {c: id_frame(ident, H, W, tint=40 * i) for i, c in enumerate(CAMS)}
    frame["observation.state"] = np.full(6, state_value, np.float32)
    frame["action"] = np.arange(6, dtype=np.float32) + state_value
    frame["task"] = task
    return frame


def record(root, lengths, *, encoder=None, tasks=None, **kwargs):
    """Record episodes whose frame at row r of episode e shows identity base(e) + r."""
    kwargs.setdefault("queue_full_policy", "block")
    rec = DatasetRecorder.create(root, FPS, features(), robot_type="test",
                                 camera_encoder=encoder or EncoderConfig(), **kwargs)
    reports = []
    ident = 0
    for e, n in enumerate(lengths):
        for _ in range(n):
            task = tasks[e] if tasks else "pick"
            rec.add_frame(frame_for(ident, 0, float(ident), task))
            ident += 1
        reports.append(rec.save_episode())
    rec.finalize()
    return reports


def check_identity(root, lengths):
    eps = episodes(root)
    assert [e["length"] for e in eps] == list(lengths)
    base = 0
    for ep in eps:
        for key in CAMS:
            got = [read_id(f) for f in frames_of_episode(root, ep, key, FPS)]
            assert got == list(range(base, base + ep["length"])), f"episode {ep['episode_index']} {key}"
        base += ep["length"]
