"""The encoder process of one camera (`sr-<camera>` in `ps`): takes frames and requests, answers.

It is started by `_worker.EncoderWorker` as a fresh interpreter (`python -c`, see there why not
multiprocessing) that inherits the queue's shared memory and pipe and a reply pipe. It reads
messages in order (`_messages`): a frame is encoded (streaming) or written as a PNG (PNG path); a
request is answered once every frame sent before it is done. After a failure it keeps taking frames
(giving their buffers back) so that the capture loop is never stuck, refuses every request but
`Close`, and still closes the MP4 that holds the episodes saved before it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

import av

from .._errors import WorkerError
from .._platform import name_thread
from ..dataset._depth import DepthStatsSampler
from ..dataset._layout import Layout
from ..dataset._stats import ImageStatsSampler
from ._camera import CameraEncoder
from ._depth import DepthFrames
from ._idle import IdleEncoder, SaveThread
from ._messages import (
    Close,
    DiscardEpisode,
    Done,
    EncoderSpec,
    EncodeSpilled,
    EndEpisode,
    EpisodeEnd,
    Failed,
    FrameReady,
    Progress,
    Request,
)
from ._priority import demote_current_thread
from ._queue import FrameQueueReader, ReaderHandle
from ._spill import ImageSpill

# Ctrl-C is the recorder's to handle (the process also has its own session).
COMMAND = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
           "from streamrec.encode._child import main; main(sys.argv[1:])")
"""What `python -c` runs; also how `_worker.encoder_processes` recognises an encoder process."""


def main(argv: list[str]) -> None:
    """Entry of an encoder process; `argv[0]` holds its inherited descriptors as JSON."""
    fds = json.loads(argv[0])
    # FFmpeg's errors go to stderr and into the exceptions PyAV raises (so into WorkerError);
    # STREAMREC_FFMPEG_LOG=verbose shows more when debugging an encoder.
    av.logging.set_level(getattr(av.logging, os.environ.get("STREAMREC_FFMPEG_LOG", "error").upper()))
    queue = FrameQueueReader(ReaderHandle(tuple(fds["shape"]), fds["buffers"], fds["memory_fd"], fds["pipe_fd"],
                                          fds.get("dtype", "uint8")))
    replies = Connection(fds["replies_fd"], readable=False)
    spec: EncoderSpec = queue.get()
    name_thread(f"sr-{spec.camera.rsplit('.', 1)[-1]}")
    serve(spec, queue, replies)


def serve(spec: EncoderSpec, queue: FrameQueueReader, replies: Connection) -> None:
    """The process's loop: take the next message, act on its type, until `Close` or end of input."""
    process = _EncoderProcess(spec, queue, replies)
    process.open()
    while True:
        try:
            message = queue.get()
        except EOFError:  # the recorder hung up or died: keep what was saved readable
            process.hang_up()
            return
        match message:
            case FrameReady(slot, buffer):
                process.take_frame(slot, buffer)
            case Close():
                process.close(message)
                return
            case _:
                process.answer(message)


