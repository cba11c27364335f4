"""`DatasetRecorder`: the capture-side API — add_frame, frame_buffer, save_episode, clear_episode, finalize.

A row's images go to the camera's encoder process (`_supervisor`), its other values stay in memory
(`_rows`) until the episode is saved; saved episodes go to the dataset through its writer
(`dataset._writer`). This class decides the order of those steps and what survives a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import DatasetError, FrameError, StreamrecError, WorkerError
from ..dataset._durable import remove_work
from ..dataset._features import parse_features
from ..dataset._journal import SavedEpisode
from ..dataset._layout import Layout, file_sizes
from ..dataset._lock import WorkLock
from ..dataset._writer import DatasetWriter
from ..encode._messages import EpisodeEnd, VideoEpisode
from ._config import OPTION_NAMES, RecorderConfig, check_settings
from ._disk import disk_full
from ._reports import CameraReport, CameraStatus, EpisodeReport, ProgressCallback
from ._resume import check_matches, read_existing
from ._rows import EpisodeRows
from ._supervisor import EncoderSupervisor

log = logging.getLogger("streamrec")

_CREATE_SETTINGS = (*OPTION_NAMES, "robot_type", "video_files_size_in_mb", "data_files_size_in_mb", "chunks_size")
_RESUME_SETTINGS = (*OPTION_NAMES, "fps", "features", "robot_type")


def _warn_if_exact_depth(config: RecorderConfig) -> None:
    depth = [f.name for f in config.video_features if f.depth]
    if depth and not config.depth_encoder.quantized:
        log.warning("depth camera(s) %s are stored exactly (DepthEncoderConfig(vcodec='ffv1'), gray16le): "
                    "LeRobot 0.6.1 cannot load this dataset (it accepts only its 12-bit hevc depth); streamrec "
                    "verify and info read it", depth)


class DatasetRecorder:
    """Records episodes into a LeRobot v3.0 dataset, encoding video while frames arrive.

    Create with `DatasetRecorder.create(...)` or `.resume(...)`. Not thread-safe: call it from one
    thread (the capture loop). Use as a context manager, or call `finalize()` when done.
    """

    def __init__(self, config: RecorderConfig) -> None:
        """Prefer `DatasetRecorder.create`; this takes an already checked config."""
        self.config = config
        self._layout = Layout(config.root)
        self._rows = EpisodeRows(config.features, allow_nonfinite=config.allow_nonfinite)
        self._video_features = config.video_features
        self._encoders = EncoderSupervisor(config)
        self._writer: DatasetWriter | None = None
        self._finalized = False
        self._failed: BaseException | None = None
        self._pending: list[SavedEpisode] = []
        """Saved episodes whose videos wait as PNGs for the batch encode (streaming_encoding=False)."""
        self._lock: WorkLock | None = None
        self._episode_t0 = 0.0
        """When the open episode's first row came (its wall time goes to meta/episodes)."""

    @classmethod
    def create(cls, root: str | Path, fps: int, features: Mapping[str, Mapping[str, Any]],
               **settings: Any) -> DatasetRecorder:
        """Start a new dataset in `root` (a new or empty folder) and open one encoder per camera.

        Args:
            root: Dataset folder; must not exist yet or be empty.
            fps: Frame rate of cameras and rows.
            features: name -> {"dtype", "shape", "names"}; cameras have dtype "video" and shape
                [height, width, 3]; depth cameras shape [height, width, 1] and "info": {"is_depth_map": True}
                (their frames: uint16 millimetres, or float32 metres).
            **settings: Any field of `streamrec.record.RecorderConfig` but root, fps and features, each
                documented there with its default: `robot_type`, `streaming_encoding`, `camera_encoder`
                (an `EncoderConfig`), `depth_encoder` (a `DepthEncoderConfig`), `encoder_threads`,
                `encoder_queue_maxsize`, `queue_full_policy` ("drop" or "block"), `adapt_on_overload`,
                `batch_encoding_size`, `encoder_timeout_s`, `encoder_nice`, `video_files_size_in_mb`,
                `data_files_size_in_mb`, `chunks_size`.

        Raises:
            ConfigError: a setting is unknown or invalid (the message names it).
            DatasetError: `root` holds files already.
            WorkerError: an encoder could not be opened with these settings.
        """
        check_settings(settings, _CREATE_SETTINGS, "DatasetRecorder.create()")
        config = RecorderConfig(root=Path(root), fps=fps, features=parse_features(features), **settings)
        _warn_if_exact_depth(config)
        root = config.root
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise DatasetError(f"{root} is not empty; DatasetRecorder.create needs a new or empty folder")
        existed = root.exists()
        rec = cls(config)
        root.mkdir(parents=True, exist_ok=True)
        try:
            rec._lock = WorkLock(rec._layout, "DatasetRecorder.create")
            rec._encoders.choose()
            rec._writer = DatasetWriter(config, rec._encoders.current)
            rec._writer.write_new_info()
            rec._start()
        except BaseException:
            rec._encoders.stop()
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
    def resume(cls, root: str | Path, **settings: Any) -> DatasetRecorder:
        """Reopen a finalized v3.0 dataset (written by streamrec or another v3.0 writer) to add episodes.

        New episodes continue the dataset's episode and frame indices, tasks and file numbering;
        they go to new data, episodes and video files, so no existing file is rewritten except
        info.json, tasks.parquet and stats.json at finalize(). `fps`, `features`, `robot_type` and
        `camera_encoder` and `depth_encoder` are taken from the dataset when not given; when given they
        must match it. A depth dataset written by LeRobot 0.6.1 is resumed in its 12-bit format.
        File size limits and chunks_size come from the dataset. The other settings are as for
        `create`.

        Raises:
            ConfigError: a setting is unknown or invalid.
            DatasetError: the folder is not a finalized v3.0 dataset, was interrupted (run
                `streamrec repair`), or a setting given differs from the dataset's (the message
                names it).
        """
        check_settings(settings, _RESUME_SETTINGS, "DatasetRecorder.resume()")
        root = Path(root)
        existing = read_existing(root)
        check_matches(existing, fps=settings.pop("fps", None), features=settings.pop("features", None),
                      camera_encoder=settings.get("camera_encoder"), robot_type=settings.pop("robot_type", None),
                      depth_encoder=settings.get("depth_encoder"))
        info = existing.info
        settings.setdefault("camera_encoder", existing.camera_encoder)
        if existing.depth_encoder is not None:
            settings.setdefault("depth_encoder", existing.depth_encoder)
        config = RecorderConfig(
            root=root, fps=info["fps"], features=existing.features, robot_type=info.get("robot_type"),
            **file_sizes(info), **settings)
        _warn_if_exact_depth(config)
        rec = cls(config)
        rec._lock = WorkLock(rec._layout, "DatasetRecorder.resume")
        try:
            rec._encoders.choose()
            rec._writer = DatasetWriter(config, rec._encoders.current, existing)
            rec._writer.check_appendable()
            rec._start()
        except BaseException:
            rec._encoders.stop()
            rec._lock.release()
            shutil.rmtree(rec._layout.work, ignore_errors=True)
            raise
        log.info("resuming %s at episode %d (frame %d)", root, rec._writer.episode_index, rec._writer.total_frames)
        return rec

    def _start(self) -> None:
        self._encoders.start(self._writer.video_start)
        self._rows.warm_up(self.config.fps)

    # -- capture-side API -------------------------------------------------------------------------

    def add_frame(self, frame: Mapping[str, Any]) -> None:
        """Add one row to the open episode: every feature plus "task".

        Copies each camera image onto its encoder queue (never encodes here); an image filled into
        `frame_buffer()` is not copied. With the default "drop" policy this never waits: a full
        queue drops that camera's frame (counted and logged) and its video slot repeats the previous
        frame, so rows and frames stay 1:1.

        Raises:
            FrameError: a key is missing or unknown, or a value has the wrong shape or dtype.
                Nothing was added; the open episode is unchanged.
            WorkerError: an encoder has failed.
        """
        self._check_usable()
        values = self._rows.check(frame)
        slot = self._rows.frames
        if slot == 0:
            self._episode_t0 = time.monotonic()
        for f in self._video_features:
            self._encoders.offer(f.name, slot, values[f.name])
        self._rows.append(values, frame["task"])

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
        worker = self._encoders.workers.get(camera)
        if worker is None:
            raise FrameError(f"frame_buffer(): {camera!r} is not a camera of this dataset; the cameras are "
                             f"{sorted(self._encoders.workers)}")
        return worker.queue.lend()

    def save_episode(self, progress: ProgressCallback | None = None) -> EpisodeReport:
        """Complete the open episode.

        Streaming, its video is already encoded, so this waits only for the frames the encoders
        still hold, then writes the episode's rows and metadata; an encoder that fell behind is
        waited for as long as it keeps working, and `progress` hears its frames done (a backlog
        that will take more than a few seconds is also logged at once, with an estimate).
        Otherwise (`streaming_encoding=False`) the episode's PNGs are kept, and every
        `batch_encoding_size`-th call encodes the saved episodes' PNGs into the MP4s, cameras in
        parallel, calling `progress` as it goes. Either way the episode is saved, and survives a
        crash, once this returns.

        Raises:
            DatasetError: the open episode has no frames.
            WorkerError: an encoder failed; episodes saved earlier stay intact.
        """
        self._check_usable()
        rows, writer = self._rows, self._writer
        if rows.frames == 0:
            raise DatasetError("save_episode(): the open episode has no frames; call add_frame() first")
        t0 = time.perf_counter()
        wall_time_s = time.monotonic() - self._episode_t0
        n = rows.frames
        e = writer.episode_index
        lost = f"save_episode(): episode {e} was not saved; the {e} episode(s) saved before it are intact. "
        try:
            queue_stats, replies = self._encoders.end_episode(n, e, progress)
        except WorkerError as error:  # an encoder died since the last add_frame
            rows.clear()
            raise self._recover(error, lost) from error

        # While the encoders finish their last frames, write this episode's rows. They count only
        # once the metadata written after the videos lands (see dataset._journal).
        tasks = writer.task_indices(rows.tasks)
        table, stats = rows.table(episode_index=e, first_index=writer.total_frames, tasks=tasks, fps=self.config.fps)
        try:
            writer.journal.write_rows(e, table)
        except OSError as error:
            for reply in replies.values():  # keep each encoder's requests and replies in step
                with contextlib.suppress(StreamrecError):
                    reply.result()
            writer.journal.remove(e)
            rows.clear()
            raise self._stopped_by(error, lost) from error

        try:
            ends: dict[str, EpisodeEnd] = {name: reply.result() for name, reply in replies.items()}
        except BaseException as error:
            writer.journal.remove(e)
            rows.clear()
            raise self._recover(error, lost) from error

        saved = writer.saved_episode(table, rows.tasks, {**stats, **{name: end.stats for name, end in ends.items()}},
                                     {name: s.dropped_slots for name, s in queue_stats.items()}, wall_time_s)
        episode_tasks = tuple(rows.tasks)
        nonfinite = dict(rows.nonfinite)
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
                writer.journal.write_pending(e, saved.to_json())
            except OSError as error:
                raise self._stopped_by(error, lost) from error
            self._pending.append(saved)
            videos, encoded = {}, ()
        writer.commit(saved, tasks)
        rows.clear()
        if len(self._pending) >= self.config.batch_encoding_size:
            done = self._encode_pending(progress)
            videos, encoded = done[e], tuple(done)
        report = self._report(saved, ends, queue_stats, videos, episode_tasks, encoded, time.perf_counter() - t0)
        return dataclasses.replace(report, nonfinite=nonfinite) if nonfinite else report

    def _report(self, saved: SavedEpisode, ends: Mapping[str, EpisodeEnd], queue_stats: Mapping[str, Any],
                videos: Mapping[str, VideoEpisode], tasks: tuple[str, ...], encoded: tuple[int, ...],
                save_s: float) -> EpisodeReport:
        fps, n = self.config.fps, saved.length
        cameras = {}
        for name in self._encoders.workers:
            v = videos.get(name)
            cameras[name] = CameraReport(
                camera=name, frames=n, dropped=queue_stats[name].frames_dropped,
                dropped_slots=queue_stats[name].dropped_slots,
                max_queue_depth=queue_stats[name].max_depth,
                video_file=None if v is None else self._layout.video(name, v.file),
                from_timestamp=None if v is None else v.from_frame / fps,
                to_timestamp=None if v is None else (v.from_frame + v.frames) / fps,
                flush_s=None if v is None else v.flush_s, append_s=None if v is None else v.append_s,
                encoder=None if v is None else v.encoders[0].encoder if v.encoders else self.encoders[name],
                fallbacks=() if v is None else v.fallbacks, adaptations=() if v is None else v.adaptations,
                encoded_while_recording=None if self.config.streaming_encoding
                else ends[name].encoded_while_recording)
        return EpisodeReport(episode_index=saved.index, frames=n, duration_s=n / fps, tasks=tasks, cameras=cameras,
                             save_s=save_s, videos_pending=not videos, encoded_episodes=encoded)

    def _complete(self, saved: SavedEpisode, videos: Mapping[str, VideoEpisode]) -> None:
        for video in videos.values():
            self._encoders.note(video, self._writer)
        self._writer.complete(saved, videos)

    def _encode_pending(self, progress: ProgressCallback | None) -> dict[int, dict[str, VideoEpisode]]:
        """Encode every saved episode still waiting as PNGs (all cameras at once), then write
        their metadata. Returns the videos by episode and camera."""
        def fatal(error: WorkerError, episodes: list[int]) -> WorkerError:
            self._failed = error
            full = self._disk_full(error)
            if full:
                return WorkerError(f"saved episode(s) {episodes} are kept as PNGs but could not be encoded: {full}")
            return WorkerError(f"encoding saved episode(s) {episodes} failed: {error}. They are kept as PNGs under "
                               f"{self._layout.work}; call finalize() to close the dataset with the episodes "
                               "encoded so far")

        try:
            done = self._encoders.encode_saved(self._pending, self._writer, progress, fatal)
        except OSError as error:
            raise self._stopped_by(error, "saved PNG episode(s) were encoded but their metadata could not be "
                                          "written: ") from error
        self._pending.clear()
        return done

    def clear_episode(self) -> None:
        """Discard the open episode (to re-record it). Saved episodes are not touched."""
        self._check_usable()
        self._encoders.discard()
        self._rows.clear()

    def finalize(self, progress: ProgressCallback | None = None) -> None:
        """Encode saved episodes still waiting as PNGs, close the videos and write the dataset's
        parquet and meta files. Safe to call twice.

        An open episode with frames is discarded (with a warning): call save_episode() first
        to keep it.
        """
        if self._finalized:
            return
        self._finalized = True
        if self._rows.frames:
            log.warning("finalize(): discarding the open episode (%d frames) that was never saved", self._rows.frames)
        errors: list[BaseException] = []
        if self._pending and self._failed is None:
            try:
                self._encode_pending(progress)
            except StreamrecError as e:
                errors.append(e)
        errors += self._encoders.stop()
        try:
            self._encoders.rebuild_orphaned_videos(self._writer)
            self._writer.assemble()
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
            remove_work(self._layout)
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

    # -- read-only views --------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.config.root

    @property
    def num_episodes(self) -> int:
        """Episodes saved so far (in the whole dataset, when resumed)."""
        return self._writer.episode_index

    @property
    def episode_frames(self) -> int:
        """Rows in the open episode."""
        return self._rows.frames

    @property
    def episode_nonfinite(self) -> dict[str, int]:
        """NaN and infinite values recorded in the open episode, per feature (with `allow_nonfinite`)."""
        return dict(self._rows.nonfinite)

    @property
    def encoders(self) -> dict[str, str]:
        """Camera -> the FFmpeg encoder it is on (`vcodec=auto` resolved; after a fallback, its replacement)."""
        return {name: enc.encoder for name, enc in self._encoders.current.items()}

    @property
    def encoder_pids(self) -> dict[str, int]:
        """Camera -> the process encoding it (`sr-<camera>` in `ps`), e.g. to measure its CPU time."""
        return {name: w.pid for name, w in self._encoders.workers.items() if w.pid is not None}

    def camera_status(self) -> list[CameraStatus]:
        """Queue depth and drop counters of each camera for the open episode."""
        return self._encoders.status()

    def __repr__(self) -> str:
        state = "finalized" if self._finalized else \
            f"episode {self._writer.episode_index}, {self._rows.frames} frames open"
        return f"<DatasetRecorder {str(self.root)!r} {len(self._video_features)} camera(s), {state}>"

    # -- failures ---------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._finalized:
            raise DatasetError("this recorder is finalized; open a new one to record more")
        if self._failed is not None:
            raise WorkerError(f"recording stopped earlier ({self._failed}); call finalize() to close the "
                              "dataset with the episodes saved so far") from self._failed
        try:
            self._encoders.raise_if_failed()
        except WorkerError as e:
            frames = self._rows.frames
            lost = f"the open episode ({frames} frames) was discarded. " if frames else ""
            self._rows.clear()
            raise self._recover(e, lost) from e

    def _recover(self, error: BaseException, lost: str) -> WorkerError:
        """An encoder failed: replaced (EncoderRestarted, recording goes on) or the recording stops."""
        def fatal(error: BaseException, lost: str) -> WorkerError:
            self._failed = error
            full = self._disk_full(error)
            if full:
                return WorkerError(f"{lost}{full}")
            return WorkerError(f"{lost}{error}; call finalize() to close the dataset with the episodes saved so far")

        return self._encoders.recover(error, lost, self._writer, fatal)

    def _stopped_by(self, error: OSError, lost: str) -> BaseException:
        """A file the recorder writes could not be written: no further episodes (a full disk is
        explained with figures); returns the error to raise."""
        self._failed = error
        full = self._disk_full(error)
        return DatasetError(f"{lost}{full}") if full else error

    def _disk_full(self, error: BaseException) -> str | None:
        writer = self._writer
        return disk_full(error, self.root, episodes=writer.episode_index, frames=writer.total_frames,
                         fps=self.config.fps)

