"""One camera's encoder process: frames in from its queue, episodes out into the camera's MP4s.

Each camera is encoded in its own process (`sr-<camera>` in `ps`), fed through shared memory
(see `_queue`). A process rather than a thread because the encoder then shares no
interpreter lock with the capture loop, and because it can drop the right to real-time
priority for itself and every codec thread it starts; see docs/design.md for the figures.

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

import atexit
import contextlib
import dataclasses
import functools
import json
import logging
import os
import queue
import struct
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
import numpy as np

from ._adapt import NEXT_EPISODE_AFTER_S, Adaptation, OverloadWatch, describe_threads, fewer_threads
from ._codecs import faster_encoder
from ._config import EncoderConfig, Feature, RecorderConfig
from ._dataset import FileIndex, Layout
from ._errors import WorkerError
from ._fallback import EncoderFallback, EpisodeCodec
from ._queue import FrameQueue, FrameQueueReader, ReaderHandle
from ._sched import demote_current_thread
from ._spill import ImageSpill, episode_images_dir, read_png, read_spilled
from ._stats import ImageStatsSampler, Stats

_RECORD = struct.Struct("<IqB")  # payload size, pts, keyframe flag


@dataclass(frozen=True, slots=True)
class VideoEpisode:
    """Where one camera's video of an episode landed."""

    camera: str
    episode_index: int
    file: FileIndex
    from_frame: int
    """Index of the episode's first frame inside the MP4 file."""
    frames: int
    """Video frames written: always the episode's row count."""
    flush_s: float
    """Time spent encoding after the episode ended: the frames the encoder still held when
    streaming, every frame when encoding spilled PNGs."""
    append_s: float
    """Time spent copying the episode's packets into the camera's MP4."""
    encoders: tuple[EncoderConfig, ...] = ()
    """The camera's encoder chain after this episode: the one that made it first, then its fallbacks."""
    fallbacks: tuple[EncoderFallback, ...] = ()
    """Encoders that failed since the previous saved episode, and what took over."""
    adaptations: tuple[Adaptation, ...] = ()
    """Faster settings taken since the previous saved episode (`adapt_on_overload`)."""


@dataclass(frozen=True, slots=True)
class EpisodeEnd:
    """The encoder process's answer when an episode ends."""

    camera: str
    stats: Stats
    """Pixel statistics of a sample of the frames it received."""
    video: VideoEpisode | None
    """The encoded episode; None when its PNGs wait to be encoded (`streaming_encoding=False`)."""
    encoded_while_recording: int = 0
    """PNG path: frames the idle-priority encoder had encoded when the episode ended."""


