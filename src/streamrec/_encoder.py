"""One camera's encoder worker: frames in from its queue, episodes out into the camera's MP4s.

Per episode the worker opens a fresh encoder and writes its packets to a spool file on disk
(so RAM stays flat however long the episode, and a discarded episode never reaches the MP4).
At the end of the episode it flushes the encoder and copies the spooled packets into the
camera's open MP4 with their timestamps shifted by the frames already in that file. Only that
episode's packets are touched, so appending costs the same for the 1st and the 500th episode.

The muxer may hold an open MP4's data in memory until the file is closed, so the spools of the
episodes in the open file are kept (synced to disk) until it is closed: with the episode
journals they are enough to rebuild the file after a crash.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ._config import Feature, RecorderConfig
from ._dataset import FileIndex, Layout
from ._errors import WorkerError
from ._queue import FrameQueue
from ._sched import demote_current_thread
from ._stats import ImageStatsSampler, Stats

_RECORD = struct.Struct("<IqB")  # payload size, pts, keyframe flag


@dataclass(frozen=True, slots=True)
class VideoEpisode:
    """What one camera contributed to a saved episode."""

    camera: str
    file: FileIndex
    from_frame: int
    """Index of the episode's first frame inside the MP4 file."""
    frames: int
    """Video frames written: always the episode's row count."""
    repeated: int
    """Slots filled with the previous frame because their own frame was dropped at the queue."""
    stats: Stats
    bytes: int
    flush_s: float
    """Time spent encoding the frames the encoder still held when the episode ended."""
    append_s: float
    """Time spent copying the episode's packets into the camera's MP4."""


@dataclass(slots=True)
class _EndEpisode:
    frames: int
    episode_index: int
    reply: Future


@dataclass(slots=True)
class _Discard:
    reply: Future


@dataclass(slots=True)
class _Close:
    reply: Future


class _PacketSpool:
    """Encoded packets of the open episode, appended to a flat file: size, pts, key flag, bytes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = open(path, "w+b")  # noqa: SIM115 - lives as long as the episode
        self.packets = 0
        self.bytes = 0

    def write(self, packets: list[av.Packet]) -> None:
        for p in packets:
            payload = bytes(p)
            self._f.write(_RECORD.pack(len(payload), p.pts, p.is_keyframe))
            self._f.write(payload)
            self.packets += 1
            self.bytes += len(payload)

    def read(self) -> Iterator[tuple[bytes, int, bool]]:
        self._f.flush()
        self._f.seek(0)
        while header := self._f.read(_RECORD.size):
            size, pts, key = _RECORD.unpack(header)
            yield self._f.read(size), pts, bool(key)

    def keep(self, path: Path) -> None:
        """Close the spool for good: synced to disk, under its final name."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.path, path)
        self.path = path

    def discard(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)


