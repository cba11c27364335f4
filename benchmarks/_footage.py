"""What the benchmarks share: the camera input (the ALOHA simulation clip beside the repository)
and the paced capture loop that feeds it to a recorder.

Its cameras are 640x480. For larger workloads (1280x720, 1920x1080) the frames are upscaled,
once, before anything is timed (bicubic, through PyAV/libswscale). Upscaled footage is smoother
than what a real camera of that size delivers (no new detail, no sensor noise at the finer
grain), so encoders spend fewer bits and somewhat less time on it than on real 1080p video: treat
sizes and encode rates at those resolutions as optimistic. The 4:3 clip is stretched to 16:9;
that changes nothing an encoder cares about.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def parse_preset(text: str | None) -> int | str | None:
    """A --preset flag's value: SVT-AV1's presets are numbers, x264's are names."""
    return int(text) if text is not None and text.lstrip("-").isdigit() else text


def cap_sys_nice() -> bool:
    """Whether this process may raise priorities (root, as robot computers often run, unless dropped)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 23 & 1)
    return False


def paced_episode(rec: Any, video: dict[str, list[np.ndarray]], arrays: dict[str, np.ndarray],
                  fps: float, frames: int, start: int, add_ms: list[float],
                  after_add: Callable[[int], None] | None = None, fill_ms: list[float] | None = None
                  ) -> tuple[int, float]:
    """Feed `frames` rows to `rec.add_frame` (streamrec's or LeRobot's) at `fps`, sleeping to each tick, as a
    robot's capture loop does; source frame of row k is
    (start + k) modulo the clip. Appends each add_frame time to `add_ms` and calls
    `after_add(k)` after row k, if given; returns the ticks that came more than half a period
    late and the loop's wall time.

    With `fill_ms`, each camera image is first put into `rec.frame_buffer()` (standing in for a
    driver that decodes into a given array; the time goes to `fill_ms`), so add_frame does not copy.
    """
    period = 1.0 / fps
    n_src = len(next(iter(video.values())))
    late = 0
    t0 = next_tick = time.monotonic()
    for i in range(start, start + frames):
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period / 2:
            late += 1
        j = i % n_src
        if fill_ms is None:
            frame = {f"observation.images.{c}": v[j] for c, v in video.items()}
        else:
            t = time.perf_counter()
            frame = {}
            for c, v in video.items():
                key = f"observation.images.{c}"
                frame[key] = rec.frame_buffer(key)
                np.copyto(frame[key], v[j])
            fill_ms.append((time.perf_counter() - t) * 1e3)
        frame["observation.state"] = arrays["observation.state"][j % len(arrays["observation.state"])]
        frame["action"] = arrays["action"][j % len(arrays["action"])]
        frame["task"] = TASK
        t = time.perf_counter()
        rec.add_frame(frame)
        add_ms.append((time.perf_counter() - t) * 1e3)
        if after_add is not None:
            after_add(i - start)
        next_tick += period
    return late, time.monotonic() - t0
