"""Crash safety: a recording SIGKILLed at random moments, then `repair`, keeps exactly the
episodes whose save_episode() had returned, every frame in its row. Real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from helpers.crash import LENGTHS, kill_during
from helpers.frames import REPO, episodes
from helpers.recording import FPS, H264, check_identity, features, frame_for, record
from streamrec import DatasetError, DatasetRecorder, StreamrecError, repair, verify


@pytest.mark.parametrize("seed", range(24))
def test_a_killed_recording_is_repaired_with_every_saved_episode(tmp_path, seed):
    root = tmp_path / "ds"
    streaming = seed % 3 != 2
    batch = 1 if streaming else 2
    saved = kill_during(root, seed, streaming, batch, everything=seed // 4 % 2 == 1)
    if not root.exists() or not (root / "meta/info.json").exists():
        pytest.skip("killed before the dataset was created")  # seeds are chosen so this does not happen
    report = repair(root)
    kept = [e["episode_index"] for e in episodes(root)]
    # The episode whose save was in progress may have become durable before the kill; nothing else.
    assert kept[:len(saved)] == saved and len(kept) - len(saved) in (0, 1), (saved, kept, report)
    check_identity(root, LENGTHS[:len(kept)])
    assert not (root / ".streamrec").exists()
    result = verify(root)
    assert result.healthy, result.findings
    again = repair(root)  # idempotent
    assert not again.interrupted


def test_repair_of_an_interrupted_png_batch_encodes_the_saved_pngs(tmp_path):
    # Two episodes saved as PNGs, not encoded yet (batch of 3), then the process dies.
    root = tmp_path / "ds"
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r})\n"
            "from helpers.recording import features, frame_for, H264\n"
            "from streamrec import DatasetRecorder\n"
            f"rec = DatasetRecorder.create({str(root)!r}, 30, features(), camera_encoder=H264, "
            "queue_full_policy='block', streaming_encoding=False, batch_encoding_size=3)\n"
            "for i in range(30):\n"
            "    rec.add_frame(frame_for(i, 0, float(i)))\n"
            "    if i in (11, 20): rec.save_episode()\n"
            "import os; os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", code], check=False)
    assert len(list((root / ".streamrec/episodes").glob("pending-*.json"))) == 2
    report = repair(root)
    assert report.episodes_kept == [0, 1] and report.episodes_encoded == [0, 1]
    assert "the episode being recorded when the recording stopped (9 frame(s), never saved)" in report.removed
    check_identity(root, [12, 9])
    assert verify(root).healthy


def test_repair_after_a_streaming_kill_names_the_unsaved_episode(tmp_path):
    root = tmp_path / "ds"
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r})\n"
            "from helpers.recording import features, frame_for, H264\n"
            "from streamrec import DatasetRecorder\n"
            f"rec = DatasetRecorder.create({str(root)!r}, 30, features(), camera_encoder=H264, "
            "queue_full_policy='block')\n"
            "for i in range(20):\n"
            "    rec.add_frame(frame_for(i, 0, float(i)))\n"
            "    if i == 11: rec.save_episode()\n"
            "import os; os.kill(os.getpid(), 9)\n")
    killed = subprocess.run([sys.executable, "-c", code], check=False, timeout=300)
    assert killed.returncode == -9, killed  # killed where planned, not crashed before
    report = repair(root)
    assert report.episodes_kept == [0]
    assert "the episode being recorded when the recording stopped (8 frame(s), never saved)" in report.removed
    cli = subprocess.run([sys.executable, "-m", "streamrec.cli", "repair", str(root)], capture_output=True, text=True)
    assert "not interrupted" in " ".join(cli.stdout.split())  # already repaired
    check_identity(root, [12])


def test_repair_cli_says_what_it_did_and_is_idempotent(tmp_path):
    root = tmp_path / "ds"
    saved = kill_during(root, 1, True, 1)  # seed 1: killed while saving an episode
    cli = [sys.executable, "-m", "streamrec.cli", "repair", str(root)]
    first = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"Repaired {root}: kept" in first.stdout and "removed .streamrec/" in first.stdout
    assert len(episodes(root)) >= len(saved)
    second = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and json.loads(second.stdout)["interrupted"] is False
    missing = subprocess.run([sys.executable, "-m", "streamrec.cli", "repair", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "not a dataset" in missing.stderr


def test_resume_after_repair_continues_the_dataset(tmp_path):
    root = tmp_path / "ds"
    record(root, [10], encoder=H264)
    rec = DatasetRecorder.resume(root, queue_full_policy="block")
    for i in range(10, 18):
        rec.add_frame(frame_for(i, 0, float(i)))
    rec.save_episode()
    for i in range(18, 22):
        rec.add_frame(frame_for(i, 0, float(i)))
    # Simulate the kill: stop the encoders as a dying process would leave them, without finalize.
    for w in rec._encoders.workers.values():
        os.kill(w.pid, signal.SIGKILL)
        w.join(10)
    rec._finalized = True
    rec._lock.release()  # as the kernel does when the recording process dies
    report = repair(root)
    assert report.episodes_kept == [1]
    check_identity(root, [10, 8])
    rec = DatasetRecorder.resume(root, queue_full_policy="block")
    for i in range(18, 25):
        rec.add_frame(frame_for(i, 0, float(i)))
    rec.save_episode()
    rec.finalize()
    check_identity(root, [10, 8, 7])
    assert verify(root).healthy
    assert [e["meta/episodes/file_index"] for e in episodes(root)] == [0, 1, 2]


def test_repair_and_resume_refuse_a_dataset_that_is_still_recording(tmp_path):
    root = tmp_path / "ds"
    rec = DatasetRecorder.create(root, FPS, features(), camera_encoder=H264, queue_full_policy="block")
    for i in range(5):
        rec.add_frame(frame_for(i, 0, float(i)))
    rec.save_episode()
    with pytest.raises(DatasetError, match=r"is in use by a running recording .*; streamrec repair must wait"):
        repair(root)
    with pytest.raises(DatasetError, match=r"is in use by a running recording .*; DatasetRecorder.resume must"):
        DatasetRecorder.resume(root)
    rec.finalize()
    check_identity(root, [5])


@pytest.fixture
def small_disk(tmp_path, request):
    """A small tmpfs (needs root / CAP_SYS_ADMIN, as here and on most robot computers); its size
    is the test's `size` parameter."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={request.node.callspec.params['size']}", "tmpfs",
                              str(mnt)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (not root?): {mounted.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("streaming, size", [(True, "700k"), (False, "6m")])  # PNGs take more room
def test_a_full_disk_stops_recording_with_a_clear_error_and_keeps_saved_episodes(small_disk, streaming, size):
    root = small_disk / "ds"
    rec = DatasetRecorder.create(root, FPS, features(), camera_encoder=H264, queue_full_policy="block",
                                 streaming_encoding=streaming)
    saved, ident = 0, 0
    with pytest.raises(StreamrecError) as stopped:
        for _ in range(500):
            for _ in range(30):
                rec.add_frame(frame_for(ident, 0, float(ident)))
                ident += 1
            rec.save_episode()
            saved += 1
    message = str(stopped.value)
    assert f"the disk holding {root} is full (" in message and " MB free)" in message, message
    assert f"run `streamrec repair {root}`" in message
    assert saved > 0, "the disk filled before the first episode: make it bigger"
    with pytest.raises(StreamrecError):
        rec.finalize()  # no room for the tables either
    assert (root / ".streamrec").exists()
    subprocess.run(["mount", "-o", "remount,size=50m", str(small_disk)], check=True)
    report = repair(root)
    # PNG path: the episode whose save failed may be durable already (its PNGs and rows were
    # on disk; only its video or metadata found no room), and the error said so.
    kept = len(report.episodes_kept)
    assert report.episodes_kept == list(range(kept))
    assert kept == saved or not streaming and kept == saved + 1 and "as PNGs" in message
    check_identity(root, [30] * kept)
    assert verify(root).healthy


def test_a_kill_while_the_scratch_space_is_deleted_loses_nothing(tmp_path):
    # finalize() has written every table; a crash while its scratch space is deleted must not look like
    # an interrupted recording with half a journal (repair would rebuild the tables from what is left).
    root = tmp_path / "ds"
    record(root, [6, 7, 8], encoder=H264)
    (root / ".streamrec.finished" / "episodes").mkdir(parents=True)
    (root / ".streamrec.finished" / "episodes" / "episode-000002.json").write_text("{}")
    report = verify(root)
    assert report.healthy and [f.code for f in report.warnings] == ["work_leftover"]
    fixed = repair(root)
    assert not fixed.interrupted and fixed.removed == [".streamrec.finished/ (scratch space of a finished recording)"]
    assert not (root / ".streamrec.finished").exists()
    check_identity(root, [6, 7, 8])
    assert verify(root).findings == ()