class _VideoFile:
    """The camera's MP4 that episodes are being appended to; several episodes per file."""

    def __init__(self, path: Path, at: FileIndex, codec: str, fps: int, width: int, height: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.at = at
        self.frames = 0
        self.bytes = 0
        self._time_base = Fraction(1, fps)
        # Fragmented while open (what is written survives a crash up to the last fragment),
        # a regular MP4 with a normal index once closed.
        self._container = av.open(str(path), "w", format="mp4", options={"movflags": "hybrid_fragmented"})
        self._stream = self._container.add_mux_stream(codec, rate=fps, width=width, height=height)
        self._stream.time_base = self._time_base

    def append(self, spool: _PacketSpool) -> int:
        """Copy the spooled episode to the end of the file; returns its first frame's index."""
        start = self.frames
        for payload, pts, key in spool.read():
            packet = av.Packet(payload)
            packet.pts = packet.dts = start + pts
            packet.time_base = self._time_base
            packet.is_keyframe = key
            packet.stream = self._stream
            self._container.mux(packet)
        self.frames += spool.packets
        self.bytes += spool.bytes
        return start

    def close(self) -> None:
        self._container.close()


class EncoderWorker:
    """Owns one camera: its queue, its thread `streamrec-encoder-<camera>` and its MP4 files.

    The thread demotes itself (see `_sched`) before it opens any encoder, so the codec's own
    threads never outrank the capture loop. A failure is stored and re-raised as WorkerError
    by the next call from the recorder; the worker keeps draining its queue so the capture
    loop is never stuck behind a dead consumer, and it still closes the MP4 holding the
    episodes saved before the failure.
    """

    def __init__(self, camera: Feature, config: RecorderConfig, layout: Layout, start_at: FileIndex) -> None:
        self.camera = camera.name
        self._config = config
        self._layout = layout
        self._height, self._width = camera.shape[0], camera.shape[1]
        self._options = config.camera_encoder.codec_options(config.encoder_threads)
        self._next_file_at = start_at
        self._limit_bytes = int(config.video_files_size_in_mb * 1024 * 1024)
        self.queue = FrameQueue(self.camera, camera.shape, config.encoder_queue_maxsize, config.queue_full_policy)
        self._thread = threading.Thread(target=self._run, name=f"streamrec-encoder-{self.camera}")
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._file: _VideoFile | None = None
        self._spool_dir = layout.work / "spool" / self.camera
        self._kept_spools: list[Path] = []
        """Spools of the episodes in the open MP4, deleted once it is closed."""
        # Per-episode state, reset by _open_episode.
        self._codec: av.CodecContext | None = None
        self._spool: _PacketSpool | None = None
        self._next_slot = 0
        self._last_frame: av.VideoFrame | None = None
        self._sampler = ImageStatsSampler(config.fps // 10)

    # -- called by the recorder (capture thread) ---------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the thread and wait until the first encoder is open (so bad options fail here)."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise WorkerError(f"encoder for {self.camera} did not open within {timeout_s:g} s")
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise WorkerError(f"encoder for {self.camera} failed: {self._error}") from self._error

    @property
    def failed(self) -> bool:
        return self._error is not None

    def offer(self, slot: int, frame: np.ndarray) -> bool:
        return self.queue.offer(slot, frame)

    def end_episode(self, frames: int, episode_index: int) -> Future:
        """Ask for the open episode to be completed with `frames` video frames; a Future of VideoEpisode."""
        reply: Future = Future()
        self.queue.put_control(_EndEpisode(frames, episode_index, reply))
        return reply

    def discard_episode(self) -> Future:
        reply: Future = Future()
        self.queue.put_control(_Discard(reply))
        return reply

    def close(self) -> Future:
        """Discard any open episode, close the current MP4 and end the thread."""
        reply: Future = Future()
        if self._thread.is_alive():
            self.queue.put_control(_Close(reply))
        else:
            reply.set_result(None)
        return reply

    def join(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # -- the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        demote_current_thread(self._config.encoder_nice)
        try:
            self._open_episode()
            self._ready.set()
            self._serve()
        except BaseException as e:  # noqa: BLE001 - stored and re-raised in the caller's thread
            self._error = e
            self._ready.set()
            self._drain_after_failure()

    def _serve(self) -> None:
        while True:
            message = self.queue.get()
            if type(message) is tuple:
                self._encode_slot(*message)
            elif isinstance(message, _EndEpisode):
                try:
                    result = self._finish_episode(message.frames, message.episode_index)
                except BaseException as e:
                    message.reply.set_exception(e)
                    raise
                message.reply.set_result(result)
                self._open_episode()
            elif isinstance(message, _Discard):
                self._abort_episode()
                message.reply.set_result(None)
                self._open_episode()
            elif isinstance(message, _Close):
                self._abort_episode()
                self._close_file()
                message.reply.set_result(None)
                return

    def _drain_after_failure(self) -> None:
        """Consume (and refuse) whatever still arrives, until asked to close."""
        failure = WorkerError(f"encoder for {self.camera} failed earlier: {self._error}")
        failure.__cause__ = self._error
        while True:
            message = self.queue.get()
            if type(message) is tuple:
                self.queue.release(message[1])
            elif isinstance(message, (_EndEpisode, _Discard)):
                message.reply.set_exception(failure)
            elif isinstance(message, _Close):
                try:
                    self._abort_episode()
                    self._close_file()  # keeps the episodes saved before the failure readable
                except BaseException as e:  # noqa: BLE001
                    message.reply.set_exception(e)
                else:
                    message.reply.set_result(None)
                return

    def _open_episode(self) -> None:
        codec = av.CodecContext.create(self._config.camera_encoder.encoder, "w")
        codec.width = self._width
        codec.height = self._height
        codec.pix_fmt = self._config.camera_encoder.pix_fmt
        codec.time_base = Fraction(1, self._config.fps)
        codec.framerate = Fraction(self._config.fps, 1)
        if self._config.camera_encoder.g is not None:
            codec.gop_size = self._config.camera_encoder.g
        codec.max_b_frames = 0  # pts must equal decode order: one packet per row, on the k/fps grid
        codec.options = dict(self._options)
        codec.open()
        self._codec = codec
        self._spool = _PacketSpool(self._spool_dir / "open.bin")
        self._next_slot = 0
        self._repeated = 0
        self._last_frame = None
        self._sampler = ImageStatsSampler(self._config.fps // 10)

    def _encode_slot(self, slot: int, buffer_index: int) -> None:
        array = self.queue.buffer(buffer_index)
        try:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")  # copies: the buffer can go back
            self._sampler.maybe_add(slot, array)
        finally:
            self.queue.release(buffer_index)
        # Slots before this one whose frames were dropped at the queue: repeat the previous
        # frame (or this one, if the episode's first frames were dropped) so that video frame k
        # always belongs to table row k.
        while self._next_slot < slot:
            self._encode(self._last_frame or frame)
            self._repeated += 1
        self._encode(frame)
        self._last_frame = frame

    def _encode(self, frame: av.VideoFrame) -> None:
        frame.pts = self._next_slot
        self._spool.write(self._codec.encode(frame))
        self._next_slot += 1

    def _finish_episode(self, frames: int, episode_index: int) -> VideoEpisode:
        if self._last_frame is None:
            raise WorkerError(f"{self.camera}: every frame of the episode was dropped; nothing to encode")
        t0 = time.perf_counter()
        while self._next_slot < frames:  # the last frames were dropped
            self._encode(self._last_frame)
            self._repeated += 1
        self._spool.write(self._codec.encode(None))
        t1 = time.perf_counter()
        self._codec = None
        spool = self._spool
        if spool.packets != frames:
            raise WorkerError(f"{self.camera}: encoder returned {spool.packets} packets for {frames} frames")
        if self._file is not None and self._file.frames and self._file.bytes + spool.bytes > self._limit_bytes:
            self._close_file()
        if self._file is None:
            at = self._next_file_at
            self._file = _VideoFile(self._layout.video(self.camera, at), at,
                                    self._config.camera_encoder.stream_codec, self._config.fps,
                                    self._width, self._height)
            self._next_file_at = at.next(self._config.chunks_size)
        start = self._file.append(spool)
        spool.keep(self._spool_dir / f"episode-{episode_index:06d}.bin")
        self._kept_spools.append(spool.path)
        self._spool = None
        return VideoEpisode(camera=self.camera, file=self._file.at, from_frame=start, frames=frames,
                            repeated=self._repeated, stats=self._sampler.stats(), bytes=spool.bytes,
                            flush_s=t1 - t0, append_s=time.perf_counter() - t1)

    def _abort_episode(self) -> None:
        codec, self._codec = self._codec, None
        if codec is not None and self._next_slot:
            # Drain, so the encoder shuts down cleanly; the packets are not wanted.
            with contextlib.suppress(av.FFmpegError):
                codec.encode(None)
        if self._spool is not None:
            self._spool.discard()
            self._spool = None

    def _close_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
            for path in self._kept_spools:
                path.unlink(missing_ok=True)
            self._kept_spools.clear()