class _EncoderProcess:
    """The state of one encoder process: its camera's encoder, the PNG path's parts, a failure."""

    def __init__(self, spec: EncoderSpec, queue: FrameQueueReader, replies: Connection) -> None:
        self.spec = spec
        self.queue = queue
        # Started before this thread is demoted, so that it keeps normal priority (see SaveThread).
        self.save_thread = None if spec.streaming else SaveThread()
        demote_current_thread(spec.nice)
        self.replies = _LockedConnection(replies)  # the idle encoder's thread may report too
        # Liveness goes through the queue's header, where the recorder looks while it waits.
        self.encoder = CameraEncoder(spec, busy=queue.beat, progress=queue.report_progress)
        self.depth = DepthFrames(spec.encoder) if spec.depth else None
        self.spill = None if spec.streaming else ImageSpill(Layout(spec.root), spec.camera, spec.width,
                                                               spec.height, spec.fps, self.depth)
        # In memory up to a second of frames (at most 64 MB: 10 frames at 1920x1080); beyond that,
        # up to an hour of slots to read back from their PNGs.
        in_memory = max(2, min(spec.fps, 64 * 2**20 // (spec.width * spec.height * 3)))
        self.idle = IdleEncoder(self.encoder, self.spill, in_memory, spec.fps * 3600) \
            if self.spill is not None and spec.pre_encode else None
        self.sampler = self._new_sampler()
        self.failure: str | None = None
        """The formatted exception that stopped this process from encoding, if any."""

    def fail(self, e: BaseException, request_id: int | None) -> None:
        self.failure = "".join(traceback.format_exception(e)).rstrip()
        self.replies.send(Failed(request_id, self.failure))
        self.queue.mark_failed()

    def open(self) -> None:
        """Open the first encoder, so that bad settings fail when the recorder is created."""
        try:
            self.encoder.open_episode()
            if self.spill is not None:
                self.encoder.abort_episode()  # opened only to check the settings
            self.replies.send(Done(0))
        except BaseException as e:  # noqa: BLE001 - reported to the recorder
            self.fail(e, 0)

    def take_frame(self, slot: int, buffer: int) -> None:
        try:
            if self.failure is None:
                array = self.queue.buffer(buffer)
                self.sampler.maybe_add(slot, array)
                if self.spill is None:
                    # from_ndarray copies, so the buffer can go back to the queue
                    self.encoder.encode_slot(slot, av.VideoFrame.from_ndarray(array, format="rgb24")
                                             if self.depth is None else self.depth.to_frame(array))
                    if self.spec.adapt:
                        self.encoder.watch_queue(self.queue.depth() - 1)  # less this frame, released below
                else:
                    frame = self.spill.write(slot, array, for_video=self.idle is not None)
                    if frame is not None and self.idle is not None:
                        self.idle.offer(slot, frame)
        except BaseException as e:  # noqa: BLE001 - reported to the recorder
            self.fail(e, None)
        finally:
            self.queue.release(buffer)

    def answer(self, request: Request) -> None:
        try:
            if self.idle is not None:
                self.idle.pause()  # from here on this thread (or the save thread) owns the encoder
            if self.failure is not None:
                self.replies.send(Failed(request.request_id, f"failed earlier:\n{self.failure}"))
                return
            match request:
                case EndEpisode(request_id, frames, episode_index):
                    self.replies.send(Done(request_id, self._end_episode(frames, episode_index)))
                    self._next_episode()  # after the answer: the recorder need not wait for it
                case DiscardEpisode(request_id):
                    self._discard_episode()
                    self.replies.send(Done(request_id))
                    self._next_episode()
                case EncodeSpilled(request_id, episodes):
                    videos = self.save_thread.call(functools.partial(
                        self.encoder.encode_spilled, list(episodes), _ProgressReport(self.replies, request_id)))
                    self.replies.send(Done(request_id, videos))
                case _:
                    raise WorkerError(f"unknown request {request!r}")
        except BaseException as e:  # noqa: BLE001 - reported to the recorder
            self.fail(e, request.request_id)

    def _end_episode(self, frames: int, episode_index: int) -> EpisodeEnd:
        spill, encoder = self.spill, self.encoder
        if spill is None:
            video = encoder.finish_episode(frames, episode_index)
        elif spill.frames == 0:
            raise WorkerError(f"{self.spec.camera}: every frame of the episode was dropped; nothing to keep")
        else:
            spill.keep(episode_index)
            video = None
            if encoder.open_slots:
                encoder.pre_encoded = episode_index
        return EpisodeEnd(self.spec.camera, self.sampler.stats(), video, encoder.open_slots if spill is not None else 0)

    def _discard_episode(self) -> None:
        self.encoder.abort_episode()
        if self.spill is not None:
            self.spill.discard()

    def _new_sampler(self) -> ImageStatsSampler | DepthStatsSampler:
        stride = self.spec.fps // 10
        return ImageStatsSampler(stride) if self.depth is None else DepthStatsSampler(stride)

    def _next_episode(self) -> None:
        self.sampler = self._new_sampler()
        if self.spill is None:
            self.encoder.open_episode()  # streaming: the next frame is encoded as it arrives

    def close(self, request: Close) -> None:
        try:
            if self.idle is not None:
                self.idle.pause()
            self.encoder.abort_episode()
            self.encoder.close_file()  # also after a failure: the saved episodes' file must close
            self.replies.send(Done(request.request_id))
        except BaseException as e:  # noqa: BLE001 - reported; the process ends either way
            self.fail(e, request.request_id)

    def hang_up(self) -> None:
        """The recorder is gone: note the episode it never saved (repair reports it), close the MP4."""
        with contextlib.suppress(BaseException):
            if self.idle is not None:
                self.idle.pause()
            frames = self.encoder.open_slots if self.spill is None else self.spill.frames
            if frames:
                note = Layout(self.spec.root).unsaved_note(self.spec.camera)
                note.parent.mkdir(parents=True, exist_ok=True)
                note.write_text(json.dumps({"frames": frames}))
            self.encoder.abort_episode()
            self.encoder.close_file()


class _LockedConnection:
    """The reply pipe, shared by the threads of an encoder process (a message must not interleave)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self._lock:
            self._conn.send(message)


class _ProgressReport:
    """Tells the recorder how a long request is going, at most a few times a second (this is
    also what keeps the recorder from taking a busy encoder for a hung one)."""

    INTERVAL_S = 0.5

    def __init__(self, replies: _LockedConnection, request_id: int) -> None:
        self._replies = replies
        self._id = request_id
        self._last = time.monotonic()

    def __call__(self, episode_index: int, frames_done: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.INTERVAL_S:
            self._last = now
            self._replies.send(Progress(self._id, episode_index, frames_done))
