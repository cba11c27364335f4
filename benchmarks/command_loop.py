"""`streamrec record`'s own loop, measured through the command: every episode, first included.

Cases (2 episodes each, no reset wait):
- `2x640@30`: 2 footage cameras 640x480 at 30 fps, 10 s episodes;
- `2x640@50`: the same at 50 fps, 8 s episodes;
- `3x640@30`: 3 footage cameras at 30 fps, 10 s episodes;
- `3syn@30`: 3 synthetic cameras at 30 fps, 10 s episodes: their per-frame noise costs an encoder
  more than the footage (benchmarks/source_cost.py);
- `3syn720@30`: 3 synthetic cameras 1280x720 at 30 fps, 3 episodes of 10 s: more than a small
  machine can encode with the default settings, where what counts is how the command behaves
  (adaptation once and early, no long save, a plain warning at the start).

Per episode, from the command's `--report-json`: add_frame p99, save_episode time, late ticks,
drops, adaptation steps (and whether the CPU check or the queue's mark took them). Every
executable given with `--streamrec` (e.g. a checkout from before a change) runs each case in
turn, as is and under `capsh --drop=cap_sys_nice`, so that the figures compared are measured
side by side on the same machine state.

    .venv/bin/python benchmarks/command_loop.py --rounds 2
    .venv/bin/python benchmarks/command_loop.py \
        --streamrec ../before/.venv/bin/streamrec --streamrec .venv/bin/streamrec

Writes benchmarks/results/command_loop[-NAME].json and prints a table. Needs ../shared/footage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _footage import FOOTAGE, cap_sys_nice

HERE = Path(__file__).resolve().parent
CASES = {
    "2x640@30": {"cameras": 2, "type": "footage", "fps": 30, "seconds": 10},
    "2x640@50": {"cameras": 2, "type": "footage", "fps": 50, "seconds": 8},
    "3x640@30": {"cameras": 3, "type": "footage", "fps": 30, "seconds": 10},
    "3syn@30": {"cameras": 3, "type": "synthetic", "fps": 30, "seconds": 10},
    "3syn720@30": {"cameras": 3, "type": "synthetic", "fps": 30, "seconds": 10, "width": 1280, "height": 720,
                   "episodes": 3},
}
NAMES = ("top", "angle", "left_wrist")


def cameras_yaml(case: dict, footage: Path) -> str:
    if case["type"] == "footage":
        cams = [f"{n}: {{type: footage, path: '{footage}'}}" for n in NAMES[:case["cameras"]]]
    else:
        w, h = case.get("width", 640), case.get("height", 480)
        cams = [f"{n}: {{type: synthetic, width: {w}, height: {h}}}" for n in NAMES[:case["cameras"]]]
    return "{" + ", ".join(cams) + "}"


def run_case(exe: str, case: dict, footage: Path, nocap: bool, episodes: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="streamrec-loop-"))
    report = work / "report.json"
    args = [exe, "record", f"--dataset.root={work / 'ds'}", "--dataset.single_task=bench",
            f"--dataset.fps={case['fps']}", f"--dataset.num_episodes={case.get('episodes', episodes)}",
            f"--dataset.episode_time_s={case['seconds']}", "--dataset.reset_time_s=0",
            f"--cameras={cameras_yaml(case, footage)}", f"--report-json={report}"]
    command = ["capsh", "--drop=cap_sys_nice", "--", "-c", shlex.join(args)] if nocap else args
    load = os.getloadavg()[0]
    t = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not report.exists():
            return {"error": done.stderr[-2000:], "returncode": done.returncode}
        data = json.loads(report.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = []
    for ep in data["episodes"]:
        steps = [dict(a, camera=c) for c, items in (ep.get("adaptations") or {}).items() for a in items]
        out.append({"frames": ep["frames"], "ticks": ep["ticks"], "late_ticks": ep["late_ticks"],
                    "dropped": sum(ep["dropped"].values()),
                    "save_ms": None if ep.get("save_s") is None else round(ep["save_s"] * 1e3, 1),
                    "add_frame_p99_ms": ep.get("add_frame_p99_ms"), "add_frame_p50_ms": ep.get("add_frame_p50_ms"),
                    "adaptations": len(steps),
                    "adaptations_by": sorted({a.get("trigger", "queue") for a in steps})})
    warned = [line for line in done.stderr.splitlines() if "need about" in line]
    return {"load_before": round(load, 2), "wall_s": round(time.monotonic() - t, 1), "episodes": out,
            "start_warning": warned[0] if warned else None}


def table(results: list[dict]) -> str:
    lines = ["| case | streamrec | caps | round | episode | rows/ticks | drops | late | add_frame p99 ms | "
             "save ms | adaptations | load |", "|" + " --- |" * 12]
    for r in results:
        if "error" in r["result"]:
            lines.append(f"| {r['case']} | {r['label']} | {r['caps']} | {r['round']} | error | | | | | | | |")
            continue
        for i, ep in enumerate(r["result"]["episodes"], 1):
            by = "/".join(ep["adaptations_by"])
            steps = f"{ep['adaptations']} ({by})" if by else str(ep["adaptations"])
            lines.append(f"| {r['case']} | {r['label']} | {r['caps']} | {r['round']} | {i} | "
                         f"{ep['frames']}/{ep['ticks']} | {ep['dropped']} | {ep['late_ticks']} | "
                         f"{ep['add_frame_p99_ms']} | {ep['save_ms']} | {steps} | "
                         f"{r['result']['load_before']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streamrec", action="append", default=None,
                    help="a streamrec executable; repeat to compare (default: this checkout's)")
    ap.add_argument("--label", action="append", default=None, help="a name for each --streamrec, in order")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--no-nocap", action="store_true", help="only as is (skip the capsh runs)")
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    ap.add_argument("--name", default="", help="results file suffix")
    args = ap.parse_args()
    exes = args.streamrec or [str(Path(sys.executable).parent / "streamrec")]
    labels = args.label or [Path(e).resolve().parents[2].name for e in exes]
    caps = ["root" if cap_sys_nice() else "nocap"] + ([] if args.no_nocap or not cap_sys_nice() else ["nocap"])
    results = []
    out = HERE / "results" / f"command_loop{'-' + args.name if args.name else ''}.json"
    for rnd in range(1, args.rounds + 1):
        for case_name in args.cases.split(","):
            for cap in caps:
                for exe, label in zip(exes, labels):  # side by side: each executable right after the other
                    result = run_case(exe, CASES[case_name], args.footage, cap == "nocap" and caps[0] == "root",
                                      args.episodes)
                    results.append({"case": case_name, "label": label, "caps": cap, "round": rnd,
                                    "result": result})
                    print(json.dumps(results[-1]), flush=True)
                    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count()}, "cases": CASES,
                                               "results": results}, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
