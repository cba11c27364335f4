"""merge(): streamrec's and LeRobot's datasets into one, video copied, checked by decoding and by LeRobot's loader."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fleet.helpers import CAM, FPS, LEROBOT_LENGTHS, LEROBOT_V3, identities, record
from helpers.frames import REPO, episodes
from streamrec import DatasetError, EncoderConfig, merge, verify
from streamrec.dataset._layout import Layout
from streamrec.dataset._lock import WorkLock
from streamrec.dataset._reader import DatasetReader

LEROBOT_PYTHON = Path.home() / ".cache" / "streamrec-lerobot-venv" / "bin" / "python"
H264 = EncoderConfig(vcodec="h264", preset="ultrafast", crf=23)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two streamrec datasets with other encoder settings than the LeRobot-written one (h264; AV1 at crf 40)."""
    root = tmp_path_factory.mktemp("sources")
    record(root / "a", [5, 7], base=100, encoder=H264, tasks=["pick", "wipe"])
    record(root / "b", [6], base=200, encoder=EncoderConfig(crf=40), tasks=["wipe"])
    return [root / "a", root / "b", LEROBOT_V3]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _expected_ids() -> list[list[int]]:
    lerobot, k = [], 0
    for n in LEROBOT_LENGTHS:
        lerobot.append(list(range(k, k + n)))
        k += n
    return [list(range(100, 105)), list(range(105, 112)), list(range(200, 206)), *lerobot]


def test_merge_keeps_every_rows_frame_tasks_stats_and_drops(sources, tmp_path):
    before = [_digest(s) for s in sources]
    out = tmp_path / "merged"
    report = merge(sources, out)
    assert [_digest(s) for s in sources] == before, "a source was written to"
    assert (report.episodes, report.frames, report.tasks) == (5, 40, 3)
    assert verify(out).healthy, verify(out).findings

    # Every row's frame, looked up as the loader does it, is the frame that row had in its source.
    assert identities(out) == _expected_ids()
    rows = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    assert rows["index"] == list(range(40))
    assert rows["episode_index"] == [e for e, ids in enumerate(_expected_ids()) for _ in ids]
    assert [int(s[0]) for s in rows["observation.state"]] == [i for ids in _expected_ids() for i in ids]
    tasks = pq.read_table(out / "meta" / "tasks.parquet").to_pydict()["task"]
    assert tasks == ["pick", "wipe", "place"]
    assert [tasks[t] for t in rows["task_index"][::1]][:5] == ["pick"] * 5
    eps = episodes(out)
    assert [e["tasks"] for e in eps] == [["pick"], ["wipe"], ["wipe"], ["pick"], ["place"]]

    # One MP4 per set of stream parameters: h264, streamrec's AV1, LeRobot's AV1 (another sequence header).
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["fps"] == FPS and info["total_episodes"] == 5 and info["total_frames"] == 40
    by_file = info["features"][CAM]["info"]["video.codec_by_file"]
    assert by_file == {"chunk-000/file-000.mp4": "h264", "chunk-000/file-001.mp4": "av1",
                       "chunk-000/file-002.mp4": "av1"}
    assert [e[f"videos/{CAM}/file_index"] for e in eps] == [0, 0, 1, 2, 2]

    # Drop counts carried through (LeRobot does not record them: unknown, not 0); per-episode stats kept,
    # those of the renumbered columns recomputed; dataset stats over every frame.
    assert [e[f"videos/{CAM}/dropped_frames"] for e in eps] == [0, 0, 0, None, None]
    src_stats = [row for s in sources for row in episodes(s)]
    assert [e["stats/observation.state/mean"] for e in eps] == [s["stats/observation.state/mean"] for s in src_stats]
    assert [e[f"stats/{CAM}/mean"] for e in eps] == [s[f"stats/{CAM}/mean"] for s in src_stats]
    assert [e["stats/index/min"] for e in eps] == [[float(e["dataset_from_index"])] for e in eps]
    assert [e["stats/episode_index/max"] for e in eps] == [[float(i)] for i in range(5)]
    stats = json.loads((out / "meta" / "stats.json").read_text())
    ids = [i for group in _expected_ids() for i in group]
    assert stats["observation.state"]["count"] == [40]
    assert np.allclose(stats["observation.state"]["mean"], np.mean(ids))
    assert stats["observation.state"]["max"] == [205.0] * 3 and stats["action"]["min"] == [-205.0] * 3
    assert stats["index"]["max"] == [39.0]


