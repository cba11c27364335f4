"""Every command's output in an 80-column terminal or log: no line longer than 80, no name split."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.damage import rewrite_column

EPISODES = "meta/episodes/chunk-000/file-000.parquet"
WRIST = "observation.images.left_wrist"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def assert_fits(text: str, *names: str) -> None:
    lines = text.splitlines()
    assert lines and max(len(line.rstrip()) for line in lines) <= 80, "\n".join(lines)
    for name in names:  # each whole on one line: never wrapped or folded
        assert any(name in line for line in lines), f"{name!r} is split or missing:\n{text}"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("narrow") / "a_dataset_with_a_long_name"
    out = run("record", f"--dataset.root={root}", "--dataset.num_episodes=2", "--dataset.episode_time_s=1",
              "--dataset.reset_time_s=0", "--dataset.single_task=insert the peg into the socket, then let go",
              "--cameras={top: {width: 128, height: 96}, left_wrist: {width: 128, height: 96}}",
              "--dataset.camera_encoder.vcodec=h264", "--dataset.camera_encoder.preset=ultrafast")
    assert out.returncode == 0, out.stderr
    return root, out.stdout


def test_record_summary_fits(recorded) -> None:
    _, stdout = recorded
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "Episode" in line and "Status" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("This session"))
    assert_fits("\n".join(lines[start:end]), "add_frame p99 ms", "Status", "saved")


def test_verify_fits(recorded, tmp_path) -> None:
    root, _ = recorded
    rewrite_column(root / EPISODES, f"videos/{WRIST}/dropped_frames", lambda v: [3] + v[1:])
    rewrite_column(root / EPISODES, f"videos/{WRIST}/dropped_slots", lambda v: [[4, 5, 6]] + v[1:])
    out = run("verify", str(root))
    assert_fits(out.stdout, "left_wrist", "3 (10.0%)", "Capture ms", "Status")


def test_info_fits(recorded) -> None:
    root, _ = recorded
    out = run("info", str(root))
    assert out.returncode == 0, out.stderr
    assert_fits(out.stdout, "left_wrist", "128x96", "MB on disk")


def test_probe_fits() -> None:
    out = run("probe", "--width", "320", "--height", "240", timeout=600)
    assert out.returncode == 0, out.stderr
    assert_fits(out.stdout, "libsvtav1", "libx264", "vcodec=auto picks")
    if "h264_nvenc" in out.stdout and "libcuda.so.1" in out.stdout:  # NVENC built in, no NVIDIA driver here
        assert_fits(out.stdout, "h264_nvenc", "libcuda.so.1")
