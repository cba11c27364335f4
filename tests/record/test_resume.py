"""DatasetRecorder.resume: append episodes to a finalized dataset, ours or LeRobot's, without
rewriting its videos, and refuse settings that differ from the dataset's."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers.frames import LEROBOT_V3, episodes, frames_of_episode, id_frame, read_id
from helpers.recording import CAMS, FPS, H264, check_identity, features, frame_for, record
from streamrec import DatasetError, DatasetRecorder, EncoderConfig, verify


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def add_episodes(rec: DatasetRecorder, lengths, first_ident: int, tasks) -> None:
    ident = first_ident
    for n, task in zip(lengths, tasks):
        for _ in range(n):
            rec.add_frame(frame_for(ident, 0, float(ident), task))
            ident += 1
        rec.save_episode()


@pytest.mark.parametrize("streaming", [True, False])
def test_resume_appends_episodes_after_the_saved_ones(tmp_path, streaming):
    root = tmp_path / "ds"
    record(root, [10, 12], encoder=H264, tasks=["pick", "place"])
    before = digests(root)
    rec = DatasetRecorder.resume(root, streaming_encoding=streaming, batch_encoding_size=1 if streaming else 2,
                                 queue_full_policy="block")
    assert rec.num_episodes == 2
    add_episodes(rec, [8, 11, 9], 22, ["place", "stack", "pick"])
    rec.finalize()

    check_identity(root, [10, 12, 8, 11, 9])
    after = digests(root)
    # Old data, episodes and video files are untouched; only the small meta files change.
    unchanged = {k for k in before if before[k] == after.get(k)}
    assert unchanged == set(before) - {"meta/info.json", "meta/tasks.parquet", "meta/stats.json"}
    new = sorted(set(after) - set(before))
    assert new == sorted(["data/chunk-000/file-001.parquet", "meta/episodes/chunk-000/file-001.parquet",
                          *(f"videos/{c}/chunk-000/file-001.mp4" for c in CAMS)])
    eps = episodes(root)
    assert [e["episode_index"] for e in eps] == [0, 1, 2, 3, 4]
    assert [e["dataset_from_index"] for e in eps] == [0, 10, 22, 30, 41]
    assert [e["meta/episodes/file_index"] for e in eps] == [0, 0, 1, 1, 1]
    assert [e[f"videos/{CAMS[0]}/from_timestamp"] for e in eps] == [0, 10 / FPS, 0, 8 / FPS, 19 / FPS]
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pylist()
    assert tasks == [{"task_index": 0, "task": "pick"}, {"task_index": 1, "task": "place"},
                     {"task_index": 2, "task": "stack"}]
    data = pq.read_table(root / "data/chunk-000/file-001.parquet")
    assert data.column("index").to_pylist() == list(range(22, 50))
    assert data.column("task_index").to_pylist() == [1] * 8 + [2] * 11 + [0] * 9
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (5, 50, 3)
    assert info["splits"] == {"train": "0:5"}
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["observation.state"]["max"] == [49.0] * 6 and stats["observation.state"]["count"] == [50]
    assert stats["observation.state"]["mean"] == pytest.approx([24.5] * 6)
    report = verify(root)
    assert report.healthy, report.findings


def test_resume_twice_and_with_nothing_added(tmp_path):
    root = tmp_path / "ds"
    record(root, [6], encoder=H264)
    DatasetRecorder.resume(root).finalize()  # nothing recorded: nothing but meta rewritten
    assert json.loads((root / "meta/info.json").read_text())["total_episodes"] == 1
    for first, n in ((6, 5), (11, 7)):
        rec = DatasetRecorder.resume(root, queue_full_policy="block")
        add_episodes(rec, [n], first, ["pick"])
        rec.finalize()
    check_identity(root, [6, 5, 7])
    assert verify(root).healthy


def test_resume_takes_the_dataset_settings_and_refuses_different_ones(tmp_path):
    root = tmp_path / "ds"
    record(root, [5], encoder=EncoderConfig(vcodec="h264", preset="ultrafast", crf=23))
    before = digests(root)
    cases = [
        ({"fps": 15}, r"resume: fps = 15, but the dataset was recorded at 30 fps"),
        ({"features": {**features(), "observation.state": {"dtype": "float32", "shape": [7]}}},
         r"resume: feature 'observation.state' is dtype float32 shape \[7\] here, but dtype float32 shape \[6\]"),
        ({"features": {k: v for k, v in features().items() if k != "action"}},
         r"resume: the dataset's feature 'action' is missing from the features given"),
        ({"features": {**features(), "gripper": {"dtype": "float32", "shape": [1]}}},
         r"resume: feature 'gripper' is not in the dataset"),
        ({"camera_encoder": EncoderConfig(vcodec="h264", preset="ultrafast", crf=30)},
         r"resume: camera_encoder crf = 30, but the dataset's videos have 23; leave camera_encoder out"),
        ({"camera_encoder": EncoderConfig()}, r"resume: camera_encoder codec \(video.codec\) = 'av1', but .* 'h264'"),
        ({"robot_type": "aloha"}, r"resume: robot_type = 'aloha', but the dataset's is 'test'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DatasetError, match=message):
            DatasetRecorder.resume(root, **kwargs)
    assert digests(root) == before and not (root / ".streamrec").exists()
    rec = DatasetRecorder.resume(root, fps=FPS, features=features(), queue_full_policy="block")
    assert rec.config.camera_encoder.encoder == "libx264" and rec.config.camera_encoder.crf == 23
    add_episodes(rec, [4], 5, ["pick"])
    rec.finalize()
    check_identity(root, [5, 4])


def test_resume_refuses_what_is_not_a_finalized_dataset(tmp_path):
    with pytest.raises(DatasetError, match=r"has no meta/info.json; DatasetRecorder.resume needs a finalized"):
        DatasetRecorder.resume(tmp_path / "nothing")
    root = tmp_path / "ds"
    record(root, [5], encoder=H264)
    (root / ".streamrec" / "episodes").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"was interrupted while recording .* run `streamrec repair .*` first"):
        DatasetRecorder.resume(root)


def test_resume_a_dataset_written_by_lerobot(tmp_path):
    root = tmp_path / "lr"
    shutil.copytree(LEROBOT_V3, root)
    before = digests(root)
    old_info = json.loads((root / "meta/info.json").read_text())
    rec = DatasetRecorder.resume(root, queue_full_policy="block")
    # LeRobot's info.json says av1, crf 30, g 2, preset 12: the same settings are used.
    enc = rec.config.camera_encoder
    assert (enc.encoder, enc.crf, enc.g, enc.effective_preset) == ("libsvtav1", 30, 2, 12)
    k = 22
    for n, task in ((9, "place"), (7, "push")):
        for _ in range(n):
            rec.add_frame({"observation.images.top": id_frame(k), "observation.state": np.full(3, k, np.float32),
                           "action": np.full(3, -k, np.float32), "task": task})
            k += 1
        rec.save_episode()
    rec.finalize()

    after = digests(root)
    assert {k for k in before if before[k] == after[k]} == set(before) - {"meta/info.json", "meta/tasks.parquet",
                                                                          "meta/stats.json"}
    # New episodes files share the schema of LeRobot's (the loader concatenates them).
    schemas = {pq.read_schema(p).remove_metadata() for p in root.glob("meta/episodes/*/*.parquet")}
    assert len(schemas) == 1
    assert len({pq.read_schema(p).remove_metadata() for p in root.glob("data/*/*.parquet")}) == 1
    eps = episodes(root)
    assert [e["length"] for e in eps] == [10, 12, 9, 7]
    base = 0
    for ep in eps:
        got = [read_id(f) for f in frames_of_episode(root, ep, "observation.images.top", 30)]
        assert got == list(range(base, base + ep["length"])), ep["episode_index"]
        base += ep["length"]
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"] == old_info["features"]  # LeRobot's own info blocks kept
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, 38, 3)
    assert pq.read_table(root / "meta/tasks.parquet").column("task").to_pylist() == ["pick", "place", "push"]
    report = verify(root)
    assert report.healthy, report.findings
