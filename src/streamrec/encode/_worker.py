"""The recorder's handle on one camera's encoder process, and the judge of whether it is alive.

`EncoderWorker` starts the process (`_child`), owns the camera's frame queue (`_queue`), sends
requests (`_messages`) and waits for their answers. Waiting is where a hung encoder is found: one
that is alive but silent for `encoder_timeout_s` (SVT-AV1 has known deadlocks at end of stream) is
killed, so that the caller gets an error instead of waiting forever.

The process is started with `subprocess` (a fresh interpreter), not multiprocessing: a spawned
multiprocessing child re-imports the user's script, which breaks every script without an
`if __name__ == "__main__"` guard. It runs in its own session, so Ctrl-C in the terminal reaches
only the recorder, which decides what to keep.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import WorkerError
from . import _child
from ._messages import (
    Close,
    DiscardEpisode,
    Done,
    EncoderSpec,
    EncodeSpilled,
    EndEpisode,
    Failed,
    Progress,
    Request,
)
from ._queue import FrameQueue, QueueFullPolicy


class _RemoteError(Exception):
    """The formatted traceback of an exception raised in an encoder process."""


_live_workers: weakref.WeakSet[EncoderWorker] = weakref.WeakSet()


@atexit.register
def _hang_up_on_exit() -> None:
    # A script that exits without finalize(): hang up so that each encoder closes its MP4 (the
    # saved episodes stay readable) and exits.
    for worker in list(_live_workers):
        worker.hang_up()


def encoder_processes(root: Path) -> list[int]:
    """PIDs of encoder processes (of any recorder, dead or alive) working on dataset `root`."""
    marker = json.dumps(str(root.resolve())).encode()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            if any(_child.__name__.encode() in a for a in args) and any(marker in a for a in args):
                pids.append(int(cmdline.parent.name))
    return pids


class EncoderWorker:
    """Handle, in the recorder, of one camera's encoder process and its queue.

    `end_episode`, `discard_episode` and `close` return a reply whose `result()` waits for the
    process. A failure in the process is raised as WorkerError, remote traceback as its cause.
    """

    def __init__(self, spec: EncoderSpec, policy: QueueFullPolicy, timeout_s: float) -> None:
        self.camera = spec.camera
        self.queue = FrameQueue(self.camera, spec.frame_shape, spec.queue_size, policy, spec.frame_dtype)
        self._spec = spec
        self._timeout_s = timeout_s
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
               "pipe_fd": handle.pipe_fd, "replies_fd": replies_write, "dtype": handle.dtype}
        package_root = str(Path(__file__).resolve().parents[2])  # so the child imports this very streamrec
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _child.COMMAND, json.dumps(fds)], stdin=subprocess.DEVNULL, env=env,
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

    def end_episode(self, frames: int, episode_index: int,
                    on_progress: Callable[[str, int, int], None] | None = None) -> Reply:
        """Complete the open episode with `frames` video frames; the reply is an EpisodeEnd.

        Streaming, the episode is then in the camera's MP4; otherwise its PNGs are kept for
        `encode_spilled`. While `result()` waits for the encoder to work through what it still
        holds, `on_progress(camera, episode_index, frames_done)` is called as the count grows.
        """
        return self._request(EndEpisode, frames, episode_index, on_progress=on_progress, flush_of=episode_index)

    def encode_spilled(self, episodes: list[tuple[int, int]],
                       on_progress: Callable[[str, int, int], None] | None = None) -> Reply:
        """Encode kept PNG episodes, given as (episode_index, rows), in that order; the reply is
        a list of VideoEpisode. `on_progress(camera, episode_index, frames_done)` is called from
        `result()` as the encoder reports progress."""
        return self._request(EncodeSpilled, tuple(episodes), on_progress=on_progress)

    def discard_episode(self) -> Reply:
        return self._request(DiscardEpisode)

    def close(self) -> Reply | None:
        """Discard any open episode, close the current MP4 and end the process."""
        if self._process is None or self._released or self.exitcode is not None:
            return None
        return self._request(Close)

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

    def _request(self, kind: type[Request], *args: Any, on_progress: Callable[[str, int, int], None] | None = None,
                 flush_of: int | None = None) -> Reply:
        request_id = self._next_request
        self._next_request += 1
        try:
            self.queue.put_control(kind(request_id, *args))
        except OSError:  # the process closed its end of the pipe: it is gone
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
            self._failure = self._failure or self._died()
            raise self._failure from None
        return Reply(self, request_id, self._timeout_s, on_progress, flush_of)

    def _wait(self, request_id: int | None, timeout_s: float | None = None,
              on_progress: Callable[[str, int, int], None] | None = None, flush_of: int | None = None) -> Any:
        """Read replies until the one to `request_id` (None: the next unsolicited one).

        Liveness is progress. The encoder process counts its work in the queue's header (each slot
        encoded, each frame a fallback re-encodes), and `timeout_s` counts from the last change seen,
        not from the request: an encoder that is slow but working (a slow preset, the backlog of a
        large episode, a small CPU) is waited for however long it takes. One that does no work for
        `timeout_s` while it owes an answer is taken as hung (SVT-AV1 has known deadlocks at end of
        stream, seen here about once in a few hundred episode flushes under load) and killed, so the
        caller gets an error instead of waiting forever. With `flush_of` (the episode `EndEpisode`
        ends), `on_progress` hears the episode's encoded slots as they grow.
        """
        def new_deadline() -> float | None:
            return None if timeout_s is None else time.monotonic() + timeout_s

        deadline = new_deadline()
        beats = self.queue.progress().beats
        while True:
            try:
                while not self._replies.poll(0.25):
                    if self.exitcode is not None and not self._replies.poll(0):
                        raise EOFError
                    progress = self.queue.progress()
                    if progress.beats != beats:
                        beats, deadline = progress.beats, new_deadline()
                        if flush_of is not None and on_progress is not None:
                            on_progress(self.camera, flush_of, progress.slots_done)
                    elif deadline is not None and time.monotonic() > deadline:
                        self._process.kill()
                        self._process.wait()
                        self._failure = WorkerError(
                            f"encoder for {self.camera} did no work for {timeout_s:g} s while it owed an answer "
                            "and was stopped (a hung encoder; the episodes saved before are kept)")
                        raise self._failure
                reply = self._replies.recv()
            except EOFError:
                self._failure = self._failure or self._died()
                raise self._failure from None
            match reply:
                case Progress(got_id, episode_index, frames_done):
                    deadline = new_deadline()
                    if on_progress is not None and got_id == request_id:
                        on_progress(self.camera, episode_index, frames_done)
                case Failed(got_id, text):
                    error = WorkerError(f"encoder for {self.camera} failed: {text.strip().splitlines()[-1]}")
                    error.__cause__ = _RemoteError(text)
                    self._failure = self._failure or error
                    if got_id == request_id:
                        raise error
                case Done(got_id, value) if got_id == request_id:
                    return value


class Reply:
    """The answer to one request to an encoder process, read when asked for."""

    def __init__(self, worker: EncoderWorker, request_id: int, timeout_s: float,
                 on_progress: Callable[[str, int, int], None] | None, flush_of: int | None) -> None:
        self._worker = worker
        self._id = request_id
        self._timeout_s = timeout_s
        self._on_progress = on_progress
        self._flush_of = flush_of

    def result(self) -> Any:
        return self._worker._wait(self._id, self._timeout_s, self._on_progress, self._flush_of)

