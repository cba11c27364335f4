"""How close does streamrec get to the encoder's own limit on this machine?

Measurements on the same footage frames (up to 3 cameras from ../shared/footage, 640x480 or
upscaled, looped) and the same encoder settings (streamrec's libsvtav1 defaults, or
--vcodec/--preset):

- raw limit: one process per camera running a bare PyAV encode loop (rgb24 frames in, packets
  counted), all cameras at once; frames per second over all cameras;
- streamrec, `block`: `DatasetRecorder` with the `block` policy fed as fast as it takes frames,
  then `save_episode()`; frames per second over all cameras, from the first frame to the save;
- streamrec, sustainable (`--sustainable`): the default `drop` policy fed by a real-time loop
  paced at a given fps; the highest fps at which no frame is dropped, found by bisection over
  steps of a few seconds (one episode each), times the cameras.

Prints them and the ratios to the limit (the issue's target: streamrec >= 90 % of the limit).

    .venv/bin/python benchmarks/throughput.py [--frames 300] [--vcodec libsvtav1] [--sustainable]
    .venv/bin/python benchmarks/throughput.py --cameras 2 --width 1920 --height 1080 --frames 100
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from _footage import FOOTAGE, cameras, features, frames_for, load_footage, load_video, parse_preset

FPS = 30


def raw_one(folder: Path, camera: str, frames: int, vcodec: str, preset: str | None, size: tuple[int, int],
            source_frames: int, demoted: bool) -> None:
    """Child: encode `frames` frames bare and print the seconds it took (after loading)."""
    from streamrec import EncoderConfig
    from streamrec.encode._priority import demote_current_thread

    config = EncoderConfig(vcodec=vcodec, preset=parse_preset(preset))
    source = load_video(folder, source_frames, (camera,), size)[camera]
    if demoted:  # as streamrec's encoder processes do, before the codec starts its threads
        demote_current_thread(10)
    ctx = av.CodecContext.create(config.encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = size[0], size[1], config.pix_fmt
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


def raw_limit(folder: Path, frames: int, vcodec: str, preset: str | None, cams: int = 3, width: int = 640,
              height: int = 480, demoted: bool = False) -> dict:
    """`demoted`: the encode loops run at the priority streamrec gives its encoder processes (nice
    +10, SCHED_BATCH, no CAP_SYS_NICE); otherwise at the caller's, where SVT-AV1 takes real-time
    priority for its threads if it may (root)."""
    n_src = frames_for(width, height, cams=cams, most=150)
    args = [sys.executable, __file__, "--footage", str(folder), "--frames", str(frames), "--vcodec", vcodec,
            "--width", str(width), "--height", str(height), "--source-frames", str(n_src)]
    if demoted:
        args.append("--demoted")
    if preset is not None:
        args += ["--preset", preset]
    procs = [subprocess.Popen([*args, "--raw-one", c], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for c in cameras(cams)]
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
    return {"frames_per_s": round(cams * frames / wall, 1), "wall_s": round(wall, 2),
            "frames_per_camera": frames, "per_camera_s": [round(r["seconds"], 2) for r in results]}


def streamrec_rate(folder: Path, frames: int, vcodec: str, preset: str | None, cams: int = 3, width: int = 640,
                   height: int = 480) -> dict:
    from streamrec import DatasetRecorder, EncoderConfig

    names = cameras(cams)
    source = load_video(folder, frames_for(width, height, cams=cams, most=150), names, (width, height))
    work = Path(tempfile.mkdtemp(prefix="streamrec-throughput-"))
    # Fixed settings (no adaptive overload): the same settings as the bare loop it is compared with.
    rec = DatasetRecorder.create(work / "ds", FPS, features(names, width, height, robot=False),
                                 queue_full_policy="block", adapt_on_overload=False,
                                 camera_encoder=EncoderConfig(vcodec=vcodec, preset=parse_preset(preset)))
    t = time.perf_counter()
    for i in range(frames):
        rec.add_frame({f"observation.images.{c}": source[c][i % len(source[c])] for c in names} | {"task": "t"})
    report = rec.save_episode()
    wall = time.perf_counter() - t
    rec.finalize()
    shutil.rmtree(work, ignore_errors=True)
    assert report.dropped == 0
    return {"frames_per_s": round(cams * frames / wall, 1), "wall_s": round(wall, 2), "frames_per_camera": frames}


def sustainable(folder: Path, vcodec: str, preset: str | None, cams: int = 3, width: int = 640, height: int = 480,
                start_fps: float = 30.0, step_s: float = 8.0, max_steps: int = 7, precision: float = 0.04,
                queue: int = 30) -> dict:
    """The highest paced fps at which the default `drop` policy drops nothing, and keeps up.

    One recorder, one episode per step (the recorder does not care that the pace differs from
    the dataset's nominal fps). Going up from `start_fps` by 25 % until a step fails (or down
    until one passes), then bisecting until the bounds are within `precision`. A step passes
    when no frame was dropped, the loop kept its pace (97 % of the ticks' rate, so that a slow
    capture loop cannot pass for a fast encoder), and every camera's queue went down to at most
    2 frames waiting at some tick of the step's last second. The last condition matters: a
    `queue`-frame queue fed faster than its encoder takes `queue / deficit` seconds to fill, so
    without it a step of a few seconds would pass rates the encoders cannot hold.
    """
    from _footage import paced_episode
    from streamrec import DatasetRecorder, EncoderConfig

    names = cameras(cams)
    video, arrays = load_footage(folder, frames_for(width, height, cams=cams), names, (width, height))
    work = Path(tempfile.mkdtemp(prefix="streamrec-sustainable-"))
    rec = DatasetRecorder.create(work / "ds", FPS, features(names, width, height), encoder_queue_maxsize=queue,
                                 camera_encoder=EncoderConfig(vcodec=vcodec, preset=parse_preset(preset)),
                                 adapt_on_overload=False)  # the limit of these settings, not of faster ones
    steps = []
    good: dict | None = None
    bad: dict | None = None
    fps = start_fps
    start = 0
    try:
        for _ in range(max_steps):
            frames = max(10, round(step_s * fps))
            tail_from = frames - max(1, round(fps))
            lowest: dict[str, int] = {}

            def watch(k: int, tail_from=tail_from, lowest=lowest) -> None:
                if k >= tail_from:
                    for st in rec.camera_status():
                        lowest[st.camera] = min(lowest.get(st.camera, queue + 1), st.queue_depth)

            add_ms: list[float] = []
            late, loop_s = paced_episode(rec, video, arrays, fps, frames, start, add_ms, watch)
            report = rec.save_episode()
            start += frames
            achieved = frames / loop_s
            backlog = max(lowest.values())
            step = {"fps": round(fps, 2), "frames_per_camera": frames, "loop_s": round(loop_s, 2),
                    "save_s": round(report.save_s, 3), "achieved_fps": round(achieved, 2),
                    "delivered_frames_per_s": round(cams * frames / (loop_s + report.save_s), 1),
                    "dropped": report.dropped, "ticks_late": late,
                    "max_queue_depth": max(c.max_queue_depth for c in report.cameras.values()),
                    "least_waiting_in_last_second": backlog,
                    "add_frame_p99_ms": round(float(np.percentile(add_ms, 99)), 2)}
            step["ok"] = report.dropped == 0 and achieved >= 0.97 * fps and backlog <= 2
            steps.append(step)
            if step["ok"]:
                good = step if good is None or step["fps"] > good["fps"] else good
            else:
                bad = step if bad is None or step["fps"] < bad["fps"] else bad
            if good is None:
                fps = bad["fps"] / 1.25
            elif bad is None:
                fps = good["fps"] * 1.25
            elif (bad["fps"] - good["fps"]) / good["fps"] <= precision:
                break
            else:
                fps = (good["fps"] + bad["fps"]) / 2
            fps = math.floor(fps * 10) / 10
            if good is not None and bad is not None and not good["fps"] < fps < bad["fps"]:
                break  # bounds 0.1 fps apart
    finally:
        rec.finalize()
        shutil.rmtree(work, ignore_errors=True)
    return {"fps_per_camera": good["fps"] if good else None,
            "first_failing_fps": bad["fps"] if bad else None,
            "frames_per_s": round(cams * good["fps"], 1) if good else None,
            "converged": bool(good and bad and (bad["fps"] - good["fps"]) / good["fps"] <= precision),
            "step_s": step_s, "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    ap.add_argument("--frames", type=int, default=300, help="frames per camera")
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--vcodec", default="libsvtav1")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--sustainable", action="store_true", help="also search the highest drop-free paced fps")
    ap.add_argument("--step-s", type=float, default=8.0, help="seconds per step of the sustainable search")
    ap.add_argument("--demoted", action="store_true",
                    help="run the bare encode loops at the priority of streamrec's encoder processes")
    ap.add_argument("--raw-one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--source-frames", type=int, default=150, help=argparse.SUPPRESS)
    args = ap.parse_args()
    size = (args.width, args.height)
    if args.raw_one:
        raw_one(args.footage, args.raw_one, args.frames, args.vcodec, args.preset, size, args.source_frames,
                args.demoted)
        return
    if not args.footage.exists():
        sys.exit(f"footage not found at {args.footage}; pass --footage")
    raw = raw_limit(args.footage, args.frames, args.vcodec, args.preset, args.cameras, *size, demoted=args.demoted)
    ours = streamrec_rate(args.footage, args.frames, args.vcodec, args.preset, args.cameras, *size)
    out = {"machine": {"cpus": os.cpu_count(), "euid": os.geteuid()},
           "workload": {"cameras": args.cameras, "resolution": f"{args.width}x{args.height}",
                        "frames_per_camera": args.frames, "vcodec": args.vcodec, "preset": args.preset},
           "raw_limit": raw, "streamrec": ours, "ratio": round(ours["frames_per_s"] / raw["frames_per_s"], 3)}
    if args.sustainable:
        s = sustainable(args.footage, args.vcodec, args.preset, args.cameras, *size,
                        start_fps=0.9 * raw["frames_per_s"] / args.cameras, step_s=args.step_s)
        out["sustainable"] = s
        out["sustainable_ratio"] = s["frames_per_s"] and round(s["frames_per_s"] / raw["frames_per_s"], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
