"""PNG path: write the PNGs from threads of the capture process, or from the encoder processes?

A 30 Hz capture loop hands 3 cameras of 640×480 footage to a PNG writer, in two ways:

  threads   4 writer threads per camera in the capture process (the reference's default),
            fed through one bounded queue per camera (30 frames; a frame is copied before it
            is queued, as a driver buffer would be reused); PNGs through PyAV, level 1
  process   streamrec's PNG path: `DatasetRecorder(streaming_encoding=False,
            batch_encoding_size=2)`, i.e. the frames go through the shared-memory queue to the
            camera's encoder process, which writes them (batches of two so that no encoding
            runs during the measurement)

Measured: the hand-off (add_frame / copy + enqueue) p50 / p99, the overshoot of a 1 ms sleep
taken after each tick (how long the capture thread waits for a CPU or the interpreter lock),
late ticks, frames dropped, and CPU. Variants run one after the other in one run.

    .venv/bin/python benchmarks/png_writer.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import shutil
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from _footage import CAMERAS, FOOTAGE, load_video

FPS = 30


class ThreadWriters:
    """Writer threads in this process, as the reference's image writer does."""

    def __init__(self, root: Path, per_camera: int = 4, maxsize: int = 30) -> None:
        self.queues = {c: queue.Queue(maxsize) for c in CAMERAS}
        self.dropped = dict.fromkeys(CAMERAS, 0)
        self.written = dict.fromkeys(CAMERAS, 0)
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(c, root / c), daemon=True)
                         for c in CAMERAS for _ in range(per_camera)]
        for c in CAMERAS:
            (root / c).mkdir(parents=True)
        for t in self._threads:
            t.start()

    def add_frame(self, k: int, frames: dict[str, np.ndarray]) -> None:
        for c, frame in frames.items():
            try:
                self.queues[c].put_nowait((k, frame.copy()))
            except queue.Full:
                self.dropped[c] += 1

    def _run(self, camera: str, folder: Path) -> None:
        codec = None
        while (item := self.queues[camera].get()) is not None:
            k, array = item
            if codec is None:
                codec = av.CodecContext.create("png", "w")
                codec.width, codec.height, codec.pix_fmt = array.shape[1], array.shape[0], "rgb24"
                codec.time_base = Fraction(1, FPS)
                codec.options = {"compression_level": "1"}
                codec.open()
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = k
            (folder / f"frame-{k:06d}.png").write_bytes(bytes(codec.encode(frame)[0]))
            with self._lock:
                self.written[camera] += 1

    def close(self) -> None:
        for c in CAMERAS:
            for _ in range(len(self._threads) // len(CAMERAS)):
                self.queues[c].put(None)
        for t in self._threads:
            t.join()


def run(variant: str, footage: dict[str, list[np.ndarray]], seconds: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="streamrec-png-writer-"))
    if variant == "threads":
        writer = ThreadWriters(work)
        add = writer.add_frame
    else:
        from streamrec import DatasetRecorder

        feats = {f"observation.images.{c}": {"dtype": "video", "shape": [480, 640, 3]} for c in CAMERAS}
        rec = DatasetRecorder.create(work / "ds", FPS, feats, streaming_encoding=False, batch_encoding_size=2)

        def add(k: int, frames: dict[str, np.ndarray]) -> None:
            rec.add_frame({f"observation.images.{c}": f for c, f in frames.items()} | {"task": "t"})

    n = len(footage[CAMERAS[0]])
    driver = {c: np.empty_like(footage[c][0]) for c in CAMERAS}  # a camera driver's reused buffers
    handoff, sleep_over, late = [], [], 0
    ticks = int(seconds * FPS)
    cpu0 = time.process_time()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    next_tick = time.monotonic()
    for k in range(ticks):
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.5 / FPS:
            late += 1
        for c in CAMERAS:
            np.copyto(driver[c], footage[c][k % n])
        t = time.perf_counter()
        add(k, driver)
        handoff.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        time.sleep(0.001)
        sleep_over.append((time.perf_counter() - t - 0.001) * 1e3)
        next_tick += 1 / FPS
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    if variant == "threads":
        writer.close()
        dropped, written = writer.dropped, writer.written
    else:
        report = rec.save_episode()
        dropped = {c.rsplit(".", 1)[-1]: r.dropped for c, r in report.cameras.items()}
        written = {c.rsplit(".", 1)[-1]: len(list((work / "ds/.streamrec/images" / c / "episode-000000").glob("*.png")))
                   for c in report.cameras}
        rec.clear_episode()
        rec._pending.clear()  # the measurement is done: do not encode the saved PNGs
        rec.finalize()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime
    shutil.rmtree(work, ignore_errors=True)

    def ms(values: list[float]) -> dict[str, float]:
        p50, p99 = np.percentile(values, [50, 99])
        return {"p50": round(float(p50), 3), "p99": round(float(p99), 3), "max": round(max(values), 2)}

    return {"variant": variant, "handoff_ms": ms(handoff), "sleep_1ms_overshoot_ms": ms(sleep_over),
            "late_ticks": late, "ticks": ticks, "dropped": dropped, "written": written,
            "cpu_percent": {"capture_process": round(100 * cpu / wall, 1),
                            "child_processes": round(100 * children_cpu / wall, 1)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not args.footage.exists():
        sys.exit(f"footage not found at {args.footage}; pass --footage")
    footage = load_video(args.footage, 150)
    results = [run(v, footage, args.seconds) for v in ("threads", "process")]
    report = {"machine": {"cpus": os.cpu_count(), "euid": os.geteuid()}, "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
