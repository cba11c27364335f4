"""Real-time recording benchmark: the capture loop a robot runs, on realistic camera footage.

A loop at `--fps` (sleeping to each next tick against the monotonic clock) feeds
`DatasetRecorder.add_frame` with the ALOHA simulation footage (up to 3 cameras, 640x480 or
upscaled, looped) plus its state/action vectors, for `--episodes` episodes of `--seconds` each,
then saves each episode. Prints one JSON object: add_frame p50/p99/max, late ticks, frames kept
vs expected, drops per camera, save_episode time, peak RSS, CPU, bytes written, and the PSNR of
the decoded video against the exact source frame each row was fed.

    .venv/bin/python benchmarks/record.py                     # as is (root here)
    capsh --drop=cap_sys_nice -- -c '.venv/bin/python benchmarks/record.py'
    .venv/bin/python benchmarks/record.py --cameras 2 --width 1920 --height 1080 --png

`realtime()` is the same measurement as a function; `benchmarks/suite.py` runs it per workload.
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

from _footage import (
    FOOTAGE,
    cameras,
    cap_sys_nice,
    features,
    frames_for,
    load_footage,
    paced_episode,
    parse_preset,
    psnr,
)
from streamrec import DatasetRecorder, EncoderConfig
from streamrec.record import EpisodeReport


def encoder_peak_rss_mb() -> list[float]:
    """Peak RSS (VmHWM) of each live child process. Not ru_maxrss: a child's maxrss counts the
    parent's pages it held before exec, and the capture process holds the footage."""
    out = []
    for child in psutil.Process().children():
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                out.append(int(line.split()[1]) / 1024)
    return out


def children_cpu_s() -> float:
    """CPU seconds used so far by the live child processes (the encoders), their threads included."""
    total = 0.0
    for child in psutil.Process().children():
        try:
            t = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def check_video(saves: list[EpisodeReport], starts: list[int], video: dict[str, list[np.ndarray]], fps: int,
                stride: int) -> dict[str, dict]:
    """Decode every episode's frames from the MP4s (located by the reports' from/to timestamps)
    and compare every `stride`-th with the source frame its row was fed. A dropped frame's slot
    holds the previous row's frame, so drops lower the minimum. (Which slots repeat a frame cannot
    be told from the video here: consecutive footage frames differ by about as much as coding
    noise, ~40 dB, and a P-frame often decodes closer to the previous source than to its own.)
    """
    out = {}
    for cam, src in video.items():
        key = f"observation.images.{cam}"
        n_src = len(src)
        values, decoded = [], 0
        for report, start in zip(saves, starts):
            c = report.cameras[key]
            first, last = round(c.from_timestamp * fps), round(c.to_timestamp * fps)
            with av.open(str(c.video_file)) as container:
                stream = container.streams.video[0]
                container.seek(int(c.from_timestamp / stream.time_base), stream=stream, backward=True)
                for f in container.decode(stream):
                    idx = round(f.time * fps)
                    if idx < first:
                        continue
                    if idx >= last:
                        break
                    k = idx - first
                    decoded += 1
                    if k % stride:
                        continue
                    rgb = f.to_ndarray(format="rgb24")
                    values.append(psnr(rgb, src[(start + k) % n_src]))
        finite = [v for v in values if np.isfinite(v)]
        out[cam] = {"frames_decoded": decoded, "frames_compared": len(values),
                    "psnr_db_mean": round(float(np.mean(finite)), 2) if finite else None,
                    "psnr_db_min": round(float(np.min(finite)), 2) if finite else None}
    return out


