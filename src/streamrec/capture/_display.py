"""Live display of a recording (`streamrec record --display_data=true`) through Rerun.

The capture loop must never wait for the display. Each tick it hands `DisplayWorker.offer()` the
robot values and, at most `image_hz` times a second, shrunk copies of the camera images (the
sources reuse their buffers, so the copy cannot be left to the other thread). `offer()` puts them
on a small queue and returns; the thread `streamrec-display` takes them off and logs them to
Rerun. When the queue is full the oldest tick is dropped and counted, so a slow viewer costs
display frames, never capture time.

Where there is a screen (DISPLAY or WAYLAND_DISPLAY set, or macOS, or Windows) the Rerun viewer
is spawned; elsewhere (a headless robot computer, CI, ssh) everything is saved to `<root>.rrd`
next to the dataset, to open later with `rerun <root>.rrd`. Rerun is optional:
`pip install 'streamrec[display]'`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._errors import ConfigError, StreamrecError

log = logging.getLogger("streamrec")

THREAD_NAME = "streamrec-display"


class DisplayError(StreamrecError, RuntimeError):
    """The live display failed (its thread stopped on an error, or Rerun could not start); the
    message says why, and the original exception is the cause. Recording itself is not affected."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DisplayConfig:
    """How much of each tick the live display gets."""

    image_hz: float = 10.0
    """Camera images shown per second; the other ticks send only robot values (no image copy)."""
    max_width: int = 320
    """Wider images are shrunk by a whole factor (every 2nd, 3rd... pixel) before they are queued."""
    queue_maxsize: int = 4
    """Ticks waiting for the display thread; when full, the oldest is dropped and counted."""
    jpeg_quality: int | None = 80
    """Images are sent to Rerun as JPEG of this quality (keeps the viewer's memory and an .rrd small); null
    sends raw pixels."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"DisplayConfig.{name} = {getattr(self, name)!r}: {rule}")

        if isinstance(self.image_hz, bool) or not isinstance(self.image_hz, (int, float)) or not (
                math.isfinite(self.image_hz) and self.image_hz > 0):
            raise bad("image_hz", "must be a number > 0")
        for name in ("max_width", "queue_maxsize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, "must be an integer >= 1")
        q = self.jpeg_quality
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100):
            raise bad("jpeg_quality", "must be an integer from 1 to 100, or null for raw pixels")


@dataclass(slots=True)
class DisplayTick:
    """What one tick sends to the display."""

    index: int
    """Row index over the whole recording (the dataset's `index` column for saved episodes)."""
    episode_index: int
    frame_index: int
    capture_time_s: float
    """Wall-clock time of the tick's first image, seconds since the epoch."""
    values: dict[str, np.ndarray]
    """Robot values (observation.state, action), copied."""
    images: dict[str, np.ndarray] = field(default_factory=dict)
    """Shrunk copies of the camera images, by feature key; empty on ticks without images."""


class DisplaySink(Protocol):
    """Where the display thread sends ticks: Rerun, or anything else with these two calls."""

    def log(self, tick: DisplayTick) -> None: ...

    def close(self) -> None: ...


def has_screen() -> bool:
    """True where a viewer window can open: an X11 or Wayland session, macOS or Windows."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def rrd_path_for(root: str | Path) -> Path:
    """Where a recording without a screen saves its display: `<root>.rrd`, next to the dataset folder."""
    root = Path(root)
    return root.with_name(root.name + ".rrd")


def import_rerun() -> Any:
    """Rerun is optional: imported only when the live display is asked for.

    Raises:
        ConfigError: rerun-sdk is not installed; the message names the pip command.
    """
    try:
        import rerun
    except ImportError as e:
        raise ConfigError(f"RecordConfig.display_data = True: the live display needs rerun-sdk, which is not "
                          f"installed ({e}); pip install 'streamrec[display]'") from e
    return rerun


class RerunSink:
    """Logs ticks to a Rerun recording: spawns the viewer, or saves to an .rrd file.

    Entity paths are the dataset's feature keys (`observation.images.<camera>`, `observation.state`,
    `action`); timelines are `index`, `episode_index`, `frame_index` and `capture_time`.

    Args:
        rrd_path: Save to this file instead of spawning the viewer.
        value_names: Feature key -> names of its entries (shown as series names), or None.
        jpeg_quality: See `DisplayConfig.jpeg_quality`.
        application_id: Rerun's application id (the viewer groups recordings by it).
    """

    def __init__(self, *, rrd_path: Path | None, value_names: Mapping[str, Sequence[str] | None],
                 jpeg_quality: int | None = 80, application_id: str = "streamrec") -> None:
        rr = import_rerun()
        self._rr = rr
        self._jpeg_quality = jpeg_quality
        self.rrd_path = rrd_path
        self._stream = rr.RecordingStream(application_id)
        try:
            if rrd_path is None:
                # Rerun looks for its viewer on PATH, which lacks the venv's bin/ unless the venv is activated.
                viewer = Path(sys.executable).with_name("rerun")
                rr.spawn(recording=self._stream, executable_path=str(viewer) if viewer.is_file() else None)
            else:
                self._stream.save(str(rrd_path))
            for key, names in value_names.items():
                if names:
                    self._stream.log(key, rr.SeriesLines(names=list(names)), static=True)
        except Exception as e:
            self._stream.disconnect()
            where = f"save to {rrd_path}" if rrd_path is not None else "spawn the Rerun viewer"
            raise DisplayError(f"live display: could not {where}: {e}") from e

    def log(self, tick: DisplayTick) -> None:
        rr, stream = self._rr, self._stream
        stream.set_time("index", sequence=tick.index)
        stream.set_time("episode_index", sequence=tick.episode_index)
        stream.set_time("frame_index", sequence=tick.frame_index)
        stream.set_time("capture_time", timestamp=tick.capture_time_s)
        for key, image in tick.images.items():
            if image.dtype == np.uint16:  # a depth camera's millimetres, shown as depth (not compressed)
                stream.log(key, rr.DepthImage(image.reshape(image.shape[:2]), meter=1000.0))
                continue
            archetype = rr.Image(image)
            if self._jpeg_quality is not None:
                archetype = archetype.compress(jpeg_quality=self._jpeg_quality)
            stream.log(key, archetype)
        for key, value in tick.values.items():
            stream.log(key, rr.Scalars(value))

    def close(self) -> None:
        """Send what is buffered (the whole .rrd is written when this returns), then disconnect."""
        try:
            self._stream.flush()
        finally:
            self._stream.disconnect()


class DisplayWorker:
    """Feeds a `DisplaySink` from the capture loop without ever making the loop wait.

    `offer()` runs on the capture thread: it copies what the display needs and appends it to a
    bounded queue, dropping (and counting) the oldest tick when the queue is full. The thread
    `streamrec-display` logs the ticks to the sink. An error in the sink stops the thread; the
    next `offer()` raises `DisplayError` with it as the cause, so the caller decides (the record
    command carries on without a display).

    `start()` once; `stop()` (safe to repeat) lets the thread log what is queued, close the sink and
    end; `join(timeout)` says whether it has.

    Args:
        sink: Where ticks go (a `RerunSink`).
        config: Rates and sizes; see `DisplayConfig`.
    """

    def __init__(self, sink: DisplaySink, config: DisplayConfig | None = None) -> None:
        self.sink = sink
        self.config = config or DisplayConfig()
        self._queue: deque[DisplayTick] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._next_image_at = 0.0
        self.offered = 0
        """Ticks offered by the capture loop."""
        self.dropped = 0
        """Ticks dropped unlogged because the queue was full (the oldest goes)."""
        self.logged = 0
        """Ticks the sink has logged."""
        self.max_depth = 0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("DisplayWorker.start(): already started")
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME)
        self._thread.start()

    def offer(self, *, index: int, episode_index: int, frame_index: int, capture_time_s: float,
              images: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray]) -> None:
        """Queue one tick for the display; never blocks on the display thread.

        Images are copied (shrunk to `max_width`) only when an image is due (`image_hz`).

        Raises:
            DisplayError: the display thread stopped on an error (the cause).
        """
        if self._failure is not None:
            raise DisplayError(f"live display stopped: {self._failure}") from self._failure
        now = time.monotonic()
        tick = DisplayTick(index, episode_index, frame_index, capture_time_s,
                           {key: np.array(value, copy=True) for key, value in values.items()})
        if now >= self._next_image_at:
            # Keep the rate without drifting, but never owe a burst after a pause.
            period = 1.0 / self.config.image_hz
            self._next_image_at = max(self._next_image_at + period, now)
            tick.images = {key: shrink(image, self.config.max_width) for key, image in images.items()}
        with self._cond:
            if self._stopping:
                return
            self.offered += 1
            if len(self._queue) >= self.config.queue_maxsize:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(tick)
            self.max_depth = max(self.max_depth, len(self._queue))
            self._cond.notify()

    def stop(self) -> None:
        """Ask the thread to log what is queued, close the sink and end. Safe to call twice."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended (or never started)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped the thread, if any."""
        return self._failure

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue:
                        break  # stopping, and everything queued was logged
                    tick = self._queue.popleft()
                self.sink.log(tick)
                self.logged += 1
        except BaseException as e:  # stored, and raised by the next offer() on the capture thread
            self._failure = e
            with self._cond:
                self._queue.clear()
        finally:
            try:
                self.sink.close()
            except BaseException as e:
                if self._failure is None:
                    self._failure = e


def shrink(image: np.ndarray, max_width: int) -> np.ndarray:
    """A contiguous copy of `image`, every k-th pixel in both directions, with k the smallest whole
    factor that brings the width to `max_width` or less (k = 1 copies it as is)."""
    factor = max(1, -(-image.shape[1] // max_width))
    return np.ascontiguousarray(image[::factor, ::factor])
