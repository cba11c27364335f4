"""Test helpers for depth cameras: frames whose every pixel is known, and a depth MP4 read back as numbers.

Numpy and PyAV only, so that tests/data/make_lerobot_depth.py can use it in LeRobot's venv.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

DEPTH = "observation.images.depth"
RGB = "observation.images.top"
H, W = 48, 64


def depth_frame(ident: int, height: int = H, width: int = W) -> np.ndarray:
    """(H, W) uint16 millimetres, different for every `ident`: a floor sloping from 6 m to 0.4 m with 4 mm of
    noise, a block at 500 + 7 * ident mm that names the frame, 3 % holes (0, no reading), and a strip beyond
    the 12-bit quantizer's 10 m."""
    rng = np.random.default_rng(ident)
    rows = np.linspace(6000, 400, height, dtype=np.float64)[:, None]
    image = np.repeat(rows, width, axis=1) + rng.normal(0, 4, (height, width))
    image[: height // 4, : width // 4] = 500 + 7 * ident
    image[:, -2:] = 12000 + ident
    image[rng.random((height, width)) < 0.03] = 0
    return np.clip(np.rint(image), 0, 65535).astype(np.uint16)


def depth_row(ident: int, task: str = "pick", *, metres: bool = False) -> dict:
    """The row of identity `ident`: colour id_frame(ident), depth depth_frame(ident) (in float32 metres with
    `metres`), state (ident, -ident)."""
    from .frames import id_frame

    depth = depth_frame(ident)
    return {RGB: id_frame(ident, H, W), DEPTH: (depth / 1000).astype(np.float32) if metres else depth[..., None],
            "observation.state": np.array([ident, -ident], np.float32), "task": task}


def depth_features(height: int = H, width: int = W, rgb: bool = True) -> dict:
    features = {DEPTH: {"dtype": "video", "shape": [height, width, 1], "names": ["height", "width", "channels"],
                        "info": {"is_depth_map": True}}}
    if rgb:
        features[RGB] = {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"]}
    features["observation.state"] = {"dtype": "float32", "shape": [2], "names": None}
    return features


def decode_depth(path: Path) -> tuple[list[Fraction], list[np.ndarray], set[str]]:
    """Every frame of a depth MP4 as stored (12-bit codes or millimetres), its exact time, and the pixel
    formats decoded."""
    pts, frames, formats = [], [], set()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            pts.append(f.pts * s.time_base)
            frames.append(f.to_ndarray())
            formats.add(f.format.name)
    return pts, frames, formats


def stored_rows(root: Path, ep: dict, key: str, fps: int) -> list[np.ndarray]:
    """The stored pixels the loader would return for each row of episode `ep` (the frame at exactly
    from_timestamp + row / fps, asserting that it exists)."""
    chunk, file = ep[f"videos/{key}/chunk_index"], ep[f"videos/{key}/file_index"]
    path = root / f"videos/{key}/chunk-{chunk:03d}/file-{file:03d}.mp4"
    pts, frames, _ = decode_depth(path)
    by_pts = {p: i for i, p in enumerate(pts)}
    start = Fraction(ep[f"videos/{key}/from_timestamp"]).limit_denominator(fps * 1000)
    out = []
    for r in range(ep["length"]):
        t = start + Fraction(r, fps)
        assert t in by_pts, f"{path}: no frame at exactly {t} s for row {r} of episode {ep['episode_index']}"
        out.append(frames[by_pts[t]])
    return out
