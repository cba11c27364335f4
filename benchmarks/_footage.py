"""The camera input the benchmarks share: the ALOHA simulation clip beside the repository.

Its cameras are 640x480. For larger workloads (1280x720, 1920x1080) the frames are upscaled,
once, before anything is timed (bicubic, through PyAV/libswscale). Upscaled footage is smoother
than what a real camera of that size delivers (no new detail, no sensor noise at the finer
grain), so encoders spend fewer bits and somewhat less time on it than on real 1080p video: treat
sizes and encode rates at those resolutions as optimistic. The 4:3 clip is stretched to 16:9;
that changes nothing an encoder cares about.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FOOTAGE = REPO.parent / "shared" / "footage" / "aloha_insertion"
CAMERAS = ("top", "angle", "left_wrist")
NATIVE = (640, 480)
TASK = "insert the peg into the socket"


def cameras(n: int) -> tuple[str, ...]:
    """The first `n` of the clip's cameras (the benchmarks' workloads use at most three)."""
    if not 1 <= n <= len(CAMERAS):
        raise ValueError(f"the footage has {len(CAMERAS)} cameras, {n} asked for")
    return CAMERAS[:n]


def frames_for(width: int, height: int, budget_mb: float = 700.0, cams: int = 3, most: int = 250) -> int:
    """How many source frames per camera to hold in memory: `most`, or fewer so that `cams`
    cameras of this size stay within `budget_mb` (1080p frames are 6.2 MB each)."""
    return max(30, min(most, int(budget_mb * 2**20 / (width * height * 3 * cams))))


def load_video(folder: Path, frames: int, cameras: tuple[str, ...] = CAMERAS,
               size: tuple[int, int] | None = None) -> dict[str, list[np.ndarray]]:
    """The first `frames` frames of each camera's clip, decoded to rgb24 once; resized to
    `size` (width, height) when given and different from the clip's."""
    video = {}
    for name in cameras:
        with av.open(str(folder / f"{name}.mkv")) as c:
            out = []
            for _, f in zip(range(frames), c.decode(video=0)):
                if size is not None and (f.width, f.height) != size:
                    f = f.reformat(width=size[0], height=size[1], format="rgb24", interpolation="BICUBIC")
                out.append(f.to_ndarray(format="rgb24"))
            video[name] = out
    return video


def load_footage(folder: Path, frames: int, cameras: tuple[str, ...] = CAMERAS, size: tuple[int, int] | None = None
                 ) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
    """The clips and the robot's recorded state and action arrays."""
    data = np.load(folder / "data.npz")
    return (load_video(folder, frames, cameras, size),
            {"observation.state": data["observation.state"], "action": data["action"]})


def features(cams: tuple[str, ...], width: int, height: int, robot: bool = True) -> dict:
    out = {f"observation.images.{c}": {"dtype": "video", "shape": [height, width, 3],
                                      "names": ["height", "width", "channels"]} for c in cams}
    if robot:
        out["observation.state"] = {"dtype": "float32", "shape": [14], "names": None}
        out["action"] = {"dtype": "float32", "shape": [14], "names": None}
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when identical)."""
    d = np.subtract(a, b, dtype=np.int16).ravel()
    mse = float(np.einsum("i,i->", d, d, dtype=np.int64)) / d.size  # exact, and 5x faster than float math
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
