"""`streamrec info`: the numbers match what was recorded, the table, --json, and exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.recording import CAMS, FPS, features, frame_for
from streamrec import DatasetError, DatasetRecorder, EncoderConfig, summarize
from streamrec.cli.__main__ import main
from streamrec.record import EpisodeReport

LENGTHS = (12, 8, 10)
TASKS = ("pick", "place", "pick")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[EpisodeReport]]:
    """Three episodes, two tasks; a one-frame queue that drops, so the drop totals are worth checking."""
    root = tmp_path_factory.mktemp("cli-info") / "ds"
    rec = DatasetRecorder.create(root, FPS, features(), camera_encoder=EncoderConfig(vcodec="h264", preset="ultrafast"),
                                 encoder_queue_maxsize=1, queue_full_policy="drop")
    reports = []
    for length, task in zip(LENGTHS, TASKS):
        for i in range(length):
            rec.add_frame(frame_for(i, 0, float(i), task))
        reports.append(rec.save_episode())
    rec.finalize()
    return root, reports


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns when not on a terminal


def test_json_matches_the_recording(recorded: tuple[Path, list[EpisodeReport]],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    root, reports = recorded
    assert main(["info", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["episodes"], out["frames"], out["fps"]) == (len(LENGTHS), sum(LENGTHS), FPS)
    assert out["duration_s"] == round(sum(LENGTHS) / FPS, 3)
    assert [c["key"] for c in out["cameras"]] == list(CAMS)
    for camera in out["cameras"]:
        assert (camera["codec"], camera["width"], camera["height"], camera["fps"], camera["files"]) == (
            "h264", 128, 96, FPS, 1)
        assert camera["dropped_frames"] == sum(r.cameras[camera["key"]].dropped for r in reports)
        video = root / f"videos/{camera['key']}/chunk-000/file-000.mp4"
        assert camera["size_bytes"] == video.stat().st_size
    assert out["dropped_frames"] == sum(r.dropped for r in reports)
    assert out["tasks"] == [{"index": 0, "task": "pick", "episodes": 2, "frames": 22},
                            {"index": 1, "task": "place", "episodes": 1, "frames": 8}]
    assert out["size_bytes"] == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert out["notes"] == []


def test_table_lists_each_camera_and_the_totals(recorded: tuple[Path, list[EpisodeReport]],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = recorded
    assert main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    for key in CAMS:
        name = key.removeprefix("observation.images.")
        assert any(line.split()[:2] == [name, "h264"] for line in out.splitlines()), out
    assert "128x96" in out
    assert f"{len(LENGTHS)} episode(s), {sum(LENGTHS)} frames" in out
    assert "pick" in out and "place" in out and "note:" not in out


def test_a_stream_that_differs_from_info_json_is_noted(recorded: tuple[Path, list[EpisodeReport]],
                                                       tmp_path: Path) -> None:
    root = shutil.copytree(recorded[0], tmp_path / "ds")
    meta = json.loads((root / "meta/info.json").read_text())
    stated = meta["features"][CAMS[0]]["info"]
    stated["video.codec"], stated["video.width"] = "av1", 256
    (root / "meta/info.json").write_text(json.dumps(meta))
    notes = summarize(root).notes
    name = f"videos/{CAMS[0]}/chunk-000/file-000.mp4"
    assert notes == (f"{CAMS[0]}: info.json says codec av1, but {name} holds h264",
                     f"{CAMS[0]}: info.json says 256x96, but {name} is 128x96")


def test_not_a_dataset_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"streamrec info: not a dataset: {tmp_path} has no meta/ folder")
    (tmp_path / "meta").mkdir()
    with pytest.raises(DatasetError, match="has meta/ but no meta/info.json"):
        summarize(tmp_path)
