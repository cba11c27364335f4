"""What a new user meets in the first hour: messages instead of tracebacks, a LeRobot user's habits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamrec.cli.__main__ import main

QUICK = ["--dataset.single_task=t", "--dataset.num_episodes=1", "--dataset.episode_time_s=0.3",
         "--dataset.reset_time_s=0", "--cameras={top: {width: 64, height: 48}}",
         "--dataset.camera_encoder.vcodec=h264", "--dataset.camera_encoder.preset=ultrafast"]


def streamrec(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})
    done.stderr = " ".join(done.stderr.split())  # messages wrap at the terminal's width
    return done


@pytest.mark.parametrize(("root", "message"), [
    ("/proc/streamrec-ds", "cannot write the dataset at /proc/streamrec-ds"),
    ("{file}/ds", "is a file, so nothing can be created under it"),
    ("{file}", "is a file, not a folder"),
])
def test_a_dataset_root_that_cannot_be_a_folder(tmp_path: Path, root: str, message: str) -> None:
    (tmp_path / "f").write_text("x")
    done = streamrec("record", f"--dataset.root={root.format(file=tmp_path / 'f')}", *QUICK)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_unwritable_report_path_is_refused_before_recording(tmp_path: Path) -> None:
    done = streamrec("record", f"--dataset.root={tmp_path / 'ds'}", "--report-json=/proc/r.json", *QUICK)
    assert done.returncode == 1 and "--report-json=/proc/r.json: cannot be written" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "ds").exists()  # nothing was recorded


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # `streamrec verify --json DS | head`: the reader went away before the output was written.
    proc = subprocess.Popen([sys.executable, "-m", "streamrec.cli", "verify", "--json", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and b"Traceback" not in err, err


def test_log_level_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path), "--log-level", "WARNING"]) == 2
    assert main(["verify", str(tmp_path), "--log_level=DEBUG"]) == 2
    with pytest.raises(SystemExit, match=r"--log-level=LOUD: must be one of DEBUG, INFO, WARNING, ERROR"):
        main(["verify", str(tmp_path), "--log-level=LOUD"])


@pytest.mark.parametrize(("flag", "message"), [
    ("--dataset.repo_id=me/ds", "--dataset.repo_id is a flag of lerobot-record"),
    ("--dataset.push_to_hub=true", "--dataset.push_to_hub is a flag of lerobot-record"),
    ("--robot.type=so101_follower", "--robot.* is a flag of lerobot-record"),
    ("--dataset.rgb_encoder.vcodec=h264", "--dataset.rgb_encoder.* is --dataset.camera_encoder.* here"),
    ("--dataset.video=false", "streamrec stores cameras as video only"),
])
def test_lerobot_flags_get_a_useful_answer(tmp_path: Path, flag: str, message: str) -> None:
    done = streamrec("record", f"--dataset.root={tmp_path / 'ds'}", flag, *QUICK)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "did you mean" not in done.stderr


def test_lerobot_flags_that_mean_the_same_here_are_taken(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    done = streamrec("record", f"--dataset.root={root}", "--dataset.video=true", "--play_sounds=true",
                     "--log-level=WARNING", *QUICK)
    assert done.returncode == 0, done.stderr
    assert json.loads((root / "meta/info.json").read_text())["total_episodes"] == 1
