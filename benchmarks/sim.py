"""How long does one tick of the `sim` camera source take: render each camera, then step the arms?

The sim source renders on the capture tick, so this is time the capture loop spends before
`add_frame`. Without a GPU, MuJoCo renders through Mesa's software rasterizer (llvmpipe), which
uses every core it finds; the figures are for an idle machine and shrink the headroom left to the
encoders.

Measured per variant (after 30 warm-up ticks, then `--ticks` ticks, the arms moving as in a recording):
  render_ms   all of one tick's renders (each camera once)
  step_ms     SimRobot.read(): joint state, scripted command, physics steps for 1/30 s
  tick_ms     both

Run:  .venv/bin/python benchmarks/sim.py [--ticks 150]   (writes benchmarks/results/sim.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from streamrec.capture import SimRobot, camera_config, make_source, sim_world

VARIANTS = [
    ("1 camera 640x480", ["top"], 640, 480, False),
    ("2 cameras 640x480", ["top", "left_wrist"], 640, 480, False),
    ("3 cameras 640x480", ["top", "angle", "left_wrist"], 640, 480, False),
    ("3 cameras 640x480, shadows", ["top", "angle", "left_wrist"], 640, 480, True),
    ("3 cameras 320x240", ["top", "angle", "left_wrist"], 320, 240, False),
]


def stats(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p99": round(float(np.percentile(ms, 99)), 2),
            "max": round(float(ms.max()), 2)}


def run(cameras: list[str], width: int, height: int, shadows: bool, ticks: int) -> dict:
    configs = {name: camera_config(name, {"type": "sim", "width": width, "height": height, "shadows": shadows})
               for name in cameras}
    world = sim_world(configs, fps=30)
    sources = [make_source(name, config, world=world) for name, config in configs.items()]
    t0 = time.perf_counter()
    for source in sources:
        source.open()
    open_s = time.perf_counter() - t0
    robot = SimRobot(world)
    robot.start_episode(0)
    render, step = [], []
    try:
        for i in range(30 + ticks):
            t0 = time.perf_counter()
            for source in sources:
                source.read()
            t1 = time.perf_counter()
            robot.read()
            t2 = time.perf_counter()
            if i >= 30:
                render.append(t1 - t0)
                step.append(t2 - t1)
    finally:
        for source in sources:
            source.close()
    return {"open_s": round(open_s, 2), "gl_backend": world.gl_backend, "substeps": world.substeps,
            "render_ms": stats(render), "step_ms": stats(step), "tick_ms": stats([a + b for a, b in zip(render, step)])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/sim.json")
    args = parser.parse_args()
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "MUJOCO_GL": os.environ.get("MUJOCO_GL")}, "variants": {}}
    for label, cameras, width, height, shadows in VARIANTS:
        results["variants"][label] = r = run(cameras, width, height, shadows, args.ticks)
        print(f"{label:32s} render p50 {r['render_ms']['p50']:6.1f} p99 {r['render_ms']['p99']:6.1f} ms   "
              f"step p50 {r['step_ms']['p50']:5.2f} ms   tick p50 {r['tick_ms']['p50']:6.1f} ms "
              f"({r['gl_backend']})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
