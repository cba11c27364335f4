"""`DatasetRecorder`: the capture-side API (add_frame, save_episode, clear_episode, finalize)."""

from __future__ import annotations

import contextlib
import copy
import errno
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._adapt import Adaptation
from ._config import DEFAULT_FEATURES, EncoderConfig, Feature, QueueFullPolicy, RecorderConfig, parse_features
from ._dataset import FileIndex, Layout, WorkLock, build_info, write_json_atomic
from ._encoder import EncoderWorker, EpisodeEnd, VideoEpisode, rebuild_video_file
from ._errors import DatasetError, EncoderRestarted, FrameError, StreamrecError, WorkerError
from ._fallback import EncoderFallback
from ._probe import choose_encoders
from ._resume import ExistingDataset, check_matches, read_existing
from ._spill import episode_images_dir
from ._stats import STAT_NAMES, Stats, aggregate, numeric_stats
from ._tables import (
    EpisodeJournal,
    conform,
    data_schema,
    episode_table,
    episodes_table,
    stats_to_json,
    write_data_files,
    write_parquet_atomic,
    write_tasks_file,
)

log = logging.getLogger("streamrec")


@dataclass(frozen=True, slots=True)
class CameraReport:
    """One camera's part of a saved episode."""

    camera: str
    frames: int
    """Video frames written (always equal to the episode's rows)."""
    dropped: int
    """Frames dropped because the encoder queue was full; each slot holds the previous frame."""
    max_queue_depth: int
    video_file: Path | None
    """The MP4 holding the episode; None (like the fields below) while the episode's video
    waits as PNGs for its batch to be encoded (`batch_encoding_size` > 1)."""
    from_timestamp: float | None
    to_timestamp: float | None
    flush_s: float | None
    """Encoding time after the episode ended: the frames the encoder still held when streaming,
    the whole episode from its PNGs otherwise."""
    append_s: float | None
    """Time taken to copy the episode's packets into the camera's MP4."""
    encoder: str | None = None
    """The FFmpeg encoder that made this episode's video (None while it waits as PNGs)."""
    fallbacks: tuple[EncoderFallback, ...] = ()
    """Encoders that failed for this camera since the previous episode, and what took over."""
    encoded_while_recording: int = 0
    """PNG path with batches of one: frames encoded, at idle priority, before the episode was
    saved; saving encoded the rest from the PNGs."""
    adaptations: tuple[Adaptation, ...] = ()
    """Faster settings this camera moved to since the previous episode (`adapt_on_overload`)."""


@dataclass(frozen=True, slots=True)
class EpisodeReport:
    """What `save_episode()` did."""

    episode_index: int
    frames: int
    duration_s: float
    tasks: tuple[str, ...]
    cameras: Mapping[str, CameraReport]
    save_s: float
    """Wall time spent inside save_episode()."""
    videos_pending: bool = False
    """The episode is saved (rows and PNGs on disk) but its videos wait for the batch encode."""
    encoded_episodes: tuple[int, ...] = ()
    """Episodes whose videos were encoded and completed during this call."""

    @property
    def dropped(self) -> int:
        """Dropped frames summed over cameras."""
        return sum(c.dropped for c in self.cameras.values())


@dataclass(frozen=True, slots=True)
class EncodeProgress:
    """Passed to a progress callback while saved PNG episodes are encoded."""

    camera: str
    episode_index: int
    frames_done: int
    frames_total: int


ProgressCallback = Callable[[EncodeProgress], None]


@dataclass(slots=True)
class _SavedEpisode:
    """A saved episode, complete once its videos are in the MP4s (at once when streaming;
    at its batch's encode otherwise). Journaled as JSON in between."""

    meta: dict[str, Any]
    """The episodes-table columns known at save time, in column order."""
    stats: dict[str, Stats]
    """Per-episode stats of every table column and camera, in column order."""
    dropped: dict[str, int]

    @property
    def index(self) -> int:
        return self.meta["episode_index"]

    @property
    def length(self) -> int:
        return self.meta["length"]

    def to_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "dropped": self.dropped,
                "stats": {name: {k: np.asarray(v).tolist() for k, v in s.items()} for name, s in self.stats.items()}}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> _SavedEpisode:
        return cls(obj["meta"], {name: {k: np.asarray(v) for k, v in s.items()} for name, s in obj["stats"].items()},
                   obj["dropped"])


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """Live view of one camera's queue during an episode (for status displays)."""

    camera: str
    queue_depth: int
    frames_in: int
    dropped: int


