"""Depth in real time: one colour and one depth camera at 640x480, 30 fps, fed by the paced capture loop,
streamrec in both depth modes side by side with LeRobot 0.6.1 on the same frames.

    .venv/bin/python benchmarks/depth_realtime.py [--seconds 10] [--episodes 2] [--scenes sim,synthetic]
                                                  [--out benchmarks/results] [--name depth_realtime]

Two scenes, each held in memory before anything is timed: the simulated ALOHA `top` camera (colour and MuJoCo
depth of the same ticks, arms moving) and the synthetic cameras (the textured colour pattern, and a depth scene
with a stereo sensor's noise and holes: the hard case for a lossless codec). Per scene, every run records
`--episodes` episodes of `--seconds` at 30 fps, add_frame copying each image (as LeRobot's does):
- streamrec, depth hevc 12-bit (the default: x265 lossless, ultrafast) and ffv1 exact; the colour camera with
  streamrec's default (SVT-AV1 preset 12);
- LeRobot 0.6.1's writer (streaming encoding, its defaults: SVT-AV1 for colour, x265 lossless medium for depth),
  with both cameras, and with the depth camera alone (to tell its depth CPU from its colour CPU: its encoders
  are threads of the recording process).
Each run is a process of its own, as is and under `capsh --drop=cap_sys_nice`. Figures per run: rows kept,
frames dropped (streamrec's counters; LeRobot's own counter, and the frames its MP4s hold), add_frame p50/p99,
encoder CPU per depth frame (streamrec: its depth encoder process; LeRobot: the process less its capture thread,
depth alone), MB per camera-minute (MB = 2**20 bytes), the machine's load average.
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

import numpy as np
import psutil

from _footage import cap_sys_nice, paced_episode

HERE = Path(__file__).resolve().parent
LEROBOT_PY = Path(os.environ.get("LEROBOT_VENV", Path.home() / ".cache/streamrec-lerobot-venv")) / "bin/python"
FPS, H, W = 30, 480, 640
SOURCE_FRAMES = 150
"""Frames per camera held in memory and looped (5 s)."""
MODES = {"streamrec hevc12": "hevc", "streamrec ffv1": "ffv1"}


def prepare(scene: str, folder: Path) -> None:
    """depth.npy (N, H, W) uint16 mm and rgb.npy (N, H, W, 3) of the scene."""
    folder.mkdir(parents=True)
    if scene == "sim":
        from depth_roundtrip import sim_frames

        depth, rgb = sim_frames(SOURCE_FRAMES)
    else:
        from streamrec.capture import SyntheticCameraConfig, SyntheticDepthCameraConfig, SyntheticDepthSource
        from streamrec.capture._synthetic import SyntheticSource

        d = SyntheticDepthSource("depth", SyntheticDepthCameraConfig(width=W, height=H))
        c = SyntheticSource("rgb", SyntheticCameraConfig(width=W, height=H))
        d.open()
        c.open()
        depth = np.stack([d.frame(i)[..., 0] for i in range(SOURCE_FRAMES)])
        rgb = np.stack([c.read().copy() for _ in range(SOURCE_FRAMES)])
    np.save(folder / "depth.npy", depth)
    np.save(folder / "rgb.npy", rgb)


def streamrec_run(mode: str, folder: str, root: str, seconds: str, episodes: str) -> dict:
    """One paced recording with streamrec (runs in the child process)."""
    from streamrec import DatasetRecorder, DepthEncoderConfig, verify

    video = {"rgb": list(np.load(Path(folder, "rgb.npy"))),
             "depth": [f[..., None] for f in np.load(Path(folder, "depth.npy"))]}
    features = {"observation.images.rgb": {"dtype": "video", "shape": [H, W, 3]},
                "observation.images.depth": {"dtype": "video", "shape": [H, W, 1], "info": {"is_depth_map": True}},
                "observation.state": {"dtype": "float32", "shape": [1]}, "action": {"dtype": "float32", "shape": [1]}}
    arrays = {"observation.state": np.zeros((1, 1), np.float32), "action": np.zeros((1, 1), np.float32)}
    rec = DatasetRecorder.create(root, FPS, features, depth_encoder=DepthEncoderConfig(vcodec=mode))
    pids = rec.encoder_pids
    cpu0 = {k: sum(psutil.Process(p).cpu_times()[:2]) for k, p in pids.items()}
    n = round(float(seconds) * FPS)
    rows, late, add_ms, dropped, adaptations = 0, 0, [], {}, []
    for e in range(int(episodes)):
        lat, _ = paced_episode(rec, video, arrays, FPS, n, e * n, add_ms)
        late += lat
        rows += n
        report = rec.save_episode()
        for k, c in report.cameras.items():
            dropped[k] = dropped.get(k, 0) + c.dropped
            adaptations += [str(a) for a in c.adaptations]
    cpu = {k: sum(psutil.Process(p).cpu_times()[:2]) - cpu0[k] for k, p in pids.items()}
    rec.finalize()
    sizes = {p.parent.parent.name: p.stat().st_size for p in Path(root, "videos").rglob("*.mp4")}
    return {"rows": rows, "late_ticks": late, "dropped": dropped, "add_frame_ms": add_ms,
            "encoder_cpu_s": cpu, "bytes": sizes, "adaptations": adaptations,
            "verify_healthy": verify(root).healthy, "cap_sys_nice": cap_sys_nice()}


def summary(raw: dict, seconds: float) -> dict:
    add = np.array(raw.pop("add_frame_ms"))
    rows = raw["rows"]
    minutes = rows / FPS / 60
    out = {"rows": rows, "late_ticks": raw["late_ticks"], "dropped": raw["dropped"],
           "add_frame_ms_p50": round(float(np.percentile(add, 50)), 3),
           "add_frame_ms_p99": round(float(np.percentile(add, 99)), 3),
           "mb_per_camera_minute": {k: round(v / 2**20 / minutes, 1) for k, v in raw["bytes"].items()}}
    if "encoder_cpu_s" in raw:  # streamrec
        out["cpu_ms_per_depth_frame"] = round(raw["encoder_cpu_s"]["observation.images.depth"] / rows * 1e3, 2)
        out["cpu_ms_per_rgb_frame"] = round(raw["encoder_cpu_s"]["observation.images.rgb"] / rows * 1e3, 2)
        out["adaptations"] = raw["adaptations"]
        out["verify_healthy"] = raw["verify_healthy"]
        out["cap_sys_nice"] = raw["cap_sys_nice"]
    else:  # LeRobot: its encoders are threads of the recording process
        encoding = raw["process_cpu_s"] - raw["loop_thread_cpu_s"]
        out["encoding_cpu_ms_per_row"] = round(encoding / rows * 1e3, 2)
        out["frames_in_videos"] = raw["frames_in_videos"]
        out["cameras"] = raw["cameras"]
    return out


def child(argv: list[str], capsh: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *argv]
    if argv[0] == "lerobot":
        cmd = [str(LEROBOT_PY), str(HERE / "_lerobot_depth.py"), "paced", *argv[1:]]
    if capsh:
        cmd = ["capsh", "--drop=cap_sys_nice", "--", "-c", " ".join(f"'{c}'" for c in cmd)]
    load0 = os.getloadavg()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"failed": done.stderr[-3000:]}
    result = json.loads(lines[-1])
    result["loadavg_before_after"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each episode")
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--scenes", default="sim,synthetic")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--name", default="depth_realtime", help="results file name (without .json)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(streamrec_run(*a.child[1:])))
        return
    report: dict = {"machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
                    "size": f"{W}x{H}", "fps": FPS, "seconds_per_episode": a.seconds, "episodes": a.episodes,
                    "scenes": {}}
    work = Path(tempfile.mkdtemp(prefix="depth-realtime-"))
    try:
        for scene in a.scenes.split(","):
            folder = work / f"{scene}-frames"
            prepare(scene, folder)
            runs = {}
            for capsh in (False, True):
                tag = "without CAP_SYS_NICE" if capsh else "as is"
                jobs = {f"{name}, {tag}": ["streamrec", mode] for name, mode in MODES.items()}
                jobs[f"lerobot 0.6.1, {tag}"] = ["lerobot"]
                jobs[f"lerobot 0.6.1 depth alone, {tag}"] = ["lerobot", "--depth-only"]
                for name, job in jobs.items():
                    root = work / f"{scene}-{len(runs)}"
                    flags = [a for a in job[1:] if a.startswith("--")]
                    args = [job[0], *[a for a in job[1:] if not a.startswith("--")], str(folder), str(root),
                            str(a.seconds), str(a.episodes), *flags]
                    if job[0] == "streamrec":  # the child's argv: mode first
                        args = ["streamrec", job[1], str(folder), str(root), str(a.seconds), str(a.episodes)]
                    result = child(args, capsh)
                    runs[name] = summary(result, a.seconds) if "rows" in result else result
                    runs[name]["loadavg_before_after"] = result.get("loadavg_before_after")
                    print(name, json.dumps(runs[name]), file=sys.stderr, flush=True)
                    shutil.rmtree(root, ignore_errors=True)
                    time.sleep(2)
            report["scenes"][scene] = runs
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"{a.name}.json"
    path.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
