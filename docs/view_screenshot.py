"""Makes docs/view.png: `streamrec view` on a dataset recorded from the ALOHA simulation clip.

Three cameras (downscaled to 320x240), three episodes of 150 frames with the clip's 14-joint
state and action, recorded as fast as the loop runs with a short encoder queue, so that the
encoders fall behind and drop frames for real (their counts show in the list and on the
timeline). The page is loaded in Debian's headless Chromium once verify's findings are in.

    .venv/bin/python docs/view_screenshot.py [--out docs/view.png] [--footage DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FOOTAGE = REPO.parent / "shared" / "footage" / "aloha_insertion"
CAMERAS = ("top", "angle", "left_wrist")
JOINTS = [f"{side}_{j}" for side in ("left", "right")
          for j in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")]


def clip(footage: Path, name: str, size: tuple[int, int]) -> list[np.ndarray]:
    with av.open(str(footage / f"{name}.mkv")) as c:
        return [f.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray() for f in c.decode(video=0)]


def record(root: Path, footage: Path) -> None:
    from streamrec import DatasetRecorder, EncoderConfig

    video = {c: clip(footage, c, (320, 240)) for c in CAMERAS}
    data = np.load(footage / "data.npz")
    features = {f"observation.images.{c}": {"dtype": "video", "shape": [240, 320, 3]} for c in CAMERAS}
    features["observation.state"] = {"dtype": "float32", "shape": [14], "names": JOINTS}
    features["action"] = {"dtype": "float32", "shape": [14], "names": JOINTS}
    with DatasetRecorder.create(root, 50, features, robot_type="aloha", encoder_queue_maxsize=4,
                                camera_encoder=EncoderConfig(vcodec="h264", preset="medium")) as rec:
        for start in (0, 150, 300):
            for i in range(start, start + 150):
                row = {f"observation.images.{c}": video[c][i] for c in CAMERAS}
                row["observation.state"] = data["observation.state"][i]
                row["action"] = data["action"][i]
                row["task"] = "insert the peg into the socket"
                rec.add_frame(row)
            rec.save_episode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "view.png")
    parser.add_argument("--footage", type=Path, default=FOOTAGE, help=f"the clip's folder (default: {FOOTAGE})")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="streamrec-view-shot-"))
    try:
        record(work / "aloha_insertion", args.footage)
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        server = subprocess.Popen([sys.executable, "-m", "streamrec.cli", "view", str(work / "aloha_insertion"),
                                   "--port", "0", "--no-browser"], stdout=subprocess.PIPE, text=True, env=env)
        try:
            url = server.stdout.readline().split()[-1]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                            args=["--no-sandbox", "--disable-background-networking",
                                                  "--disable-component-update", "--disable-sync", "--no-first-run",
                                                  "--disable-quic"])
                page = browser.new_page(viewport={"width": 1400, "height": 1050})
                page.goto(f"{url}#e=1&f=60")
                page.wait_for_function("() => window.streamrecView && streamrecView.plots.length === 2 && "
                                       "streamrecView.health !== null && streamrecView.settled()", timeout=300000)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            server.send_signal(2)
            server.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(args.out)


if __name__ == "__main__":
    main()
