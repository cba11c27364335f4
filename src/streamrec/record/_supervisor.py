"""`EncoderSupervisor`: the recorder's encoder processes, one per camera — chosen, started, fed,
replaced when one dies, stopped.

Whether one process is alive is decided by its handle (`encode._worker.EncoderWorker`: silent for
`encoder_timeout_s` while it owes an answer means hung, and it is killed). What happens then is
decided here. A process that died or was killed is replaced: its open MP4 is rebuilt from its
spools, the other cameras drop the open episode, and a new process carries on with the next file,
so recording can go on (`EncoderRestarted`). An encoder that is alive but reported an error (bad
settings, a file it cannot write) would fail again: the recorder then refuses further frames, and
finalize() keeps what was saved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np

from .._errors import EncoderRestarted, WorkerError
from .._platform import available_cpus
from ..dataset._features import Feature
from ..dataset._journal import SavedEpisode
from ..dataset._layout import FileIndex
from ..dataset._writer import DatasetWriter
from ..encode._adapt import Adaptation, describe_change
from ..encode._budget import camera_shares, plan_start
from ..encode._config import EncoderConfig
from ..encode._depth import DepthEncoderConfig
from ..encode._messages import EncoderSpec, VideoEpisode
from ..encode._probe import choose_encoders
from ..encode._queue import QueueFullPolicy, QueueStats
from ..encode._worker import EncoderWorker, Reply
from ._config import RecorderConfig
from ._reports import CameraStatus, EncodeProgress, ProgressCallback

log = logging.getLogger("streamrec")

FLUSH_SAY_S = 3.0
"""A backlog that will take longer than this to encode at save_episode() is said at once."""
MAX_RESTARTS = 3
"""Encoder processes started to replace dead ones, per camera, before the recorder gives up."""


class EncoderSupervisor:
    """The encoder processes of one recorder (see the module docstring)."""

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self._features = {f.name: f for f in config.video_features}
        self.workers: dict[str, EncoderWorker] = {}
        self.chains: dict[str, tuple[EncoderConfig, ...]] = {}
        """Per camera: its current encoder, then the ones it falls back to (see `encode._probe.choose_encoders`)."""
        self._restarts: dict[str, int] = {}
        self._start_adaptations: dict[str, Adaptation] = {}
        """Cameras started on a faster setting than asked, for their first process to report."""

    # -- set-up and shutdown ----------------------------------------------------------------------

    def choose(self) -> None:
        """Resolve `auto` and each camera's fallbacks, once, at the cameras' real size."""
        config = self.config
        by_size: dict[tuple[int, ...], tuple[EncoderConfig, ...]] = {}  # cameras of one size share the answer
        for f in config.video_features:
            if f.depth:  # one codec, lossless, nothing to probe or fall back to (see encode._depth)
                self.chains[f.name] = (config.depth_encoder,)
                continue
            if f.shape not in by_size:
                by_size[f.shape] = choose_encoders(config.camera_encoder, f.shape[1], f.shape[0], config.fps,
                                                   config.encoder_threads, camera=f.name)
            self.chains[f.name] = by_size[f.shape]
        if config.streaming_encoding:
            self._plan_start()

    def _plan_start(self) -> None:
        """The colour cameras' encoding need by `probe`'s figures: say when it is more than the encoders'
        share of the machine; with adaptive overload, start on a faster setting when it needs more
        than the whole machine (see `encode._budget`)."""
        config = self.config
        colour = [f for f in config.video_features if not f.depth]
        firsts = [self.chains[f.name][0] for f in colour]
        if not firsts or any(c != firsts[0] for c in firsts):  # `auto` chose per size: no one figure
            return
        adapt = config.adapt_on_overload
        plan = plan_start({f.name: f.shape[:2] for f in colour}, config.fps, firsts[0], config.encoder_threads,
                          adapt)
        if plan is None:
            return
        message = plan.message(adapt, QueueFullPolicy(config.queue_full_policy).value)
        if message:
            log.warning("%s", message)
        if plan.start is None:
            return
        change = (f"{describe_change(firsts[0], plan.start.encoder)}: the cameras need about "
                  f"{plan.need.cpus_needed:.1f} CPUs with the first, {plan.start.cpus_needed:.1f} with the second "
                  f"(streamrec probe's figures; {plan.need.cpus} CPUs here)")
        for f in colour:
            self.chains[f.name] = (plan.start.encoder, *self.chains[f.name])
            self._start_adaptations[f.name] = Adaptation(f.name, 0, change, "now", 0, config.encoder_queue_maxsize,
                                                         "start")

    @property
    def current(self) -> dict[str, EncoderConfig]:
        """Per camera: the encoder it is on now."""
        return {name: chain[0] for name, chain in self.chains.items()}

    def start(self, start_at: Mapping[str, FileIndex]) -> None:
        """Start every camera's process (all first, then wait: their start-ups overlap)."""
        for f in self.config.video_features:
            self.chains.setdefault(f.name, (self._configured(f),))
            self.workers[f.name] = self._worker(f, start_at[f.name])
        for w in self.workers.values():
            w.start()
        for w in self.workers.values():
            w.wait_ready()

    def _worker(self, camera: Feature, start_at: FileIndex) -> EncoderWorker:
        config = self.config
        encoders = self.chains.get(camera.name) or (self._configured(camera),)
        cameras = len(config.video_features)
        spec = EncoderSpec(
            camera=camera.name, height=camera.shape[0], width=camera.shape[1], fps=config.fps, encoder=encoders[0],
            encoder_threads=config.encoder_threads, root=config.root, start_at=start_at,
            limit_bytes=int(config.video_files_size_in_mb * 2**20), chunks_size=config.chunks_size,
            nice=config.encoder_nice, streaming=config.streaming_encoding,
            spilled_threads=max(1, available_cpus() // cameras), fallbacks=encoders[1:],
            pre_encode=not config.streaming_encoding and config.batch_encoding_size == 1,
            adapt=config.adapt_on_overload and config.streaming_encoding,
            queue_size=config.encoder_queue_maxsize, cameras=cameras,
            cpu_share=camera_shares({f.name: f.shape[:2] for f in config.video_features}, config.fps)[camera.name],
            start_adaptation=self._start_adaptations.pop(camera.name, None))
        return EncoderWorker(spec, config.queue_full_policy, config.encoder_timeout_s)

    def _configured(self, camera: Feature) -> EncoderConfig | DepthEncoderConfig:
        """The encoder the settings give a camera: `depth_encoder` for a depth camera, else `camera_encoder`."""
        return self.config.depth_encoder if camera.depth else self.config.camera_encoder

    def stop(self) -> list[BaseException]:
        """Close every encoder (each closes its MP4) and wait for the processes to end; returns their errors."""
        errors = []
        replies = [w.close() for w in self.workers.values()]
        for reply in replies:
            if reply is None:
                continue
            try:
                reply.result()
            except BaseException as e:  # noqa: BLE001 - reported by the caller
                errors.append(e)
        for w in self.workers.values():
            if not w.join(timeout_s=60):
                errors.append(WorkerError(f"encoder process for {w.camera} did not end; left running"))
        return errors

    def rebuild_orphaned_videos(self, writer: DatasetWriter) -> None:
        """At finalize: an encoder process that died could not close its MP4; rebuild it."""
        for name, w in self.workers.items():
            if w.exitcode not in (0, None):
                self._rebuild(name, writer)

    # -- while recording --------------------------------------------------------------------------

    def raise_if_failed(self) -> None:
        """Raise the WorkerError of the first encoder that failed or died (cheap: shared-memory flags)."""
        for w in self.workers.values():
            w.raise_if_failed()

    def offer(self, camera: str, slot: int, frame: np.ndarray) -> bool:
        return self.workers[camera].offer(slot, frame)

    def end_episode(self, frames: int, episode_index: int, progress: ProgressCallback | None = None
                    ) -> tuple[dict[str, QueueStats], dict[str, Reply]]:
        """Ask every encoder to complete the open episode; returns each queue's counters and reply.

        `progress` hears each camera's encoded frames while the replies are awaited. A camera whose
        backlog will take more than FLUSH_SAY_S to encode is logged at once, with the estimate.
        """
        def on_progress(camera: str, episode: int, done: int) -> None:
            if progress is not None:
                progress(EncodeProgress(camera, episode, done, frames))

        stats, replies = {}, {}
        for name, worker in self.workers.items():
            stats[name] = worker.queue.stats()
            replies[name] = worker.end_episode(frames, episode_index, on_progress)
            worker.queue.reset_stats()  # the capture thread is the only producer: safe here
            done = worker.queue.progress()
            left, estimate_s = frames - done.slots_done, (frames - done.slots_done) * done.s_per_slot
            if estimate_s > FLUSH_SAY_S:
                log.warning("%s: %d frame(s) of episode %d still to encode, about %.0f s at %.0f ms per frame; "
                            "save_episode() waits for them (a faster preset or codec, fewer cameras, or "
                            "--dataset.streaming_encoding=false avoid the wait)", name, left, episode_index,
                            estimate_s, 1e3 * done.s_per_slot)
        return stats, replies

    def discard(self, cameras: list[str] | None = None) -> None:
        """Drop the open episode in these encoders (default: all; all asked first, so they work in parallel)."""
        workers = [self.workers[name] for name in (self.workers if cameras is None else cameras)]
        replies = [w.discard_episode() for w in workers]
        for w in workers:
            w.queue.reset_stats()
        for reply in replies:
            reply.result()

    def note(self, video: VideoEpisode, writer: DatasetWriter) -> None:
        """After a saved episode: which encoder the camera is on, which made its file, what changed."""
        name = video.camera
        if video.encoders:
            self.chains[name] = video.encoders
        new_file = writer.note_file(name, video.file, self.chains[name][0])
        where = f", in a new file {writer.layout.rel(writer.layout.video(name, video.file))}" if new_file else ""
        for fallback in video.fallbacks:
            log.warning("%s: %s; episode %d has every frame%s", name, fallback, video.episode_index, where)
        for adaptation in video.adaptations:
            log.warning("episode %d: %s", video.episode_index, adaptation)

    def status(self) -> list[CameraStatus]:
        """Queue depth and drop counters of each camera for the open episode."""
        out = []
        for name, w in self.workers.items():
            s = w.queue.stats()
            # The frame being encoded is still counted by the queue; the status shows those waiting.
            out.append(CameraStatus(name, max(0, w.queue.depth() - 1), s.frames_in, s.frames_dropped))
        return out

    # -- failures ---------------------------------------------------------------------------------

    def recover(self, error: BaseException, lost: str, writer: DatasetWriter,
                fatal: Callable[[BaseException, str], WorkerError]) -> WorkerError:
        """Handle a failed encoder; returns the error for the caller to raise: EncoderRestarted when
        recording can go on, else `fatal(error, lost)` (see the module docstring)."""
        dead = [name for name, w in self.workers.items() if w.exitcode is not None]
        restartable = dead and all(self._restarts.get(name, 0) < MAX_RESTARTS for name in dead) and not any(
            w.exitcode is None and w.queue.consumer_failed for w in self.workers.values())
        if not restartable:
            return fatal(error, lost)
        self.discard([name for name in self.workers if name not in dead])
        for name in dead:
            self.restart(name, writer)
        return EncoderRestarted(f"{lost}{error}; a new encoder process took over, recording can go on")

    def restart(self, name: str, writer: DatasetWriter) -> None:
        """Replace a dead encoder process: rebuild its open MP4, start a new one on the next file."""
        start_at = self._rebuild(name, writer)
        self.workers[name].join(0)
        chain = self.chains.get(name, ())
        if len(chain) > 1:  # a driver that took its process down would likely do it again
            log.warning("%s: its encoder process died with %s; the new process uses %s", name,
                        chain[0].encoder, chain[1].encoder)
            self.chains[name] = chain[1:]
        worker = self._worker(self._features[name], start_at)
        self.workers[name] = worker
        worker.start()
        worker.wait_ready()
        self._restarts[name] = self._restarts.get(name, 0) + 1
        log.warning("encoder for %s was replaced by a new process (restart %d of %d)", name,
                    self._restarts[name], MAX_RESTARTS)

    def _rebuild(self, name: str, writer: DatasetWriter) -> FileIndex:
        f = self._features[name]
        return writer.rebuild_open_video(name, self.chains[name][0], f.shape[0], f.shape[1])

    def encode_saved(self, pending: list[SavedEpisode], writer: DatasetWriter, progress: ProgressCallback | None,
                     fatal: Callable[[WorkerError, list[int]], WorkerError]) -> dict[int, dict[str, VideoEpisode]]:
        """PNG path: encode saved episodes from their PNGs on every camera at once, then write their
        metadata (they are complete from then on). Returns the videos by episode and camera.

        An encoder process that dies here is replaced like one that dies while recording (its open
        MP4 rebuilt from the spools of completed episodes), and the new one encodes the batch again:
        the PNGs stay on disk until the metadata is written. One that fails otherwise:
        `fatal(error, episodes)` is raised. OSError from writing the metadata propagates.
        """
        jobs = [(p.index, p.length) for p in pending]
        lengths = dict(jobs)

        def on_progress(camera: str, episode_index: int, frames_done: int) -> None:
            if progress is not None:
                progress(EncodeProgress(camera, episode_index, frames_done, lengths[episode_index]))

        results: dict[str, list[VideoEpisode]] = {}
        todo = list(self.workers)
        while todo:
            replies = {name: self.workers[name].encode_spilled(jobs, on_progress) for name in todo}
            todo = []
            for name, reply in replies.items():
                try:
                    results[name] = reply.result()
                except WorkerError as error:
                    if self.workers[name].exitcode is None or self._restarts.get(name, 0) >= MAX_RESTARTS:
                        raise fatal(error, list(lengths)) from error
                    self.restart(name, writer)
                    todo.append(name)
        done = {}
        for i, saved in enumerate(pending):
            videos = {name: results[name][i] for name in self.workers}
            for video in videos.values():
                self.note(video, writer)
            writer.complete(saved, videos)
            done[saved.index] = videos
        return done

