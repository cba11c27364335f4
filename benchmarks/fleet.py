"""Fleet operations at their limits on this machine: merge against a plain copy, transcode in process
and on Ray, Ray's cost per task, and verify's cost per frame (the inputs of the sizing in docs/fleet.md).

Set-up (not timed): one source dataset recorded from the footage beside the repository (3 cameras,
640x480, the recorder fed as fast as it takes frames) with H.264 as a robot would record to spare its
CPU (libx264 veryfast, crf 23, g 2), then copied `--copies` times.

- merge: `streamrec.merge` of the copies, in process and with `--ray local`, against a plain copy of
  the same files (every MP4 and parquet file copied with shutil, then fsync'ed, as merge syncs its
  files): MB/s of source bytes. Both read from the page cache (the sources were just written).
- transcode h264 -> libsvtav1 (crf 30, preset 12, g 2, 1 codec thread per task): camera frames per
  second in process, with Ray and 1 worker, with Ray and 2 workers, each on a Ray already running
  ("warm": a cluster's steady state) and started by the call itself ("cold": what `--ray local`
  costs); CPU seconds per frame in process.
- Ray's overhead per task: a batch of no-op tasks through the same runner (2 workers), and the
  transcode's wall time with Ray and 1 worker minus in process, per task (warm and cold).
- verify: `streamrec.verify` of the AV1 result, camera frames per second and CPU per frame.

    .venv/bin/python benchmarks/fleet.py [--episodes 6 --frames 150 --copies 16] [--out results/fleet-root.json]
    capsh --drop=cap_sys_nice -- -c '.venv/bin/python benchmarks/fleet.py --out benchmarks/results/fleet-nocap.json'
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _footage import FOOTAGE, NATIVE, cameras, cap_sys_nice, features, load_footage  # noqa: E402
from streamrec import DatasetRecorder, EncoderConfig, merge, transcode, verify  # noqa: E402
from streamrec.fleet._runner import runner  # noqa: E402

_MB = 2**20
H264 = EncoderConfig(vcodec="h264", preset="veryfast", crf=23, g=2)
AV1 = EncoderConfig(vcodec="libsvtav1", crf=30, preset=12, g=2)


def cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (Ray's workers are not counted)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def record_source(root: Path, episodes: int, frames: int) -> None:
    cams = cameras(3)
    video, arrays = load_footage(FOOTAGE, frames, cams)
    rec = DatasetRecorder.create(root, 30, features(cams, *NATIVE), robot_type="aloha", camera_encoder=H264,
                                 queue_full_policy="block")
    for e in range(episodes):
        for i in range(frames):
            row = {f"observation.images.{c}": video[c][i] for c in cams}
            row["observation.state"] = arrays["observation.state"][i % len(arrays["observation.state"])]
            row["action"] = arrays["action"][i % len(arrays["action"])]
            row["task"] = f"insertion {e % 2}"
            rec.add_frame(row)
        rec.save_episode()
    rec.finalize()


def plain_copy(sources: list[Path], out: Path) -> int:
    """Every video and parquet file of the sources copied and synced: the physical limit of a merge."""
    total = 0
    for n, src in enumerate(sources):
        for path in sorted(p for p in src.rglob("*") if p.suffix in (".mp4", ".parquet")):
            target = out / str(n) / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            with open(target, "rb+") as f:
                os.fsync(f.fileno())
            total += path.stat().st_size
    return total


def timed(fn, *args, **kwargs):
    t0, c0 = time.perf_counter(), cpu_s()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0, cpu_s() - c0


def _noop(job: int) -> int:
    return job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--frames", type=int, default=150, help="frames per episode and camera")
    ap.add_argument("--copies", type=int, default=16, help="source datasets merged")
    ap.add_argument("--noop-tasks", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result: dict = {"load_before": os.getloadavg(), "cap_sys_nice": cap_sys_nice(), "cpus": os.cpu_count(),
                    "episodes": args.episodes, "frames_per_episode": args.frames, "cameras": 3,
                    "size": f"{NATIVE[0]}x{NATIVE[1]}", "copies": args.copies}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-", dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        _, record_s, _ = timed(record_source, src, args.episodes, args.frames)
        camera_frames = args.episodes * args.frames * 3
        src_bytes = sum(p.stat().st_size for p in src.rglob("*") if p.suffix in (".mp4", ".parquet"))
        result["source"] = {"record_s": round(record_s, 2), "bytes": src_bytes, "camera_frames": camera_frames,
                            "kb_per_frame": round(src_bytes / camera_frames / 1024, 1)}
        print(f"source: {camera_frames} camera frames, {src_bytes / _MB:.1f} MB (h264 veryfast), recorded in "
              f"{record_s:.1f} s", flush=True)
        copies = [src]
        for n in range(1, args.copies):
            copies.append(tmp / f"src{n}")
            shutil.copytree(src, copies[-1])

        # -- merge against a plain copy, side by side, twice each ------------------------------------
        merge_runs = []
        for attempt in range(2):
            copied, copy_s, _ = timed(plain_copy, copies, tmp / f"copy{attempt}")
            report, merge_s, merge_cpu = timed(merge, copies, tmp / f"merged{attempt}")
            ray_report, ray_s, _ = timed(merge, copies, tmp / f"merged-ray{attempt}", ray="local", workers=2)
            run = {"bytes": copied, "copy_s": round(copy_s, 3), "copy_mb_s": round(copied / _MB / copy_s, 1),
                   "merge_s": round(merge_s, 3), "merge_mb_s": round(copied / _MB / merge_s, 1),
                   "merge_camera_frames_per_s": round(camera_frames * len(copies) / merge_s),
                   "merge_cpu_s": round(merge_cpu, 3), "merge_vs_copy": round(copy_s / merge_s, 3),
                   "merge_ray_s": round(ray_s, 3), "merge_ray_mb_s": round(copied / _MB / ray_s, 1),
                   "merge_ray_tasks": sum(ray_report.nodes.values())}
            merge_runs.append(run)
            print(f"merge {attempt}: copy {run['copy_mb_s']} MB/s, merge {run['merge_mb_s']} MB/s "
                  f"({run['merge_vs_copy']:.0%} of copy), merge on local Ray {run['merge_ray_mb_s']} MB/s", flush=True)
            for d in (f"copy{attempt}", f"merged{attempt}", f"merged-ray{attempt}"):
                shutil.rmtree(tmp / d)
        result["merge"] = merge_runs

        # -- transcode h264 -> AV1 -------------------------------------------------------------------
        # With Ray: "cold" starts a local Ray inside the call (what `--ray local` costs); "warm" runs on a Ray
        # already started with that many CPUs and whose workers have imported streamrec (a cluster's steady state).
        runs = {}
        tasks = args.episodes * 3 + 3
        for label, workers, warm in (("in_process", None, False), ("ray_1_worker_cold", 1, False),
                                     ("ray_1_worker", 1, True), ("ray_2_workers_cold", 2, False),
                                     ("ray_2_workers", 2, True)):
            out = tmp / f"av1-{label}"
            kwargs = {} if workers is None else {"ray": "local", "workers": workers}
            if warm:
                import ray

                ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
                with runner("local", workers) as run:
                    run.map(_noop, list(range(4 * workers)), stage="warm up")
            try:
                report, wall, cpu = timed(transcode, src, out, AV1, **kwargs)
            finally:
                if warm:
                    ray.shutdown()
            runs[label] = {"wall_s": round(wall, 3), "frames_per_s": round(camera_frames / wall, 2),
                           "task_s": round(report.encode_s, 3), "tasks": tasks, "av1_bytes": report.video_bytes}
            if workers is None:
                runs[label]["cpu_s"] = round(cpu, 3)
                runs[label]["cpu_ms_per_frame"] = round(cpu / camera_frames * 1e3, 3)
            print(f"transcode {label}: {runs[label]['frames_per_s']} camera frames/s ({wall:.1f} s)", flush=True)
        result["transcode"] = runs
        here, there = (sorted((tmp / f"av1-{k}").rglob("*.mp4")) for k in ("in_process", "ray_2_workers"))
        result["transcode"]["ray_output_byte_identical"] = all(a.read_bytes() == b.read_bytes()
                                                               for a, b in zip(here, there, strict=True))

        # -- Ray's cost per task ---------------------------------------------------------------------
        t0 = time.perf_counter()
        with runner("local", 2) as run:
            start_s = time.perf_counter() - t0
            run.map(_noop, list(range(args.noop_tasks)), stage="noop")
            noop_s = run.log.wall_s
        def overhead(label: str) -> float:
            return round((runs[label]["wall_s"] - runs["in_process"]["wall_s"]) / tasks * 1e3, 1)

        result["ray"] = {"start_and_stop_s": round(time.perf_counter() - t0, 3), "start_s": round(start_s, 3),
                         "noop_tasks": args.noop_tasks, "noop_ms_per_task": round(noop_s / args.noop_tasks * 1e3, 3),
                         "transcode_overhead_ms_per_task_1_worker_warm": overhead("ray_1_worker"),
                         "transcode_overhead_ms_per_task_1_worker_cold": overhead("ray_1_worker_cold")}
        print(f"ray: start {start_s:.1f} s, no-op task {result['ray']['noop_ms_per_task']} ms, transcode overhead "
              f"{overhead('ray_1_worker')} ms/task (1 worker, warm), {overhead('ray_1_worker_cold')} ms/task (cold)",
              flush=True)

        # -- verify's cost per frame -----------------------------------------------------------------
        report, wall, cpu = timed(verify, tmp / "av1-in_process")
        assert report.healthy, report.findings
        result["verify_av1"] = {"wall_s": round(wall, 3), "frames_per_s": round(camera_frames / wall, 1),
                                "cpu_ms_per_frame": round(cpu / camera_frames * 1e3, 3)}
        report, wall, cpu = timed(verify, src)
        result["verify_h264"] = {"wall_s": round(wall, 3), "frames_per_s": round(camera_frames / wall, 1),
                                 "cpu_ms_per_frame": round(cpu / camera_frames * 1e3, 3)}
        print(f"verify: AV1 {result['verify_av1']['frames_per_s']} frames/s, h264 "
              f"{result['verify_h264']['frames_per_s']} frames/s", flush=True)
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