class DatasetRecorder:
    """Records episodes into a LeRobot v3.0 dataset, encoding video while frames arrive.

    Create with `DatasetRecorder.create(...)`. Not thread-safe: call it from one thread (the
    capture loop). Use as a context manager, or call `finalize()` when done.
    """

    def __init__(self, config: RecorderConfig) -> None:
        """Prefer `DatasetRecorder.create`; this takes an already checked config."""
        self.config = config
        self._layout = Layout(config.root)
        self._journal = EpisodeJournal(self._layout)
        self._table_features: tuple[Feature, ...] = config.table_features
        self._video_features: tuple[Feature, ...] = config.video_features
        self._allowed_keys = {f.name for f in config.features} | {"task"}
        self._workers: dict[str, EncoderWorker] = {}
        self._tasks: dict[str, int] = {}
        self._episode_index = 0
        self._total_frames = 0
        self._data_at = FileIndex()
        self._data_bytes = 0
        self._finalized = False
        self._failed: BaseException | None = None
        self._restarts: dict[str, int] = {}
        self._pending: list[_SavedEpisode] = []
        """Saved episodes whose videos wait as PNGs for the batch encode (streaming_encoding=False)."""
        self._episodes_at = FileIndex()
        """The meta/episodes file this session's episodes go to."""
        self._video_start = {f.name: FileIndex() for f in self._video_features}
        """The MP4 each camera's first encoder process starts at."""
        self._existing: ExistingDataset | None = None
        """What the dataset held before this session, when resumed."""
        self._lock: WorkLock | None = None
        self._encoders: dict[str, tuple[EncoderConfig, ...]] = {}
        """Per camera: its current encoder, then the ones it falls back to (see `_probe.choose_encoders`)."""
        self._file_encoders: dict[str, dict[FileIndex, EncoderConfig]] = {}
        """Per camera: the encoder that made each of its files."""
        self._reset_episode()

    @classmethod
    def create(
        cls,
        root: str | Path,
        fps: int,
        features: Mapping[str, Mapping[str, Any]],
        *,
        robot_type: str | None = None,
        streaming_encoding: bool = True,
        camera_encoder: EncoderConfig | None = None,
        encoder_threads: int | None = None,
        encoder_queue_maxsize: int = 30,
        queue_full_policy: str | QueueFullPolicy = QueueFullPolicy.DROP,
        adapt_on_overload: bool = True,
        video_files_size_in_mb: float = 200.0,
        data_files_size_in_mb: float = 100.0,
        chunks_size: int = 1000,
        batch_encoding_size: int = 1,
        encoder_timeout_s: float = 30.0,
    ) -> DatasetRecorder:
        """Start a new dataset in `root` (a new or empty folder) and open one encoder per camera.

        Args:
            root: Dataset folder; must not exist yet or be empty.
            fps: Frame rate of cameras and rows.
            features: name -> {"dtype", "shape", "names"}; cameras have dtype "video" and shape
                [height, width, 3].
            robot_type: Free text stored in info.json.
            streaming_encoding: Encode while recording (default). False: each frame is written as
                a PNG and the video is encoded at save_episode(), so capture never competes with
                the encoder, but saving waits for it (for weak CPUs).
            camera_encoder: Encoder settings for every camera; default `EncoderConfig()`.
            encoder_threads: Threads per camera encoder; None lets the codec decide.
            encoder_queue_maxsize: Frames each camera queue holds.
            queue_full_policy: "drop" (default: never wait, count and repeat the previous frame)
                or "block" (wait for the encoder; for offline conversion).
            adapt_on_overload: A camera whose queue stays over a third full moves to a faster
                setting before frames are dropped (fewer threads at once, a faster preset or
                codec from its next episode); see `CameraReport.adaptations`. False keeps the
                settings fixed. Streaming only (the PNG path does not encode while recording).
            video_files_size_in_mb, data_files_size_in_mb, chunks_size: File rollover limits.
            batch_encoding_size: With streaming_encoding=False, encode the PNGs of this many
                episodes at once (must be 1 when streaming).
            encoder_timeout_s: An encoder silent this long while finishing an episode is taken
                as hung: it is stopped and save_episode() raises WorkerError.

        Raises:
            ConfigError: a setting is invalid (the message names it).
            DatasetError: `root` holds files already.
            WorkerError: an encoder could not be opened with these settings.
        """
        policy = QueueFullPolicy.parse(queue_full_policy)
        config = RecorderConfig(
            root=Path(root), fps=fps, features=parse_features(features), robot_type=robot_type,
            streaming_encoding=streaming_encoding, camera_encoder=camera_encoder or EncoderConfig(),
            encoder_threads=encoder_threads, encoder_queue_maxsize=encoder_queue_maxsize,
            queue_full_policy=policy, adapt_on_overload=adapt_on_overload,
            video_files_size_in_mb=video_files_size_in_mb,
            data_files_size_in_mb=data_files_size_in_mb, chunks_size=chunks_size,
            batch_encoding_size=batch_encoding_size, encoder_timeout_s=encoder_timeout_s,
        )
        root = config.root
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise DatasetError(f"{root} is not empty; DatasetRecorder.create needs a new or empty folder")
        existed = root.exists()
        rec = cls(config)
        root.mkdir(parents=True, exist_ok=True)
        try:
            rec._lock = WorkLock(rec._layout, "DatasetRecorder.create")
            rec._choose_encoders()
            write_json_atomic(rec._layout.info, build_info(config, total_episodes=0, total_frames=0, total_tasks=0,
                                                           encoders=rec._first_encoders()))
            rec._start_workers()
            rec._warm_up_tables()
        except BaseException:
            rec._stop_workers()
            if rec._lock:
                rec._lock.release()
            # Leave the folder as we found it, so that the same command can simply be run again.
            for child in root.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            if not existed:
                root.rmdir()
            raise
        return rec

    @classmethod
    def resume(
        cls,
        root: str | Path,
        *,
        fps: int | None = None,
        features: Mapping[str, Mapping[str, Any]] | None = None,
        robot_type: str | None = None,
        camera_encoder: EncoderConfig | None = None,
        streaming_encoding: bool = True,
        encoder_threads: int | None = None,
        encoder_queue_maxsize: int = 30,
        queue_full_policy: str | QueueFullPolicy = QueueFullPolicy.DROP,
        adapt_on_overload: bool = True,
        batch_encoding_size: int = 1,
        encoder_timeout_s: float = 30.0,
    ) -> DatasetRecorder:
        """Reopen a finalized v3.0 dataset (written by streamrec or another v3.0 writer) to add
        episodes.

        New episodes continue the dataset's episode and frame indices, tasks and file
        numbering; they go to new data, episodes and video files, so no existing file is
        rewritten except info.json, tasks.parquet and stats.json at finalize(). `fps`,
        `features`, `robot_type` and `camera_encoder` are taken from the dataset when not
        given; when given they must match it. File size limits and chunks_size come from the
        dataset. The other arguments are as for `create`.

        Raises:
            DatasetError: the folder is not a finalized v3.0 dataset, was interrupted (run
                `streamrec repair`), or a setting given differs from the dataset's (the message
                names it).
        """
        root = Path(root)
        existing = read_existing(root)
        check_matches(existing, fps=fps, features=features, camera_encoder=camera_encoder, robot_type=robot_type)
        info = existing.info
        policy = QueueFullPolicy.parse(queue_full_policy)
        config = RecorderConfig(
            root=root, fps=info["fps"], features=existing.features, robot_type=info.get("robot_type"),
            streaming_encoding=streaming_encoding, camera_encoder=camera_encoder or existing.camera_encoder,
            encoder_threads=encoder_threads, encoder_queue_maxsize=encoder_queue_maxsize, queue_full_policy=policy,
            adapt_on_overload=adapt_on_overload, video_files_size_in_mb=info.get("video_files_size_in_mb", 200.0),
            data_files_size_in_mb=info.get("data_files_size_in_mb", 100.0), chunks_size=info.get("chunks_size", 1000),
            batch_encoding_size=batch_encoding_size, encoder_timeout_s=encoder_timeout_s)
        rec = cls(config)
        rec._existing = existing
        rec._tasks = dict(existing.tasks)
        rec._episode_index = existing.total_episodes
        rec._total_frames = existing.total_frames
        rec._data_at = existing.next_data
        rec._episodes_at = existing.next_episodes
        rec._video_start = dict(existing.next_video)
        rec._check_appendable()
        rec._lock = WorkLock(rec._layout, "DatasetRecorder.resume")
        try:
            rec._choose_encoders()
            rec._start_workers()
            rec._warm_up_tables()
        except BaseException:
            rec._stop_workers()
            rec._lock.release()
            shutil.rmtree(rec._layout.work, ignore_errors=True)
            raise
        log.info("resuming %s at episode %d (frame %d)", root, rec._episode_index, rec._total_frames)
        return rec

    # -- capture-side API -----------------------------------------------------------------------

    def add_frame(self, frame: Mapping[str, Any]) -> None:
        """Add one row to the open episode: every feature plus "task".

        Copies each camera image onto its encoder queue (never encodes here). With the default
        "drop" policy this never waits: a full queue drops that camera's frame (counted and
        logged) and its video slot repeats the previous frame, so rows and frames stay 1:1.

        Raises:
            FrameError: a key is missing or unknown, or a value has the wrong shape or dtype.
                Nothing was added; the open episode is unchanged.
            WorkerError: an encoder has failed.
        """
        self._check_usable()
        values = self._validate(frame)
        slot = self._frames
        for f in self._video_features:
            self._workers[f.name].offer(slot, values[f.name])
        for f in self._table_features:
            self._values[f.name].append(values[f.name])
        task = frame["task"]
        if task not in self._episode_tasks:
            self._episode_tasks.append(task)
        self._task_of_row.append(task)
        self._frames += 1

    def frame_buffer(self, camera: str) -> np.ndarray:
        """Shared memory to put the camera's next image in, so that `add_frame` need not copy it.

        Fill it in place (`cap.read(image=buf)` with OpenCV, `np.copyto(buf, image)`, a driver
        that decodes into a given array) and pass this very array to `add_frame`, which then
        only tells the encoder where it is. It saves the copy `add_frame` otherwise makes (three
        640x480 images: add_frame p50 0.24 instead of 0.78 ms, p99 0.40 instead of 1.21 ms here).
        The same array is returned until it has been added; do not write to it after `add_frame`
        (the encoder reads it). When the camera's queue is full it is a private array, and
        `add_frame` drops that frame as it would any other.

        Raises:
            FrameError: `camera` is not one of the dataset's video features.
        """
        self._check_usable()
        worker = self._workers.get(camera)
        if worker is None:
            raise FrameError(f"frame_buffer(): {camera!r} is not a camera of this dataset; the cameras are "
                             f"{sorted(self._workers)}")
        return worker.queue.lend()

    def save_episode(self, progress: ProgressCallback | None = None) -> EpisodeReport:
        """Complete the open episode.

        Streaming, its video is already encoded, so this waits only for the encoders' last few
        frames, then writes the episode's rows and metadata. Otherwise (`streaming_encoding=False`)
        the episode's PNGs are kept, and every `batch_encoding_size`-th call encodes the saved
        episodes' PNGs into the MP4s, cameras in parallel, calling `progress` as it goes.
        Either way the episode is saved, and survives a crash, once this returns.

        Raises:
            DatasetError: the open episode has no frames.
            WorkerError: an encoder failed; episodes saved earlier stay intact.
        """
        self._check_usable()
        if self._frames == 0:
            raise DatasetError("save_episode(): the open episode has no frames; call add_frame() first")
        t0 = time.perf_counter()
        n = self._frames
        e = self._episode_index
        queue_stats = {}
        replies = {}
        lost = f"save_episode(): episode {e} was not saved; the {e} episode(s) saved before it are intact. "
        try:
            for name, worker in self._workers.items():
                queue_stats[name] = worker.queue.stats()
                replies[name] = worker.end_episode(n, e)
                worker.queue.reset_stats()  # the capture thread is the only producer: safe here
        except WorkerError as error:  # an encoder died since the last add_frame
            self._reset_episode()
            raise self._recover_or_fail(error, lost) from error

        # While the encoders finish their last frames, write this episode's rows. They count only
        # once the metadata written after the videos lands (see EpisodeJournal).
        tasks = dict(self._tasks)
        for task in self._episode_tasks:
            tasks.setdefault(task, len(tasks))
        task_idx = np.array([tasks[t] for t in self._task_of_row], np.int64)
        columns = {f.name: (self._values[f.name] if f.dtype == "string" else np.stack(self._values[f.name]))
                   for f in self._table_features}
        rows = episode_table(self._table_features, columns, episode_index=e,
                             first_index=self._total_frames, task_indices=task_idx, fps=self.config.fps)
        stats: dict[str, Stats] = {}
        for f in self._table_features:
            if f.dtype != "string":
                stats[f.name] = numeric_stats(columns[f.name])
        for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
            stats[name] = numeric_stats(rows.column(name).to_numpy())
        try:
            self._journal.write_rows(e, rows)
        except OSError as error:
            for reply in replies.values():  # keep each encoder's requests and replies in step
                with contextlib.suppress(StreamrecError):
                    reply.result()
            self._journal.remove(e)
            self._reset_episode()
            raise self._stopped_by(error, lost) from error

        try:
            ends: dict[str, EpisodeEnd] = {name: reply.result() for name, reply in replies.items()}
        except BaseException as error:
            self._journal.remove(e)
            self._reset_episode()
            raise self._recover_or_fail(error, lost) from error

        if self._data_bytes and self._data_bytes + rows.nbytes > self.config.data_files_size_in_mb * 2**20:
            self._data_at = self._data_at.next(self.config.chunks_size)
            self._data_bytes = 0
        self._data_bytes += rows.nbytes
        saved = _SavedEpisode(
            meta={
                "episode_index": e,
                "tasks": list(self._episode_tasks),
                "length": n,
                "data/chunk_index": self._data_at.chunk,
                "data/file_index": self._data_at.file,
                "dataset_from_index": self._total_frames,
                "dataset_to_index": self._total_frames + n,
            },
            stats={**stats, **{name: end.stats for name, end in ends.items()}},
            dropped={name: s.frames_dropped for name, s in queue_stats.items()})
        episode_tasks = tuple(self._episode_tasks)

        if self.config.streaming_encoding:
            videos = {name: end.video for name, end in ends.items()}
            try:
                self._complete(saved, videos)
            except OSError as error:
                raise self._stopped_by(error, lost) from error
            encoded: tuple[int, ...] = (e,)
        else:
            # Saved from here on: rows and PNGs are on disk, and the journal says what they are.
            try:
                self._journal.write_pending(e, saved.to_json())
            except OSError as error:
                raise self._stopped_by(error, lost) from error
            self._pending.append(saved)
            videos, encoded = {}, ()
        self._tasks = tasks
        self._episode_index += 1
        self._total_frames += n
        self._reset_episode()
        if len(self._pending) >= self.config.batch_encoding_size:
            done = self._encode_pending(progress)
            videos, encoded = done[e], tuple(done)

        fps = self.config.fps
        cameras = {}
        for name in self._workers:
            v = videos.get(name)
            cameras[name] = CameraReport(
                camera=name, frames=n, dropped=queue_stats[name].frames_dropped,
                max_queue_depth=queue_stats[name].max_depth,
                video_file=None if v is None else self._layout.video(name, v.file),
                from_timestamp=None if v is None else v.from_frame / fps,
                to_timestamp=None if v is None else (v.from_frame + v.frames) / fps,
                flush_s=None if v is None else v.flush_s, append_s=None if v is None else v.append_s,
                encoder=None if v is None else v.encoders[0].encoder if v.encoders else self.encoders[name],
                fallbacks=() if v is None else v.fallbacks, adaptations=() if v is None else v.adaptations,
                encoded_while_recording=ends[name].encoded_while_recording)
        return EpisodeReport(episode_index=e, frames=n, duration_s=n / fps, tasks=episode_tasks, cameras=cameras,
                             save_s=time.perf_counter() - t0, videos_pending=not videos, encoded_episodes=encoded)

    def _complete(self, saved: _SavedEpisode, videos: Mapping[str, VideoEpisode]) -> None:
        """Write the episode's full metadata row now that its videos are in the MP4s."""
        fps = self.config.fps
        meta = dict(saved.meta)
        for name, v in videos.items():
            self._note_encoder(name, v)
            meta[f"videos/{name}/chunk_index"] = v.file.chunk
            meta[f"videos/{name}/file_index"] = v.file.file
            # From integer frame counts, so the value never drifts however long the file.
            meta[f"videos/{name}/from_timestamp"] = v.from_frame / fps
            meta[f"videos/{name}/to_timestamp"] = (v.from_frame + v.frames) / fps
            meta[f"videos/{name}/dropped_frames"] = saved.dropped[name]
        for name, s in saved.stats.items():
            for stat in STAT_NAMES:
                meta[f"stats/{name}/{stat}"] = np.asarray(s[stat]).tolist()
        meta["meta/episodes/chunk_index"] = self._episodes_at.chunk
        meta["meta/episodes/file_index"] = self._episodes_at.file
        self._journal.write_meta(saved.index, meta)
        self._journal.remove_pending(saved.index)
        for name in videos:
            shutil.rmtree(episode_images_dir(self._layout, name, saved.index), ignore_errors=True)

    def _encode_pending(self, progress: ProgressCallback | None) -> dict[int, dict[str, VideoEpisode]]:
        """Encode every saved episode still waiting as PNGs (all cameras at once), then write
        their metadata. Returns the videos by episode and camera.

        An encoder process that dies here is replaced like one that dies while recording (its
        open MP4 rebuilt from the spools of completed episodes), and the new one encodes the
        batch again: the PNGs stay on disk until the metadata is written.
        """
        jobs = [(p.index, p.length) for p in self._pending]
        lengths = dict(jobs)

        def on_progress(camera: str, episode_index: int, frames_done: int) -> None:
            if progress is not None:
                progress(EncodeProgress(camera, episode_index, frames_done, lengths[episode_index]))

        results: dict[str, list[VideoEpisode]] = {}
        todo = list(self._workers)
        while todo:
            replies = {name: self._workers[name].encode_spilled(jobs, on_progress) for name in todo}
            todo = []
            for name, reply in replies.items():
                try:
                    results[name] = reply.result()
                except WorkerError as error:
                    if self._workers[name].exitcode is None or self._restarts.get(name, 0) >= self._MAX_RESTARTS:
                        self._failed = error
                        episodes = [e for e, _ in jobs]
                        full = self._disk_full(error)
                        if full:
                            raise WorkerError(f"saved episode(s) {episodes} are kept as PNGs but could not be "
                                              f"encoded: {full}") from error
                        raise WorkerError(
                            f"encoding saved episode(s) {episodes} failed: {error}. They are kept as "
                            f"PNGs under {self._layout.work}; call finalize() to close the dataset with the "
                            "episodes encoded so far") from error
                    self._restart(name)
                    todo.append(name)
        done = {}
        for i, saved in enumerate(self._pending):
            videos = {name: results[name][i] for name in self._workers}
            try:
                self._complete(saved, videos)
            except OSError as error:
                raise self._stopped_by(error, f"episode {saved.index} is saved as PNGs but its metadata could "
                                              "not be written: ") from error
            done[saved.index] = videos
        self._pending.clear()
        return done

    def clear_episode(self) -> None:
        """Discard the open episode (to re-record it). Saved episodes are not touched."""
        self._check_usable()
        self._discard_on(list(self._workers.values()))
        self._reset_episode()

    def finalize(self, progress: ProgressCallback | None = None) -> None:
        """Encode saved episodes still waiting as PNGs, close the videos and write the dataset's
        parquet and meta files. Safe to call twice.

        An open episode with frames is discarded (with a warning): call save_episode() first
        to keep it.
        """
        if self._finalized:
            return
        self._finalized = True
        if self._frames:
            log.warning("finalize(): discarding the open episode (%d frames) that was never saved", self._frames)
        errors: list[BaseException] = []
        if self._pending and self._failed is None:
            try:
                self._encode_pending(progress)
            except StreamrecError as e:
                errors.append(e)
        errors += self._stop_workers()
        try:
            self._rebuild_orphaned_videos()
            self._write_meta()
        except OSError as e:
            if self._lock:
                self._lock.release()
            full = self._disk_full(e)
            if full:
                raise DatasetError(f"finalize(): could not write {e.filename or 'the tables'}: {full}") from e
            raise
        if self._pending:
            # Saved episodes that could not be encoded: their rows and PNGs stay in the work
            # folder rather than being thrown away.
            log.error("finalize(): episode(s) %s were saved but not encoded; their rows and PNGs are kept in %s",
                      [p.index for p in self._pending], self._layout.work)
        else:
            shutil.rmtree(self._layout.work, ignore_errors=True)
        if self._lock:
            self._lock.release()
        if errors:
            raise WorkerError(f"finalize(): {len(errors)} encoder(s) failed while closing; the dataset "
                              f"was written without their unsaved frames: {errors[0]}") from errors[0]

    def __enter__(self) -> DatasetRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.finalize()
        except StreamrecError:
            if exc is None:
                raise
            log.exception("finalize() failed while handling another error")

    # -- read-only views ------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.config.root

    @property
    def num_episodes(self) -> int:
        """Episodes saved so far."""
        return self._episode_index

    @property
    def episode_frames(self) -> int:
        """Rows in the open episode."""
        return self._frames

    @property
    def encoders(self) -> dict[str, str]:
        """Camera -> the FFmpeg encoder it is on (`vcodec=auto` resolved; after a fallback, its replacement)."""
        return {name: chain[0].encoder for name, chain in self._encoders.items()}

    def camera_status(self) -> list[CameraStatus]:
        """Queue depth and drop counters of each camera for the open episode."""
        out = []
        for name, w in self._workers.items():
            s = w.queue.stats()
            out.append(CameraStatus(name, w.queue.depth(), s.frames_in, s.frames_dropped))
        return out

    def __repr__(self) -> str:
        state = "finalized" if self._finalized else f"episode {self._episode_index}, {self._frames} frames open"
        return f"<DatasetRecorder {str(self.root)!r} {len(self._workers)} camera(s), {state}>"

    # -- internals ------------------------------------------------------------------------------

    def _discard_on(self, workers: list[EncoderWorker]) -> None:
        """Drop the open episode in these encoders (all asked first, so they work in parallel)."""
        replies = [w.discard_episode() for w in workers]
        for w in workers:
            w.queue.reset_stats()
        for reply in replies:
            reply.result()

    def _reset_episode(self) -> None:
        self._frames = 0
        self._values: dict[str, list] = {f.name: [] for f in self._table_features}
        self._episode_tasks: list[str] = []
        self._task_of_row: list[str] = []

    def _choose_encoders(self) -> None:
        """Resolve `auto` and each camera's fallbacks, once, at the cameras' real size."""
        by_size: dict[tuple[int, ...], tuple[EncoderConfig, ...]] = {}  # cameras of one size share the answer
        for f in self._video_features:
            if f.shape not in by_size:
                by_size[f.shape] = choose_encoders(self.config.camera_encoder, f.shape[1], f.shape[0],
                                                   self.config.fps, self.config.encoder_threads, camera=f.name)
            self._encoders[f.name] = by_size[f.shape]

    def _first_encoders(self) -> dict[str, EncoderConfig]:
        """Per camera: the encoder of its first file (what info.json describes), else its current one."""
        out = {}
        for name, chain in self._encoders.items():
            files = self._file_encoders.get(name)
            out[name] = files[min(files, key=lambda at: (at.chunk, at.file))] if files else chain[0]
        return out

    def _note_encoder(self, name: str, v: VideoEpisode) -> None:
        """Keep track of which encoder a camera is on and which made each file, after a saved episode."""
        if v.encoders:
            self._encoders[name] = v.encoders
        files = self._file_encoders.setdefault(name, {})
        new_file = bool(files) and v.file not in files
        where = f", in a new file {self._layout.video(name, v.file).relative_to(self.root)}" if new_file else ""
        files[v.file] = self._encoders[name][0]
        for fallback in v.fallbacks:
            log.warning("%s: %s; episode %d has every frame%s", name, fallback, v.episode_index, where)
        for adaptation in v.adaptations:
            log.warning("episode %d: %s", v.episode_index, adaptation)

    def _warm_up_tables(self) -> None:
        """Build one row as an episode's are built and write it to memory.

        pyarrow's first table and first parquet write in a process cost ~40 ms once (measured
        here: 7.9 and 32.7 ms, against 0.3 and 2-10 ms afterwards); this moves them out of the first
        save_episode().
        """
        columns = {f.name: ([""] if f.dtype == "string" else np.zeros((1, *f.shape), np.dtype(f.dtype)))
                   for f in self._table_features}
        rows = episode_table(self._table_features, columns, episode_index=0, first_index=0,
                             task_indices=np.zeros(1, np.int64), fps=self.config.fps)
        pq.write_table(rows, pa.BufferOutputStream(), row_group_size=1)

    def _start_workers(self) -> None:
        for f in self._video_features:
            self._workers[f.name] = EncoderWorker(f, self.config, self._layout, self._video_start[f.name],
                                                  self._encoders.get(f.name))
        for w in self._workers.values():
            w.start()
        for w in self._workers.values():
            w.wait_ready()

    def _stop_workers(self) -> list[BaseException]:
        """Close every encoder (each closes its MP4) and wait for the processes to end."""
        errors = []
        replies = [w.close() for w in self._workers.values()]
        for reply in replies:
            if reply is None:
                continue
            try:
                reply.result()
            except BaseException as e:  # noqa: BLE001 - reported by the caller
                errors.append(e)
        for w in self._workers.values():
            if not w.join(timeout_s=60):
                errors.append(WorkerError(f"encoder process for {w.camera} did not end; left running"))
        return errors

    def _check_usable(self) -> None:
        if self._finalized:
            raise DatasetError("this recorder is finalized; open a new one to record more")
        if self._failed is not None:
            raise WorkerError(f"recording stopped earlier ({self._failed}); call finalize() to close the "
                              "dataset with the episodes saved so far") from self._failed
        for w in self._workers.values():
            try:
                w.raise_if_failed()
            except WorkerError as e:
                lost = f"the open episode ({self._frames} frames) was discarded. " if self._frames else ""
                self._reset_episode()
                raise self._recover_or_fail(e, lost) from e

    def _validate(self, frame: Mapping[str, Any]) -> dict[str, Any]:
        """Check every key and value of a frame; return the values converted, or raise FrameError."""
        if not isinstance(frame, Mapping):
            raise FrameError(f"add_frame() takes a dict of feature -> value, got {type(frame).__name__}")
        unknown = sorted(set(frame) - self._allowed_keys)
        if unknown:
            raise FrameError(f"add_frame(): unknown key(s) {unknown}; the features are "
                             f"{sorted(self._allowed_keys - {'task'})} plus 'task'")
        task = frame.get("task")
        if not isinstance(task, str) or not task:
            raise FrameError(f"add_frame(): 'task' must be a non-empty string, got {task!r}")
        out: dict[str, Any] = {}
        for f in self.config.features:
            if f.name not in frame:
                raise FrameError(f"add_frame(): feature {f.name!r} is missing")
            out[f.name] = _check_value(f, frame[f.name])
        return out

    _MAX_RESTARTS = 3
    """Encoder processes started to replace dead ones, per camera, before the recorder gives up."""

    def _recover_or_fail(self, error: BaseException, lost: str) -> WorkerError:
        """Handle a failed encoder; returns the error for the caller to raise (EncoderRestarted
        when recording can go on).

        An encoder process that died or hung (and was stopped) is replaced: its open MP4 is
        rebuilt from its spools, the other cameras drop the open episode, and a new process
        carries on with the next file, so recording can go on. An encoder that is alive but
        reported an error (bad settings, a file it cannot write) would fail again: the recorder
        then refuses further frames, and finalize() keeps what was saved.
        """
        dead = [name for name, w in self._workers.items() if w.exitcode is not None]
        restartable = dead and all(self._restarts.get(name, 0) < self._MAX_RESTARTS for name in dead) and not any(
            w.exitcode is None and w.queue.consumer_failed for w in self._workers.values())
        if not restartable:
            self._failed = error
            full = self._disk_full(error)
            if full:
                return WorkerError(f"{lost}{full}")
            return WorkerError(f"{lost}{error}; call finalize() to close the dataset with the episodes saved so far")
        self._discard_on([w for name, w in self._workers.items() if name not in dead])
        for name in dead:
            self._restart(name)
        return EncoderRestarted(f"{lost}{error}; a new encoder process took over, recording can go on")

    def _stopped_by(self, error: OSError, lost: str) -> BaseException:
        """A file the recorder writes could not be written: no further episodes (a full disk is
        explained with figures); returns the error to raise."""
        self._failed = error
        full = self._disk_full(error)
        return DatasetError(f"{lost}{full}") if full else error

    def _disk_full(self, error: BaseException) -> str | None:
        """For an error caused by a full disk: what happened and what to do, with the figures."""
        texts = [str(error), str(error.__cause__ or "")]
        if isinstance(error, OSError) and error.errno == errno.ENOSPC and error.filename:
            texts.append(str(error.filename))
        if not any("No space left on device" in t or "[Errno 28]" in t for t in texts):
            return None
        free = shutil.disk_usage(self.root).free
        written = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        minutes = max(self._total_frames / self.config.fps / 60, 1e-9)
        rate = f"; this recording used {written / 2**20 / minutes:.0f} MB per minute so far" if self._total_frames \
            else ""
        return (f"the disk holding {self.root} is full ({free / 2**20:.1f} MB free){rate}. The "
                f"{self._episode_index} episode(s) saved so far are kept: free some space, then run "
                f"`streamrec repair {self.root}` (finalize() needs room for the tables too)")

    def _restart(self, name: str) -> None:
        """Replace a dead encoder process: rebuild its open MP4, start a new one on the next file."""
        start_at = self._rebuild_open_video(name)
        self._workers[name].join(0)
        chain = self._encoders.get(name, ())
        if len(chain) > 1:  # a driver that took its process down would likely do it again
            log.warning("%s: its encoder process died with %s; the new process uses %s", name,
                        chain[0].encoder, chain[1].encoder)
            self._encoders[name] = chain[1:]
        worker = EncoderWorker(self._feature(name), self.config, self._layout, start_at, self._encoders.get(name))
        self._workers[name] = worker
        worker.start()
        worker.wait_ready()
        self._restarts[name] = self._restarts.get(name, 0) + 1
        log.warning("encoder for %s was replaced by a new process (restart %d of %d)", name,
                    self._restarts[name], self._MAX_RESTARTS)

    def _feature(self, name: str) -> Feature:
        return next(f for f in self._video_features if f.name == name)

    def _rebuild_open_video(self, name: str) -> FileIndex:
        """Rebuild the MP4 a dead encoder had open from the spools of its saved episodes.

        Returns the file index a new encoder for this camera should start at.
        """
        metas = [self._journal.read_meta(e) for e in self._journal.episodes()]
        spools = self._layout.work / "spool" / name
        if not metas:
            at = self._video_start[name]
        else:
            at = FileIndex(metas[-1][f"videos/{name}/chunk_index"], metas[-1][f"videos/{name}/file_index"])
            episodes = [m["episode_index"] for m in metas
                        if FileIndex(m[f"videos/{name}/chunk_index"], m[f"videos/{name}/file_index"]) == at]
            # Spools exist only for a file that was never closed.
            if all((spools / f"episode-{e:06d}.bin").exists() for e in episodes):
                log.warning("encoder for %s died; rebuilding %s from the spools of episodes %s", name,
                            self._layout.video(name, at), episodes)
                feature = self._feature(name)
                encoder = self._file_encoders.get(name, {}).get(at) or self._encoders[name][0]
                rebuild_video_file(self.root, name, at, episodes, encoder.stream_codec,
                                   self.config.fps, feature.shape[1], feature.shape[0])
            at = at.next(self.config.chunks_size)
        shutil.rmtree(spools, ignore_errors=True)
        return at

    def _rebuild_orphaned_videos(self) -> None:
        """At finalize: an encoder process that died could not close its MP4; rebuild it."""
        for name, w in self._workers.items():
            if w.exitcode not in (0, None):
                self._rebuild_open_video(name)

    def _check_appendable(self) -> None:
        """Fail at resume, not at finalize, if new files could not share the existing files' schema."""
        existing = self._existing
        assert existing is not None
        ours = data_schema(self._table_features)
        for what, schema, names in (("data", existing.data_schema, ours.names),
                                    ("meta/episodes", existing.episodes_schema, self._episode_columns())):
            missing = [] if schema is None else [n for n in schema.names if n not in names]
            if missing:
                raise DatasetError(f"resume: the dataset's {what} files have column(s) {missing} that streamrec "
                                   "does not write, so episodes appended here could not share their schema")

    def _episode_columns(self) -> list[str]:
        """Every column streamrec writes to meta/episodes for this feature set."""
        columns = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                   "dataset_to_index"]
        for f in self._video_features:
            columns += [f"videos/{f.name}/{c}" for c in ("chunk_index", "file_index", "from_timestamp",
                                                          "to_timestamp", "dropped_frames")]
        numeric = [f.name for f in self.config.features if f.dtype != "string"] + list(DEFAULT_FEATURES)
        columns += [f"stats/{n}/{s}" for n in numeric for s in STAT_NAMES]
        return columns + ["meta/episodes/chunk_index", "meta/episodes/file_index"]

    def _write_meta(self) -> None:
        """Assemble journals into the v3.0 files; info.json last, so it only ever describes
        files that exist."""
        existing = self._existing
        episodes = self._journal.episodes()
        metas = [self._journal.read_meta(e) for e in episodes]
        if metas:
            data = existing.data_schema if existing and existing.data_schema else data_schema(self._table_features)
            write_data_files(self._layout, self._journal, metas, data)
            table = episodes_table(metas)
            if existing and existing.episodes_schema:
                table = conform(table, existing.episodes_schema, "meta/episodes")
            write_parquet_atomic(self._layout.episodes(self._episodes_at), table)
            names = [k[len("stats/"):-len("/min")] for k in metas[0] if k.startswith("stats/") and k.endswith("/min")]
            per_episode = [{name: {s: np.asarray(m[f"stats/{name}/{s}"]) for s in STAT_NAMES} for name in names}
                           for m in metas]
            if existing:
                per_episode = existing.episode_stats + per_episode
                if existing.stats_json:  # the old episodes' stats, already aggregated
                    per_episode.append(existing.stats_json)
            stats = {name: aggregate([e[name] for e in per_episode if name in e]) for name in names}
            write_json_atomic(self._layout.stats, stats_to_json(stats))
        write_tasks_file(self._layout.tasks, self._tasks)
        file_codecs = {name: {f"chunk-{at.chunk:03d}/file-{at.file:03d}.mp4": enc.stream_codec
                              for at, enc in files.items()} for name, files in self._file_encoders.items()}
        before = (existing.total_episodes, existing.total_frames) if existing else (0, 0)
        total_episodes = before[0] + len(metas)
        total_frames = before[1] + sum(m["length"] for m in metas)
        if existing:
            # Keep everything another writer put in info.json; only the totals change, and the
            # codec of any new file that is not the stated one (an encoder fallback).
            info = {**existing.info, "total_episodes": total_episodes, "total_frames": total_frames,
                    "total_tasks": len(self._tasks), "splits": {**existing.info.get("splits", {}),
                                                                 "train": f"0:{total_episodes}"}}
            info["features"] = copy.deepcopy(info["features"])
            for name, codecs in file_codecs.items():
                stated = info["features"][name].setdefault("info", {})
                if any(codec != stated.get("video.codec") for codec in codecs.values()):
                    stated["video.codec_by_file"] = {**stated.get("video.codec_by_file", {}), **codecs}
        else:
            info = build_info(self.config, total_episodes=total_episodes, total_frames=total_frames,
                              total_tasks=len(self._tasks), encoders=self._first_encoders(), file_codecs=file_codecs)
        write_json_atomic(self._layout.info, info)


