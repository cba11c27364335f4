"""LeRobot 0.6.1's own `lerobot-record` and `streamrec lerobot-record`, side by side in one run: same robot,
same teleoperator, same flags.

The robot and teleoperator are the tests' plugins (tests/lerobot/plugins): two LeRobot OpenCVCameras at
640x480, each reading an id video fed one frame per observation, like a camera's newest frame. Flags:
30 fps, 2 episodes of --seconds, streaming encoding, LeRobot's default encoder (SVT-AV1 preset 12, crf 30,
g 2). Each pair runs as root and again without CAP_SYS_NICE (capsh), the two tools one after the other.

Per run: rows per episode (against fps x episode_time_s), skipped ticks (streamrec's count; for
lerobot-record, whose loop does not skip but falls behind, the rows it lacks), add_frame p50/p99 and
save_episode time (lerobot-record's through a timing wrapper around its LeRobotDataset, streamrec's from its
report), peak memory of the whole process tree (RSS and USS, see TreeSampler) and its CPU time, and the
machine's load.

lerobot-record runs in LeRobot's own environment (lerobot[dataset]==0.6.1, PyAV 15: $LEROBOT_VENV, default
~/.cache/streamrec-lerobot-venv, which /work/shared/tools/lerobot-load-check builds), finding the plugins
through --robot.discover_packages_path; streamrec in .venv312 (`make lerobot-env`).

    .venv/bin/python benchmarks/lerobot_record.py [--seconds 10] [--out benchmarks/results/lerobot_record.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "lerobot"))

from helpers.frames import write_id_video  # noqa: E402

PLUGINS = REPO / "tests" / "lerobot" / "plugins"
FPS = 30
HEIGHT, WIDTH = 480, 640

# lerobot-record with its LeRobotDataset's add_frame and save_episode timed; the figures go to argv[1].
LEROBOT_WRAPPER = r"""
import json, sys, time
from lerobot.datasets.lerobot_dataset import LeRobotDataset
out, figures = sys.argv[1], {"episodes": [], "add_frame_s": []}
rows, add, save, clear = [0], LeRobotDataset.add_frame, LeRobotDataset.save_episode, LeRobotDataset.clear_episode_buffer
def add_frame(self, frame):
    t0 = time.perf_counter(); add(self, frame); figures["add_frame_s"].append(time.perf_counter() - t0); rows[0] += 1
def save_episode(self, *a, **k):
    t0 = time.perf_counter(); save(self, *a, **k)
    figures["episodes"].append({"rows": rows[0], "save_s": time.perf_counter() - t0}); rows[0] = 0
def clear_episode_buffer(self, *a, **k):
    rows[0] = 0; return clear(self, *a, **k)
LeRobotDataset.add_frame, LeRobotDataset.save_episode = add_frame, save_episode
LeRobotDataset.clear_episode_buffer = clear_episode_buffer
sys.argv = ["lerobot-record", *sys.argv[2:]]
from lerobot.scripts.lerobot_record import main
try:
    main()
finally:
    with open(out, "w") as f:
        json.dump(figures, f)
"""


def flags(videos: dict[str, Path], root: Path, seconds: float) -> list[str]:
    cams = ", ".join(f"{name}: {{type: opencv, index_or_path: {path}, width: {WIDTH}, height: {HEIGHT}, fps: {FPS}}}"
                     for name, path in videos.items())
    return ["--robot.type=tickbot", f"--robot.cameras={{{cams}}}", "--teleop.type=tickleader",
            "--dataset.repo_id=bench/tick", "--dataset.no_stamp=true", f"--dataset.root={root}",
            f"--dataset.fps={FPS}", "--dataset.num_episodes=2", f"--dataset.episode_time_s={seconds}",
            "--dataset.reset_time_s=2", "--dataset.single_task=count the ticks", "--dataset.streaming_encoding=true",
            "--dataset.push_to_hub=false", "--play_sounds=false"]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class TreeSampler(threading.Thread):
    """Peak memory of a process and all its descendants: resident (RSS, every 0.1 s), which counts memory
    shared between them (streamrec's frame queues, libraries) once per process, and unique (USS, every
    0.5 s: reading it costs more), which counts it nowhere."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_rss = self.peak_uss = 0
        self.done = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.done.wait(0.1):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                continue
            rss = uss = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):  # a process that ended meanwhile
                    rss += p.memory_info().rss
                    if n % 5 == 0:
                        uss += p.memory_full_info().uss
            self.peak_rss = max(self.peak_rss, rss)
            if n % 5 == 0:
                self.peak_uss = max(self.peak_uss, uss)
            n += 1


def run(cmd: list[str], env: dict[str, str], nocap: bool, log: Path) -> dict:
    if nocap:
        cmd = ["capsh", "--drop=cap_sys_nice", "--", "-c", shlex.join(["exec", *cmd])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        code = proc.wait()
        sampler.done.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"exit_code": code, "wall_s": round(time.monotonic() - t0, 2),
            "peak_rss_mb": round(sampler.peak_rss / 2**20), "peak_uss_mb": round(sampler.peak_uss / 2**20),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)}


