"""Test helpers: frames that carry their own identity, and reading a dataset's videos back."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
FOOTAGE = REPO.parent / "shared" / "footage" / "aloha_insertion"
LEROBOT_V3 = REPO / "tests" / "data" / "lerobot_v3"
"""A tiny dataset written by LeRobot 0.6.1's own writer (see tests/data/make_lerobot_v3.py)."""

BITS = 12  # identities 0..4095, drawn as a 4x3 grid of black/white blocks


def id_frame(ident: int, height: int = 96, width: int = 128, tint: int = 0) -> np.ndarray:
    """An RGB frame showing `ident` as 12 large black/white blocks, readable after lossy coding."""
    assert 0 <= ident < 2**BITS
    frame = np.empty((height, width, 3), np.uint8)
    bh, bw = height // 3, width // 4
    for bit in range(BITS):
        r, c = divmod(bit, 4)
        value = 230 if ident >> bit & 1 else 25
        frame[r * bh:(r + 1) * bh, c * bw:(c + 1) * bw] = value
    # A fixed texture: uniform blocks let an encoder predict a block from any other block of
    # the same shade, and fast presets then get whole blocks wrong; real images are textured.
    texture = np.random.default_rng(height * width).integers(-20, 21, (height, width, 1))
    frame = np.clip(frame.astype(np.int16) + texture, 0, 255)
    frame[..., 2] = np.clip(frame[..., 2] + tint, 0, 255)  # cameras differ slightly
    return frame.astype(np.uint8)


def read_id(frame: np.ndarray) -> int:
    """Inverse of id_frame: the mean of each block's centre decides its bit."""
    height, width = frame.shape[:2]
    bh, bw = height // 3, width // 4
    ident = 0
    for bit in range(BITS):
        r, c = divmod(bit, 4)
        block = frame[r * bh + bh // 4:(r + 1) * bh - bh // 4, c * bw + bw // 4:(c + 1) * bw - bw // 4, 0]
        if block.mean() > 128:
            ident |= 1 << bit
    return ident


@dataclass(frozen=True)
class DecodedVideo:
    pts_s: list[Fraction]
    frames: list[np.ndarray]


_cache: dict[Path, DecodedVideo] = {}


def decode(path: Path) -> DecodedVideo:
    """Every frame of an MP4 with its exact presentation time, decoded by PyAV."""
    if path not in _cache:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            pts, frames = [], []
            for f in c.decode(s):
                pts.append(f.pts * s.time_base)
                frames.append(f.to_ndarray(format="rgb24"))
        _cache[path] = DecodedVideo(pts, frames)
    return _cache[path]


def clear_decode_cache() -> None:
    _cache.clear()


def episodes(root: Path) -> list[dict]:
    """Rows of every meta/episodes file, in file order."""
    return [row for path in sorted(root.glob("meta/episodes/chunk-*/file-*.parquet"))
            for row in pq.read_table(path).to_pylist()]


def frames_of_episode(root: Path, ep: dict, key: str, fps: int) -> list[np.ndarray]:
    """The frame the loader would return for each row of episode `ep`: the one whose pts is
    exactly from_timestamp + row / fps (asserting that such a frame exists)."""
    chunk, file = ep[f"videos/{key}/chunk_index"], ep[f"videos/{key}/file_index"]
    path = root / f"videos/{key}/chunk-{chunk:03d}/file-{file:03d}.mp4"
    video = decode(path)
    by_pts = {p: i for i, p in enumerate(video.pts_s)}
    start = Fraction(ep[f"videos/{key}/from_timestamp"]).limit_denominator(fps * 1000)
    out = []
    for r in range(ep["length"]):
        t = start + Fraction(r, fps)
        assert t in by_pts, f"{path}: no frame at exactly {t} s for row {r} of episode {ep['episode_index']}"
        out.append(video.frames[by_pts[t]])
    return out


def write_id_video(path: Path, frames: int = 64, height: int = 120, width: int = 160, fps: int = 30) -> Path:
    """An H.264 MP4 whose frame i shows identity i (see id_frame): a stand-in camera for the opencv source."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(id_frame(i, height, width), format="rgb24")))
        container.mux(stream.encode())
    return path


def frame_after_seek(path: Path, t: Fraction) -> np.ndarray | None:
    """The frame at exactly `t` s, decoded the way LeRobot's loader reads one row: seek to the keyframe
    before `t` (one time-base tick before it, as the loader does), decode forward. None when that
    decode never yields a frame at `t` (a decoder drops pictures that depend on one before the
    keyframe it started at)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        c.seek(round(t / s.time_base) - 1, stream=s, backward=True, any_frame=False)
        for f in c.decode(s):
            at = f.pts * s.time_base
            if at == t:
                return f.to_ndarray(format="rgb24")
            if at > t:
                return None
    return None
