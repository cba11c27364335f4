"""Adaptive overload against fixed settings, side by side, on a workload this machine cannot keep up with.

Records the ALOHA footage upscaled to `--width`x`--height` (default 2 cameras at 1280x720, 30 fps)
in a real-time loop, `--episodes` episodes of `--seconds`, once with fixed settings and once with
`adapt_on_overload=True`, alternating the order over `--rounds` rounds (fixed first, then
adaptive first, ...) so that a change in the machine's load hits both. For each run it prints the
frames kept (rows whose frame reached the encoder, i.e. not dropped) per episode, the steps adaptive
overload took, bytes per camera-minute, and the PSNR of the dataset's frame for every 15th row
against the camera frame of that row (a dropped row shows an earlier frame, which lowers it).

    .venv/bin/python benchmarks/adaptive.py [--rounds 2] [--seconds 20]
    capsh --drop=cap_sys_nice -- -c '.venv/bin/python benchmarks/adaptive.py'

Upscaled footage is smoother than a real 1280x720 camera, so it is cheaper to encode. Needs
../shared/footage beside the repository (`--footage` to point elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from _footage import FOOTAGE, cap_sys_nice, features, load_footage, paced_episode, parse_preset
from streamrec import DatasetRecorder, EncoderConfig

CAMERAS = ("top", "angle")
PSNR_EVERY = 15


def _psnr(root: Path, camera: str, fed: list[list[int]], video: list[np.ndarray], fps: int) -> float:
    """Mean PSNR over every PSNR_EVERY-th row of every episode: dataset frame vs the frame fed."""
    key = f"observation.images.{camera}"
    rows = [r for p in sorted(root.glob("meta/episodes/*/*.parquet")) for r in pq.read_table(p).to_pylist()]
    errors = []
    for ep, sources in zip(rows, fed, strict=True):
        path = root / "videos" / key / f"chunk-{ep[f'videos/{key}/chunk_index']:03d}" / \
            f"file-{ep[f'videos/{key}/file_index']:03d}.mp4"
        first = round(ep[f"videos/{key}/from_timestamp"] * fps)
        wanted = {first + r: sources[r] for r in range(0, ep["length"], PSNR_EVERY)}
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            for frame in c.decode(s):
                k = round(frame.pts * s.time_base * fps)
                if k in wanted:
                    diff = frame.to_ndarray(format="rgb24").astype(np.float32) - video[wanted.pop(k)]
                    errors.append(float(np.mean(diff * diff)))
        assert not wanted, f"{path}: no frame for rows {sorted(wanted)[:5]}"
    return round(float(10 * np.log10(255**2 / np.mean(errors))), 2)


def run(adapt: bool, video: dict[str, list[np.ndarray]], arrays: dict[str, np.ndarray], args, workdir: Path) -> dict:
    height, width = video[CAMERAS[0]][0].shape[:2]
    root = workdir / ("adaptive" if adapt else "fixed")
    shutil.rmtree(root, ignore_errors=True)
    rec = DatasetRecorder.create(root, args.fps, features(CAMERAS, width, height), robot_type="aloha",
                                 camera_encoder=EncoderConfig(vcodec=args.vcodec, preset=parse_preset(args.preset)),
                                 encoder_queue_maxsize=args.queue, adapt_on_overload=adapt)
    n_src = len(video[CAMERAS[0]])
    per_episode = round(args.seconds * args.fps)
    add_ms: list[float] = []
    late, reports, fed = 0, [], []
    for e in range(args.episodes):
        start = e * per_episode
        late += paced_episode(rec, video, arrays, args.fps, per_episode, start, add_ms)[0]
        reports.append(rec.save_episode())
        fed.append([(start + k) % n_src for k in range(per_episode)])
    rec.finalize()
    minutes = per_episode * args.episodes / args.fps / 60
    result = {
        "adapt_on_overload": adapt,
        "kept_per_episode": [{c: r.frames - r.cameras[f"observation.images.{c}"].dropped for c in CAMERAS}
                             for r in reports],
        "rows_per_episode": per_episode,
        "kept_total": sum(r.frames - r.cameras[f"observation.images.{c}"].dropped for r in reports for c in CAMERAS),
        "rows_total": per_episode * args.episodes * len(CAMERAS),
        "adaptations": [f"episode {r.episode_index}: {a}" for r in reports for c in r.cameras.values()
                        for a in c.adaptations],
        "encoders_per_episode": [{c: r.cameras[f"observation.images.{c}"].encoder for c in CAMERAS} for r in reports],
        "add_frame_ms_p99": round(float(np.percentile(add_ms, 99)), 3),
        "ticks_late": late,
        "save_episode_ms": [round(r.save_s * 1e3, 1) for r in reports],
        "bytes_per_camera_minute": {c: round(sum(p.stat().st_size for p in (root / "videos" /
                                                                             f"observation.images.{c}").rglob("*.mp4"))
                                             / minutes) for c in CAMERAS},
        "psnr_db": {c: _psnr(root, c, fed, video[c], args.fps) for c in CAMERAS},
    }
    shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--vcodec", default="libsvtav1")
    ap.add_argument("--preset", default=None, help="the fixed setting's preset (default: streamrec's)")
    ap.add_argument("--queue", type=int, default=30)
    args = ap.parse_args()
    if not args.footage.exists():
        sys.exit(f"footage not found at {args.footage}; pass --footage")
    video, arrays = load_footage(args.footage, 150, CAMERAS, (args.width, args.height))
    workdir = Path(tempfile.mkdtemp(prefix="streamrec-adaptive-"))
    runs = []
    try:
        for r in range(args.rounds):
            for adapt in ((False, True) if r % 2 == 0 else (True, False)):
                runs.append(run(adapt, video, arrays, args, workdir))
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    kept = {a: [x["kept_total"] for x in runs if x["adapt_on_overload"] is a] for a in (False, True)}
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "cap_sys_nice": cap_sys_nice(), "load_avg_at_end": os.getloadavg()},
        "workload": {"cameras": len(CAMERAS), "resolution": f"{args.width}x{args.height}", "fps": args.fps,
                     "episodes": args.episodes, "seconds": args.seconds, "vcodec": args.vcodec,
                     "preset": parse_preset(args.preset), "queue": args.queue},
        "kept_ratio_adaptive_to_fixed": round(sum(kept[True]) / max(1, sum(kept[False])), 3),
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
