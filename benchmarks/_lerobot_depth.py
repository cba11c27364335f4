"""LeRobot 0.6.1's side of the depth benchmarks; runs inside the LeRobot venv (Python 3.12, lerobot[dataset]).

    python _lerobot_depth.py load ROOT OUT.npz
        every row's depth as LeRobotDataset returns it (mm), saved to OUT.npz; prints what happened
    python _lerobot_depth.py write FRAMES ROOT OUT.npz
        record the frames in folder FRAMES (depth.npy (N, H, W) uint16 mm and, if present, rgb.npy (N, H, W, 3))
        with LeRobot's own writer as fast as it takes them (streaming encoding, default encoders), one episode per
        entry of FRAMES/episodes.json ([first, length] pairs), then `load` it
    python _lerobot_depth.py paced FRAMES ROOT SECONDS EPISODES [--depth-only]
        the same frames fed at 30 fps by the benchmarks' paced loop (benchmarks/_footage.py): rows, frames dropped
        (LeRobot's own counter), add_frame times, CPU of its encoder threads (process CPU less the loop's thread),
        file sizes
Prints one JSON line; `load` records an exception instead of failing, so the caller can report what LeRobot did
with a dataset it cannot read.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _footage import paced_episode  # noqa: E402

DEPTH, RGB = "observation.images.depth", "observation.images.rgb"


def load(root: str, out: str) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    try:
        ds = LeRobotDataset("local/depth", root=root, video_backend="pyav")
    except Exception as e:  # noqa: BLE001 - reported to the caller: what LeRobot does with the dataset
        return {"loaded": False, "error": f"{type(e).__name__}: {e}"}
    keys = list(ds.meta.depth_keys)
    arrays: dict[str, list] = {k: [] for k in keys}
    errors, loaded = [], []
    for i in range(len(ds)):
        try:
            item = ds[i]
        except Exception as e:  # noqa: BLE001
            errors.append(f"row {i}: {type(e).__name__}: {str(e)[:300]}")
            continue
        loaded.append(i)
        for k in keys:
            arrays[k].append(np.asarray(item[k].numpy(), np.float32).squeeze())
    np.savez(out, _rows=np.array(loaded, np.int64), **{k: np.stack(v) for k, v in arrays.items() if v})
    return {"loaded": True, "rows": len(ds), "depth_keys": keys, "errors": errors[:5], "error_rows": len(errors)}


def _features(h: int, w: int, rgb: bool) -> dict:
    out = {DEPTH: {"dtype": "video", "shape": [h, w, 1], "names": ["height", "width", "channels"],
                   "info": {"is_depth_map": True}}}
    if rgb:
        out[RGB] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]}
    out["observation.state"] = {"dtype": "float32", "shape": [1], "names": None}
    out["action"] = {"dtype": "float32", "shape": [1], "names": None}
    return out


def _frames(folder: str, depth_only: bool = False) -> dict[str, np.ndarray]:
    video = {"depth": np.load(Path(folder, "depth.npy"), mmap_mode="r")[..., None]}
    if not depth_only and Path(folder, "rgb.npy").exists():
        video["rgb"] = np.load(Path(folder, "rgb.npy"), mmap_mode="r")
    return video


def _sizes(root: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for p in Path(root, "videos").rglob("*.mp4"):
        sizes[p.parent.parent.name] = sizes.get(p.parent.parent.name, 0) + p.stat().st_size
    return sizes


def write(folder: str, root: str, out: str) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    video = _frames(folder)
    spans = json.loads(Path(folder, "episodes.json").read_text())
    h, w = video["depth"].shape[1:3]
    ds = LeRobotDataset.create("local/depth", fps=30, root=root, features=_features(h, w, "rgb" in video),
                               streaming_encoding=True)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for first, length in spans:
        for i in range(first, first + length):
            frame = {f"observation.images.{k}": np.ascontiguousarray(v[i]) for k, v in video.items()}
            ds.add_frame(frame | {"observation.state": np.zeros(1, np.float32), "action": np.zeros(1, np.float32),
                                  "task": "t"})
        ds.save_episode()
    ds.finalize()
    info = json.loads(Path(root, "meta/info.json").read_text())["features"][DEPTH]["info"]
    return {"rows": sum(n for _, n in spans), "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - wall0, "bytes": _sizes(root), "depth_info": info, "load": load(root, out)}


def _dropped(ds) -> dict[str, int]:
    """LeRobot's own count of the frames its streaming encoder dropped (a full queue) in the open episode."""
    for holder in (ds, getattr(ds, "writer", None)):
        for name in ("_streaming_encoder", "streaming_encoder"):
            encoder = getattr(holder, name, None) if holder is not None else None
            if encoder is not None and hasattr(encoder, "_dropped_frames"):
                return dict(encoder._dropped_frames)
    raise RuntimeError("LeRobot's streaming encoder (and its dropped-frame counter) was not found")


def paced(folder: str, root: str, seconds: str, episodes: str, *flags: str) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    video = _frames(folder, depth_only="--depth-only" in flags)
    h, w = video["depth"].shape[1:3]
    arrays = {"observation.state": np.zeros((1, 1), np.float32), "action": np.zeros((1, 1), np.float32)}
    video = {k: [np.ascontiguousarray(f) for f in v] for k, v in video.items()}  # in RAM, as a camera's frames
    ds = LeRobotDataset.create("local/depth", fps=30, root=root, features=_features(h, w, "rgb" in video),
                               streaming_encoding=True)
    rows, late, add_ms, dropped = 0, 0, [], {}
    n = round(float(seconds) * 30)
    proc0, loop0 = time.process_time(), time.thread_time()
    for e in range(int(episodes)):
        lat, _ = paced_episode(ds, video, arrays, 30, n, e * n, add_ms)
        late += lat
        rows += n
        for k, v in _dropped(ds).items():
            dropped[k] = dropped.get(k, 0) + v
        ds.save_episode()
    ds.finalize()
    process_s, loop_s = time.process_time() - proc0, time.thread_time() - loop0
    frames = {}
    import av

    for p in Path(root, "videos").rglob("*.mp4"):
        with av.open(str(p)) as c:
            count = sum(1 for packet in c.demux(video=0) if packet.size)
            frames[p.parent.parent.name] = frames.get(p.parent.parent.name, 0) + count
    return {"rows": rows, "late_ticks": late, "dropped": dropped, "frames_in_videos": frames,
            "add_frame_ms": add_ms, "process_cpu_s": process_s, "loop_thread_cpu_s": loop_s, "bytes": _sizes(root),
            "cameras": sorted(video)}


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    commands = {"load": load, "write": write, "paced": paced}
    if command not in commands:
        raise SystemExit(__doc__)
    print(json.dumps(commands[command](*args)))
