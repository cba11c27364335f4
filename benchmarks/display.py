"""What does `--display_data` cost the capture loop?

A 30 Hz loop reads 3 cameras (the ALOHA footage, 640x480; the synthetic pattern if the footage is
missing), copies each image into a buffer of its own (what `add_frame` does with the shared-memory
queue; no encoders run, so that only the display competes with the loop), then hands the tick to
the display in one of these ways, logging to an .rrd file (this machine has no screen):

  off                 no display
  inline-full         rr.log of the 3 full images (raw) and state/action on the capture thread, every tick
  inline-throttled    the same on the capture thread, images 10/s shrunk to 320 px wide and sent as JPEG
  worker-full         DisplayWorker: every image, full size, raw (image_hz=30, max_width=640, no JPEG)
  worker-default      DisplayWorker with streamrec's settings (10 images/s, 320 px wide, JPEG 80)
  worker-default-1ms  the same with sys.setswitchinterval(0.001) instead of Python's 5 ms

Measured after 1 s of warm-up, per tick:
  display_ms   time the capture thread spent in the display call (offer(), or the inline rr.log calls)
  copy_ms      the 3 image copies: shows how much a display thread delays the loop's own work
               (waiting for the GIL, or for a core)
  late_ticks   ticks that started more than 5 ms after their slot
  dropped      ticks the display thread dropped because its queue was full

Run:  .venv/bin/python benchmarks/display.py [--seconds 20]   (writes benchmarks/results/display.json)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rerun as rr

from streamrec.capture import camera_config, make_source
from streamrec.capture._display import DisplayConfig, DisplayWorker, RerunSink, shrink

FOOTAGE = Path("/work/shared/footage/aloha_insertion")
CAMERAS = ("top", "angle", "left_wrist")
FPS = 30


def open_cameras() -> list:
    sources = []
    for name in CAMERAS:
        spec = ({"type": "footage", "path": str(FOOTAGE), "max_frames": 150} if FOOTAGE.is_dir()
                else {"type": "synthetic"})
        source = make_source(name, camera_config(name, spec))
        source.open()
        sources.append(source)
    return sources


def stats(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p99": round(float(np.percentile(ms, 99)), 3),
            "max": round(float(ms.max()), 2), "mean": round(float(ms.mean()), 3)}


class Inline:
    """Logging on the capture thread, as a display without its own thread would."""

    def __init__(self, rrd: Path, throttled: bool) -> None:
        self.stream = rr.RecordingStream("streamrec-bench")
        self.stream.save(str(rrd))
        self.throttled = throttled
        self.next_image_at = 0.0

    def __call__(self, i: int, images: dict, values: dict) -> None:
        s = self.stream
        s.set_time("tick", sequence=i)
        s.set_time("capture_time", timestamp=time.time())
        now = time.monotonic()
        if not self.throttled:
            for key, image in images.items():
                s.log(key, rr.Image(image))
        elif now >= self.next_image_at:
            self.next_image_at = max(self.next_image_at + 0.1, now)
            for key, image in images.items():
                s.log(key, rr.Image(shrink(image, 320)).compress(jpeg_quality=80))
        for key, value in values.items():
            s.log(key, rr.Scalars(value))

    def close(self) -> dict:
        self.stream.flush()
        self.stream.disconnect()
        return {}


class Worker:
    def __init__(self, rrd: Path, config: DisplayConfig) -> None:
        self.worker = DisplayWorker(RerunSink(rrd_path=rrd, value_names={}, jpeg_quality=config.jpeg_quality),
                                    config)
        self.worker.start()

    def __call__(self, i: int, images: dict, values: dict) -> None:
        self.worker.offer(index=i, episode_index=0, frame_index=i, capture_time_s=time.time(), images=images,
                          values=values)

    def close(self) -> dict:
        self.worker.stop()
        assert self.worker.join(60)
        w = self.worker
        return {"offered": w.offered, "dropped": w.dropped, "logged": w.logged, "max_depth": w.max_depth}


def run(variant: str, seconds: float, folder: Path) -> dict:
    sources = open_cameras()
    buffers = [np.empty(s.shape, np.uint8) for s in sources]
    rrd = folder / f"{variant}.rrd"
    switch = sys.getswitchinterval()
    if variant == "off":
        display = None
    elif variant.startswith("inline"):
        display = Inline(rrd, throttled=variant == "inline-throttled")
    elif variant == "worker-full":
        display = Worker(rrd, DisplayConfig(image_hz=FPS, max_width=640, jpeg_quality=None))
    else:
        display = Worker(rrd, DisplayConfig())
        if variant.endswith("-1ms"):
            sys.setswitchinterval(0.001)
    rng = np.random.default_rng(0)
    display_s, copy_s, late = [], [], 0
    warmup = FPS
    ticks = warmup + round(seconds * FPS)
    start = time.monotonic()
    try:
        for i in range(ticks):
            due = start + i / FPS
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            elif now - due > 0.005 and i >= warmup:
                late += 1
            images = {f"observation.images.{s.name}": s.read() for s in sources}
            values = {"observation.state": rng.standard_normal(14).astype(np.float32),
                      "action": rng.standard_normal(14).astype(np.float32)}
            t0 = time.perf_counter()
            for buffer, image in zip(buffers, images.values()):
                np.copyto(buffer, image)
            t1 = time.perf_counter()
            if display is not None:
                display(i, images, values)
            t2 = time.perf_counter()
            if i >= warmup:
                copy_s.append(t1 - t0)
                display_s.append(t2 - t1)
        extra = display.close() if display is not None else {}
    finally:
        sys.setswitchinterval(switch)
        for s in sources:
            s.close()
    result = {"display_ms": stats(display_s), "copy_ms": stats(copy_s), "late_ticks": late, "ticks": ticks - warmup,
              **extra}
    if rrd.exists():
        result["rrd_mb"] = round(rrd.stat().st_size / 1e6, 1)
        rrd.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--variants", nargs="*", default=["off", "inline-full", "inline-throttled", "worker-full",
                                                          "worker-default", "worker-default-1ms"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/display.json")
    args = parser.parse_args()
    results = {"seconds": args.seconds, "cpus": os.cpu_count(), "rerun": rr.__version__, "variants": {}}
    with tempfile.TemporaryDirectory() as folder:
        for variant in args.variants:
            r = results["variants"][variant] = run(variant, args.seconds, Path(folder))
            print(f"{variant:20s} display p50 {r['display_ms']['p50']:6.3f} p99 {r['display_ms']['p99']:6.2f} "
                  f"max {r['display_ms']['max']:6.1f} ms | copy p50 {r['copy_ms']['p50']:5.2f} "
                  f"p99 {r['copy_ms']['p99']:5.2f} ms | late {r['late_ticks']} | dropped {r.get('dropped', '-')} "
                  f"| rrd {r.get('rrd_mb', '-')} MB", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
