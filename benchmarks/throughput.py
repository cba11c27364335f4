"""How close does streamrec get to the encoder's own limit on this machine?

Two measurements on the same footage frames (3 cameras 640x480 from ../shared/footage, looped)
and the same encoder settings (streamrec's libsvtav1 defaults, or --vcodec/--preset):

- raw limit: one process per camera running a bare PyAV encode loop (rgb24 frames in, packets
  counted), all cameras at once; frames per second over all cameras;
- streamrec: `DatasetRecorder` with the `block` policy fed as fast as it takes frames, then
  `save_episode()`; frames per second over all cameras, from the first frame to the save.

Prints both and their ratio (the issue's target: streamrec >= 90 % of the limit).

    .venv/bin/python benchmarks/throughput.py [--frames 300] [--vcodec libsvtav1]
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
from fractions import Fraction
from pathlib import Path

import av
from _footage import CAMERAS, FOOTAGE, load_video

FPS = 30


def raw_one(folder: Path, camera: str, frames: int, vcodec: str, preset: str | None) -> None:
    """Child: encode `frames` frames bare and print the seconds it took (after loading)."""
    from streamrec import EncoderConfig

    config = EncoderConfig(vcodec=vcodec, preset=_preset(preset))
    source = load_video(folder, 150, (camera,))[camera]
    ctx = av.CodecContext.create(config.encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 640, 480, config.pix_fmt
    ctx.time_base, ctx.framerate = Fraction(1, FPS), Fraction(FPS, 1)
    ctx.gop_size = config.g
    ctx.max_b_frames = 0
    ctx.options = config.codec_options(None)
    ctx.open()
    print("ready", flush=True)
    sys.stdin.readline()  # all cameras start together
    t = time.perf_counter()
    packets = 0
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(source[i % len(source)], format="rgb24")
        frame.pts = i
        packets += len(ctx.encode(frame))
    packets += len(ctx.encode(None))
    print(json.dumps({"seconds": time.perf_counter() - t, "packets": packets}), flush=True)


def _preset(preset: str | None) -> int | str | None:
    return None if preset is None else int(preset) if preset.isdigit() else preset


def raw_limit(folder: Path, frames: int, vcodec: str, preset: str | None) -> dict:
    args = [sys.executable, __file__, "--footage", str(folder), "--frames", str(frames), "--vcodec", vcodec]
    if preset is not None:
        args += ["--preset", preset]
    procs = [subprocess.Popen([*args, "--raw-one", c], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for c in CAMERAS]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    t = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline()) for p in procs]
    wall = time.perf_counter() - t
    for p in procs:
        p.wait()
    assert all(r["packets"] == frames for r in results)
    return {"frames_per_s": round(len(CAMERAS) * frames / wall, 1), "wall_s": round(wall, 2)}


def streamrec_rate(folder: Path, frames: int, vcodec: str, preset: str | None) -> dict:
    from streamrec import DatasetRecorder, EncoderConfig

    source = load_video(folder, 150)
    work = Path(tempfile.mkdtemp(prefix="streamrec-throughput-"))
    feats = {f"observation.images.{c}": {"dtype": "video", "shape": [480, 640, 3]} for c in CAMERAS}
    rec = DatasetRecorder.create(work / "ds", FPS, feats, queue_full_policy="block",
                                 camera_encoder=EncoderConfig(vcodec=vcodec, preset=_preset(preset)))
    t = time.perf_counter()
    for i in range(frames):
        rec.add_frame({f"observation.images.{c}": source[c][i % len(source[c])] for c in CAMERAS} | {"task": "t"})
    report = rec.save_episode()
    wall = time.perf_counter() - t
    rec.finalize()
    shutil.rmtree(work, ignore_errors=True)
    assert report.dropped == 0
    return {"frames_per_s": round(len(CAMERAS) * frames / wall, 1), "wall_s": round(wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    ap.add_argument("--frames", type=int, default=300, help="frames per camera")
    ap.add_argument("--vcodec", default="libsvtav1")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--raw-one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.raw_one:
        raw_one(args.footage, args.raw_one, args.frames, args.vcodec, args.preset)
        return
    if not args.footage.exists():
        sys.exit(f"footage not found at {args.footage}; pass --footage")
    raw = raw_limit(args.footage, args.frames, args.vcodec, args.preset)
    ours = streamrec_rate(args.footage, args.frames, args.vcodec, args.preset)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "euid": os.geteuid()},
                      "workload": {"cameras": len(CAMERAS), "resolution": "640x480", "frames_per_camera": args.frames,
                                   "vcodec": args.vcodec, "preset": args.preset},
                      "raw_limit": raw, "streamrec": ours,
                      "ratio": round(ours["frames_per_s"] / raw["frames_per_s"], 3)}, indent=2))


if __name__ == "__main__":
    main()
