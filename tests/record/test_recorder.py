"""End-to-end behaviour of DatasetRecorder: real encoders, real files, decoded back."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers.frames import FOOTAGE, decode, episodes, frame_after_seek, frames_of_episode, id_frame, read_id
from helpers.recording import CAMS, FPS, H264, H, W, check_identity, features, frame_for, record
from streamrec import DatasetError, DatasetRecorder, EncoderConfig, EncoderRestarted, FrameError, WorkerError, verify
from streamrec.encode._priority import realtime_threads, thread_scheds


@pytest.mark.parametrize("vcodec", ["libsvtav1", "h264", "hevc"])
def test_every_row_maps_to_its_own_frame(tmp_path, vcodec):
    lengths = [23, 31, 17]
    preset = "ultrafast" if vcodec != "libsvtav1" else None
    record(tmp_path / "ds", lengths, encoder=EncoderConfig(vcodec=vcodec, preset=preset))
    check_identity(tmp_path / "ds", lengths)
    eps = episodes(tmp_path / "ds")
    # Several episodes share one file, back to back, timestamps from integer frame counts.
    for key in CAMS:
        assert {e[f"videos/{key}/file_index"] for e in eps} == {0}
        assert [e[f"videos/{key}/from_timestamp"] for e in eps] == [0.0, 23 / FPS, 54 / FPS]
        assert [e[f"videos/{key}/to_timestamp"] for e in eps] == [23 / FPS, 54 / FPS, 71 / FPS]


@pytest.mark.parametrize("vcodec", ["libsvtav1", "h264", "hevc"])
def test_every_row_decodes_after_a_seek_as_a_loader_reads_it(tmp_path, vcodec):
    # Short episodes put keyframes close to episode starts: a frame coded against a picture from
    # before its keyframe (x265's open GOP) is lost when a loader seeks there.
    lengths = [3, 3, 3, 5]
    preset = "ultrafast" if vcodec != "libsvtav1" else None
    record(tmp_path / "ds", lengths, encoder=EncoderConfig(vcodec=vcodec, preset=preset))
    ident = 0
    for ep in episodes(tmp_path / "ds"):
        for key in CAMS:
            path = tmp_path / f"ds/videos/{key}/chunk-000/file-000.mp4"
            start = Fraction(ep[f"videos/{key}/from_timestamp"]).limit_denominator(FPS * 1000)
            for r in range(ep["length"]):
                frame = frame_after_seek(path, start + Fraction(r, FPS))
                assert frame is not None, f"{vcodec}: episode {ep['episode_index']} row {r} lost after a seek"
                assert read_id(frame) == ident + r
        ident += ep["length"]


def test_file_rollover_keeps_identity(tmp_path):
    lengths = [20, 20, 20, 20, 20]
    record(tmp_path / "ds", lengths, encoder=EncoderConfig(vcodec="h264", preset="ultrafast"),
           video_files_size_in_mb=0.05, chunks_size=2)
    check_identity(tmp_path / "ds", lengths)
    eps = episodes(tmp_path / "ds")
    for key in CAMS:
        files = [(e[f"videos/{key}/chunk_index"], e[f"videos/{key}/file_index"]) for e in eps]
        assert len(set(files)) > 1, "the small size limit should have started new files"
        assert any(chunk > 0 for chunk, _ in files), "chunks_size=2 should have started chunk-001"
        for ep, prev in zip(eps[1:], eps[:-1]):
            same_file = (ep[f"videos/{key}/chunk_index"], ep[f"videos/{key}/file_index"]) == \
                (prev[f"videos/{key}/chunk_index"], prev[f"videos/{key}/file_index"])
            expected = prev[f"videos/{key}/to_timestamp"] if same_file else 0.0
            assert ep[f"videos/{key}/from_timestamp"] == expected


@pytest.mark.skipif(not FOOTAGE.exists(), reason="../shared/footage is not beside this clone "
                    "(the synthetic identity tests cover the same paths)")
def test_footage_frames_land_in_their_rows(tmp_path):
    import av

    cams = {"top": "observation.images.top", "angle": "observation.images.angle"}
    src = {}
    for name in cams:
        with av.open(str(FOOTAGE / f"{name}.mkv")) as c:
            # Frames 150..229: both arms moving, so neighbouring frames differ visibly.
            decoded = (f.to_ndarray(format="rgb24") for f in c.decode(video=0))
            src[name] = [f for i, f in zip(range(230), decoded) if i >= 150]
    data = np.load(FOOTAGE / "data.npz")
    feats = {key: {"dtype": "video", "shape": [480, 640, 3], "names": None} for key in cams.values()}
    feats["observation.state"] = {"dtype": "float32", "shape": [14], "names": None}
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, feats, queue_full_policy="block")
    lengths = [45, 35]
    i = 0
    for n in lengths:
        for _ in range(n):
            frame = {key: src[name][i] for name, key in cams.items()}
            frame["observation.state"] = data["observation.state"][150 + i]
            rec.add_frame({**frame, "task": "insertion"})
            i += 1
        rec.save_episode()
    rec.finalize()
    eps = episodes(tmp_path / "ds")
    base = 0
    checked = 0
    for ep in eps:
        for name, key in cams.items():
            decoded = frames_of_episode(tmp_path / "ds", ep, key, FPS)
            for r, got in enumerate(decoded):
                j = base + r
                own = mae(got, src[name][j])
                assert own < 3.0, f"mean abs error {own:.2f} too large for row {r}"
                # The arms move slowly (the clip is 50 fps), so compare with frames a few steps
                # away: where the scene changed clearly, a shifted row would match them better.
                for k in (j - 6, j - 3, j + 3, j + 6):
                    if 0 <= k < len(src[name]) and mae(src[name][k], src[name][j]) > 2 * own:
                        assert own < mae(got, src[name][k]), \
                            f"row {r} of episode {ep['episode_index']} ({key}) looks like frame {k}, not {j}"
                        checked += 1
        base += ep["length"]
    assert checked > 100, "too few frames differed from their neighbours to prove anything"
    state = pq.read_table(tmp_path / "ds/data/chunk-000/file-000.parquet").column("observation.state").to_pylist()
    np.testing.assert_array_equal(np.array(state, np.float32), data["observation.state"][150:230])


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_full_queue_drops_count_and_repeat_previous_frame(tmp_path, caplog):
    # A one-slot queue and a slow preset, fed as fast as possible: drops must happen, and each
    # dropped slot must show the frame before it, never a shifted one.
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, features(), encoder_queue_maxsize=1,
                                 camera_encoder=EncoderConfig(vcodec="h264", preset="veryslow"))
    n = 120
    with caplog.at_level(logging.WARNING, logger="streamrec"):
        for i in range(n):
            rec.add_frame(frame_for(i, 0, float(i)))
        report = rec.save_episode()
    rec.finalize()
    ep = episodes(tmp_path / "ds")[0]
    assert ep["length"] == n
    for key in CAMS:
        cam = report.cameras[key]
        assert cam.frames == n
        assert cam.dropped > 0, "the test did not manage to overflow the queue"
        assert ep[f"videos/{key}/dropped_frames"] == cam.dropped
        got = [read_id(f) for f in frames_of_episode(tmp_path / "ds", ep, key, FPS)]
        assert len(got) == n
        assert got[0] == 0 or cam.dropped
        assert all(g <= r for r, g in enumerate(got)), "a row shows a frame from its future"
        assert all(b >= a for a, b in zip(got, got[1:])), "frames went backwards"
        assert sum(g != r for r, g in enumerate(got)) == cam.dropped
        # Which rows repeat a frame is recorded too, for the viewer's timeline and for training code.
        repeated = [r for r, g in enumerate(got) if g != r]
        assert list(cam.dropped_slots) == ep[f"videos/{key}/dropped_slots"] == repeated
        assert f"Encoder queue full for {key}, dropped 1 frame(s)" in caplog.text


def test_block_policy_loses_nothing(tmp_path):
    reports = record(tmp_path / "ds", [60], encoder=EncoderConfig(vcodec="h264", preset="veryslow"),
                     encoder_queue_maxsize=1, queue_full_policy="block")
    assert reports[0].dropped == 0
    assert reports[0].cameras[CAMS[0]].encoded_while_recording is None  # streaming: no PNG path figure
    check_identity(tmp_path / "ds", [60])


def test_metadata(tmp_path):
    lengths = [10, 12, 8]
    reports = record(tmp_path / "ds", lengths, encoder=EncoderConfig(vcodec="h264", preset="ultrafast"),
                     tasks=["b task", "a task", "b task"])
    root = tmp_path / "ds"
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 30, 2)
    assert info["splits"] == {"train": "0:3"}
    assert info["features"]["observation.images.top"]["info"]["video.codec"] == "h264"
    assert set(info["features"]) >= {"timestamp", "frame_index", "episode_index", "index", "task_index"}
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pylist()
    assert tasks == [{"task_index": 0, "task": "b task"}, {"task_index": 1, "task": "a task"}]
    eps = episodes(root)
    assert [e["episode_index"] for e in eps] == [0, 1, 2]
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, 10), (10, 22), (22, 30)]
    assert [e["tasks"] for e in eps] == [["b task"], ["a task"], ["b task"]]
    assert [r.episode_index for r in reports] == [0, 1, 2]
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert data.num_rows == 30
    assert data.column("index").to_pylist() == list(range(30))
    assert data.column("frame_index").to_pylist() == [*range(10), *range(12), *range(8)]
    assert data.column("task_index").to_pylist() == [0] * 10 + [1] * 12 + [0] * 8
    np.testing.assert_array_equal(data.column("timestamp").to_numpy(),
                                  (np.array([*range(10), *range(12), *range(8)]) / FPS).astype(np.float32))
    assert str(data.schema.field("observation.state").type) == "fixed_size_list<element: float>[6]"
    assert pq.ParquetFile(root / "data/chunk-000/file-000.parquet").num_row_groups == 3
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.array(stats["observation.images.top"]["mean"]).shape == (3, 1, 1)
    assert np.array(stats["observation.state"]["mean"]).shape == (6,)
    assert stats["observation.state"]["min"] == [0.0] * 6 and stats["observation.state"]["max"] == [29.0] * 6
    assert stats["observation.state"]["mean"] == pytest.approx([14.5] * 6)
    assert not (root / ".streamrec").exists()


def test_bad_frames_are_refused_and_leave_the_episode_usable(tmp_path):
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, features(),
                                 camera_encoder=EncoderConfig(vcodec="h264", preset="ultrafast"))
    rec.add_frame(frame_for(0, 0, 0.0))
    good = frame_for(1, 0, 1.0)
    cases = [
        ({**good, "observation.images.top": good["observation.images.top"][:, :64]},
         r"'observation.images.top' must have shape \(96, 128, 3\) \(height, width, channels\), got \(96, 64, 3\)"),
        ({**good, "observation.images.wrist": good["observation.images.wrist"].astype(np.float32)},
         r"'observation.images.wrist' must have dtype uint8, got float32"),
        ({**good, "observation.state": np.zeros(5, np.float32)},
         r"'observation.state' must have shape \(6,\), got \(5,\)"),
        ({**good, "action": np.array(["a"] * 6)}, r"'action' must have dtype float32 .* got <U1"),
        ({k: v for k, v in good.items() if k != "action"}, r"feature 'action' is missing"),
        ({**good, "observation.gripper": 1.0}, r"unknown key\(s\) \['observation.gripper'\]"),
        ({k: v for k, v in good.items() if k != "task"}, r"'task' must be a non-empty string, got None"),
    ]
    for bad, message in cases:
        with pytest.raises(FrameError, match=message):
            rec.add_frame(bad)
    assert rec.episode_frames == 1
    rec.add_frame(good)
    report = rec.save_episode()
    rec.finalize()
    assert report.frames == 2
    first = episodes(tmp_path / "ds")[0]
    assert [read_id(f) for f in frames_of_episode(tmp_path / "ds", first, CAMS[0], FPS)] == [0, 1]


def test_clear_episode_discards_only_the_open_one(tmp_path):
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, features(),
                                 camera_encoder=H264, queue_full_policy="block")
    for i in range(10):
        rec.add_frame(frame_for(i, 0, i))
    rec.save_episode()
    for i in range(100, 115):
        rec.add_frame(frame_for(i, 0, i))
    rec.clear_episode()
    for i in range(10, 22):
        rec.add_frame(frame_for(i, 0, i))
    rec.save_episode()
    rec.finalize()
    check_identity(tmp_path / "ds", [10, 12])


def test_an_error_inside_with_keeps_saved_episodes(tmp_path):
    with pytest.raises(KeyboardInterrupt), DatasetRecorder.create(
            tmp_path / "ds", FPS, features(), camera_encoder=EncoderConfig(vcodec="h264", preset="ultrafast"),
            queue_full_policy="block") as rec:
        for i in range(8):
            rec.add_frame(frame_for(i, 0, i))
        rec.save_episode()
        for i in range(8, 12):
            rec.add_frame(frame_for(i, 0, i))
        raise KeyboardInterrupt
    check_identity(tmp_path / "ds", [8])
    assert json.loads((tmp_path / "ds/meta/info.json").read_text())["total_frames"] == 8


def one_saved_episode_and_one_open(root, opened: int, **kwargs) -> DatasetRecorder:
    """A recorder with episode 0 (identities 0..9) saved and `opened` frames of episode 1 added."""
    rec = DatasetRecorder.create(root, FPS, features(), camera_encoder=H264, queue_full_policy="block", **kwargs)
    for i in range(10):
        rec.add_frame(frame_for(i, 0, i))
    rec.save_episode()
    for i in range(10, 10 + opened):
        rec.add_frame(frame_for(i, 0, i))
    return rec


def test_a_crashed_encoder_is_replaced_and_recording_goes_on(tmp_path):
    rec = one_saved_episode_and_one_open(tmp_path / "ds", 5)
    # The wrist camera's encoder dies mid-episode (an OOM kill, a codec crash).
    os.kill(rec.encoder_pids[CAMS[1]], signal.SIGKILL)
    with pytest.raises(EncoderRestarted, match=r"the open episode \(\d+ frames\) was discarded. encoder process for "
                                          r"observation.images.wrist ended unexpectedly \(exit code -9\); a new "
                                          r"encoder process took over"):
        for i in range(15, 400):
            rec.add_frame(frame_for(i, 0, i))
            time.sleep(0.005)
    assert rec.episode_frames == 0
    for i in range(10, 22):  # the episode again
        rec.add_frame(frame_for(i, 0, i))
    rec.save_episode()
    rec.finalize()
    check_identity(tmp_path / "ds", [10, 12])
    report = verify(tmp_path / "ds")
    assert report.healthy, report.to_dict()["findings"]


def test_a_slow_encoder_is_waited_for_however_long_its_backlog_takes(tmp_path, caplog):
    # SVT-AV1 preset 2 takes ~0.2 s a frame here: a backlog of 9 frames needs ~2 s, twice the timeout.
    # Liveness is progress: the encoder keeps working, so its episode is kept, every frame in its row.
    cam = "observation.images.top"
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, {cam: {"dtype": "video", "shape": [240, 320, 3]}},
                                 camera_encoder=EncoderConfig(vcodec="libsvtav1", preset=2), encoder_threads=1,
                                 encoder_queue_maxsize=8, queue_full_policy="block", encoder_timeout_s=1.0,
                                 adapt_on_overload=False)  # else it would start on a faster preset
    for i in range(12):
        rec.add_frame({cam: id_frame(i, 240, 320), "task": "t"})
    heard = []
    t0 = time.monotonic()
    report = rec.save_episode(progress=heard.append)
    waited = time.monotonic() - t0
    rec.finalize()
    assert waited > 1.0, "the backlog was too small to outlast the timeout; the test proves nothing"
    assert report.frames == 12 and report.cameras[cam].dropped == 0
    done = [p.frames_done for p in heard]
    assert heard and all(p.camera == cam and p.episode_index == 0 and p.frames_total == 12 for p in heard)
    assert done == sorted(done) and 0 < done[-1] <= 12
    ep = episodes(tmp_path / "ds")[0]
    assert [read_id(f) for f in frames_of_episode(tmp_path / "ds", ep, cam, FPS)] == list(range(12))


def test_a_hung_encoder_is_stopped_replaced_and_saved_episodes_survive(tmp_path):
    rec = one_saved_episode_and_one_open(tmp_path / "ds", 10, encoder_timeout_s=2)
    wrist = rec._encoders.workers[CAMS[1]]
    os.kill(wrist.pid, signal.SIGSTOP)  # alive but silent, like an encoder deadlocked in its flush
    t0 = time.monotonic()
    with pytest.raises(EncoderRestarted, match=r"episode 1 was not saved; .*encoder for observation.images.wrist did "
                                          r"no work for 2 s while it owed an answer.*a new encoder process took over"):
        rec.save_episode()
    assert time.monotonic() - t0 < 15
    assert wrist.exitcode == -signal.SIGKILL
    for i in range(10, 22):
        rec.add_frame(frame_for(i, 0, i))
    assert rec.save_episode().episode_index == 1
    rec.finalize()
    check_identity(tmp_path / "ds", [10, 12])
    report = verify(tmp_path / "ds")
    assert report.healthy, report.to_dict()["findings"]


def test_encoder_error_reaches_the_caller_with_its_traceback(tmp_path):
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, features(), camera_encoder=H264, queue_full_policy="block",
                                 video_files_size_in_mb=0.001)
    for i in range(10):
        rec.add_frame(frame_for(i, 0, i))
    rec.save_episode()
    # The next episode needs a new file for each camera; make the wrist camera's impossible.
    (tmp_path / "ds/videos/observation.images.wrist/chunk-000/file-001.mp4").mkdir(parents=True)
    for i in range(10, 20):
        rec.add_frame(frame_for(i, 0, i))
    with pytest.raises(WorkerError, match=r"episode 1 was not saved; the 1 episode\(s\) saved before it are intact. "
                                          r"encoder for observation.images.wrist failed: .*IsADirectoryError") as info:
        rec.save_episode()
    remote = str(info.value.__cause__.__cause__)  # the traceback from the encoder process
    assert "Traceback" in remote and "in finish_episode" in remote
    with pytest.raises(WorkerError, match="call finalize"):
        rec.add_frame(frame_for(20, 0, 20))
    rec.finalize()
    check_identity(tmp_path / "ds", [10])
    assert json.loads((tmp_path / "ds/meta/info.json").read_text())["total_episodes"] == 1


def test_add_frame_copies_the_image(tmp_path):
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, features(),
                                 camera_encoder=H264, queue_full_policy="block")
    buffer = frame_for(0, 0, 0.0)
    for i in range(6):
        for i_cam, cam in enumerate(CAMS):
            buffer[cam][:] = id_frame(i, H, W, tint=40 * i_cam)  # a driver reusing its buffer
        rec.add_frame(buffer)
    rec.save_episode()
    rec.finalize()
    check_identity(tmp_path / "ds", [6])


def test_frames_filled_into_frame_buffer_land_in_their_rows(tmp_path):
    """One camera fills the queue's shared memory in place, the other is copied; both paths, 2 episodes."""
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, features(), camera_encoder=H264, queue_full_policy="block")
    top, wrist = CAMS
    ident = 0
    for n in (7, 5):
        for _ in range(n):
            frame = frame_for(ident, 0, float(ident))
            buf = rec.frame_buffer(top)
            assert rec.frame_buffer(top) is buf  # the same one until it is added
            np.copyto(buf, frame[top])  # a driver decoding into the given array
            frame[top] = buf
            rec.add_frame(frame)
            assert rec._encoders.workers[top].queue._lent is None  # sent as it is: a copy would leave it lent
            ident += 1
        rec.save_episode()
    holding = rec.frame_buffer(top)  # held past finalize: must not stop it
    rec.finalize()
    check_identity(tmp_path / "ds", [7, 5])
    assert holding.shape == (H, W, 3)