def _check_value(f: Feature, value: Any) -> Any:
    if f.is_video:
        if not isinstance(value, np.ndarray):
            raise FrameError(f"add_frame(): {f.name!r} must be a numpy uint8 array of shape {f.shape}, "
                             f"got {type(value).__name__}")
        if value.dtype != np.uint8:
            raise FrameError(f"add_frame(): {f.name!r} must have dtype uint8, got {value.dtype}")
        if value.shape != f.shape:
            raise FrameError(f"add_frame(): {f.name!r} must have shape {f.shape} (height, width, channels), "
                             f"got {value.shape}")
        return value
    if f.dtype == "string":
        if not isinstance(value, str):
            raise FrameError(f"add_frame(): {f.name!r} must be a str, got {type(value).__name__}")
        return value
    arr = np.asarray(value)
    expected = np.dtype(f.dtype)
    if not np.can_cast(arr.dtype, expected, casting="same_kind"):
        raise FrameError(f"add_frame(): {f.name!r} must have dtype {expected} (or one that converts to it "
                         f"without changing kind), got {arr.dtype}")
    if arr.shape != f.shape and not (f.shape == (1,) and arr.shape == ()):
        raise FrameError(f"add_frame(): {f.name!r} must have shape {f.shape}, got {arr.shape}")
    return arr.astype(expected, copy=False).reshape(f.shape)