def realtime(*, footage: Path = FOOTAGE, cams: int = 3, width: int = 640, height: int = 480, fps: int = 30,
             seconds: float = 20.0, episodes: int = 2, streaming: bool = True, vcodec: str = "libsvtav1",
             preset: int | str | None = None, extra_options: dict | None = None, encoder_threads: int | None = None,
             queue: int = 30, policy: str = "drop", keep: Path | None = None, psnr_stride: int = 1,
             source_frames: int | None = None, zero_copy: bool = False, adapt: bool = True) -> dict:
    """Record `episodes` x `seconds` in real time and measure it (see the module docstring)."""
    names = cameras(cams)
    n_load = source_frames or frames_for(width, height, cams=cams)
    video, arrays = load_footage(footage, n_load, names, (width, height))
    extra = extra_options or {}
    workdir = Path(tempfile.mkdtemp(prefix="streamrec-bench-"))
    root = keep or workdir / "ds"
    rec = DatasetRecorder.create(root, fps, features(names, width, height), robot_type="aloha",
                                 streaming_encoding=streaming,
                                 camera_encoder=EncoderConfig(vcodec=vcodec, preset=preset, extra_options=extra),
                                 encoder_threads=encoder_threads, encoder_queue_maxsize=queue,
                                 queue_full_policy=policy, adapt_on_overload=adapt)
    per_episode = round(seconds * fps)
    add_ms: list[float] = []
    fill_ms: list[float] | None = [] if zero_copy else None
    late_ticks = 0
    saves: list[EpisodeReport] = []
    starts: list[int] = []
    # From here to the last save: the encoders' start-up and the final close are left out.
    cpu0 = time.process_time()
    cpu_children0 = children_cpu_s()
    wall0 = time.perf_counter()
    for e in range(episodes):
        starts.append(e * per_episode)
        late, _ = paced_episode(rec, video, arrays, fps, per_episode, starts[-1], add_ms, fill_ms=fill_ms)
        late_ticks += late
        saves.append(rec.save_episode())
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    cpu_children = children_cpu_s() - cpu_children0
    encoder_rss = encoder_peak_rss_mb()
    t = time.perf_counter()
    rec.finalize()
    finalize_s = time.perf_counter() - t
    peak_rss_self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    bytes_by_camera = {c: sum(p.stat().st_size for p in (root / "videos" / f"observation.images.{c}").rglob("*.mp4"))
                       for c in names}
    expected = per_episode * episodes
    minutes = expected / fps / 60
    quality = check_video(saves, starts, video, fps, psnr_stride)
    a = np.array(add_ms)
    footage_mb = sum(f.nbytes for v in video.values() for f in v) / 2**20

    def per_camera(attr: str, scale: float = 1.0, digits: int = 1) -> list:
        return [round(max(getattr(c, attr) or 0.0 for c in s.cameras.values()) * scale, digits) for s in saves]

    result = {
        "machine": {"cpus": os.cpu_count(), "euid": os.geteuid(), "cap_sys_nice": cap_sys_nice(),
                    "av": av.__version__},
        "workload": {"cameras": cams, "resolution": f"{width}x{height}", "fps": fps, "episodes": episodes,
                     "seconds": seconds, "path": "streaming" if streaming else "png", "vcodec": vcodec,
                     "preset": preset, "extra_options": extra, "encoder_threads": encoder_threads,
                     "encoder_queue_maxsize": queue, "queue_full_policy": policy, "source_frames": n_load,
                     "frames_into": "frame_buffer() (zero copy)" if zero_copy else "add_frame (copied)",
                     "adapt_on_overload": adapt},
        "add_frame_ms": _percentiles(a),
        # Zero copy: the camera's part, filling the buffers (a copy here, a driver's decode in a robot).
        "frame_buffer_fill_ms": None if fill_ms is None else _percentiles(np.array(fill_ms)),
        "adaptations": [f"episode {s.episode_index}: {x}" for s in saves for c in s.cameras.values()
                        for x in c.adaptations],
        "ticks_late": late_ticks,
        "rows_recorded": sum(s.frames for s in saves),
        "rows_expected": expected,
        "video_frames_recorded": {c: sum(s.cameras[f"observation.images.{c}"].frames for s in saves) for c in names},
        "video_frames_decoded": {c: q["frames_decoded"] for c, q in quality.items()},
        "dropped": {c: sum(s.cameras[f"observation.images.{c}"].dropped for s in saves) for c in names},
        "max_queue_depth": {c: max(s.cameras[f"observation.images.{c}"].max_queue_depth for s in saves)
                            for c in names},
        "save_episode_ms": [round(s.save_s * 1e3, 1) for s in saves],
        # Streaming: the frames the slowest encoder still held; PNG path: encoding what the idle
        # encoder had not reached. Both are inside save_episode_ms.
        "encoder_flush_ms": per_camera("flush_s", 1e3),
        "mp4_append_ms": per_camera("append_s", 1e3, 2),
        "encoded_while_recording": [{c.camera.rsplit(".", 1)[-1]: c.encoded_while_recording
                                     for c in s.cameras.values()} for s in saves] if not streaming else None,
        "finalize_ms": round(finalize_s * 1e3, 1),
        "peak_rss_mb": {"capture_process_incl_footage": round(peak_rss_self_kb / 1024),
                        "footage_in_memory": round(footage_mb),
                        "largest_encoder_process": round(max(encoder_rss, default=0)),
                        "encoder_processes_sum": round(sum(encoder_rss))},
        "cpu_percent_of_one_core": {"capture_process": round(100 * cpu / wall, 1),
                                    "encoder_processes": round(100 * cpu_children / wall, 1)},
        "cpu_s": {"capture_process": round(cpu, 2), "encoder_processes": round(cpu_children, 2),
                  "wall": round(wall, 2)},
        "bytes_per_camera": bytes_by_camera,
        "bytes_per_camera_minute": {c: round(b / minutes) for c, b in bytes_by_camera.items()},
        "mb_per_camera_minute_all": round(sum(bytes_by_camera.values()) / (cams * minutes) / 1e6, 2),
        "psnr": quality,
    }
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def _percentiles(a: np.ndarray) -> dict[str, float]:
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--png", action="store_true", help="streaming_encoding=False (the PNG path)")
    ap.add_argument("--vcodec", default="libsvtav1")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--svtav1-params", default=None, help="extra svtav1-params, e.g. pred-struct=1")
    ap.add_argument("--encoder-threads", type=int, default=None)
    ap.add_argument("--queue", type=int, default=30)
    ap.add_argument("--policy", default="drop", choices=("drop", "block"))
    ap.add_argument("--psnr-stride", type=int, default=1, help="compare every Nth decoded frame with its source")
    ap.add_argument("--keep", type=Path, default=None, help="record here and keep the dataset")
    ap.add_argument("--zero-copy", action="store_true", help="fill rec.frame_buffer() instead of passing images")
    ap.add_argument("--fixed", action="store_true", help="adapt_on_overload=False")
    args = ap.parse_args()
    if not args.footage.exists():
        sys.exit(f"footage not found at {args.footage}; pass --footage")
    preset = parse_preset(args.preset)
    result = realtime(footage=args.footage, cams=args.cameras, width=args.width, height=args.height, fps=args.fps,
                      seconds=args.seconds, episodes=args.episodes, streaming=not args.png, vcodec=args.vcodec,
                      preset=preset,
                      extra_options={"svtav1-params": args.svtav1_params} if args.svtav1_params else None,
                      encoder_threads=args.encoder_threads, queue=args.queue, policy=args.policy, keep=args.keep,
                      psnr_stride=args.psnr_stride, zero_copy=args.zero_copy, adapt=not args.fixed)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