@pytest.mark.skipif(not LEROBOT_PYTHON.exists(), reason="LeRobot 0.6.1's venv (~/.cache/streamrec-lerobot-venv) "
                    "is absent; /work/shared/tools/lerobot-load-check builds it")
def test_lerobot_loader_returns_each_rows_own_frame(sources, tmp_path):
    out = tmp_path / "merged"
    merge(sources, out)
    result = subprocess.run([str(LEROBOT_PYTHON), str(REPO / "tests" / "fleet" / "lerobot_identity.py"), str(out), CAM],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["episodes"] == 5 and len(loaded["rows"]) == 40
    # The state of every row is the identity drawn in its frame, in all three sources.
    assert [r["frame"] for r in loaded["rows"]] == [int(r["state"]) for r in loaded["rows"]]
    assert [r["frame"] for r in loaded["rows"]] == [i for ids in _expected_ids() for i in ids]
    assert [r["task"] for r in loaded["rows"]][-12:] == ["place"] * 12


@pytest.mark.skipif(not LEROBOT_PYTHON.exists(), reason="LeRobot 0.6.1's venv (~/.cache/streamrec-lerobot-venv) "
                    "is absent; /work/shared/tools/lerobot-load-check builds it")
def test_lerobot_h264_with_b_frames(sources, tmp_path):
    """LeRobot's H.264 has B-frames: packets in decode order, the first dts before pts 0. Merged after another
    camera file and transcoded, every row keeps its frame."""
    lerobot = tmp_path / "lerobot_h264"
    made = subprocess.run([str(LEROBOT_PYTHON), str(REPO / "tests" / "fleet" / "make_lerobot_h264.py"), str(lerobot)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert made.returncode == 0, made.stderr[-2000:]
    out = tmp_path / "merged"
    merge([sources[0], lerobot, sources[2]], out)
    assert verify(out).healthy, verify(out).findings
    b_frames = [list(range(500, 514)), list(range(514, 525))]
    assert identities(out) == [_expected_ids()[0], _expected_ids()[1], *b_frames, *_expected_ids()[3:]]
    assert [e[f"videos/{CAM}/file_index"] for e in episodes(out)] == [0, 0, 1, 1, 2, 2]
    from streamrec import transcode

    transcode(lerobot, tmp_path / "av1", EncoderConfig())
    assert identities(tmp_path / "av1") == b_frames


def test_mismatches_are_refused_before_anything_is_written(sources, tmp_path):
    record(tmp_path / "fps15", [4], base=300, fps=15)
    record(tmp_path / "state4", [4], base=300, state=4)
    record(tmp_path / "front", [4], base=300, cam="observation.images.front")
    cases = {
        "fps15": f"{tmp_path / 'fps15'} has fps = 15, but {sources[0]} has 30",
        "state4": f"{tmp_path / 'state4'}: feature 'observation.state' has shape [4], but {sources[0]} has [3]",
        "front": "has feature(s) ['observation.images.front'] that",
    }
    for name, message in cases.items():
        out = tmp_path / f"out-{name}"
        with pytest.raises(DatasetError) as e:
            merge([sources[0], tmp_path / name], out)
        assert message in str(e.value)
        assert not out.exists() and not any(tmp_path.glob(f".out-{name}*")), "something was written"
    with pytest.raises(DatasetError, match="--rename"):
        merge([sources[0], tmp_path / "front"], tmp_path / "out")


def test_rename_joins_one_camera_recorded_under_two_names(sources, tmp_path):
    record(tmp_path / "front", [4], base=300, cam="observation.images.front")
    out = tmp_path / "out"
    report = merge([tmp_path / "front", sources[1]], out, rename=["observation.images.front=" + CAM])
    assert report.renamed == {"observation.images.front": CAM}
    assert verify(out).healthy
    assert identities(out) == [list(range(300, 304)), list(range(200, 206))]
    eps = episodes(out)
    assert f"stats/{CAM}/mean" in eps[0] and not any(k.startswith("videos/observation.images.front") for k in eps[0])
    assert DatasetReader(out).cameras == (CAM,)


_KILLED = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from streamrec import merge
def progress(p):
    if p.stage == "copy video" and p.done == 2:  # after two of the three video files
        os.kill(os.getpid(), signal.SIGKILL)
merge(sys.argv[3:], sys.argv[2], progress=progress)
"""


def test_an_interrupted_merge_leaves_no_output_and_reruns_cleanly(sources, tmp_path):
    out = tmp_path / "merged"
    proc = subprocess.run([sys.executable, "-c", _KILLED, str(REPO / "src"), str(out), *map(str, sources)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists()
    assert (tmp_path / ".merged.partial").is_dir(), "the kill should have hit mid-merge"
    merge(sources, out)
    assert not (tmp_path / ".merged.partial").exists()
    assert verify(out).healthy
    clean = tmp_path / "clean"
    merge(sources, clean)
    assert _digest(out) == _digest(clean)


def test_a_merge_another_process_is_writing_is_left_alone(sources, tmp_path):
    out = tmp_path / "merged"
    other = WorkLock(Layout(tmp_path / ".merged.partial"), "the other merge")  # as another process holds it
    try:
        with pytest.raises(DatasetError, match=rf"merge: another process is writing {out} right now \(.* is locked\) "
                                               rf"\(process {os.getpid()}\)"):
            merge(sources, out)
        assert (tmp_path / ".merged.partial" / ".streamrec").is_dir() and not out.exists()
    finally:
        other.release()
    merge(sources, out)
    assert verify(out).healthy


def test_output_is_never_a_source_or_inside_one(sources, tmp_path):
    with pytest.raises(DatasetError, match="already exists"):
        merge(sources[:2], sources[0])
    with pytest.raises(DatasetError, match="inside the source"):
        merge(sources[:2], sources[0] / "merged")


def test_without_ray_ray_is_not_imported(sources, tmp_path):
    code = ("import sys; import streamrec; streamrec.merge(sys.argv[2:], sys.argv[1]); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out"), *map(str, sources)],
                            capture_output=True, text=True, timeout=120, env={**os.environ})
    assert result.returncode == 0, result.stderr[-2000:]


def test_an_episode_that_does_not_start_with_a_keyframe_is_refused(tmp_path):
    """Packets are copied, so each episode must start with a keyframe (streamrec's and LeRobot's do). Here the
    episodes table is edited to start episode 1 one frame late, inside a GOP (g=100)."""
    import pyarrow as pa

    src = tmp_path / "src"
    record(src, [5, 6], base=0, encoder=EncoderConfig(vcodec="h264", preset="ultrafast", g=100))
    path = next((src / "meta" / "episodes").rglob("*.parquet"))
    table = pq.read_table(path)
    shifted = {f"videos/{CAM}/from_timestamp": [0.0, 6 / FPS], f"videos/{CAM}/to_timestamp": [5 / FPS, 11 / FPS],
               "length": [5, 5]}
    for column, values in shifted.items():
        i = table.column_names.index(column)
        table = table.set_column(i, column, pa.array(values, table.schema.field(column).type))
    pq.write_table(table, path)
    with pytest.raises(DatasetError, match="episode 1: its video in .* does not start with a keyframe"):
        merge([src], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()
