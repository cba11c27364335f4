"""How long `save_episode()` makes a robot wait, streaming vs PNG path, beside LeRobot 0.6.1.

Each variant records the same footage (3 cameras 640x480 from ../shared/footage, looped, with
its state/action) in real time at `--fps` for `--episodes` episodes of `--seconds`, and times
every `save_episode()`. Variants run one after the other in this one run, so their ratios are
comparable even on a shared machine:

- `streamrec-streaming`: the default, video encoded while recording;
- `streamrec-png`: `streaming_encoding=False`, PNGs written by the encoder processes while
  recording; an idle-priority thread per camera encodes what it can meanwhile, and saving
  encodes the rest from the PNGs, cameras in parallel;
- `lerobot-png`, `lerobot-streaming`: LeRobot 0.6.1's `LeRobotDataset` with the same encoder
  settings (libsvtav1, crf 30, g 2) and its recording default of 4 image-writer threads per
  camera, run in the venv that `../shared/tools/lerobot-load-check` builds (skipped if absent).

    .venv/bin/python benchmarks/save_time.py [--seconds 20 --episodes 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from _footage import CAMERAS, FOOTAGE, features, load_footage, paced_episode

LEROBOT_PYTHON = Path(os.environ.get("LEROBOT_VENV", Path.home() / ".cache/streamrec-lerobot-venv")) / "bin/python"


def open_recorder(variant: str, root: Path, fps: int):
    """The variant's dataset writer: an object with add_frame(frame) and save_episode()."""
    if variant.startswith("streamrec"):
        from streamrec import DatasetRecorder

        return DatasetRecorder.create(root, fps, features(CAMERAS, 640, 480), robot_type="aloha",
                                      streaming_encoding=variant == "streamrec-streaming")
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    feats = {k: {**v, "shape": tuple(v["shape"])} for k, v in features(CAMERAS, 640, 480).items()}
    return LeRobotDataset.create(
        repo_id="bench/save_time", fps=fps, features=feats, root=root, robot_type="aloha", use_videos=True,
        image_writer_threads=4 * len(CAMERAS), rgb_encoder=RGBEncoderConfig(vcodec="libsvtav1", crf=30, g=2),
        streaming_encoding=variant == "lerobot-streaming")


def run_variant(variant: str, footage: Path, fps: int, seconds: float, episodes: int) -> dict:
    video, arrays = load_footage(footage, 250)
    workdir = Path(tempfile.mkdtemp(prefix="streamrec-save-time-"))
    rec = open_recorder(variant, workdir / "ds", fps)
    per_episode = round(seconds * fps)
    add_ms: list[float] = []
    save_s, late, reports = [], 0, []
    for e in range(episodes):
        late += paced_episode(rec, video, arrays, fps, per_episode, e * per_episode, add_ms)[0]
        t = time.perf_counter()
        reports.append(rec.save_episode())
        save_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    rec.finalize()
    finalize_s = time.perf_counter() - t
    frames = _count_frames(workdir / "ds")
    shutil.rmtree(workdir, ignore_errors=True)
    p50, p99 = (round(float(x), 3) for x in np.percentile(add_ms, [50, 99]))
    return {"variant": variant, "save_episode_s": [round(s, 3) for s in save_s], "finalize_s": round(finalize_s, 3),
            "add_frame_ms": {"p50": p50, "p99": p99},
            "ticks_late": late, "video_frames": frames, "rows_expected": per_episode * episodes,
            **(_streamrec_figures(reports) if variant.startswith("streamrec") else {})}


def _streamrec_figures(reports: list) -> dict:
    """Drops at the hand-off and, for the PNG path, frames encoded while recording, per episode."""
    return {"dropped": [r.dropped for r in reports],
            "encoded_while_recording": [{c.camera.rsplit(".", 1)[-1]: c.encoded_while_recording
                                         for c in r.cameras.values()} for r in reports]}


def _count_frames(root: Path) -> dict[str, int]:
    """Video frames per camera, counted by decoding every MP4 (so the variants are checked alike)."""
    out = {}
    for c in CAMERAS:
        n = 0
        for path in sorted((root / "videos" / f"observation.images.{c}").rglob("*.mp4")):
            with av.open(str(path)) as container:
                n += sum(1 for _ in container.decode(video=0))
        out[c] = n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--variants", default="streamrec-streaming,streamrec-png,lerobot-png,lerobot-streaming")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_variant(args.one, args.footage, args.fps, args.seconds, args.episodes)))
        return
    if not args.footage.exists():
        sys.exit(f"footage not found at {args.footage}; pass --footage")
    results = []
    for variant in args.variants.split(","):
        python = sys.executable if variant.startswith("streamrec") else str(LEROBOT_PYTHON)
        if not Path(python).exists():
            print(f"{variant}: skipped, no LeRobot venv at {LEROBOT_PYTHON} (run ../shared/tools/lerobot-load-check "
                  "once to build it)", file=sys.stderr)
            continue
        print(f"{variant}: recording {args.episodes} x {args.seconds:g} s ...", file=sys.stderr)
        # Each variant in a fresh process, so that none inherits another's threads or memory.
        out = subprocess.run([python, __file__, "--one", variant, "--footage", str(args.footage), "--fps",
                              str(args.fps), "--seconds", str(args.seconds), "--episodes", str(args.episodes)],
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if out.returncode:
            print(f"{variant}: failed\n{out.stderr[-3000:]}", file=sys.stderr)
            continue
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    by = {r["variant"]: r for r in results}
    ratios = {}
    for mine, theirs in (("streamrec-png", "lerobot-png"), ("streamrec-streaming", "lerobot-streaming"),
                         ("streamrec-streaming", "streamrec-png")):
        if mine in by and theirs in by:
            ratios[f"{mine} / {theirs}"] = round(float(np.mean(by[mine]["save_episode_s"]))
                                                 / float(np.mean(by[theirs]["save_episode_s"])), 3)
    report = {"machine": {"cpus": os.cpu_count(), "euid": os.geteuid(), "av": av.__version__},
              "workload": {"cameras": len(CAMERAS), "resolution": "640x480", "fps": args.fps,
                           "seconds": args.seconds, "episodes": args.episodes, "vcodec": "libsvtav1"},
              "results": results, "mean_save_time_ratios": ratios}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
