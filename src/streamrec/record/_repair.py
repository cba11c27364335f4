"""`repair()`: finish what an interrupted recording left, keeping every saved episode.

A recording that was killed (power cut, OOM kill, SIGKILL, even during finalize) leaves
`.streamrec/` in the dataset. What it holds is enough to finish the job:

- `episodes/episode-N.{parquet,json}`: every episode whose `save_episode()` returned (rows and
  complete metadata); `episodes/pending-N.json` and `images/<camera>/episode-N/`: saved
  episodes of the PNG path whose video was not encoded yet;
- `spool/<camera>/episode-N.bin`: the packets of every episode in a camera's MP4 that was still
  open (the muxer may not have written them all, and the file has no index yet).

Repair rebuilds each open MP4 from its spools, encodes pending PNG episodes, removes what no
saved episode references (the open episode's frames, files begun after the last save, an
interrupted finalize's output), then writes the data, episodes and meta files exactly as
`finalize()` would, and removes `.streamrec/`. Running it again finds nothing to do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from .._errors import DatasetError, WorkerError
from ..dataset._durable import remove_work
from ..dataset._journal import EpisodeJournal, SavedEpisode
from ..dataset._layout import WORK_DIR, FileIndex, Layout, file_sizes
from ..dataset._lock import WorkLock
from ..dataset._mp4 import rebuild_video_file
from ..dataset._reader import DatasetReader
from ..dataset._writer import DatasetWriter, ExistingDataset
from ..encode._queue import QueueFullPolicy
from ..encode._worker import encoder_processes
from ._config import RecorderConfig
from ._reports import ProgressCallback
from ._resume import read_existing
from ._supervisor import EncoderSupervisor

log = logging.getLogger("streamrec")


@dataclass(slots=True)
class RepairReport:
    """What `repair()` found and did."""

    root: Path
    interrupted: bool
    """False: the dataset was not interrupted and nothing was changed."""
    episodes_kept: list[int] = field(default_factory=list)
    """Saved episodes of the interrupted session now in the dataset."""
    episodes_encoded: list[int] = field(default_factory=list)
    """Of those, episodes saved as PNGs whose videos repair encoded."""
    videos_rebuilt: list[Path] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """What was removed: files and the unsaved episode, one line each."""

    def to_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "interrupted": self.interrupted, "episodes_kept": self.episodes_kept,
                "episodes_encoded": self.episodes_encoded, "videos_rebuilt": [str(p) for p in self.videos_rebuilt],
                "removed": self.removed}


def repair(root: str | Path, progress: ProgressCallback | None = None) -> RepairReport:
    """Make an interrupted dataset whole again; see the module docstring. Idempotent.

    Raises:
        DatasetError: `root` is not a streamrec/LeRobot v3.0 dataset, or what it holds
            contradicts itself in a way repair cannot settle (the message says what).
    """
    root = Path(root)
    layout = Layout(root)
    if not layout.info.is_file():
        raise DatasetError(f"{root} has no meta/info.json: not a dataset (or its recording never started)")
    report = RepairReport(root, interrupted=layout.work.exists())
    if not report.interrupted:
        if layout.finished_work.exists():  # the dataset was complete; deleting its scratch space was cut short
            remove_work(layout)
            report.removed.append(f"{layout.rel(layout.finished_work)}/ (scratch space of a finished recording)")
        return report
    lock = WorkLock(layout, "streamrec repair")
    try:
        _wait_for_orphans(root)
        _repair(root, layout, report, progress)
        remove_work(layout)  # the lock file with it: its lock holds until released
    finally:
        lock.release()
    report.removed.append(f"{WORK_DIR}/ (the recording's scratch space)")
    return report


def _repair(root: Path, layout: Layout, report: RepairReport, progress: ProgressCallback | None) -> None:
    """The work itself, under the work-folder lock: videos, pending episodes, then the tables
    through a recorder set up as the interrupted one was when it stopped."""
    journal = EpisodeJournal(layout)
    metas = [journal.read_meta(e) for e in journal.episodes()]
    pending = journal.pending()
    session_files = frozenset(_session_files(layout, metas, pending))
    base = read_existing(root, repairing=True, leave_out=session_files)
    first = base.total_episodes
    indices = [m["episode_index"] for m in metas] + [p.index for p in pending]
    kept = sorted(indices)
    if kept != list(range(first, first + len(kept))):
        # Pending episodes always come after complete ones; a gap means a lost journal file.
        run = [e for i, e in enumerate(kept) if e == first + i]
        log.warning("repair: episodes %s follow a missing one; keeping %s", sorted(set(kept) - set(run)), run)
        for e in set(kept) - set(run):
            journal.remove(e)
            journal.remove_pending(e)
        metas = [m for m in metas if m["episode_index"] in run]
        pending = [p for p in pending if p.index in run]
        kept = run

    cameras = [f.name for f in base.features if f.is_video]
    unsaved = _unsaved_frames(layout, cameras)
    if unsaved:
        report.removed.append(f"the episode being recorded when the recording stopped ({unsaved} frame(s), "
                              "never saved)")
    open_at: dict[str, FileIndex] = {}
    for camera in cameras:
        open_at[camera] = _repair_camera(layout, camera, base, metas, report)

    for path in sorted(session_files):
        if path.exists():
            path.unlink()
            report.removed.append(f"{path.relative_to(root)} (written by the interrupted finalize; rewritten)")

    config = RecorderConfig(
        root=root, fps=base.info["fps"], features=base.features, robot_type=base.info.get("robot_type"),
        streaming_encoding=not pending, camera_encoder=base.camera_encoder,
        **({"depth_encoder": base.depth_encoder} if base.depth_encoder is not None else {}),
        queue_full_policy=QueueFullPolicy.BLOCK, **file_sizes(base.info))
    writer = DatasetWriter(config, {f.name: base.depth_encoder if f.depth else base.camera_encoder
                                    for f in base.features if f.is_video}, base)
    writer.take_over(metas, pending, open_at)
    if pending:
        encoders = EncoderSupervisor(config)
        encoders.start(writer.video_start)

        def fatal(error: WorkerError, episodes: list[int]) -> WorkerError:
            return WorkerError(f"repair: saved episode(s) {episodes} are kept as PNGs under {layout.work} but could "
                               f"not be encoded: {error}")

        try:
            encoders.encode_saved(pending, writer, progress, fatal)
        finally:
            encoders.stop()
        report.episodes_encoded = [p.index for p in pending]
    writer.assemble()
    report.episodes_kept = kept


def _unsaved_frames(layout: Layout, cameras: list[str]) -> int:
    """Frames of the episode the interrupted recorder never saved: its PNGs, or the notes its encoder
    processes left when their input ended (0 when no episode was open)."""
    frames = [len(list(layout.open_images(camera).glob("*.png"))) for camera in cameras]
    for camera in cameras:
        note = layout.unsaved_note(camera)
        with contextlib.suppress(OSError, ValueError, KeyError):
            frames.append(int(json.loads(note.read_text())["frames"]))
    return max(frames, default=0)


ORPHAN_GRACE_S = 30.0
"""How long repair lets encoder processes of a dead recorder finish closing their files."""


def _wait_for_orphans(root: Path) -> None:
    """Encoder processes outlive a killed recorder for a moment (they close their MP4 when their
    input ends); repair must not work on files they still write. One that does not end in
    ORPHAN_GRACE_S (a hung codec) is killed: its recorder is gone."""
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while pids := encoder_processes(root):
        if time.monotonic() > deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            log.warning("repair: killed encoder process(es) %s left by the interrupted recording", pids)
            deadline = time.monotonic() + ORPHAN_GRACE_S
        time.sleep(0.05)


def _session_files(layout: Layout, metas: list[dict[str, Any]], pending: list[SavedEpisode]) -> set[Path]:
    """Data and episodes files the interrupted session writes at finalize (so maybe half of them)."""
    out = set()
    for m in [*metas, *(p.meta for p in pending)]:
        out.add(layout.data(FileIndex(m["data/chunk_index"], m["data/file_index"])))
    for m in metas:
        out.add(layout.episodes(FileIndex(m["meta/episodes/chunk_index"], m["meta/episodes/file_index"])))
    return out


def _repair_camera(layout: Layout, camera: str, base: ExistingDataset, metas: list[dict[str, Any]],
                   report: RepairReport) -> FileIndex:
    """Rebuild the camera's MP4 that was open, delete files no saved episode uses; return the
    file a new encoder for pending episodes should start at."""
    by_file: dict[FileIndex, list[int]] = {}
    for m in metas:
        by_file.setdefault(FileIndex(m[f"videos/{camera}/chunk_index"], m[f"videos/{camera}/file_index"]),
                           []).append(m["episode_index"])
    info = base.info["features"][camera]
    height, width = info["shape"][0], info["shape"][1]
    for at, episodes in by_file.items():
        path = layout.video(camera, at)
        # Spools are deleted once their MP4 is closed: all of them there means it was still open.
        if all(layout.spool(camera, e).exists() for e in episodes):
            note = layout.codec_note(camera, at)  # absent only if written by an older streamrec
            made_by = base.depth_encoder if camera in _depth_cameras(base) else base.camera_encoder
            codec = note.read_text().strip() if note.exists() else made_by.stream_codec
            rebuild_video_file(layout, camera, at, episodes, codec, base.info["fps"], width, height)
            report.videos_rebuilt.append(path)
        elif not _readable(path):
            raise DatasetError(f"{path} holds saved episodes {episodes} but cannot be read, and their packets "
                               f"are no longer in {layout.spool_dir(camera)}; those episodes cannot be recovered")
    used = set(by_file) | base.video_files[camera]
    for path in DatasetReader(layout.root).files("videos", camera):
        if FileIndex.of(path) not in used:
            path.unlink()
            report.removed.append(f"{path.relative_to(layout.root)} (no saved episode in it)")
    last = max(used, key=lambda a: (a.chunk, a.file), default=None)
    return FileIndex() if last is None else last.next(base.info.get("chunks_size", 1000))


def _depth_cameras(base: ExistingDataset) -> set[str]:
    return {f.name for f in base.features if f.depth}


def _readable(path: Path) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except (av.FFmpegError, OSError):
        return False
