"""Real-time recording benchmark: the capture loop a robot runs, on realistic camera footage.

A loop at `--fps` (sleeping to each next tick against the monotonic clock) feeds
`DatasetRecorder.add_frame` with the ALOHA simulation footage (3 cameras, 640x480, looped)
plus its state/action vectors, for `--episodes` episodes of `--seconds` each, then saves each
episode. Prints one JSON object: add_frame p50/p99/max, late ticks, frames kept vs expected,
drops per camera, save_episode time, peak RSS, CPU, bytes written.

    .venv/bin/python benchmarks/record.py                     # as is (root here)
    capsh --drop=cap_sys_nice -- -c '.venv/bin/python benchmarks/record.py'

Needs ../shared/footage beside the repository (`--footage` to point elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import psutil
from _footage import CAMERAS, FOOTAGE, load_footage

from streamrec import DatasetRecorder, EncoderConfig


def cap_sys_nice() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 23 & 1)
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--vcodec", default="libsvtav1")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--svtav1-params", default=None, help="extra svtav1-params, e.g. pred-struct=1")
    ap.add_argument("--encoder-threads", type=int, default=None)
    ap.add_argument("--queue", type=int, default=30)
    ap.add_argument("--keep", type=Path, default=None, help="record here and keep the dataset")
    args = ap.parse_args()
    if not args.footage.exists():
        sys.exit(f"footage not found at {args.footage}; pass --footage")

    video, arrays = load_footage(args.footage, 250)
    n_src = len(video[CAMERAS[0]])
    features = {f"observation.images.{c}": {"dtype": "video", "shape": [480, 640, 3],
                                           "names": ["height", "width", "channels"]} for c in CAMERAS}
    features["observation.state"] = {"dtype": "float32", "shape": [14], "names": None}
    features["action"] = {"dtype": "float32", "shape": [14], "names": None}
    extra = {"svtav1-params": args.svtav1_params} if args.svtav1_params else {}
    preset = None if args.preset is None else (int(args.preset) if args.preset.isdigit() else args.preset)
    workdir = Path(tempfile.mkdtemp(prefix="streamrec-bench-"))
    root = args.keep or workdir / "ds"

    rec = DatasetRecorder.create(root, args.fps, features, robot_type="aloha",
                                 camera_encoder=EncoderConfig(vcodec=args.vcodec, preset=preset, extra_options=extra),
                                 encoder_threads=args.encoder_threads, encoder_queue_maxsize=args.queue)
    period = 1.0 / args.fps
    per_episode = round(args.seconds * args.fps)
    add_ms: list[float] = []
    late_ticks = 0
    saves = []
    cpu0 = time.process_time()
    cpu_children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    i = 0
    encoder_rss_mb = 0.0
    for _ in range(args.episodes):
        next_tick = time.monotonic()
        for _ in range(per_episode):
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period / 2:
                late_ticks += 1
            j = i % n_src
            frame = {f"observation.images.{c}": video[c][j] for c in CAMERAS}
            frame["observation.state"] = arrays["observation.state"][j]
            frame["action"] = arrays["action"][j]
            frame["task"] = "insert the peg into the socket"
            t = time.perf_counter()
            rec.add_frame(frame)
            add_ms.append((time.perf_counter() - t) * 1e3)
            i += 1
            next_tick += period
        saves.append(rec.save_episode())
        # Sampled, not ru_maxrss: a child's maxrss counts the parent's pages it shared before exec.
        encoder_rss_mb = max(encoder_rss_mb, *(c.memory_info().rss / 2**20 for c in psutil.Process().children()))
    t = time.perf_counter()
    rec.finalize()
    finalize_s = time.perf_counter() - t
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    peak_rss_self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Encoder processes have ended (finalize joins them), so their CPU time is in RUSAGE_CHILDREN.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_children = children.ru_utime + children.ru_stime - (cpu_children0.ru_utime + cpu_children0.ru_stime)

    bytes_by_camera = {c: sum(p.stat().st_size for p in (root / "videos" / f"observation.images.{c}").rglob("*.mp4"))
                       for c in CAMERAS}
    expected = per_episode * args.episodes
    a = np.array(add_ms)
    result = {
        "machine": {"cpus": os.cpu_count(), "euid": os.geteuid(), "cap_sys_nice": cap_sys_nice(),
                    "av": av.__version__},
        "workload": {"cameras": len(CAMERAS), "resolution": "640x480", "fps": args.fps, "episodes": args.episodes,
                     "seconds": args.seconds, "vcodec": args.vcodec, "preset": preset, "extra_options": extra,
                     "encoder_threads": args.encoder_threads, "encoder_queue_maxsize": args.queue},
        "add_frame_ms": {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
                         "max": round(float(a.max()), 2)},
        "ticks_late": late_ticks,
        "rows_recorded": sum(s.frames for s in saves),
        "rows_expected": expected,
        "video_frames_recorded": {c: sum(s.cameras[f"observation.images.{c}"].frames for s in saves) for c in CAMERAS},
        "dropped": {c: sum(s.cameras[f"observation.images.{c}"].dropped for s in saves) for c in CAMERAS},
        "save_episode_ms": [round(s.save_s * 1e3, 1) for s in saves],
        "encoder_flush_ms": [round(max(c.flush_s for c in s.cameras.values()) * 1e3, 1) for s in saves],
        "finalize_ms": round(finalize_s * 1e3, 1),
        "peak_rss_mb": {"capture_process_incl_footage": round(peak_rss_self_kb / 1024),
                        "largest_encoder_process_at_save": round(encoder_rss_mb)},
        "footage_in_memory_mb": round(sum(f.nbytes for v in video.values() for f in v) / 2**20, 1),
        "cpu_percent_of_one_core": {"capture_process": round(100 * cpu / wall, 1),
                                    "encoder_processes": round(100 * cpu_children / wall, 1)},
        "bytes_per_camera": bytes_by_camera,
        "bytes_per_camera_minute": {c: round(b / (expected / args.fps / 60)) for c, b in bytes_by_camera.items()},
    }
    print(json.dumps(result, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
