"""The benchmark suite (issue 7): one command, one JSON per run, Markdown tables for the README.

Parts (`--only` picks some, comma-separated):

- `throughput`: per reference workload, the raw encoder limit (a bare PyAV encode loop per
  camera, all cameras at once, `throughput.raw_limit`; at the priority of streamrec's encoder
  processes, and again at the default priority), streamrec fed as fast as it takes frames
  (`block`), and streamrec's sustainable throughput: the highest paced fps with no drop at the
  default `drop` policy (`throughput.sustainable`), with both ratios to the first limit;
- `realtime`: the reference workloads (3 x 640x480, 2 x 1280x720, 2 x 1920x1080, all at 30 fps)
  recorded in real time on the streaming and PNG paths (`record.realtime`): add_frame p99, late
  ticks, frames kept, drops, save_episode time, peak RSS, CPU, bytes per camera-minute, and the
  PSNR of the decoded video against the source frame each row was fed;
- `scaling`: 100 episodes of 1 s in one dataset (2 x 640x480, `block` so none is dropped, paced
  at 30 fps), save_episode time and the cost of appending each episode (packets into the MP4,
  rows and metadata into the journal) at episodes 1, 10 and 100, on both paths.

Each measurement runs in a fresh process, one after the other. The JSON goes to
`benchmarks/results/suite-<label>.json` (`-quick` added with `--quick`), rewritten after each
measurement; the label is `root` (CAP_SYS_NICE, as record.py detects it) or `nocap`.

    .venv/bin/python benchmarks/suite.py                    # everything (15-20 min here)
    .venv/bin/python benchmarks/suite.py --quick --only throughput,scaling
    capsh --drop=cap_sys_nice -- -c '.venv/bin/python benchmarks/suite.py'
    .venv/bin/python benchmarks/suite.py --table benchmarks/results/suite-root.json benchmarks/results/suite-nocap.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PARTS = ("throughput", "realtime", "scaling")
WORKLOADS = ((3, 640, 480), (2, 1280, 720), (2, 1920, 1080))
PATHS = ("streaming", "png")
FPS = 30

# Full run / --quick. Frames per camera for the raw limit and the block run are about 5-10 s of
# encoding each at this machine's rates.
SETTINGS = {
    "full": {"raw_frames": {640: 600, 1280: 300, 1920: 150}, "step_s": 8.0, "max_steps": 7,
             "seconds": 20.0, "episodes": 2, "psnr_stride": 1,
             "scaling_episodes": 100, "scaling_seconds": 1.0},
    "quick": {"raw_frames": {640: 60, 1280: 30, 1920: 20}, "step_s": 2.0, "max_steps": 3,
              "seconds": 3.0, "episodes": 1, "psnr_stride": 5,
              "scaling_episodes": 10, "scaling_seconds": 0.5},
}


def workload_name(cams: int, width: int, height: int) -> str:
    return f"{cams} x {width}x{height}"


# --- measurements, each run in its own process (`--one`) ---------------------------------------

def run_throughput(spec: dict) -> dict:
    import throughput

    cams, width, height = spec["cameras"], spec["width"], spec["height"]
    footage = Path(spec["footage"])
    frames = spec["raw_frames"]
    # The limit at the priority streamrec's encoders run at is the one to compare with: on a
    # shared machine a loop that may take real-time priority (root) is not the same contest.
    raw = throughput.raw_limit(footage, frames, "libsvtav1", None, cams, width, height, demoted=True)
    raw_default = throughput.raw_limit(footage, frames, "libsvtav1", None, cams, width, height)
    block = throughput.streamrec_rate(footage, frames, "libsvtav1", None, cams, width, height)
    best = throughput.sustainable(footage, "libsvtav1", None, cams, width, height,
                                  start_fps=round(0.9 * raw["frames_per_s"] / cams, 1), step_s=spec["step_s"],
                                  max_steps=spec["max_steps"])
    return {"raw_limit": raw, "raw_limit_default_priority": raw_default, "block": block,
            "block_ratio": round(block["frames_per_s"] / raw["frames_per_s"], 3), "sustainable": best,
            "sustainable_ratio": best["frames_per_s"] and round(best["frames_per_s"] / raw["frames_per_s"], 3)}


def run_realtime(spec: dict) -> dict:
    import record

    return record.realtime(footage=Path(spec["footage"]), cams=spec["cameras"], width=spec["width"],
                           height=spec["height"], fps=FPS, seconds=spec["seconds"], episodes=spec["episodes"],
                           streaming=spec["path"] == "streaming", psnr_stride=spec["psnr_stride"])


class _TimedJournal:
    """Wraps the recorder's episode journal to time its writes (rows, then metadata) per episode:
    the table side of appending an episode, beside the MP4 side that the report gives."""

    def __init__(self, journal) -> None:
        self._journal = journal
        self.seconds: dict[int, float] = {}

    def __getattr__(self, name):
        return getattr(self._journal, name)

    def _timed(self, method: str, episode_index: int, *args):
        t = time.perf_counter()
        try:
            return getattr(self._journal, method)(episode_index, *args)
        finally:
            self.seconds[episode_index] = self.seconds.get(episode_index, 0.0) + time.perf_counter() - t

    def write_rows(self, episode_index, rows):
        return self._timed("write_rows", episode_index, rows)

    def write_meta(self, episode_index, meta):
        return self._timed("write_meta", episode_index, meta)

    def write_pending(self, episode_index, record):
        return self._timed("write_pending", episode_index, record)


def run_scaling(spec: dict) -> dict:
    from _footage import cameras, features, load_footage, paced_episode
    from streamrec import DatasetRecorder

    names = cameras(spec["cameras"])
    video, arrays = load_footage(Path(spec["footage"]), 250, names)
    work = Path(tempfile.mkdtemp(prefix="streamrec-scaling-"))
    root = work / "ds"
    rec = DatasetRecorder.create(root, FPS, features(names, 640, 480), robot_type="aloha",
                                 streaming_encoding=spec["path"] == "streaming", queue_full_policy="block",
                                 adapt_on_overload=False)  # one setting throughout: the cost of size alone
    journal = rec._writer.journal = _TimedJournal(rec._writer.journal)  # benchmark instrumentation, not API
    frames = round(spec["seconds"] * FPS)
    episodes = []
    try:
        for e in range(spec["episodes"]):
            add_ms: list[float] = []
            paced_episode(rec, video, arrays, FPS, frames, e * frames, add_ms)
            r = rec.save_episode()
            cams = r.cameras.values()
            episodes.append({"save_ms": r.save_s * 1e3,
                             "mp4_append_ms": max(c.append_s for c in cams) * 1e3,
                             "journal_ms": journal.seconds.get(e, 0.0) * 1e3,
                             "flush_ms": max(c.flush_s for c in cams) * 1e3,
                             "add_frame_p99_ms": float(np.percentile(add_ms, 99)),
                             "dropped": r.dropped,
                             "mp4_bytes": sum(p.stat().st_size for p in (root / "videos").rglob("*.mp4"))})
        t = time.perf_counter()
        rec.finalize()
        finalize_ms = (time.perf_counter() - t) * 1e3
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"episodes": len(episodes), "frames_per_episode": frames, "finalize_ms": round(finalize_ms, 1),
            "per_episode": {k: [round(ep[k], 2) for ep in episodes] for k in episodes[0]}}


def scaling_summary(per_episode: dict[str, list[float]]) -> dict:
    """Each cost at episodes 1, 10 and 100 (or the last), its largest, the medians of the first
    and last ten (episode 1 left out: it creates the files), and the Theil-Sen slope (median of
    the slopes between every two episodes, so that one slow save on a busy machine does not tilt
    it) in ms per 100 episodes."""
    out = {}
    for key in ("save_ms", "mp4_append_ms", "journal_ms"):
        v = np.array(per_episode[key], dtype=float)
        n = len(v)
        at = {str(i): round(float(v[i - 1]), 2) for i in (1, 10, 100) if i <= n}
        at[str(n)] = round(float(v[-1]), 2)
        head, tail = v[1:11], v[max(1, n - 10):]
        x = np.arange(1, n)  # episodes 2..n
        i, j = np.triu_indices(len(x), 1)
        slopes = (v[1:][j] - v[1:][i]) / (x[j] - x[i])
        out[key] = {"at_episode": at, "max": round(float(v.max()), 2), "episode_of_max": int(v.argmax()) + 1,
                    "median_first_10": round(float(np.median(head)), 2),
                    "median_last_10": round(float(np.median(tail)), 2),
                    "ratio_last_to_first_10": round(float(np.median(tail) / np.median(head)), 2),
                    "slope_ms_per_100_episodes": round(float(np.median(slopes)) * 100, 2) if len(slopes) else None}
    return out


MEASUREMENTS = {"throughput": run_throughput, "realtime": run_realtime, "scaling": run_scaling}


# --- the run ---------------------------------------------------------------------------------

def label() -> str:
    from _footage import cap_sys_nice

    if cap_sys_nice():
        return "root" if os.geteuid() == 0 else "capsysnice"
    return "nocap"


def plan(parts: list[str], mode: str, footage: Path, workloads: list[str] | None, paths: list[str]) -> list[dict]:
    s = SETTINGS[mode]
    chosen = [w for w in WORKLOADS if workloads is None or f"{w[1]}x{w[2]}" in workloads]
    items = []
    for part in parts:
        if part == "throughput":
            for cams, w, h in chosen:
                items.append({"part": part, "cameras": cams, "width": w, "height": h,
                              "raw_frames": s["raw_frames"][w], "step_s": s["step_s"], "max_steps": s["max_steps"]})
        elif part == "realtime":
            for cams, w, h in chosen:
                for path in paths:
                    items.append({"part": part, "cameras": cams, "width": w, "height": h, "path": path,
                                  "seconds": s["seconds"], "episodes": s["episodes"], "psnr_stride": s["psnr_stride"]})
        elif part == "scaling":
            for path in paths:
                items.append({"part": part, "cameras": 2, "path": path, "episodes": s["scaling_episodes"],
                              "seconds": s["scaling_seconds"]})
    for item in items:
        item["footage"] = str(footage)
    return items


def _busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (every process, ours or not)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_one(item: dict, timeout_s: float) -> dict:
    """One measurement in a fresh process: none inherits another's threads, memory or children.

    Also how busy the rest of the machine was meanwhile: CPU time used by every process less
    the measurement's own (its process and the encoders and encode loops it waited for), in
    cores, averaged over the measurement. On this shared machine that is the figure to read
    the others beside.
    """
    t = time.perf_counter()
    busy0, ours0 = _busy_s(), _children_s()
    try:
        out = subprocess.run([sys.executable, __file__, "--one", json.dumps(item)], capture_output=True, text=True,
                             timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        return {"error": f"timed out after {timeout_s:.0f} s", "stderr_tail": (e.stderr or b"")[-2000:].decode()}
    if out.returncode:
        return {"error": f"exit status {out.returncode}", "stderr_tail": out.stderr[-3000:]}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    wall = time.perf_counter() - t
    result["run_s"] = round(wall, 1)
    result["other_work_cores"] = round(max(0.0, (_busy_s() - busy0) - (_children_s() - ours0)) / wall, 2)
    return result


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(PARTS), help=f"parts to run, of {','.join(PARTS)}")
    ap.add_argument("--quick", action="store_true", help="a short smoke run (seconds per measurement)")
    ap.add_argument("--workloads", default=None, help="e.g. 640x480,1280x720 (default: all three)")
    ap.add_argument("--paths", default=",".join(PATHS), help="streaming,png")
    ap.add_argument("--label", default=None, help="default: root or nocap, from CAP_SYS_NICE")
    ap.add_argument("--json", type=Path, default=None, help="default: benchmarks/results/suite-<label>.json")
    ap.add_argument("--footage", type=Path, default=None)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per measurement before it is abandoned")
    ap.add_argument("--table", nargs="+", type=Path, default=None, help="print the tables of saved runs and exit")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        item = json.loads(args.one)
        print(json.dumps(MEASUREMENTS[item["part"]](item)))
        return
    if args.table:
        print(tables([json.loads(p.read_text()) for p in args.table]))
        return

    from _footage import FOOTAGE

    footage = args.footage or FOOTAGE
    if not footage.exists():
        sys.exit(f"footage not found at {footage}; pass --footage")
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    mode = "quick" if args.quick else "full"
    name = args.label or label()
    out_path = args.json or RESULTS / f"suite-{name}{'-quick' if args.quick else ''}.json"
    items = plan(parts, mode, footage, args.workloads.split(",") if args.workloads else None, args.paths.split(","))
    from _footage import cap_sys_nice

    run = {"label": name, "mode": mode, "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "uptime_before": uptime(),
           "machine": {"cpus": os.cpu_count(), "euid": os.geteuid(), "cap_sys_nice": cap_sys_nice(),
                       "kernel": platform.release(), "python": platform.python_version(), "av": av.__version__,
                       "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()
                                  if k in ("libavcodec", "libavformat")}},
           "settings": SETTINGS[mode], "results": []}
    t0 = time.perf_counter()
    for i, item in enumerate(items, 1):
        what = {k: v for k, v in item.items() if k != "footage"}
        print(f"[{i}/{len(items)}] {json.dumps(what)}", file=sys.stderr, flush=True)
        load = os.getloadavg()
        result = run_one(item, args.timeout)
        run["results"].append({"spec": what, "load_before": [round(x, 2) for x in load], **result})
        if "error" in result:
            print(f"    failed: {result['error']}\n{result['stderr_tail']}", file=sys.stderr)
        run["total_s"] = round(time.perf_counter() - t0, 1)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(run, indent=2) + "\n")
    run["uptime_after"] = uptime()
    out_path.write_text(json.dumps(run, indent=2) + "\n")
    print(f"wrote {out_path} ({run['total_s']:.0f} s)", file=sys.stderr)
    print(tables([run]))


# --- tables ----------------------------------------------------------------------------------

def _find(run: dict, part: str, key: dict) -> dict | None:
    for r in run["results"]:
        if r["spec"]["part"] == part and "error" not in r and all(r["spec"].get(k) == v for k, v in key.items()):
            return r
    return None


def _keys(runs: list[dict], part: str) -> list[dict]:
    """The workloads (and paths) measured by any of the runs, in their order."""
    seen: list[dict] = []
    for run in runs:
        for r in run["results"]:
            key = {k: v for k, v in r["spec"].items() if k in ("cameras", "width", "height", "path")}
            if r["spec"]["part"] == part and key not in seen:
                seen.append(key)
    return seen


def _cells(found: list[dict | None], fn) -> str:
    """One value per run (e.g. root / nocap), '-' where a run has none."""
    return " / ".join("-" if r is None else fn(r) for r in found)


def _f0(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def _f1(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.0f} %"


def _throughput_row(key: dict, found: list) -> str:
    cells = [
        _cells(found, lambda r: _f1(r["raw_limit"]["frames_per_s"])),
        _cells(found, lambda r: _f1(r["raw_limit_default_priority"]["frames_per_s"])),
        _cells(found, lambda r: _f1(r["block"]["frames_per_s"])),
        _cells(found, lambda r: _pct(r["block_ratio"])),
        _cells(found, lambda r: _f1(r["sustainable"]["fps_per_camera"])),
        _cells(found, lambda r: _f1(r["sustainable"]["frames_per_s"])),
        _cells(found, lambda r: _pct(r["sustainable_ratio"])),
        _cells(found, lambda r: _f1(r.get("other_work_cores"))),
    ]
    return f"| {workload_name(key['cameras'], key['width'], key['height'])} | " + " | ".join(cells) + " |"


def _realtime_row(key: dict, found: list) -> str:
    def add(r):
        return f"{r['add_frame_ms']['p50']:.2f}, {r['add_frame_ms']['p99']:.2f}"

    def rss(r):
        return f"{r['peak_rss_mb']['capture_process_incl_footage']}, {r['peak_rss_mb']['largest_encoder_process']}"

    def cpu(r):
        c = r["cpu_percent_of_one_core"]
        return f"{c['capture_process']:.0f}, {c['encoder_processes']:.0f}"

    def quality(r):
        return ", ".join(f"{q['psnr_db_mean']:.1f}/{q['psnr_db_min']:.1f}" for q in r["psnr"].values())

    cells = [
        _cells(found, add),
        _cells(found, lambda r: str(r["ticks_late"])),
        _cells(found, lambda r: f"{r['rows_recorded']}/{r['rows_expected']}"),
        _cells(found, lambda r: ", ".join(str(v) for v in r["dropped"].values())),
        _cells(found, lambda r: ", ".join(_f0(v) for v in r["save_episode_ms"])),
        _cells(found, rss),
        _cells(found, cpu),
        _cells(found, lambda r: _f1(r["mb_per_camera_minute_all"])),
        _cells(found, quality),
        _cells(found, lambda r: _f1(r.get("other_work_cores"))),
    ]
    return (f"| {workload_name(key['cameras'], key['width'], key['height'])} | {key['path']} | "
            + " | ".join(cells) + " |")


def _scaling_rows(key: dict, found: list) -> list[str]:
    out = []
    for cost, what in (("save_ms", "save_episode"), ("mp4_append_ms", "MP4 append (slowest camera)"),
                       ("journal_ms", "rows + metadata into the journal")):
        summary = [None if r is None else scaling_summary(r["per_episode"])[cost] for r in found]
        cells = [_cells(summary, lambda s, i=i: _f1(s["at_episode"].get(i))) for i in ("1", "10", "100")]
        cells.append(_cells(summary, lambda s: f"{s['median_first_10']:.1f} → {s['median_last_10']:.1f}"))
        cells.append(_cells(summary, lambda s: _f1(s["slope_ms_per_100_episodes"])))
        cells.append(_cells(summary, lambda s: f"{s['max']:.0f} (#{s['episode_of_max']})"))
        out.append(f"| {key['path']} | {what} | " + " | ".join(cells) + " |")
    return out


def tables(runs: list[dict]) -> str:
    """Markdown tables of one or more runs; each cell holds one value per run, in order."""
    lines = ["Runs: " + "; ".join(f"{r['label']} ({r['mode']}, {r['started']}, {_load(r)})" for r in runs) + ".",
             "Each cell: " + " / ".join(r["label"] for r in runs) + ".", ""]
    keys = _keys(runs, "throughput")
    if keys:
        lines += ["| workload | raw encoder limit (frames/s) | same, default priority | streamrec `block`, fed as "
                  "fast as it takes (frames/s) | ratio | sustainable at `drop`: highest fps per camera with 0 drops "
                  "| × cameras (frames/s) | ratio | other work (cores) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [_throughput_row(k, [_find(run, "throughput", k) for run in runs]) for k in keys]
        lines.append("")
    keys = _keys(runs, "realtime")
    if keys:
        lines += ["| workload | path | add_frame p50, p99 (ms) | ticks late | rows kept / expected "
                  "| dropped per camera | save_episode per episode (ms) | peak RSS capture, largest encoder (MB) "
                  "| CPU capture, encoders (% of a core) | MB per camera-minute | PSNR mean/min per camera (dB) "
                  "| other work (cores) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [_realtime_row(k, [_find(run, "realtime", k) for run in runs]) for k in keys]
        lines.append("")
    keys = _keys(runs, "scaling")
    if keys:
        lines += ["| path | cost (ms) | episode 1 | episode 10 | episode 100 | median, first → last 10 "
                  "| slope (ms per 100 episodes) | largest (episode) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for k in keys:
            lines += _scaling_rows(k, [_find(run, "scaling", k) for run in runs])
        lines.append("")
    return "\n".join(lines)


def _load(run: dict) -> str:
    text = run.get("uptime_before", "")
    return text[text.find("load average"):] if "load average" in text else text


if __name__ == "__main__":
    main()
