"""The dataset reader on real datasets: ours, LeRobot's, damaged ones, and one being recorded."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.frames import LEROBOT_V3
from helpers.recording import CAMS, FPS, H264, features, frame_for, record
from streamrec import DatasetError, DatasetRecorder
from streamrec.dataset._layout import FileIndex, Layout
from streamrec.dataset._reader import DatasetReader


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reader") / "ds"
    record(root, [7, 5], encoder=H264, tasks=["pick", "place"])
    return root


def test_reads_what_the_recorder_wrote(recorded: Path) -> None:
    reader = DatasetReader(recorded)
    assert reader.is_dataset and reader.fps == FPS and reader.cameras == CAMS
    assert reader.tasks == ["pick", "place"]
    eps = reader.episodes
    assert [(e.index, e.episode_index, e.length, e.tasks) for e in eps] == [(0, 0, 7, ["pick"]), (1, 1, 5, ["place"])]
    assert [(e.dataset_from_index, e.dataset_to_index) for e in eps] == [(0, 7), (7, 12)]
    for cam in CAMS:
        v0, v1 = eps[0].videos[cam], eps[1].videos[cam]
        assert v0.at == v1.at == FileIndex(0, 0) and v0.file == f"videos/{cam}/chunk-000/file-000.mp4"
        assert (v0.from_s, v0.to_s, v1.from_s, v1.to_s) == (0.0, 7 / FPS, 7 / FPS, 12 / FPS)
        assert v0.dropped == v1.dropped == 0
    rows = reader.rows
    assert rows is not None and rows.index.tolist() == list(range(12))
    assert rows.positions(1).tolist() == list(range(7, 12))
    assert rows.frame_index[rows.positions(1)].tolist() == list(range(5))
    assert reader.findings == [] and reader.recorded_by() is None and not reader.interrupted
    assert reader.next_file("data") == FileIndex(0, 1) and reader.next_file("videos", CAMS[0]) == FileIndex(0, 1)
    stats = reader.episode_stats(["observation.state"])
    assert np.allclose(stats[1]["observation.state"]["min"], 7.0)  # episode 1's rows hold states 7..11


def test_reads_a_dataset_lerobot_wrote() -> None:
    reader = DatasetReader(LEROBOT_V3)
    assert reader.fps == 30 and reader.cameras == ("observation.images.top",)
    assert [e.length for e in reader.episodes] == [10, 12]
    assert reader.episodes[0].videos["observation.images.top"].dropped is None  # LeRobot does not count drops
    assert reader.rows is not None and len(reader.rows.index) == 22
    assert reader.findings.errors == []


def test_a_missing_file_is_a_finding_not_an_exception(recorded: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(recorded, tmp_path / "ds"))
    (root / "data/chunk-000/file-000.parquet").unlink()
    reader = DatasetReader(root)
    assert len(reader.episodes) == 2 and reader.rows is None
    assert [f.code for f in reader.findings] == ["data_file_missing"]
    with pytest.raises(DatasetError, match=r"data/chunk-000/file-000.parquet does not exist; .*run `streamrec verify"):
        reader.require("this operation")


def test_left_out_files_are_read_as_absent(recorded: Path) -> None:
    # Repair reads a dataset as it was before the interrupted session's half-written files.
    layout = Layout(recorded)
    reader = DatasetReader(recorded, leave_out=[layout.episodes(FileIndex(0, 0))])
    assert reader.episodes == [] and reader.files("episodes") == []


def test_file_names_come_from_info_templates(recorded: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(recorded, tmp_path / "ds"))
    info = json.loads((root / "meta/info.json").read_text())
    info["video_path"] = "videos/{video_key}/c{chunk_index}/f{file_index}.mp4"
    (root / "meta/info.json").write_text(json.dumps(info))
    assert DatasetReader(root).episodes[1].videos[CAMS[0]].file == f"videos/{CAMS[0]}/c0/f0.mp4"


def test_file_index_is_parsed_from_names() -> None:
    assert FileIndex.of("videos/observation.images.top/chunk-002/file-017.mp4") == FileIndex(2, 17)
    assert FileIndex.of(Path("data/chunk-000/file-003.parquet")) == FileIndex(0, 3)
    assert FileIndex.of("meta/info.json") is None
    assert FileIndex(0, 999).next(1000) == FileIndex(1, 0) and FileIndex(0, 5).next(1000) == FileIndex(0, 6)


def test_not_a_dataset(tmp_path: Path) -> None:
    reader = DatasetReader(tmp_path / "nothing")
    assert not reader.is_dataset and reader.episodes == [] and reader.rows is None
    assert [f.code for f in reader.findings] == ["not_a_dataset"]


def test_a_live_recording_names_its_process(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    rec = DatasetRecorder.create(root, FPS, features(), camera_encoder=H264, queue_full_policy="block")
    try:
        for i in range(4):
            rec.add_frame(frame_for(i, 0, float(i)))
        rec.save_episode()
        reader = DatasetReader(root)
        assert reader.recording_pid == os.getpid() and not reader.interrupted
        assert reader.recorded_by().startswith(f"process {os.getpid()} (")
        assert reader.journaled_episodes() == 1
    finally:
        rec.finalize()
    assert DatasetReader(root).recorded_by() is None
