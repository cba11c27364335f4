"""What a depth frame costs `add_frame` at 640x480: uint16 millimetres copied, filled into `frame_buffer()`, and
float32 metres converted to millimetres in add_frame (as streamrec does), against what converting in the encoder
process instead would leave the capture thread: a copy of the float32 frame (twice the bytes) into its queue.

    .venv/bin/python benchmarks/depth_add_frame.py [--rows 600]

The recorder runs with one depth camera and the block policy (no frame dropped), as is and without
CAP_SYS_NICE; the bare copies and the conversion are timed in this process on the same frames.
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

from _footage import cap_sys_nice
from streamrec import DatasetRecorder, DepthEncoderConfig
from streamrec.capture import SyntheticDepthCameraConfig, SyntheticDepthSource
from streamrec.encode._depth import frame_to_mm

H, W = 480, 640
KEY = "observation.images.depth"
HERE = Path(__file__).resolve().parent


def percentiles(ms: list[float]) -> dict:
    a = np.array(ms)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3)}


def measure(rows: int) -> dict:
    source = SyntheticDepthSource("d", SyntheticDepthCameraConfig(width=W, height=H))
    source.open()
    mm = [source.frame(i) for i in range(30)]
    metres = [(f / 1000).astype(np.float32) for f in mm]
    out: dict = {"cap_sys_nice": cap_sys_nice()}
    for name in ("uint16 mm", "frame_buffer uint16", "float32 m"):
        work = tempfile.mkdtemp()
        # ffv1: the cheapest encoder, so that the queue drains and add_frame never waits for room
        rec = DatasetRecorder.create(work + "/ds", 30, {KEY: {"dtype": "video", "shape": [H, W, 1],
                                                              "info": {"is_depth_map": True}}},
                                     depth_encoder=DepthEncoderConfig(vcodec="ffv1"), queue_full_policy="block")
        times = []
        for i in range(rows):
            if name == "frame_buffer uint16":
                value = rec.frame_buffer(KEY)
                np.copyto(value, mm[i % 30])  # a driver writing into the given buffer, not timed
            else:
                value = mm[i % 30] if name == "uint16 mm" else metres[i % 30]
            t = time.perf_counter()
            rec.add_frame({KEY: value, "task": "t"})
            times.append((time.perf_counter() - t) * 1e3)
            time.sleep(1 / 60)  # let the encoder keep up, as it does at 30 fps
        rec.save_episode()
        rec.finalize()
        shutil.rmtree(work)
        out[f"add_frame, {name}"] = percentiles(times)
    conversion, copy16, copy32 = [], [], []
    buf16 = np.empty((H, W, 1), np.uint16)
    buf32 = np.empty((H, W, 1), np.float32)
    for i in range(rows):
        t = time.perf_counter()
        frame_to_mm(KEY, metres[i % 30], H, W)
        conversion.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        np.copyto(buf16, mm[i % 30])
        copy16.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        np.copyto(buf32, metres[i % 30])
        copy32.append((time.perf_counter() - t) * 1e3)
    out["metres -> mm alone (checks included)"] = percentiles(conversion)
    out["copy of a uint16 frame"] = percentiles(copy16)
    out["copy of a float32 frame (what converting in the encoder would cost add_frame)"] = percentiles(copy32)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(a.rows)))
        return
    report = {"machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}, "size": f"{W}x{H}",
              "as_is": measure(a.rows)}
    cmd = f"{sys.executable} {Path(__file__).resolve()} --child --rows {a.rows}"
    done = subprocess.run(["capsh", "--drop=cap_sys_nice", "--", "-c", cmd], capture_output=True, text=True,
                          cwd=HERE)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    report["without_cap_sys_nice"] = json.loads(lines[-1]) if lines else done.stderr[-2000:]
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "depth_add_frame.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
