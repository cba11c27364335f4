"""The viewer's dataset reader (streamrec.view._data) against real recorded and LeRobot-written datasets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamrec import DatasetError
from streamrec.view._data import Dataset

from .conftest import DEPTH, EPISODES_FILE, FPS, LEROBOT, TOP, WRIST


def test_recorded_dataset(ids_dataset):
    d = Dataset(ids_dataset)
    assert d.fps == FPS
    assert [c.key for c in d.cameras] == [TOP, WRIST]
    assert d.tasks == ("task 0", "task 1", "task 2")
    assert [e.length for e in d.episodes] == [40, 25, 60, 33]
    assert [e.tasks for e in d.episodes] == [("task 0",), ("task 1",), ("task 2",), ("task 0",)]
    assert d.series_features == ("observation.state", "action")
    # Episodes share one MP4 per camera, back to back.
    spans = [e.spans[TOP] for e in d.episodes]
    assert {s.video_file for s in spans} == {f"videos/{TOP}/chunk-000/file-000.mp4"}
    assert [round(s.from_s * FPS) for s in spans] == [0, 40, 65, 125]
    assert [round(s.to_s * FPS) for s in spans] == [40, 65, 125, 158]
    assert all(s.dropped == 0 and s.dropped_slots == () and s.adaptations == () for s in spans)
    assert d.video_files() == {f"videos/{k}/chunk-000/file-000.mp4" for k in (TOP, WRIST)}


def test_series_of_one_episode(ids_dataset):
    state, action = Dataset(ids_dataset).series(2)
    assert state.name == "observation.state" and state.names == ("row", "episode", "sine")
    assert state.values.shape == (60, 3)
    np.testing.assert_array_equal(state.values[:, 0], np.arange(60))
    np.testing.assert_array_equal(state.values[:, 1], 2)
    np.testing.assert_allclose(state.values[:, 2], np.sin(np.arange(60) / 4), atol=1e-6)
    assert action.names == ("0", "1")
    np.testing.assert_array_equal(action.values[:, 0], -np.arange(60))


def test_lerobot_dataset():
    d = Dataset(LEROBOT)
    assert [c.key for c in d.cameras] == [TOP] and d.cameras[0].codec == "av1"
    assert [e.length for e in d.episodes] == [10, 12]
    assert d.tasks == ("pick", "place")
    # LeRobot records no drops: the count is unknown, not zero.
    assert all(e.dropped is None for e in d.episodes)
    state = d.series(1)[0]
    np.testing.assert_array_equal(state.values, np.repeat(np.arange(10, 22)[:, None], 3, axis=1))


def test_drop_positions_and_adaptations(slots_dataset):
    d = Dataset(slots_dataset)
    rows = pq.read_table(slots_dataset / EPISODES_FILE).to_pylist()
    for e, ep in enumerate(d.episodes):
        span = ep.spans[TOP]
        assert span.dropped == rows[e][f"videos/{TOP}/dropped_frames"]
        assert list(span.dropped_slots) == rows[e][f"videos/{TOP}/dropped_slots"]
    assert d.episodes[0].spans[TOP].adaptations == ((5, "preset veryslow -> slow"), (17, "preset slow -> veryfast"))
    assert d.episodes[1].spans[TOP].adaptations == ()


def test_depth_camera(depth_dataset):
    cams = {c.key: c for c in Dataset(depth_dataset).cameras}
    assert cams[DEPTH].is_depth and not cams[TOP].is_depth


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="has no meta/ folder; expected a LeRobot dataset holding meta/info.json"):
        Dataset(tmp_path)


def test_bad_fps(ids_dataset, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(ids_dataset, root)
    info = json.loads((root / "meta/info.json").read_text())
    info["fps"] = 0
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"info.json fps = 0: expected an integer > 0"):
        Dataset(root)


def test_bad_adaptation(slots_dataset, tmp_path):
    import pyarrow as pa

    from .conftest import set_episode_column

    root = tmp_path / "d"
    shutil.copytree(slots_dataset, root)
    set_episode_column(root, f"videos/{TOP}/adaptations", [["preset changed"], []], pa.list_(pa.string()))
    with pytest.raises(DatasetError, match=r"episode 0, observation.images.top: adaptation 'preset changed' is not "
                                           r"'<row>:<what changed>'"):
        Dataset(root)
