"""`streamrec merge`, `streamrec transcode` and `streamrec verify` of many datasets, as commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.helpers import CAM, LEROBOT_V3, identities, record
from helpers.hardware import NVIDIA
from streamrec import EncoderConfig


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-fleet")
    record(root / "a", [5, 4], base=100, encoder=EncoderConfig(vcodec="h264", preset="ultrafast"))
    record(root / "front", [3], base=300, cam="observation.images.front")
    return {"a": root / "a", "front": root / "front"}


def test_merge_with_rename(datasets, tmp_path):
    out = tmp_path / "merged"
    result = run_cli("merge", str(datasets["a"]), str(datasets["front"]), str(LEROBOT_V3), "--output", str(out),
                     "--rename", f"observation.images.front={CAM}", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "Merged 3 dataset(s)" in result.stdout and f"renamed observation.images.front -> {CAM}" in result.stdout
    assert identities(out) == [list(range(100, 105)), list(range(105, 109)), list(range(300, 303)),
                               list(range(10)), list(range(10, 22))]


def test_merge_mismatch_exits_1_naming_dataset_and_field(datasets, tmp_path):
    result = run_cli("merge", str(datasets["a"]), str(datasets["front"]), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert f"streamrec merge: {datasets['front']} has feature(s) ['observation.images.front']" in result.stderr
    assert "--rename" in result.stderr and not (tmp_path / "out").exists()
    bad = run_cli("merge", str(datasets["a"]), "-o", str(tmp_path / "out"), "--rename", "nonsense")
    assert bad.returncode == 2 and "expected OLD=NEW" in bad.stderr


def test_transcode_json(datasets, tmp_path):
    out = tmp_path / "av1"
    result = run_cli("transcode", str(datasets["a"]), "-o", str(out), "--vcodec", "libsvtav1", "--crf", "40",
                     "--preset", "12", "--g", "4", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["encoders"] == {CAM: ["libsvtav1"]} and report["frames"] == 9 and report["runner"] == "in-process"
    info = json.loads((out / "meta" / "info.json").read_text())["features"][CAM]["info"]
    assert (info["video.codec"], info["video.crf"], info["video.g"], info["video.preset"]) == ("av1", 40, 4, 12)
    assert identities(out) == identities(datasets["a"])
    bad = run_cli("transcode", str(datasets["a"]), "-o", str(tmp_path / "x"), "--vcodec", "h264", "--preset", "fastest")
    assert bad.returncode == 2 and "EncoderConfig.preset = 'fastest': libx264 accepts" in bad.stderr


def test_verify_many_summary_and_worst_exit_code(datasets, tmp_path):
    result = run_cli("verify", str(datasets["a"]), str(datasets["front"]), "--no-progress")
    assert result.returncode == 0, result.stdout
    assert "2 of 2 dataset(s) healthy" in result.stdout
    missing = tmp_path / "missing"
    result = run_cli("verify", str(datasets["a"]), str(missing), "--json")
    assert result.returncode == 2
    reports = json.loads(result.stdout)
    assert [r["summary"]["exit_code"] for r in reports] == [0, 2]
    # One dataset: the output is the single-dataset report, as before.
    single = run_cli("verify", str(datasets["a"]))
    assert single.returncode == 0 and "Healthy: 2 episode(s)" in single.stdout and "datasets" not in single.stdout


def test_ray_local_from_the_command_line(datasets, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'streamrec[ray]')")
    out = tmp_path / "merged"
    result = run_cli("merge", str(datasets["a"]), str(LEROBOT_V3), "-o", str(out), "--ray", "local", "--workers", "2",
                     "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["runner"].startswith("ray (1 node(s), 2 CPU(s)")
    result = run_cli("verify", str(out), str(datasets["a"]), "--ray", "local", "--no-progress")
    assert result.returncode == 0 and "2 of 2 dataset(s) healthy" in result.stdout


def test_transcode_vcodec_auto_picks_what_works_here(datasets, tmp_path):
    """`auto` goes through streamrec's probe; without a GPU here it ends with the software encoder."""
    out = tmp_path / "auto"
    result = run_cli("transcode", str(datasets["front"]), "-o", str(out), "--vcodec", "auto", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    chosen = report["encoders"]["observation.images.front"]
    info = json.loads((out / "meta" / "info.json").read_text())["features"]["observation.images.front"]["info"]
    assert len(chosen) == 1 and info["video.codec"] in ("av1", "h264", "hevc")
    stream = {"libsvtav1": "av1", "libx264": "h264", "libx265": "hevc"}
    if not NVIDIA:  # no GPU: the software encoder it ends with, named as it wrote
        assert info["video.codec"] == stream.get(chosen[0]), (chosen, info["video.codec"])
    assert identities(out, "observation.images.front") == [list(range(300, 303))]
