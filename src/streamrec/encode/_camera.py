"""Inside an encoder process: a camera's episodes, one at a time, into the camera's MP4s.

Each episode is encoded by a fresh codec (`_fallback.EpisodeCodec`) into a packet spool; at the
episode's end the spool is appended to the camera's open MP4 (`dataset._mp4`). A slot whose frame
was dropped at the queue repeats the previous frame, so video frame k always belongs to table row
k. Adaptive overload (`_adapt`) and the PNG path's encoding of spilled frames (`_spill`) change
what this encoder does between or within episodes; the process around it is `_child`.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import av

from .._errors import WorkerError
from .._platform import available_cpus
from ..dataset._layout import Layout
from ..dataset._mp4 import PacketSpool, VideoFile
from ._adapt import (
    NEXT_EPISODE_AFTER_S,
    TRIAL_FRAMES,
    Adaptation,
    CpuCheck,
    OverloadWatch,
    describe_change,
    describe_threads,
    fewer_threads,
    fitting_setting,
    trial_cpu_per_frame,
)
from ._codecs import faster_encoder, faster_encoders
from ._config import EncoderConfig
from ._depth import DepthEncoderConfig, DepthFrames
from ._fallback import EncoderFallback, EpisodeCodec
from ._messages import EncoderSpec, VideoEpisode
from ._spill import read_spilled


class CameraEncoder:
    """The encoding itself, inside the encoder process: one episode at a time into the camera's MP4s."""

    def __init__(self, spec: EncoderSpec, busy: Callable[[], None] = lambda: None,
                 progress: Callable[[int, float | None], None] = lambda slots, s_per_slot: None) -> None:
        """`busy`: tells the recorder the process is alive during a long fallback re-encode.
        `progress(slots_done, s_per_slot)`: called after each slot encoded (the recorder's liveness
        check and its estimate of a backlog's flush; see `_queue.FrameQueueReader.report_progress`)."""
        self._spec = spec
        self._busy = busy
        self._progress = progress
        self._s_per_slot = 0.0
        """Recent encode time per slot, smoothed."""
        self._layout = Layout(spec.root)
        self._chain = [spec.encoder, *spec.fallbacks]
        """The camera's encoder, then its fallbacks; a failed encoder is removed for good."""
        self._fallbacks: list[EncoderFallback] = []
        """Encoder failures since the last saved episode, reported with the next one."""
        self._next_file_at = spec.start_at
        self._file: VideoFile | None = None
        self._kept_spools: list[Path] = []
        """Spools of the episodes in the open MP4, deleted once it is closed."""
        self._codec: EpisodeCodec | None = None
        self._next_slot = 0
        self._last_frame: av.VideoFrame | None = None
        self.pre_encoded: int | None = None
        """PNG path: the episode whose first frames the open codec holds, encoded while it was
        recorded (see `_idle`); encode_spilled goes on from there."""
        self._threads = spec.encoder_threads
        """Codec threads; fewer once adaptive overload stepped them down."""
        self._watch = OverloadWatch(spec.queue_size) if spec.adapt else None
        self._next_encoder: EncoderConfig | None = None
        """A faster setting adaptive overload chose, taken at the next episode."""
        self._adaptations: list[Adaptation] = [spec.start_adaptation] if spec.start_adaptation else []
        """Reported with the next saved episode (the first: the setting the recorder started on)."""
        self._fastest = False
        """No faster setting is left (adaptive overload stops looking)."""
        # Depth keeps to its lossless ladder of x265 presets (`DepthEncoderConfig.faster`), on the queue's mark.
        self._cpu_check = CpuCheck(spec.fps, spec.cpu_share, spec.queue_size) \
            if spec.adapt and spec.cpu_share and not spec.depth else None
        self._codec_episodes = 0
        """Episodes opened by this process (the CPU check runs in the first)."""
        self._recent: deque[av.VideoFrame] = deque(maxlen=TRIAL_FRAMES)
        """The latest frames, while the CPU check is pending: what candidate settings are tried on."""
        self._depth = DepthFrames(spec.encoder) if spec.depth else None
        """A depth camera's PNGs become its encoder's frames through this (PNG path)."""

    def open_episode(self, threads: int | None = None) -> None:
        """`threads`: codec threads for this episode (default: `encoder_threads`)."""
        spec = self._spec
        if self._next_encoder is not None:
            self._chain[0], self._next_encoder = self._next_encoder, None
        if self._watch is not None:
            self._watch.reset()
        if self._cpu_check is not None:
            if self._codec_episodes:
                self._cpu_check.stop()  # the first episode has told what it can
                self._recent.clear()
            self._cpu_check.restart()
        self._codec_episodes += 1
        self._codec = EpisodeCodec(self._chain, spec.width, spec.height, spec.fps,
                                   self._threads if threads is None else threads,
                                   self._layout.open_spool(spec.camera), PacketSpool, self._fallbacks, spec.camera,
                                   self._busy)
        self._next_slot = 0
        self._last_frame = None
        self._progress(0, None)

    def encode_slot(self, slot: int, frame: av.VideoFrame) -> None:
        # Slots before this one whose frames were dropped at the queue: repeat the previous
        # frame (or this one, if the episode's first frames were dropped) so that video frame k
        # always belongs to table row k.
        while self._next_slot < slot:
            self._encode(frame if self._last_frame is None else self._last_frame)
        self._encode(frame)
        self._last_frame = frame
        if self._cpu_check is not None and not self._cpu_check.done:
            self._recent.append(frame)

    def _encode(self, frame: av.VideoFrame) -> None:
        t0 = time.perf_counter()
        self._codec.encode(frame)  # sets pts = this slot
        took = time.perf_counter() - t0
        self._s_per_slot = took if not self._s_per_slot else 0.9 * self._s_per_slot + 0.1 * took
        self._next_slot += 1
        self._progress(self._next_slot, self._s_per_slot)

    def watch_queue(self, depth: int) -> None:
        """Streaming with `adapt`: called after each frame with the frames still waiting (see _adapt)."""
        if self._watch is None or self._codec is None:
            return
        spec = self._spec
        if self._cpu_check is not None and self._cpu_check.over(depth):
            self._fit_share(depth)
            # The decision and its trial encodes let the queue fill for a moment: that backlog is
            # not a new overload, so the queue's mark starts counting afresh once it has drained.
            self._watch.reset()
            self._watch.settle(time.monotonic())
            return
        if self._watch.overloaded(depth, time.monotonic()):
            threads = fewer_threads(self._threads, available_cpus(), spec.cameras)
            if threads is not None:
                change = f"encoder_threads {describe_threads(self._threads)} -> {threads}"
                self._codec.restart(threads)
                self._threads = threads
                self._adaptations.append(Adaptation(spec.camera, self._next_slot, change, "now", depth,
                                                    spec.queue_size))
                self._watch.settle(time.monotonic())
                return
        if self._watch.above_s >= NEXT_EPISODE_AFTER_S and self._next_encoder is None and not self._fastest:
            now = self._chain[0]
            # a depth camera only takes a faster x265 preset: still lossless, the same codes (see _depth)
            faster = now.faster() if isinstance(now, DepthEncoderConfig) else faster_encoder(now)
            if faster is None:
                self._fastest = True
                return
            self._next_encoder = faster
            self._adaptations.append(Adaptation(spec.camera, self._next_slot, describe_change(now, faster),
                                                "next episode", depth, spec.queue_size))

    def _fit_share(self, depth: int) -> None:
        """The CPU check found this camera over its share: decide, once, the settings that fit (see _adapt)."""
        spec, check = self._spec, self._cpu_check
        frames, self._recent = list(self._recent), deque(maxlen=0)
        now = self._chain[0]
        threads = fewer_threads(self._threads, available_cpus(), spec.cameras)
        ladder = ([now] if threads is not None else []) + faster_encoders(now)
        trial_threads = self._threads if threads is None else threads

        def cost(config: EncoderConfig) -> float:
            self._busy()  # a trial of a slow setting takes a while: the recorder hears the process is alive
            return trial_cpu_per_frame(config, trial_threads, frames, spec.width, spec.height, spec.fps)

        measured = check.describe()
        if threads is not None:
            change = f"encoder_threads {describe_threads(self._threads)} -> {threads}: {measured}"
            self._codec.restart(threads)
            self._threads = threads
            self._adaptations.append(Adaptation(spec.camera, self._next_slot, change, "now", depth, spec.queue_size,
                                                "cpu"))
        choice = fitting_setting(ladder, cost, check.budget_per_frame) if ladder and frames else None
        if choice is None:
            self._fastest = not ladder
            return
        config, took, tried = choice
        if config in (now, self._next_encoder):  # nothing to change, or the queue's mark chose it already
            return
        self._next_encoder = config
        why = measured if threads is None else "still over"
        fits = "fits" if took <= check.budget_per_frame else "the fastest, still over the share"
        change = (f"{describe_change(now, config)}: {why}; on its latest frames {took * 1000:.1f} ms ({fits}; tried "
                  f"{', '.join(tried)})")
        self._adaptations.append(Adaptation(spec.camera, self._next_slot, change, "next episode", depth,
                                            spec.queue_size, "cpu"))

    def finish_episode(self, frames: int, episode_index: int) -> VideoEpisode:
        if self._last_frame is None:
            raise WorkerError(f"{self._spec.camera}: every frame of the episode was dropped; nothing to encode")
        t0 = time.perf_counter()
        while self._next_slot < frames:  # the last frames were dropped
            self._encode(self._last_frame)
        spool = self._codec.finish()
        encoder = self._codec.encoder
        t1 = time.perf_counter()
        self._codec = None
        if spool.packets != frames:
            raise WorkerError(f"{self._spec.camera}: encoder returned {spool.packets} packets for {frames} frames")
        if self._file is not None and (self._file.settings != encoder or self._file.frames
                                       and self._file.bytes + spool.bytes > self._spec.limit_bytes):
            self.close_file()  # full, or the camera's encoder settings changed (_fallback, _adapt)
        if self._file is None:
            at = self._next_file_at
            self._file = VideoFile(self._layout.video(self._spec.camera, at), at, encoder.stream_codec,
                                    self._spec.fps, self._spec.width, self._spec.height, encoder)
            self._next_file_at = at.next(self._spec.chunks_size)
            # Beside the spools: which codec the open file holds, for `repair` after a fallback.
            codec_note = self._layout.codec_note(self._spec.camera, at)
            codec_note.write_text(encoder.stream_codec)
            self._kept_spools.append(codec_note)
        start = self._file.append(spool)
        spool.keep(self._layout.spool(self._spec.camera, episode_index))
        self._kept_spools.append(spool.path)
        fallbacks, adaptations = tuple(self._fallbacks), tuple(self._adaptations)
        self._fallbacks.clear()
        self._adaptations.clear()
        return VideoEpisode(camera=self._spec.camera, episode_index=episode_index, file=self._file.at,
                            from_frame=start, frames=frames, flush_s=t1 - t0, append_s=time.perf_counter() - t1,
                            encoders=tuple(self._chain), fallbacks=fallbacks, adaptations=adaptations)

    def encode_spilled(self, episodes: list[tuple[int, int]], progress: Callable[[int, int], None]
                       ) -> list[VideoEpisode]:
        """Encode saved episodes from their PNGs, in order, into the camera's MP4s.

        `episodes` holds (episode_index, rows). `progress(episode_index, frames_done)` is called
        as frames go by. The PNGs are left in place: the recorder deletes them once the episode's
        metadata is written.
        """
        done = []
        for episode_index, frames in episodes:
            folder = self._layout.episode_images(self._spec.camera, episode_index)
            if not folder.is_dir():
                raise WorkerError(f"{self._spec.camera}: the PNGs of episode {episode_index} are missing ({folder})")
            if self._codec is None or self.pre_encoded != episode_index:
                self.abort_episode()
                self.open_episode(self._spec.encoder_threads or self._spec.spilled_threads)
            self.pre_encoded = None
            t0 = time.perf_counter()
            try:
                for slot, frame in read_spilled(folder, self._next_slot, self._depth):
                    if slot >= frames:
                        raise WorkerError(f"{folder}: frame {slot} is beyond the episode's {frames} rows")
                    self.encode_slot(slot, frame)
                    progress(episode_index, slot + 1)
                video = self.finish_episode(frames, episode_index)
            except BaseException:
                self.abort_episode()
                raise
            done.append(dataclasses.replace(video, flush_s=time.perf_counter() - t0 - video.append_s))
        return done

    @property
    def open_slots(self) -> int:
        """Frames of the open episode encoded so far (0 with no codec open)."""
        return self._next_slot if self._codec is not None else 0

    def abort_episode(self) -> None:
        self.pre_encoded = None
        codec, self._codec = self._codec, None
        if codec is not None:
            codec.abort()

    def close_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
            for path in self._kept_spools:
                path.unlink(missing_ok=True)
            self._kept_spools.clear()