def lengths(root: Path) -> list[int]:
    return [row["length"] for p in sorted(root.glob("meta/episodes/chunk-*/file-*.parquet"))
            for row in pq.read_table(p, columns=["length"]).to_pylist()]


def percentiles_ms(samples: list[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    p50, p99 = np.percentile(np.asarray(samples) * 1e3, [50, 99])
    return round(float(p50), 3), round(float(p99), 3)


def run_lerobot(python: Path, videos: dict, work: Path, seconds: float, nocap: bool) -> dict:
    root, figures_path = work / "lerobot-ds", work / "lerobot-figures.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in sorted(PLUGINS.iterdir())),
           "HF_LEROBOT_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("DISPLAY", None)
    cmd = [str(python), "-c", LEROBOT_WRAPPER, str(figures_path), *flags(videos, root, seconds),
           "--robot.discover_packages_path=lerobot_robot_tickbot",
           "--teleop.discover_packages_path=lerobot_teleoperator_tickleader"]
    result = {"load_before": load(), **run(cmd, env, nocap, work / "lerobot.log"), "load_after": load()}
    log = (work / "lerobot.log").read_text()
    figures = json.loads(figures_path.read_text())
    rows = lengths(root)
    expected = round(FPS * seconds)
    p50, p99 = percentiles_ms(figures["add_frame_s"])
    result.update(rows=rows, rows_expected=expected, skipped_ticks=[expected - n for n in rows],
                  save_ms=[round(e["save_s"] * 1e3, 1) for e in figures["episodes"]], add_frame_p50_ms=p50,
                  add_frame_p99_ms=p99, slower_warnings=log.count("Record loop is running slower"))
    return result


def run_streamrec(bin_dir: Path, videos: dict, work: Path, seconds: float, nocap: bool) -> dict:
    root, report_path = work / "streamrec-ds", work / "streamrec-report.json"
    env = {**os.environ, "HF_LEROBOT_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("DISPLAY", None)
    cmd = [str(bin_dir / "streamrec"), "lerobot-record", *flags(videos, root, seconds), f"--report-json={report_path}"]
    result = {"load_before": load(), **run(cmd, env, nocap, work / "streamrec.log"), "load_after": load()}
    report = json.loads(report_path.read_text())
    saved = [e for e in report["episodes"] if e["status"] == "saved"]
    result.update(rows=lengths(root), rows_expected=round(FPS * seconds),
                  skipped_ticks=[e["late_ticks"] for e in saved], skipped_at=[e["late_at"] for e in saved],
                  save_ms=[round(e["save_s"] * 1e3, 1) for e in saved],
                  add_frame_p50_ms=max(e["add_frame_p50_ms"] for e in saved),
                  add_frame_p99_ms=max(e["add_frame_p99_ms"] for e in saved),
                  dropped=[sum(e["dropped"].values()) for e in saved],
                  stale_frames=[sum(e["stale"].values()) for e in saved])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="episode_time_s (default 10)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lerobot_record.json")
    ap.add_argument("--modes", default="root,nocap", help="root, nocap or both (default)")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each tool per mode, alternating (default 1)")
    ap.add_argument("--clip", type=int, default=150,
                    help="frames in each camera's video, looped by the robot (default 150: 5 s)")
    args = ap.parse_args()
    lerobot_python = Path(os.environ.get("LEROBOT_VENV", Path.home() / ".cache" / "streamrec-lerobot-venv")) / "bin" \
        / "python"
    bin312 = Path(os.environ.get("STREAMREC_LEROBOT_PYTHON", REPO / ".venv312" / "bin" / "python")).parent
    for need, what in ((lerobot_python, "LeRobot's environment (run /work/shared/tools/lerobot-load-check once)"),
                       (bin312 / "streamrec", ".venv312 (make lerobot-env)")):
        if not need.exists():
            sys.exit(f"{need} is missing: {what}")
    work = Path(tempfile.mkdtemp(prefix="bench-lerobot-"))
    try:
        # The robot decodes the clip into memory once (I420, 0.46 MB a frame) and loops it.
        videos = {name: write_id_video(work / f"{name}.mp4", frames=args.clip, height=HEIGHT, width=WIDTH, fps=FPS)
                  for name in ("top", "wrist")}
        results = {"seconds": args.seconds, "fps": FPS, "size": f"{WIDTH}x{HEIGHT}", "cameras": 2,
                   "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "runs": []}
        for mode, round_ in ((m, r) for m in args.modes.split(",") for r in range(args.rounds)):
            for tool in ("lerobot-record", "streamrec lerobot-record"):
                run_dir = work / f"{mode}-{round_}-{tool.split()[0]}"
                run_dir.mkdir()
                print(f"{mode}: {tool} ...", file=sys.stderr, flush=True)
                if tool == "lerobot-record":
                    figures = run_lerobot(lerobot_python, videos, run_dir, args.seconds, mode == "nocap")
                else:
                    figures = run_streamrec(bin312, videos, run_dir, args.seconds, mode == "nocap")
                results["runs"].append({"mode": mode, "round": round_, "tool": tool, **figures})
                print(json.dumps(results["runs"][-1]), file=sys.stderr, flush=True)
                shutil.rmtree(run_dir / ("lerobot-ds" if tool == "lerobot-record" else "streamrec-ds"),
                              ignore_errors=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
