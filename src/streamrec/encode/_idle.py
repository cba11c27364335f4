"""The PNG path's two extra threads in an encoder process: encoding at idle priority while recording,
and encoding saved episodes at normal priority.

With `streaming_encoding=False` the encoder process writes PNGs while recording (`_spill`) and the
video is encoded from them when episodes are saved. `IdleEncoder` uses CPU time nothing else wants
to encode the episode being recorded meanwhile, so that saving has less left to do; `SaveThread`
runs that saving, since the process's own thread is demoted below the capture loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import av

from .._platform import name_thread
from ._camera import CameraEncoder
from ._priority import demote_current_thread
from ._spill import ImageSpill, read_png


class IdleEncoder:
    """PNG path: encodes the episode being recorded with CPU time nothing else wants.

    Its thread runs under SCHED_IDLE, so it never takes CPU from the capture loop, from the PNG
    writing, or from any other program of the robot; the codec threads it starts inherit that.
    On a machine with spare CPU most of the episode is encoded by the time it is saved, and
    saving only encodes the rest from its PNGs. It takes up to `frames_cap` frames in memory;
    past that (it has fallen behind) it is told only which PNG to read back. The queue holds at
    most `slots_cap` items; if even that fills, it stops for the rest of the episode (it cannot
    skip a frame). An error here is not the recording's: saving then encodes the whole episode.
    """

    def __init__(self, encoder: CameraEncoder, spill: ImageSpill, frames_cap: int, slots_cap: int) -> None:
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
        name_thread("sr-idle")
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        png = av.CodecContext.create("png", "r")
        while True:
            slot, frame = self._queue.get()
            in_memory = frame is not None
            try:
                if self._error is None and not self._cancel:
                    if frame is None:
                        frame = read_png(self._spill.open_frame_path(slot), png, self._spill.depth)
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


class SaveThread:
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
        name_thread("sr-save")
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
