"""`streamrec verify` as a command: exit codes, the table, and --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.damage import TOP, copy_dataset, record_dataset, video_file
from streamrec.cli.__main__ import main


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_dataset(tmp_path_factory.mktemp("cli-verify") / "healthy", (20, 25))


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns when not on a terminal


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_healthy_dataset_exits_0_with_a_table(healthy: Path) -> None:
    result = run_cli("verify", str(healthy))
    assert result.returncode == 0, result.stderr
    assert "top" in result.stdout and "wrist" in result.stdout and "Healthy" in result.stdout
    assert result.stdout.count(" ok ") == 4  # one row per episode and camera


def test_not_a_dataset_exits_2(tmp_path: Path) -> None:
    result = run_cli("verify", str(tmp_path))
    assert result.returncode == 2
    assert "not_a_dataset" in result.stdout and "Not a dataset" in result.stdout


def test_json_output(healthy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(healthy), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["healthy"] is True and report["summary"]["exit_code"] == 0
    assert report["summary"]["episodes"] == 2 and report["summary"]["frames"] == 45
    assert [(r["episode"], r["frames"], r["rows"], r["status"]) for r in report["rows"]] == [
        (0, 20, 20, "ok"), (0, 20, 20, "ok"), (1, 25, 25, "ok"), (1, 25, 25, "ok")]
    assert report["findings"] == []


def test_problems_exit_1_and_are_listed(healthy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = copy_dataset(healthy, tmp_path / "ds")
    (dataset / video_file(TOP)).unlink()
    assert main(["verify", str(dataset)]) == 1
    out = capsys.readouterr().out
    assert "video_file_missing" in out and video_file(TOP) in out and "Problems found" in out

    assert main(["verify", str(dataset), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    [finding] = report["findings"]
    assert finding == {"severity": "error", "code": "video_file_missing", "episode": None, "camera": TOP, "row": None,
                       "file": video_file(TOP), "message": finding["message"]}
    assert {r["status"] for r in report["rows"] if r["camera"] == TOP} == {"error"}


def test_json_for_not_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "missing"), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["is_dataset"] is False
    assert [f["code"] for f in report["findings"]] == ["not_a_dataset"]