def test_frame_buffer_of_a_full_queue_is_dropped_like_any_frame(tmp_path):
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, features(h=480, w=640), encoder_queue_maxsize=1,
                                 camera_encoder=EncoderConfig(vcodec="libsvtav1", preset=4))
    with pytest.raises(FrameError, match=r"frame_buffer\(\): 'observation.images.side' is not a camera of this "
                                         r"dataset; the cameras are \['observation.images.top', "):
        rec.frame_buffer("observation.images.side")
    for i in range(40):
        frame = {c: rec.frame_buffer(c) for c in CAMS}
        for c in CAMS:
            frame[c][:] = i
        rec.add_frame(frame | {"observation.state": np.zeros(6, np.float32), "action": np.zeros(6, np.float32),
                               "task": "t"})
    report = rec.save_episode()
    rec.finalize()
    assert all(c.dropped > 0 for c in report.cameras.values())  # preset 4 at 640x480 cannot take 40 at once
    assert [e["length"] for e in episodes(tmp_path / "ds")] == [40]


def test_encoder_processes_are_demoted_and_gone_after_finalize(tmp_path):
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, features(), queue_full_policy="block")
    pids = {cam: rec.encoder_pids[cam] for cam in CAMS}
    assert {Path(f"/proc/{pid}/comm").read_text().strip() for pid in pids.values()} == {"sr-top", "sr-wrist"}
    for i in range(20):
        rec.add_frame(frame_for(i, 0, i))
    for pid in pids.values():
        # SVT-AV1 asks for SCHED_FIFO 99 when it may (we run as root here); it must not get it,
        # and its threads run niced below the capture loop.
        assert realtime_threads(pid) == []
        assert 10 in {t.nice for t in thread_scheds(pid)}
    assert realtime_threads() == []
    rec.save_episode()
    rec.finalize()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids.values())


