"""transcode() and the Ray runner: every video re-encoded, rows and frames 1:1, the same with and without Ray,
on a local Ray and on a two-node cluster simulated on this machine."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fleet.helpers import CAM, identities, record
from helpers.frames import decode, episodes
from streamrec import EncoderConfig, merge, transcode, verify, verify_many

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'streamrec[ray]')")

H264 = EncoderConfig(vcodec="h264", preset="ultrafast", crf=23)
AV1 = EncoderConfig(vcodec="libsvtav1", crf=35, g=2)


@pytest.fixture(scope="module")
def h264_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("src") / "h264"
    record(root, [6, 9, 5, 8], base=40, encoder=H264, tasks=["pick", "wipe", "pick", "wipe"])
    return root


def _frames(root: Path) -> list[np.ndarray]:
    return [f for p in sorted(root.rglob("*.mp4")) for f in decode(p).frames]


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), f"{rel} differs"


def test_transcode_with_local_ray_keeps_rows_frames_drops_and_metadata(h264_dataset, tmp_path, no_leftover_processes):
    out = tmp_path / "av1"
    report = transcode(h264_dataset, out, AV1, ray="local", workers=2)
    assert report.runner.startswith("ray") and sum(report.nodes.values()) == 4 + 1  # 4 episodes, 1 file
    assert verify(out).healthy, verify(out).findings
    # Decoded, every row still shows its own frame (identity 40 + row number across the dataset).
    assert identities(out) == identities(h264_dataset) == [list(range(40, 46)), list(range(46, 55)),
                                                          list(range(55, 60)), list(range(60, 68))]
    info, src_info = (json.loads((r / "meta" / "info.json").read_text()) for r in (out, h264_dataset))
    assert info["features"][CAM]["info"]["video.codec"] == "av1" and info["features"][CAM]["info"]["video.crf"] == 35
    assert src_info["features"][CAM]["info"]["video.codec"] == "h264"
    assert {k: v for k, v in info.items() if k != "features"} == {k: v for k, v in src_info.items() if k != "features"}
    # Rows, tasks and stats are the source's, byte for byte; the episodes table differs only in video positions.
    for rel in ("data/chunk-000/file-000.parquet", "meta/tasks.parquet", "meta/stats.json"):
        assert filecmp.cmp(h264_dataset / rel, out / rel, shallow=False), rel
    new, old = episodes(out), episodes(h264_dataset)
    assert [e[f"videos/{CAM}/dropped_frames"] for e in new] == [e[f"videos/{CAM}/dropped_frames"] for e in old]
    assert [{k: v for k, v in e.items() if not k.startswith("videos/")} for e in new] == \
        [{k: v for k, v in e.items() if not k.startswith("videos/")} for e in old]
    assert pq.read_table(out / "data/chunk-000/file-000.parquet").num_rows == 28


def test_transcode_is_frame_identical_with_and_without_ray(h264_dataset, tmp_path, no_leftover_processes):
    transcode(h264_dataset, tmp_path / "here", AV1)
    transcode(h264_dataset, tmp_path / "ray", AV1, ray="local", workers=2)
    here, there = _frames(tmp_path / "here"), _frames(tmp_path / "ray")
    assert len(here) == 28 and all(np.array_equal(a, b) for a, b in zip(here, there, strict=True))
    _same_tree(tmp_path / "here", tmp_path / "ray")


def test_merge_is_byte_identical_with_and_without_ray(h264_dataset, tmp_path, no_leftover_processes):
    other = tmp_path / "other"
    record(other, [4, 3], base=300)
    merge([h264_dataset, other], tmp_path / "here")
    merge([h264_dataset, other], tmp_path / "ray", ray="local", workers=2)
    _same_tree(tmp_path / "here", tmp_path / "ray")


def test_two_node_cluster_on_this_machine(h264_dataset, tmp_path, no_leftover_processes):
    """Ray's own cluster utilities: a head and a second node of one CPU each; tasks land on both."""
    from ray.cluster_utils import Cluster

    other = tmp_path / "other"
    record(other, [4, 3], base=300)
    transcode(h264_dataset, tmp_path / "t-here", AV1)
    merge([h264_dataset, other], tmp_path / "m-here")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        _warm_up_every_node()
        t = transcode(h264_dataset, tmp_path / "t-cluster", AV1, ray=cluster.address)
        m = merge([h264_dataset, other], tmp_path / "m-cluster", ray=cluster.address)
        reports = verify_many([tmp_path / "t-cluster", tmp_path / "m-cluster"], ray=cluster.address)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    assert len(t.nodes) == 2, f"the encoding tasks all ran on one node: {t.nodes}"
    assert sum(m.nodes.values()) == 3 and all(r.healthy for r in reports)  # 2 camera files (h264, av1), 1 data file
    _same_tree(tmp_path / "t-here", tmp_path / "t-cluster")
    _same_tree(tmp_path / "m-here", tmp_path / "m-cluster")


def _warm_up_every_node() -> None:
    """Start a worker with streamrec imported on each node: this test's tasks take milliseconds, less than a
    new node's worker takes to start, and would otherwise all be done by the head's worker first."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from streamrec.fleet._runner import _timed  # importing it on a worker imports streamrec

    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    remote = ray.remote(num_cpus=1)(_timed)
    ran = ray.get([remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(str, 0)
                   for n in nodes])
    assert sorted(node for _, node, _ in ran) == sorted(nodes)


def test_transcode_a_lerobot_dataset_in_process(tmp_path):
    from helpers.frames import LEROBOT_V3

    out = tmp_path / "h264"
    report = transcode(LEROBOT_V3, out, EncoderConfig(vcodec="h264", preset="veryfast"))
    assert report.encoders == {CAM: ("libx264",)} and report.nodes == {"local": 3}
    assert verify(out).healthy
    assert identities(out) == [list(range(10)), list(range(10, 22))]


def test_in_process_transcode_leaves_the_callers_scheduling_alone(h264_dataset, tmp_path):
    """SVT-AV1 asks for SCHED_FIFO 99 for the thread that opens it when it may (root here); the caller's
    threads must not become real-time, nor processes they start later (they inherit the policy)."""
    from streamrec.encode._priority import realtime_threads, thread_scheds

    before = {t.tid: (t.policy, t.nice) for t in thread_scheds()}
    transcode(h264_dataset, tmp_path / "av1", AV1)
    assert realtime_threads() == []
    after = {t.tid: (t.policy, t.nice) for t in thread_scheds()}
    assert {tid: after[tid] for tid in before if tid in after} == {tid: v for tid, v in before.items() if tid in after}
