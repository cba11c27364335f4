"""`streamrec bench`: real trials (PyAV encoders, the recorder's processes) on small frames and budgets.

Every run here measures 320x240 frames from one camera with libx264, so that a 2-core CI machine
gets through each in seconds. Assertions are about behaviour, never about how fast anything went.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import av
import pytest

from helpers.frames import FOOTAGE
from streamrec._platform import available_cpus
from streamrec.bench._bench import grid
from streamrec.cli.__main__ import main

SMALL = ["--cameras", "1", "--width", "320", "--height", "240", "--fps", "30", "--vcodec", "h264"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def streamrec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns when not on a terminal


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    """One real run, as a user types it: JSON on stdout, progress on stderr, a plot."""
    plot = tmp_path_factory.mktemp("bench") / "bench.png"
    done = streamrec("bench", *SMALL, "--budget-s", "14", "--json", "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    return done, json.loads(done.stdout), plot


def test_json_has_every_trial_and_a_recommendation(measured: tuple[subprocess.CompletedProcess, dict, Path]) -> None:
    done, out, _ = measured
    assert out["request"] == {"cameras": 1, "width": 320, "height": 240, "fps": 30, "seconds": 20.0}
    assert out["frames_source"] == "synthetic" and out["cpus"] == available_cpus()
    trials = out["trials"]
    assert trials and [t["rank"] for t in trials] == list(range(1, len(trials) + 1))
    assert sum(t["runs"] for t in trials) == out["trials_run"]
    for t in trials:
        assert t["error"] is None, t
        assert t["setting"]["encoder"] == "libx264"
        assert t["frames"] > 0 and t["fps_per_camera"] > 0 and t["cpu_ms_per_frame"] > 0
        assert t["cpu_share"] > 0 and t["headroom"] == pytest.approx(1 - t["cpu_share"], abs=1e-3)
        assert t["bytes_per_frame"] > 0 and len(t["fps_runs"]) == t["runs"]
    # Every setting of the grid was measured, skipped or dropped, and said so.
    grid_size = len(grid(["libx264"], available_cpus(), 30))
    assert len(trials) + len(out["dropped"]) == grid_size
    assert all(d["reason"] for d in out["dropped"])
    rec = out["recommendation"]
    assert rec is not None and out["advice"] is None
    assert rec["setting"] == trials[0]["setting"] and trials[0]["sustainable"]
    assert rec["record_flags"] == trials[0]["setting"]["record_flags"]
    assert rec["record_flags"].startswith("--dataset.camera_encoder.vcodec=libx264 --dataset.camera_encoder.preset=")
    assert "--dataset.encoder_queue_maxsize=30" in rec["record_flags"]
    assert rec["sentence"].startswith(trials[0]["setting"]["label"] + ", queue 30: 1 \u00d7 30 fps with ")
    assert rec["disk_mb_per_episode_per_camera"] > 0 and rec["memory_mb"] > 0
    assert "streamrec bench: trial 1/" in done.stderr  # progress goes to stderr, not into the JSON
    # A trial measures one fixed setting: fed as fast as it goes, it must not step to a faster one.
    assert "encoder queue over a third full" not in done.stderr


def test_the_table_fits_80_columns() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "streamrec.cli", "bench", *SMALL, "--budget_s", "10"],
                          capture_output=True, text=True, env=env, timeout=120)  # an underscore works too
    assert done.returncode in (0, 1), done.stderr
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and "Encoder" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("Keeps up:"))
    table = lines[start:end]
    assert max(len(line.rstrip()) for line in table) <= 80, "\n".join(table)
    assert all("libx264" in line for line in table[2:] if line.strip()), "\n".join(table)


def test_recommended_flags_record_a_healthy_dataset(measured: tuple[subprocess.CompletedProcess, dict, Path],
                                                    tmp_path: Path) -> None:
    flags = shlex.split(measured[1]["recommendation"]["record_flags"])
    root = tmp_path / "ds"
    done = streamrec("record", *flags, f"--dataset.root={root}", "--dataset.single_task=check the flags",
                     "--dataset.num_episodes=1", "--dataset.episode_time_s=1", "--dataset.reset_time_s=0",
                     "--cameras={top: {type: synthetic, width: 320, height: 240}}")
    assert done.returncode == 0, done.stderr
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.top"]["info"]["video.codec"] == "h264"
    check = streamrec("verify", str(root))
    assert check.returncode == 0, check.stdout + check.stderr


def test_plot_is_a_png(measured: tuple[subprocess.CompletedProcess, dict, Path]) -> None:
    plot = measured[2]
    assert plot.read_bytes()[:8] == PNG_SIGNATURE
    with av.open(str(plot)) as container:
        image = next(container.decode(video=0))
    assert image.width > 300 and image.height > 300


def test_table_and_impossible_rate(capsys: pytest.CaptureFixture[str]) -> None:
    # No machine encodes 100000 frames a second: every setting is measured as not keeping up.
    assert main(["bench", *SMALL[:-4], "--fps", "100000", "--vcodec", "h264", "--budget-s", "9"]) == 1
    out = capsys.readouterr().out
    assert "streamrec bench: 1 \u00d7 320x240 at 100000 fps, synthetic frames" in out
    assert "libx264" in out and "Recommendation" not in out
    assert "No setting keeps up with 1 \u00d7 100000 fps here: the best, libx264 preset ultrafast" in out
    assert "--dataset.streaming_encoding=false" in out


@pytest.mark.skipif(not FOOTAGE.is_dir(), reason=f"footage not found at {FOOTAGE}")
def test_small_budget_drops_settings_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    # Four settings (more on machines with more cores) at 2 s each cannot fit 8 s with the probe.
    assert main(["bench", *SMALL, "--footage", str(FOOTAGE), "--budget-s", "8", "--json"]) in (0, 1)
    out = json.loads(capsys.readouterr().out)
    assert out["frames_source"] == str(FOOTAGE)
    assert out["trials"] and all(t["frames"] > 0 for t in out["trials"])
    budget = [d for d in out["dropped"] if "the budget (8 s) ran out" in d["reason"]]
    assert budget, out["dropped"]
    assert len(out["trials"]) + len(out["dropped"]) == len(grid(["libx264"], available_cpus(), 30))


@pytest.mark.parametrize("args,message", [
    (["--cameras", "0"], "streamrec bench: --cameras=0: must be an integer >= 1"),
    (["--width", "321"], "streamrec bench: --width=321: must be an even integer >= 16"),
    (["--vcodec", "mpeg2"], "streamrec bench: --vcodec=mpeg2: unknown encoder; one of ['auto', "),
    (["--footage", "/no/such/folder"], "streamrec bench: --footage=/no/such/folder: not a folder"),
    (["--budget-s", "0"], "streamrec bench: --budget-s=0: must be a number of seconds > 0"),
    (["--plot", "/no/such/folder/bench.png"], "streamrec bench: --plot=/no/such/folder/bench.png: the folder"),
    (["--budget-s", "1", *SMALL], "streamrec bench: --budget-s=1: the probe and preparing frames took"),
])
def test_bad_arguments_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


def test_not_a_number_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--cameras", "three"])
    assert exit_.value.code == 2
    assert "argument --cameras: invalid int value: 'three'" in capsys.readouterr().err


def test_plot_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what Python does for a module that is not installed
    assert main(["bench", *SMALL, "--plot", str(tmp_path / "bench.png")]) == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "pip install 'streamrec[bench]'" in err
    assert not (tmp_path / "bench.png").exists()
