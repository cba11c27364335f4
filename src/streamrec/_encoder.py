"""One camera's encoder process: frames in from its queue, episodes out into the camera's MP4s.

Each camera is encoded in its own process (`sr-<camera>` in `ps`), fed through shared memory
(see `_queue`). A process rather than a thread because the encoder then shares no
interpreter lock with the capture loop, and because it can drop the right to real-time
priority for itself and every codec thread it starts; see ARCHITECTURE.md for the figures.

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
import json
import os
import struct
import subprocess
import sys
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

from ._config import EncoderConfig, Feature, RecorderConfig
from ._dataset import FileIndex, Layout
from ._errors import WorkerError
from ._fallback import EncoderFallback, EpisodeCodec
from ._queue import FrameQueue, FrameQueueReader, ReaderHandle
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
    stats: Stats
    flush_s: float
    """Time spent encoding the frames the encoder still held when the episode ended."""
    append_s: float
    """Time spent copying the episode's packets into the camera's MP4."""
    encoders: tuple[EncoderConfig, ...] = ()
    """The camera's encoder chain after this episode: the one that made it first, then its fallbacks."""
    fallbacks: tuple[EncoderFallback, ...] = ()
    """Encoders that failed since the previous saved episode, and what took over."""


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
                 encoder: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.at = at
        self.encoder = encoder
        """The encoder that made its packets: one per file (a fallback starts a new one)."""
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
    fallbacks: tuple[EncoderConfig, ...] = ()
    """Encoders to switch to, in order, when `encoder` fails (see `_fallback`)."""


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
        self._sampler = ImageStatsSampler(spec.fps // 10)

    def open_episode(self) -> None:
        spec = self._spec
        self._codec = EpisodeCodec(self._chain, spec.width, spec.height, spec.fps, spec.encoder_threads,
                                   self._spool_dir / "open.bin", _PacketSpool, self._fallbacks, spec.camera,
                                   self._busy)
        self._next_slot = 0
        self._last_frame = None
        self._sampler = ImageStatsSampler(spec.fps // 10)

    def encode_slot(self, slot: int, array: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(array, format="rgb24")  # a copy: the caller may reuse `array`
        self._sampler.maybe_add(slot, array)
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
        if self._file is not None and (self._file.encoder != encoder.encoder or self._file.frames
                                       and self._file.bytes + spool.bytes > self._spec.limit_bytes):
            self.close_file()  # full, or the camera's encoder changed (see _fallback): one encoder per file
        if self._file is None:
            at = self._next_file_at
            self._file = _VideoFile(self._layout.video(self._spec.camera, at), at, encoder.stream_codec,
                                    self._spec.fps, self._spec.width, self._spec.height, encoder.encoder)
            self._next_file_at = at.next(self._spec.chunks_size)
        start = self._file.append(spool)
        spool.keep(self._spool_dir / f"episode-{episode_index:06d}.bin")
        self._kept_spools.append(spool.path)
        fallbacks = tuple(self._fallbacks)
        self._fallbacks.clear()
        return VideoEpisode(camera=self._spec.camera, file=self._file.at, from_frame=start, frames=frames,
                            stats=self._sampler.stats(), flush_s=t1 - t0, append_s=time.perf_counter() - t1,
                            encoders=tuple(self._chain), fallbacks=fallbacks)

    def abort_episode(self) -> None:
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
    `(request_id, "ok" | "error", value)`. A failure while encoding frames is reported at once
    as `(None, "error", traceback)`. After a failure the process keeps taking frames (giving
    their buffers back) so that the capture loop is never stuck, refuses every request but
    "close", and still closes the MP4 that holds the episodes saved before it.
    """
    demote_current_thread(spec.nice)
    encoder = _CameraEncoder(spec, busy=lambda: replies.send((None, "busy", None)))
    failure: str | None = None

    def fail(e: BaseException, request_id: int | None) -> None:
        nonlocal failure
        failure = _describe(e)
        replies.send((request_id, "error", failure))
        queue.mark_failed()

    try:
        encoder.open_episode()
        replies.send((0, "ok", None))
    except BaseException as e:  # noqa: BLE001 - reported to the recorder
        fail(e, 0)
    while True:
        try:
            message = queue.get()
        except EOFError:  # the recorder hung up or died: keep what was saved readable
            with contextlib.suppress(BaseException):
                encoder.abort_episode()
                encoder.close_file()
            return
        if type(message) is tuple and len(message) == 2 and isinstance(message[0], int):
            slot, index = message
            try:
                if failure is None:
                    encoder.encode_slot(slot, queue.buffer(index))
            except BaseException as e:  # noqa: BLE001 - reported to the recorder
                fail(e, None)
            finally:
                queue.release(index)
            continue
        kind, request_id, *args = message
        try:
            if kind == "close":
                encoder.abort_episode()
                encoder.close_file()  # also after a failure: the saved episodes' file must close
                replies.send((request_id, "ok", None))
                return
            if failure is not None:
                replies.send((request_id, "error", f"failed earlier:\n{failure}"))
            elif kind == "end":
                result = encoder.finish_episode(*args)
                replies.send((request_id, "ok", result))
                encoder.open_episode()
            elif kind == "discard":
                encoder.abort_episode()
                replies.send((request_id, "ok", None))
                encoder.open_episode()
        except BaseException as e:  # noqa: BLE001 - reported to the recorder
            fail(e, request_id)


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
    with contextlib.suppress(OSError, AttributeError):  # name it in `top` and `ps -L`
        import ctypes

        ctypes.CDLL(None).prctl(15, f"sr-{spec.camera.rsplit('.', 1)[-1]}"[:15].encode(), 0, 0, 0)  # PR_SET_NAME
    _worker_main(spec, queue, replies)


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
                           chunks_size=config.chunks_size, nice=config.encoder_nice, fallbacks=encoders[1:])
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
        fds = {"shape": list(handle.shape), "buffers": handle.buffers, "memory_fd": handle.memory_fd,
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
        """Complete the open episode with `frames` video frames; the reply is a VideoEpisode."""
        return self._request("end", frames, episode_index)

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

    def _request(self, kind: str, *args: Any) -> _Reply:
        request_id = self._next_request
        self._next_request += 1
        self.queue.put_control((kind, request_id, *args))
        return _Reply(self, request_id, self._timeout_s)

    def _wait(self, request_id: int | None, timeout_s: float | None = None) -> Any:
        """Read replies until the one to `request_id` (None: the next unsolicited one).

        With `timeout_s`, an encoder that is alive but silent that long is taken as hung (SVT-AV1
        has known deadlocks at end of stream, seen here about once in a few hundred episode
        flushes under load): it is killed, so the caller gets an error instead of waiting forever.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
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
            if kind == "busy":  # re-encoding an episode after an encoder failed (see _fallback): not hung
                if deadline is not None:
                    deadline = time.monotonic() + timeout_s
                continue
            if kind == "error":
                error = WorkerError(f"encoder for {self.camera} failed: {value.strip().splitlines()[-1]}")
                error.__cause__ = _RemoteError(value)
                self._failure = self._failure or error
                if got_id == request_id:
                    raise error
            elif got_id == request_id:
                return value


class _Reply:
    """The answer to one request to an encoder process, read when asked for."""

    def __init__(self, worker: EncoderWorker, request_id: int, timeout_s: float) -> None:
        self._worker = worker
        self._id = request_id
        self._timeout_s = timeout_s

    def result(self) -> Any:
        return self._worker._wait(self._id, self._timeout_s)