def _read_records(f: Any) -> Iterator[tuple[bytes, int, bool]]:
    while header := f.read(_RECORD.size):
        size, pts, key = _RECORD.unpack(header)
        yield f.read(size), pts, bool(key)


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
            # Rows and frames are 1:1 only if the encoder emits frame k as its k-th packet, in
            # presentation order (no reordering, so dts can equal pts). Say so if it does not.
            if p.pts != self.packets:
                raise WorkerError(f"encoder emitted the frame with pts {p.pts} as packet {self.packets} "
                                  f"(dts {p.dts}); streamrec needs packets in presentation order")
            payload = bytes(p)
            self._f.write(_RECORD.pack(len(payload), p.pts, p.is_keyframe))
            self._f.write(payload)
            self.packets += 1
            self.bytes += len(payload)

    def read(self) -> Iterator[tuple[bytes, int, bool]]:
        self._f.flush()
        self._f.seek(0)
        yield from _read_records(self._f)

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

    def __init__(self, path: Path, at: FileIndex, codec: str, fps: int, width: int, height: int,
                 settings: EncoderConfig | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.at = at
        self.settings = settings
        """The encoder settings that made its packets: one set per file, because one MP4 holds one
        set of stream parameters (a fallback or a faster preset starts a new file)."""
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
        self._mux(spool.read(), start)
        self.frames += spool.packets
        self.bytes += spool.bytes
        return start

    def append_kept(self, path: Path) -> None:
        """Copy an episode from a spool kept on disk (used to rebuild a file after a crash)."""
        with open(path, "rb") as f:
            records = list(_read_records(f))  # one episode; only during a rebuild
        self._mux(records, self.frames)
        self.frames += len(records)
        self.bytes += sum(len(r[0]) for r in records)

    def _mux(self, records: Any, start: int) -> None:
        for payload, pts, key in records:
            packet = av.Packet(payload)
            packet.pts = packet.dts = start + pts
            packet.time_base = self._time_base
            packet.is_keyframe = key
            packet.stream = self._stream
            self._container.mux(packet)

    def close(self) -> None:
        self._container.close()


@dataclass(frozen=True, slots=True)
class _Spec:
    """Everything the encoder process needs, sent to it once at start (picklable)."""

    camera: str
    height: int
    width: int
    fps: int
    encoder: EncoderConfig
    encoder_threads: int | None
    root: Path
    start_at: FileIndex
    limit_bytes: int
    chunks_size: int
    nice: int
    streaming: bool
    """Encode frames as they arrive; otherwise write them as PNGs and encode when asked."""
    spilled_threads: int
    """Codec threads for encoding PNGs when `encoder_threads` is None. Every camera encodes
    at once then, so a share of the CPUs each: measured here on 640x480 footage, SVT-AV1 with
    one thread (`lp=1`) used 8.8 instead of 13.0 ms of CPU per frame on one clip and 17.0
    instead of 20.7 on another, against its default of one thread per CPU."""
    fallbacks: tuple[EncoderConfig, ...] = ()
    """Encoders to switch to, in order, when `encoder` fails (see `_fallback`)."""
    pre_encode: bool = False
    """PNG path with batches of one: encode the episode being recorded at idle priority (see _IdleEncoder)."""
    adapt: bool = False
    """Streaming: move to faster settings when the queue stays over a third full (see _adapt)."""
    queue_size: int = 30
    cameras: int = 1
    """Cameras encoding at once (how many threads the camera may have, see _adapt.fewer_threads)."""


class _CameraEncoder:
    """The encoding itself, inside the encoder process: one episode at a time into the camera's MP4s."""

    def __init__(self, spec: _Spec, busy: Callable[[], None] = lambda: None) -> None:
        """`busy`: tells the recorder the process is alive during a long fallback re-encode."""
        self._spec = spec
        self._busy = busy
        self._layout = Layout(spec.root)
        self._chain = [spec.encoder, *spec.fallbacks]
        """The camera's encoder, then its fallbacks; a failed encoder is removed for good."""
        self._fallbacks: list[EncoderFallback] = []
        """Encoder failures since the last saved episode, reported with the next one."""
        self._next_file_at = spec.start_at
        self._file: _VideoFile | None = None
        self._spool_dir = self._layout.work / "spool" / spec.camera
        self._kept_spools: list[Path] = []
        """Spools of the episodes in the open MP4, deleted once it is closed."""
        self._codec: EpisodeCodec | None = None
        self._next_slot = 0
        self._last_frame: av.VideoFrame | None = None
        self.pre_encoded: int | None = None
        """PNG path: the episode whose first frames the open codec holds, encoded while it was
        recorded (see _IdleEncoder); encode_spilled goes on from there."""
        self._threads = spec.encoder_threads
        """Codec threads; fewer once adaptive overload stepped them down."""
        self._watch = OverloadWatch(spec.queue_size) if spec.adapt else None
        self._next_encoder: EncoderConfig | None = None
        """A faster setting adaptive overload chose, taken at the next episode."""
        self._adaptations: list[Adaptation] = []
        """Reported with the next saved episode."""
        self._fastest = False
        """No faster setting is left (adaptive overload stops looking)."""

    def open_episode(self, threads: int | None = None) -> None:
        """`threads`: codec threads for this episode (default: `encoder_threads`)."""
        spec = self._spec
        if self._next_encoder is not None:
            self._chain[0], self._next_encoder = self._next_encoder, None
        if self._watch is not None:
            self._watch.reset()
        self._codec = EpisodeCodec(self._chain, spec.width, spec.height, spec.fps,
                                   self._threads if threads is None else threads,
                                   self._spool_dir / "open.bin", _PacketSpool, self._fallbacks, spec.camera,
                                   self._busy)
        self._next_slot = 0
        self._last_frame = None

    def encode_slot(self, slot: int, frame: av.VideoFrame) -> None:
        # Slots before this one whose frames were dropped at the queue: repeat the previous
        # frame (or this one, if the episode's first frames were dropped) so that video frame k
        # always belongs to table row k.
        while self._next_slot < slot:
            self._encode(frame if self._last_frame is None else self._last_frame)
        self._encode(frame)
        self._last_frame = frame

    def _encode(self, frame: av.VideoFrame) -> None:
        self._codec.encode(frame)  # sets pts = this slot
        self._next_slot += 1

    def watch_queue(self, depth: int) -> None:
        """Streaming with `adapt`: called after each frame with the frames still waiting (see _adapt)."""
        if self._watch is None or self._codec is None:
            return
        spec = self._spec
        if self._watch.overloaded(depth, time.monotonic()):
            threads = fewer_threads(self._threads, len(os.sched_getaffinity(0)), spec.cameras)
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
            faster = faster_encoder(now)
            if faster is None:
                self._fastest = True
                return
            self._next_encoder = faster
            change = f"{now.encoder} preset {now.effective_preset} -> {faster.encoder} preset " \
                     f"{faster.effective_preset}" + (f" crf {faster.crf}" if faster.crf != now.crf else "")
            self._adaptations.append(Adaptation(spec.camera, self._next_slot, change, "next episode", depth,
                                                spec.queue_size))

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
            self._file = _VideoFile(self._layout.video(self._spec.camera, at), at, encoder.stream_codec,
                                    self._spec.fps, self._spec.width, self._spec.height, encoder)
            self._next_file_at = at.next(self._spec.chunks_size)
            # Beside the spools: which codec the open file holds, for `repair` after a fallback.
            codec_note = spool_codec_path(self._spool_dir, at)
            codec_note.write_text(encoder.stream_codec)
            self._kept_spools.append(codec_note)
        start = self._file.append(spool)
        spool.keep(self._spool_dir / f"episode-{episode_index:06d}.bin")
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
            folder = episode_images_dir(self._layout, self._spec.camera, episode_index)
            if not folder.is_dir():
                raise WorkerError(f"{self._spec.camera}: the PNGs of episode {episode_index} are missing ({folder})")
            if self._codec is None or self.pre_encoded != episode_index:
                self.abort_episode()
                self.open_episode(self._spec.encoder_threads or self._spec.spilled_threads)
            self.pre_encoded = None
            t0 = time.perf_counter()
            try:
                for slot, frame in read_spilled(folder, self._next_slot):
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


def spool_codec_path(spool_dir: Path, at: FileIndex) -> Path:
    """A note, kept with a camera's spools, of the stream codec of its open file `at`."""
    return spool_dir / f"file-{at.chunk:03d}-{at.file:03d}.codec"


def encoder_processes(root: Path) -> list[int]:
    """PIDs of encoder processes (of any recorder, dead or alive) working on dataset `root`."""
    marker = json.dumps(str(root.resolve()))
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            if any(b"streamrec._encoder" in a for a in args) and any(marker.encode() in a for a in args):
                pids.append(int(cmdline.parent.name))
    return pids


def rebuild_video_file(root: Path, camera: str, at: FileIndex, episodes: list[int], codec: str, fps: int,
                       width: int, height: int) -> None:
    """Rewrite a camera's MP4 from the kept spools of its episodes, in order.

    For a file whose encoder process died before closing it: the spools of every episode
    appended to the file are kept until it is closed (see the module docstring).
    """
    layout = Layout(root)
    path = layout.video(camera, at)
    tmp = path.with_name(f".{path.name}.rebuild.mp4")
    file = _VideoFile(tmp, at, codec, fps, width, height)
    for e in episodes:
        file.append_kept(layout.work / "spool" / camera / f"episode-{e:06d}.bin")
    file.close()
    os.replace(tmp, path)


def _describe(e: BaseException) -> str:
    return "".join(traceback.format_exception(e)).rstrip()


def _worker_main(spec: _Spec, queue: FrameQueueReader, replies: Connection) -> None:
    """Body of the encoder process.

    Requests arrive as `(kind, request_id, *args)` between the frames and are answered with
    `(request_id, "ok" | "error", value)`; a long request also sends `(request_id, "progress",
    value)` now and then. A failure while taking frames is reported at once as
    `(None, "error", traceback)`. After a failure the process keeps taking frames (giving
    their buffers back) so that the capture loop is never stuck, refuses every request but
    "close", and still closes the MP4 that holds the episodes saved before it.
    """
    # Started before this thread is demoted, so that it keeps normal priority (see _SaveThread).
    save_thread = None if spec.streaming else _SaveThread()
    demote_current_thread(spec.nice)
    replies = _LockedConnection(replies)  # the idle encoder's thread may report too
    encoder = _CameraEncoder(spec, busy=lambda: replies.send((None, "busy", None)))
    spill = None if spec.streaming else ImageSpill(Layout(spec.root), spec.camera, spec.width, spec.height,
                                                      spec.fps)
    # In memory up to a second of frames (at most 64 MB: 10 frames at 1920x1080); beyond that,
    # up to an hour of slots to read back from their PNGs.
    in_memory = max(2, min(spec.fps, 64 * 2**20 // (spec.width * spec.height * 3)))
    idle = _IdleEncoder(encoder, spill, in_memory, spec.fps * 3600) if spill is not None and spec.pre_encode \
        else None
    sampler = ImageStatsSampler(spec.fps // 10)
    failure: str | None = None

    def fail(e: BaseException, request_id: int | None) -> None:
        nonlocal failure
        failure = _describe(e)
        replies.send((request_id, "error", failure))
        queue.mark_failed()

    try:
        encoder.open_episode()
        if spill is not None:
            encoder.abort_episode()  # opened only so that bad settings fail at creation
        replies.send((0, "ok", None))
    except BaseException as e:  # noqa: BLE001 - reported to the recorder
        fail(e, 0)
    while True:
        try:
            message = queue.get()
        except EOFError:  # the recorder hung up or died: keep what was saved readable
            with contextlib.suppress(BaseException):
                if idle is not None:
                    idle.pause()
                encoder.abort_episode()
                encoder.close_file()
            return
        if type(message) is tuple and len(message) == 2 and isinstance(message[0], int):
            slot, index = message
            try:
                if failure is None:
                    array = queue.buffer(index)
                    sampler.maybe_add(slot, array)
                    if spill is None:
                        # from_ndarray copies, so the buffer can go back to the queue
                        encoder.encode_slot(slot, av.VideoFrame.from_ndarray(array, format="rgb24"))
                        if spec.adapt:
                            encoder.watch_queue(queue.depth() - 1)  # less this frame, released below
                    else:
                        frame = spill.write(slot, array)
                        if idle is not None:
                            idle.offer(slot, frame)
            except BaseException as e:  # noqa: BLE001 - reported to the recorder
                fail(e, None)
            finally:
                queue.release(index)
            continue
        kind, request_id, *args = message
        try:
            if idle is not None:
                idle.pause()  # from here on this thread (or the save thread) owns the encoder
            if kind == "close":
                try:
                    encoder.abort_episode()
                    encoder.close_file()  # also after a failure: the saved episodes' file must close
                    replies.send((request_id, "ok", None))
                except BaseException as e:  # noqa: BLE001 - reported; the process ends either way
                    fail(e, request_id)
                return
            if failure is not None:
                replies.send((request_id, "error", f"failed earlier:\n{failure}"))
            elif kind == "end":
                frames, episode_index = args
                if spill is None:
                    video = encoder.finish_episode(frames, episode_index)
                elif spill.frames == 0:
                    raise WorkerError(f"{spec.camera}: every frame of the episode was dropped; nothing to keep")
                else:
                    spill.keep(episode_index)
                    video = None
                    if encoder.open_slots:
                        encoder.pre_encoded = episode_index
                replies.send((request_id, "ok", EpisodeEnd(spec.camera, sampler.stats(), video,
                                                           encoder.open_slots if spill is not None else 0)))
                sampler = ImageStatsSampler(spec.fps // 10)
                if spill is None:
                    encoder.open_episode()
            elif kind == "discard":
                encoder.abort_episode()
                sampler = ImageStatsSampler(spec.fps // 10)
                if spill is not None:
                    spill.discard()
                replies.send((request_id, "ok", None))
                if spill is None:
                    encoder.open_episode()
            elif kind == "encode":
                videos = save_thread.call(functools.partial(encoder.encode_spilled, args[0],
                                                            _Progress(replies, request_id)))
                replies.send((request_id, "ok", videos))
        except BaseException as e:  # noqa: BLE001 - reported to the recorder
            fail(e, request_id)


class _LockedConnection:
    """The reply pipe, shared by the threads of an encoder process (a message must not interleave)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self._lock:
            self._conn.send(message)


class _IdleEncoder:
    """PNG path: encodes the episode being recorded with CPU time nothing else wants.

    Its thread runs under SCHED_IDLE, so it never takes CPU from the capture loop, from the PNG
    writing, or from any other program of the robot; the codec threads it starts inherit that.
    On a machine with spare CPU most of the episode is encoded by the time it is saved, and
    saving only encodes the rest from its PNGs. It takes up to `frames_cap` frames in memory;
    past that (it has fallen behind) it is told only which PNG to read back. The queue holds at
    most `slots_cap` items; if even that fills, it stops for the rest of the episode (it cannot
    skip a frame). An error here is not the recording's: saving then encodes the whole episode.
    """

    def __init__(self, encoder: _CameraEncoder, spill: ImageSpill, frames_cap: int, slots_cap: int) -> None:
        self._encoder = encoder
        self._spill = spill
        self._frames = threading.BoundedSemaphore(frames_cap)
        self._queue: queue.Queue[tuple[int, av.VideoFrame | None]] = queue.Queue(slots_cap)
        self._behind = False
        self._cancel = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sr-idle", daemon=True)
        self._thread.start()

    def offer(self, slot: int, frame: av.VideoFrame) -> None:
        if self._behind:
            return
        in_memory = self._frames.acquire(blocking=False)
        try:
            self._queue.put_nowait((slot, frame if in_memory else None))
        except queue.Full:
            self._behind = True
            if in_memory:
                self._frames.release()

    def pause(self) -> None:
        """Stop after the frame being encoded and drop the rest of the queue: the encoder is the
        caller's until frames are offered again (saving encodes what is left, from the PNGs)."""
        self._cancel = True
        self._queue.join()
        self._cancel = self._behind = False
        if self._error is not None:
            self._error = None
            self._encoder.abort_episode()  # in an unknown state: saving starts it afresh

    def _run(self) -> None:
        _name_thread("sr-idle")
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        png = av.CodecContext.create("png", "r")
        while True:
            slot, frame = self._queue.get()
            in_memory = frame is not None
            try:
                if self._error is None and not self._cancel:
                    if frame is None:
                        frame = read_png(self._spill.open_frame_path(slot), png)
                    if self._encoder.open_slots == 0:  # the episode's first frame (pre_encoded needs one)
                        self._encoder.abort_episode()
                        self._encoder.open_episode()
                    self._encoder.encode_slot(slot, frame)
            except BaseException as e:  # noqa: BLE001 - saving encodes the episode from its PNGs
                # On the process's stderr: the recording itself is not affected.
                logging.getLogger("streamrec").warning("encoding while recording stopped at frame %d (%s); saving "
                                                       "will encode the episode from its PNGs", slot, e)
                self._error = e
            finally:
                if in_memory:
                    self._frames.release()
                self._queue.task_done()


class _SaveThread:
    """Runs the encoding of saved PNG episodes on a thread of normal priority.

    The encoder process lowers its own priority (nice, SCHED_BATCH) so that writing PNGs never
    competes with the capture loop. When saved episodes are encoded the capture loop is waiting
    for them instead, and at that priority any other load on the machine slows the save down
    (seen here with other work running, in runs a few minutes apart: 35.8 s for a 20 s episode
    of 3 cameras encoded niced, 23.5 s on this thread). A process
    without CAP_SYS_NICE cannot raise its priority back, so this thread is started before the
    demotion and only drops CAP_SYS_NICE (no real-time codec threads); the codec threads it
    starts inherit that.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], Any] | None] = queue.Queue(maxsize=1)
        self._results: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="sr-save", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _name_thread("sr-save")
        demote_current_thread(0)
        while (job := self._jobs.get()) is not None:
            try:
                self._results.put((True, job()))
            except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
                self._results.put((False, e))

    def call(self, job: Callable[[], Any]) -> Any:
        """Run `job` on the thread and return its result (or raise its exception)."""
        self._jobs.put(job)
        ok, value = self._results.get()
        if not ok:
            raise value
        return value


class _Progress:
    """Tells the recorder how a long request is going, at most a few times a second (this is
    also what keeps the recorder from taking a busy encoder for a hung one)."""

    INTERVAL_S = 0.5

    def __init__(self, replies: Connection, request_id: int) -> None:
        self._replies = replies
        self._id = request_id
        self._last = time.monotonic()

    def __call__(self, episode_index: int, frames_done: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.INTERVAL_S:
            self._last = now
            self._replies.send((self._id, "progress", (episode_index, frames_done)))


class _RemoteError(Exception):
    """The formatted traceback of an exception raised in an encoder process."""


_live_workers: weakref.WeakSet[EncoderWorker] = weakref.WeakSet()


@atexit.register
def _hang_up_on_exit() -> None:
    # A script that exits without finalize(): hang up so that each encoder closes its MP4 (the
    # saved episodes stay readable) and exits.
    for worker in list(_live_workers):
        worker.hang_up()


# Ctrl-C is the recorder's to handle (the process also has its own session).
_CHILD_COMMAND = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                  "from streamrec._encoder import _child_main; _child_main(sys.argv[1:])")


def _child_main(argv: list[str]) -> None:
    """Entry of an encoder process; `argv[0]` holds its inherited descriptors as JSON."""
    fds = json.loads(argv[0])
    # FFmpeg's errors go to stderr and into the exceptions PyAV raises (so into WorkerError);
    # STREAMREC_FFMPEG_LOG=verbose shows more when debugging an encoder.
    av.logging.set_level(getattr(av.logging, os.environ.get("STREAMREC_FFMPEG_LOG", "error").upper()))
    queue = FrameQueueReader(ReaderHandle(tuple(fds["shape"]), fds["buffers"], fds["memory_fd"], fds["pipe_fd"]))
    replies = Connection(fds["replies_fd"], readable=False)
    spec: _Spec = queue.get()
    _name_thread(f"sr-{spec.camera.rsplit('.', 1)[-1]}")
    _worker_main(spec, queue, replies)


def _name_thread(name: str) -> None:
    """Name the calling thread as `top`, `ps -L` and /proc show it (threads it starts inherit it)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(15, name[:15].encode(), 0, 0, 0)  # PR_SET_NAME


class EncoderWorker:
    """Handle, in the recorder, of one camera's encoder process and its queue.

    The process is started with `subprocess` (a fresh interpreter running this module), not
    multiprocessing, so that a user's script is never re-imported in it and needs no
    `if __name__ == "__main__"` guard. It runs in its own session: Ctrl-C in the terminal
    reaches only the recorder, which decides what to keep.

    `end_episode`, `discard_episode` and `close` return a reply whose `result()` waits for the
    process. A failure in the process is raised as WorkerError, remote traceback as its cause.
    """

    def __init__(self, camera: Feature, config: RecorderConfig, layout: Layout, start_at: FileIndex,
                 encoders: Sequence[EncoderConfig] | None = None) -> None:
        """`encoders`: the camera's encoder then its fallbacks (default: `config.camera_encoder` alone)."""
        self.camera = camera.name
        self.queue = FrameQueue(self.camera, camera.shape, config.encoder_queue_maxsize, config.queue_full_policy)
        encoders = tuple(encoders or (config.camera_encoder,))
        self._spec = _Spec(camera=camera.name, height=camera.shape[0], width=camera.shape[1], fps=config.fps,
                           encoder=encoders[0], encoder_threads=config.encoder_threads, root=layout.root,
                           start_at=start_at, limit_bytes=int(config.video_files_size_in_mb * 2**20),
                           chunks_size=config.chunks_size, nice=config.encoder_nice,
                           streaming=config.streaming_encoding,
                           spilled_threads=max(1, len(os.sched_getaffinity(0)) // len(config.video_features)),
                           fallbacks=encoders[1:],
                           pre_encode=not config.streaming_encoding and config.batch_encoding_size == 1,
                           adapt=config.adapt_on_overload and config.streaming_encoding,
                           queue_size=config.encoder_queue_maxsize,
                           cameras=len(config.video_features))
        self._timeout_s = config.encoder_timeout_s
        self._process: subprocess.Popen | None = None
        self._replies: Connection | None = None
        self._next_request = 1
        self._failure: WorkerError | None = None
        self._released = False
        self.queue.consumer_alive = lambda: self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the process (then `wait_ready`; starting all cameras first overlaps their start-up)."""
        handle = self.queue.reader_handle()
        replies_read, replies_write = os.pipe()
        # `dataset` only names the process's dataset in `ps`, for `repair` to find orphans.
        fds = {"dataset": str(self._spec.root.resolve()), "shape": list(handle.shape), "buffers": handle.buffers,
               "memory_fd": handle.memory_fd,
               "pipe_fd": handle.pipe_fd, "replies_fd": replies_write}
        package_root = str(Path(__file__).resolve().parents[1])  # so the child imports this very streamrec
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD_COMMAND, json.dumps(fds)], stdin=subprocess.DEVNULL, env=env,
                pass_fds=(handle.memory_fd, handle.pipe_fd, replies_write), start_new_session=True)
        finally:
            os.close(replies_write)
            self.queue.child_started()
        self._replies = Connection(replies_read, writable=False)
        _live_workers.add(self)
        self.queue.put_control(self._spec)

    def wait_ready(self) -> None:
        """Wait until the first encoder is open, so that bad options fail at creation."""
        self._wait(0, max(60.0, self._timeout_s))  # a cold start imports PyAV and numpy

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def exitcode(self) -> int | None:
        """The process's exit code once it ended (negative: killed by that signal)."""
        return None if self._process is None else self._process.poll()

    def raise_if_failed(self) -> None:
        """Raise WorkerError if the process failed or died (cheap: a shared-memory flag)."""
        if self._failure is None and self.queue.consumer_failed:
            with contextlib.suppress(WorkerError):
                self._wait(None)  # read the failure it reported
        if self._failure is None and self.exitcode is not None:
            self._failure = self._died()
        if self._failure is not None:
            raise self._failure

    def offer(self, slot: int, frame: np.ndarray) -> bool:
        return self.queue.offer(slot, frame)

    def end_episode(self, frames: int, episode_index: int) -> _Reply:
        """Complete the open episode with `frames` video frames; the reply is an EpisodeEnd.

        Streaming, the episode is then in the camera's MP4; otherwise its PNGs are kept for
        `encode_spilled`.
        """
        return self._request("end", frames, episode_index)

    def encode_spilled(self, episodes: list[tuple[int, int]],
                       on_progress: Callable[[str, int, int], None] | None = None) -> _Reply:
        """Encode kept PNG episodes, given as (episode_index, rows), in that order; the reply is
        a list of VideoEpisode. `on_progress(camera, episode_index, frames_done)` is called from
        `result()` as the encoder reports progress."""
        return self._request("encode", episodes, on_progress=on_progress)

    def discard_episode(self) -> _Reply:
        return self._request("discard")

    def close(self) -> _Reply | None:
        """Discard any open episode, close the current MP4 and end the process."""
        if self._process is None or self._released or self.exitcode is not None:
            return None
        return self._request("close")

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the process to end, then release the queue. True if it ended."""
        if self._process is None:  # never started
            self.queue.close()
            return True
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        self._release()
        return True

    def hang_up(self, timeout_s: float = 10.0) -> None:
        """Tell the process the recorder is gone: it closes its MP4 and exits."""
        self._release()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout_s)

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self.queue.close()
            self._replies.close()
            _live_workers.discard(self)

    def _died(self) -> WorkerError:
        return WorkerError(f"encoder process for {self.camera} ended unexpectedly (exit code {self.exitcode})")

    def _request(self, kind: str, *args: Any, on_progress: Callable[[str, int, int], None] | None = None
                 ) -> _Reply:
        request_id = self._next_request
        self._next_request += 1
        try:
            self.queue.put_control((kind, request_id, *args))
        except OSError:  # the process closed its end of the pipe: it is gone
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
            self._failure = self._failure or self._died()
            raise self._failure from None
        return _Reply(self, request_id, self._timeout_s, on_progress)

    def _wait(self, request_id: int | None, timeout_s: float | None = None,
              on_progress: Callable[[str, int, int], None] | None = None) -> Any:
        """Read replies until the one to `request_id` (None: the next unsolicited one).

        With `timeout_s`, an encoder that is alive but silent that long is taken as hung (SVT-AV1
        has known deadlocks at end of stream, seen here about once in a few hundred episode
        flushes under load): it is killed, so the caller gets an error instead of waiting forever.
        A progress report counts as an answer.
        """
        def new_deadline() -> float | None:
            return None if timeout_s is None else time.monotonic() + timeout_s

        deadline = new_deadline()
        while True:
            try:
                while not self._replies.poll(0.25):
                    if self.exitcode is not None and not self._replies.poll(0):
                        raise EOFError
                    if deadline is not None and time.monotonic() > deadline:
                        self._process.kill()
                        self._process.wait()
                        self._failure = WorkerError(
                            f"encoder for {self.camera} did not answer within {timeout_s:g} s and was stopped "
                            "(a hung encoder; the episodes saved before are kept)")
                        raise self._failure
                got_id, kind, value = self._replies.recv()
            except EOFError:
                self._failure = self._failure or self._died()
                raise self._failure from None
            if kind == "busy":  # a fallback re-encoding an episode (see _fallback): alive, not hung
                deadline = new_deadline()
            elif kind == "progress":
                deadline = new_deadline()
                if on_progress is not None and got_id == request_id:
                    on_progress(self.camera, *value)
            elif kind == "error":
                error = WorkerError(f"encoder for {self.camera} failed: {value.strip().splitlines()[-1]}")
                error.__cause__ = _RemoteError(value)
                self._failure = self._failure or error
                if got_id == request_id:
                    raise error
            elif got_id == request_id:
                return value


class _Reply:
    """The answer to one request to an encoder process, read when asked for."""

    def __init__(self, worker: EncoderWorker, request_id: int, timeout_s: float,
                 on_progress: Callable[[str, int, int], None] | None) -> None:
        self._worker = worker
        self._id = request_id
        self._timeout_s = timeout_s
        self._on_progress = on_progress

    def result(self) -> Any:
        return self._worker._wait(self._id, self._timeout_s, self._on_progress)

