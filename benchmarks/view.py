"""`streamrec view` on a 1,000-episode dataset: time to first paint, and the server's memory.

Side by side in one run: the same measurements on a 3-episode dataset, so the cost of a long
episode list shows as a ratio. Each dataset is recorded with the public API (two 64x48 cameras,
10-frame episodes, all episodes of a camera in one MP4). The server is the real command,
`streamrec view DATASET --port 0 --no-browser`, in its own process; the page is loaded by
Debian's headless Chromium (Playwright), a fresh browser context (empty cache) per load:

- `first_paint_ms`, `first_contentful_paint_ms`: the Paint Timing API's entries;
- `episodes_listed_ms`: the page's own mark once every episode's row is in the table;
- `server_rss_mb`: resident memory of the server process (verify's child process apart) after
  start, after the loads, and after visiting `--visits` episodes one after the other;
- `verify_child_peak_rss_mb`: the background verify process, sampled every 50 ms.

Two cases per dataset: `fresh` (verify's cache empty, so verify runs while the page loads, as
on a first view) and `cached` (verify's report already cached).

    .venv/bin/python benchmarks/view.py [--episodes 1000] [--loads 5] [--json PATH]
    capsh --drop=cap_sys_nice -- -c '.venv/bin/python benchmarks/view.py --json ...'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from helpers.frames import id_frame  # noqa: E402

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]
FPS = 30


def make_dataset(root: Path, episodes: int, length: int = 10) -> float:
    """Record `episodes` episodes; returns seconds taken."""
    from streamrec import DatasetRecorder, EncoderConfig

    t0 = time.perf_counter()
    features = {"observation.images.top": {"dtype": "video", "shape": [48, 64, 3]},
                "observation.images.wrist": {"dtype": "video", "shape": [48, 64, 3]},
                "observation.state": {"dtype": "float32", "shape": [6]},
                "action": {"dtype": "float32", "shape": [6]}}
    frames = [id_frame(i, 48, 64) for i in range(length)]
    with DatasetRecorder.create(root, FPS, features, queue_full_policy="block",
                                camera_encoder=EncoderConfig(vcodec="h264", preset="ultrafast")) as rec:
        for e in range(episodes):
            for i in range(length):
                rec.add_frame({"observation.images.top": frames[i], "observation.images.wrist": frames[i],
                               "observation.state": np.full(6, i, np.float32),
                               "action": np.full(6, -i, np.float32), "task": f"task {e % 7}"})
            rec.save_episode()
    return time.perf_counter() - t0


class ServerProcess:
    def __init__(self, root: Path, cache: Path) -> None:
        env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
        self.proc = subprocess.Popen([sys.executable, "-m", "streamrec.cli", "view", str(root), "--port", "0",
                                      "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("streamrec view: http"):
            raise RuntimeError(f"the server did not start: {line!r}")
        self.url = line.split()[-1]
        self.ps = psutil.Process(self.proc.pid)
        self.child_peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                for c in self.ps.children(recursive=True):
                    self.child_peak = max(self.child_peak, c.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def close(self) -> None:
        self._stop.set()
        self.proc.send_signal(2)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


TIMING = """() => {
  const paint = Object.fromEntries(performance.getEntriesByType("paint").map((e) => [e.name, e.startTime]));
  const listed = performance.getEntriesByName("streamrec-episodes-listed")[0];
  const nav = performance.getEntriesByType("navigation")[0];
  return { fp: paint["first-paint"], fcp: paint["first-contentful-paint"], listed: listed && listed.startTime,
           rows: document.querySelectorAll("#episodes tbody tr").length, html_bytes: nav.transferSize,
           response_end: nav.responseEnd };
}"""


def measure(root: Path, episodes: int, loads: int, visits: int, browser, cached_from: Path | None) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="streamrec-view-bench-cache-"))
    if cached_from is not None:
        shutil.copytree(cached_from, cache, dirs_exist_ok=True)
    server = ServerProcess(root, cache)
    out: dict = {"rss_after_start_mb": server.rss_mb()}
    try:
        samples = []
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(server.url, wait_until="load")
            page.wait_for_function(f"() => document.querySelectorAll('#episodes tbody tr').length === {episodes}")
            page.wait_for_function("() => performance.getEntriesByType('paint').length >= 2")
            samples.append(page.evaluate(TIMING))
            context.close()
        out["rss_after_loads_mb"] = server.rss_mb()
        context = browser.new_context()
        page = context.new_page()
        page.goto(server.url)
        step = max(1, episodes // visits)
        for pos in range(0, episodes, step)[:visits]:
            page.evaluate(f"location.hash = 'e={pos}&f=5'")
            page.wait_for_function(f"() => streamrecView.episode && streamrecView.episode.position === {pos} "
                                   "&& streamrecView.settled()", timeout=60000)
        out["rss_after_visits_mb"] = server.rss_mb()
        # Wait for verify so that its child's peak is known, then read it.
        page.wait_for_function("() => streamrecView.health !== null", timeout=600000)
        context.close()
        out["verify_child_peak_rss_mb"] = server.child_peak / 2**20 if server.child_peak else None
        out["server_peak_rss_mb"] = server.ps.memory_info().rss / 2**20
    finally:
        server.close()
    out["loads"] = samples
    for key, name in (("fp", "first_paint_ms"), ("fcp", "first_contentful_paint_ms"), ("listed", "episodes_listed_ms")):
        values = [s[key] for s in samples]
        out[name] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    out["visits"] = min(visits, episodes)
    out["cache_dir"] = str(cache)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5, help="page loads per case (median reported)")
    parser.add_argument("--visits", type=int, default=50, help="episodes opened one after the other")
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep (and reuse) the datasets in")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    work = args.keep or Path(tempfile.mkdtemp(prefix="streamrec-view-bench-"))
    result: dict = {"load_before": os.getloadavg(), "cap_sys_nice": _has_cap_sys_nice(), "datasets": {}}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                        args=CHROMIUM_FLAGS)
            result["chromium"] = browser.version
            for n in (3, args.episodes):
                root = work / f"ds-{n}"
                made = None
                if not (root / "meta" / "info.json").exists():
                    made = make_dataset(root, n)
                fresh = measure(root, n, args.loads, args.visits, browser, None)
                cached = measure(root, n, args.loads, args.visits, browser, Path(fresh["cache_dir"]))
                assert cached["verify_child_peak_rss_mb"] is None, "the cached case ran verify again"
                for case in (fresh, cached):
                    shutil.rmtree(case.pop("cache_dir"), ignore_errors=True)
                result["datasets"][n] = {"record_s": made, "fresh": fresh, "cached": cached,
                                         "mp4_files": len(list(root.rglob("*.mp4")))}
                for case in ("fresh", "cached"):
                    r = result["datasets"][n][case]
                    print(f"{n:5d} episodes {case:6s}: first paint {r['first_paint_ms']['median']:.0f} ms, "
                          f"FCP {r['first_contentful_paint_ms']['median']:.0f} ms, "
                          f"list {r['episodes_listed_ms']['median']:.0f} ms; "
                          f"server RSS {r['rss_after_start_mb']:.0f} / {r['rss_after_loads_mb']:.0f} / "
                          f"{r['rss_after_visits_mb']:.0f} MB (start / loads / {r['visits']} visits); "
                          f"verify child peak {r['verify_child_peak_rss_mb'] or 0:.0f} MB", flush=True)
            browser.close()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    big, small = result["datasets"][args.episodes], result["datasets"][3]
    for case in ("fresh", "cached"):
        result[f"ratio_listed_{case}"] = (big[case]["episodes_listed_ms"]["median"]
                                          / small[case]["episodes_listed_ms"]["median"])
    result["load_after"] = os.getloadavg()
    print(f"list time ratio {args.episodes} / 3 episodes: fresh {result['ratio_listed_fresh']:.2f}, "
          f"cached {result['ratio_listed_cached']:.2f}; load average {result['load_before']} -> {result['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _has_cap_sys_nice() -> bool:
    try:
        text = Path("/proc/self/status").read_text()
        eff = int(next(line for line in text.splitlines() if line.startswith("CapEff:")).split()[1], 16)
        return bool(eff >> 23 & 1)
    except (OSError, StopIteration, ValueError):
        return False


if __name__ == "__main__":
    main()