def test_a_script_that_forgets_finalize_still_leaves_readable_videos(tmp_path):
    # No `if __name__ == "__main__"` guard and no finalize(): the encoders must not re-run the
    # script, and at exit they close their MP4s so the saved episode's video is readable.
    script = tmp_path / "forgetful.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(Path(__file__).parents[1])!r})
from helpers.recording import frame_for, features, H264
from streamrec import DatasetRecorder
rec = DatasetRecorder.create({str(tmp_path / "ds")!r}, 30, features(), camera_encoder=H264, queue_full_policy="block")
for i in range(12):
    rec.add_frame(frame_for(i, 0, i))
rec.save_episode()
print("saved", flush=True)
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("saved") == 1, "the script ran more than once"
    for cam in CAMS:
        video = tmp_path / f"ds/videos/{cam}/chunk-000/file-000.mp4"
        assert [read_id(f) for f in decode(video).frames] == list(range(12))


def test_create_refuses_bad_settings_and_non_empty_roots(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DatasetError, match="is not empty"):
        DatasetRecorder.create(tmp_path / "full", FPS, features())
    with pytest.raises(ValueError, match=r"RecorderConfig.fps = 0: must be an integer > 0"):
        DatasetRecorder.create(tmp_path / "a", 0, features())
    with pytest.raises(ValueError, match=r"encoder_queue_maxsize = 0"):
        DatasetRecorder.create(tmp_path / "a", FPS, features(), encoder_queue_maxsize=0)
    with pytest.raises(ValueError, match=r"queue_full_policy = 'wait': must be one of \['drop', 'block'\]"):
        DatasetRecorder.create(tmp_path / "a", FPS, features(), queue_full_policy="wait")
    with pytest.raises(ValueError, match=r"features\['observation.images.top'\]\['shape'\] = \[95, 128, 3\]: "
                                         r"height and width must be even"):
        DatasetRecorder.create(tmp_path / "a", FPS, features(h=95))
    with pytest.raises(ValueError, match=r"batch_encoding_size = 2"):
        DatasetRecorder.create(tmp_path / "a", FPS, features(), batch_encoding_size=2)
    assert not (tmp_path / "a").exists()


def test_an_encoder_that_cannot_open_fails_create_and_leaves_nothing(tmp_path):
    # SVT-AV1 accepts this option name but refuses the value when it opens: the error must come
    # from create(), and the folder must be left as it was so that the same command can be rerun.
    refused = EncoderConfig(extra_options={"svtav1-params": "hierarchical-levels=1"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkerError, match=r"encoder for observation.images.top failed: .*Invalid argument"):
        DatasetRecorder.create(tmp_path / "empty", FPS, features(), camera_encoder=refused)
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(WorkerError):
        DatasetRecorder.create(tmp_path / "new", FPS, features(), camera_encoder=refused)
    assert not (tmp_path / "new").exists()
