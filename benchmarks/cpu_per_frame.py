"""Where the time goes: the encoders' CPU per frame in streamrec against a bare PyAV loop, side by side.

3 cameras of the 640x480 footage, 600 frames each, streamrec's libsvtav1 settings. Per round: the
bare loop (one demoted process per camera, as `throughput.py`'s raw limit), then `DatasetRecorder`
with the `block` policy fed as fast as it takes frames (fixed settings), then the same with
`encoder_threads=1`. For each: frames per second over all cameras, the encoder processes' CPU per
frame, and for streamrec the capture process's CPU per tick (three copies into the queues and
add_frame's own work). If the encoder CPU per frame is the same, the pipeline adds no work on the
encoder side, and a lower rate means time not spent encoding (or a noisy machine).

    .venv/bin/python benchmarks/cpu_per_frame.py [--rounds 2]
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

import psutil

from _footage import FOOTAGE, cameras, features, load_video
from streamrec import DatasetRecorder

BENCH = str(Path(__file__).resolve().parent)

NAMES = cameras(3)
FRAMES = 600
_BARE = """
import sys, time, resource
sys.path.insert(0, {bench!r})
import av
from _footage import FOOTAGE, load_video
from streamrec import EncoderConfig
from streamrec.encode._codecs import open_codec
from streamrec.encode._priority import demote_current_thread
cam = sys.argv[1]
src = load_video(FOOTAGE, 150, (cam,), (640, 480))[cam]
demote_current_thread(10)
ctx = open_codec(EncoderConfig(), 640, 480, 30, None)
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter()
r0 = resource.getrusage(resource.RUSAGE_SELF)
for i in range({frames}):
    f = av.VideoFrame.from_ndarray(src[i % 150], format="rgb24")
    f.pts = i
    ctx.encode(f)
ctx.encode(None)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, flush=True)
"""


def streamrec_block(source: dict, threads: int | None = None) -> dict:
    work = tempfile.mkdtemp()
    rec = DatasetRecorder.create(work + "/ds", 30, features(NAMES, 640, 480, robot=False), queue_full_policy="block",
                                 adapt_on_overload=False, encoder_threads=threads)
    encoders = psutil.Process().children()

    def encoder_cpu() -> float:
        return sum(sum(k.cpu_times()[:2]) for k in encoders)

    c0, s0, t = encoder_cpu(), time.process_time(), time.perf_counter()
    for i in range(FRAMES):
        rec.add_frame({f"observation.images.{c}": source[c][i % 150] for c in NAMES} | {"task": "t"})
    rec.save_episode()
    wall = time.perf_counter() - t
    c1, s1 = encoder_cpu(), time.process_time()
    rec.finalize()
    shutil.rmtree(work)
    return {"fps_total": round(3 * FRAMES / wall, 1),
            "encoder_cpu_ms_per_frame": round((c1 - c0) / (3 * FRAMES) * 1e3, 2),
            "capture_cpu_ms_per_tick": round((s1 - s0) / FRAMES * 1e3, 2)}


def bare() -> dict:
    code = _BARE.format(bench=BENCH, frames=FRAMES)
    procs = [subprocess.Popen([sys.executable, "-c", code, c], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for c in NAMES]
    for p in procs:
        p.stdout.readline()
    for p in procs:  # all cameras start together
        p.stdin.write("\n")
        p.stdin.flush()
    res = [tuple(map(float, p.stdout.readline().split())) for p in procs]
    for p in procs:
        p.wait()
    wall = max(r[0] for r in res)
    return {"fps_total": round(3 * FRAMES / wall, 1),
            "encoder_cpu_ms_per_frame": round(sum(r[1] for r in res) / (3 * FRAMES) * 1e3, 2),
            "per_camera_s": [round(r[0], 2) for r in res]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    source = load_video(FOOTAGE, 150, NAMES, (640, 480))
    rounds = []
    for _ in range(args.rounds):
        r = {"bare": bare(), "streamrec_block": streamrec_block(source),
             "streamrec_block_threads_1": streamrec_block(source, threads=1)}
        r["ratio_block_to_bare"] = round(r["streamrec_block"]["fps_total"] / r["bare"]["fps_total"], 3)
        print(json.dumps(r), file=sys.stderr, flush=True)
        rounds.append(r)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()}, "rounds": rounds},
                     indent=2))


if __name__ == "__main__":
    main()
