"""The bounded hand-off between the capture loop and one camera's encoder worker."""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._config import QueueFullPolicy

log = logging.getLogger("streamrec")


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counters of one camera queue since the episode started."""

    frames_in: int
    """Frames offered by the capture loop."""
    frames_dropped: int
    """Frames not queued because the queue was full (their slots repeat the previous frame)."""
    max_depth: int
    """Largest number of frames waiting at once."""


class FrameQueue:
    """A bounded hand-off of frames for one camera, with an explicit full-queue policy.

    One producer (the capture loop) and one consumer (the encoder worker). The frames live in
    `maxsize + 1` buffers allocated once (one more than the queue holds, for the frame being
    encoded): the capture loop copies each camera image into a free buffer, so it neither
    allocates nor page-faults per frame, and memory stays flat however long the episode. When
    no buffer is free the queue is full and the policy decides: drop the frame or wait.

    Control messages (end of episode, discard, close) travel on the same queue so that they
    stay ordered after the frames; they are never dropped.
    """

    def __init__(self, camera: str, shape: tuple[int, ...], maxsize: int, policy: QueueFullPolicy) -> None:
        self.camera = camera
        self.policy = policy
        self.maxsize = maxsize
        self._buffers = [np.empty(shape, np.uint8) for _ in range(maxsize + 1)]
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(self._buffers)):
            self._free.put(i)
        # Bounded by construction: each queued frame holds one of the buffers, and the recorder
        # waits for each control message's reply before sending another.
        self._q: queue.Queue[Any] = queue.Queue(maxsize=len(self._buffers) + 2)
        self._frames_in = 0
        self._frames_dropped = 0
        self._max_depth = 0

    def offer(self, slot: int, frame: np.ndarray) -> bool:
        """Queue a copy of `frame` for video slot `slot`; False when it was dropped.

        A copy because camera drivers reuse their buffers; taken only once there is room, so a
        dropped frame costs nothing.
        """
        self._frames_in += 1
        if self.policy is QueueFullPolicy.DROP:
            try:
                index = self._free.get_nowait()
            except queue.Empty:
                self._frames_dropped += 1
                n = self._frames_dropped
                if n == 1 or n % 10 == 0:
                    log.warning("Encoder queue full for %s, dropped %d frame(s)", self.camera, n)
                return False
        else:
            index = self._free.get()
        np.copyto(self._buffers[index], frame)
        self._q.put((slot, index))
        depth = self._q.qsize()
        if depth > self._max_depth:
            self._max_depth = depth
        return True

    def put_control(self, message: Any) -> None:
        self._q.put(message)

    def get(self) -> Any:
        """Next message: a control object, or `(slot, buffer_index)` for a frame."""
        return self._q.get()

    def buffer(self, index: int) -> np.ndarray:
        return self._buffers[index]

    def release(self, index: int) -> None:
        """Give a frame's buffer back once the worker no longer reads it."""
        self._free.put(index)

    def depth(self) -> int:
        return self._q.qsize()

    def stats(self) -> QueueStats:
        return QueueStats(self._frames_in, self._frames_dropped, self._max_depth)

    def reset_stats(self) -> None:
        self._frames_in = self._frames_dropped = self._max_depth = 0
