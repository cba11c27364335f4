"""An OpenCV camera: a USB/V4L2 device, a video file played in real time, or an RTSP stream, read on its own thread."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._configs import OpenCVCameraConfig
from ._source import CameraSource, SourceError

log = logging.getLogger("streamrec")


def _import_cv2(name: str) -> Any:
    """OpenCV is optional: imported only when an `opencv` camera opens."""
    try:
        import cv2
    except ImportError as e:
        raise SourceError(f"camera {name!r} (opencv): OpenCV is not installed ({e}); "
                          "pip install 'streamrec[opencv]'") from e
    return cv2


class OpenCVSource(CameraSource):
    """A camera read by `cv2.VideoCapture` on its own thread, `streamrec-camera-<name>`.

    The thread grabs frames as the camera delivers them, converts each to RGB (resizing only if
    the camera cannot deliver the configured size) and keeps the latest one with its capture
    time. `read_timed()` takes that frame without waiting for the camera, so a slow or stalled
    camera never holds up the capture loop or the other cameras; it raises `SourceError` once no
    new frame has arrived for `stall_timeout_s`. When no new frame arrived since the last read,
    the same frame (and capture time) is returned again.

    Three buffers rotate: the thread writes into its own, then swaps it with the "latest" one
    under the lock; a read swaps "latest" with the one it hands out. The thread never touches the
    buffer handed out, so no frame is copied and it stays valid until the next read.

    A video file is played at its frame rate (or `fps`), like a camera, and starts again at its
    end (reopened), so a short clip can stand in for a camera in demos and tests.
    """

    config: OpenCVCameraConfig

    _RETRY_S = 0.01
    """Wait after a failed grab or reopen before trying again, so that a dead camera does not spin a core."""
    _JOIN_MARGIN_S = 10.0
    """close() waits this much longer than stall_timeout_s for the thread: V4L2 gives up a grab after ~10 s."""

    def __init__(self, name: str, config: OpenCVCameraConfig) -> None:
        super().__init__(name, config)
        self._kind = "device"
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first = threading.Event()
        self._lock = threading.Lock()
        self._shape: tuple[int, int, int] | None = None
        self._reset()

    def _reset(self) -> None:
        # Owned by the thread: the buffer it writes into.
        self._back: np.ndarray | None = None
        self._resize_warned = False
        # Shared, under the lock.
        self._ready: np.ndarray | None = None
        self._ready_time = 0.0
        self._fresh = False
        self._last_frame_at = 0.0
        self._last_error: str | None = None
        self._failure: BaseException | None = None
        self.frames_read = 0  # frames taken from the camera since open
        # Owned by the reader (the capture loop): the buffer last handed out.
        self._front: np.ndarray | None = None
        self._front_time = 0.0

    @property
    def shape(self) -> tuple[int, int, int]:
        assert self._shape is not None, "known once the source is open"
        return self._shape

    @property
    def what(self) -> str:
        """The camera as a person would name it: `device 0`, `file clip.mp4`, `stream rtsp://...`."""
        return f"{self._kind} {self.config.index_or_path}"

    def _open_impl(self) -> None:
        cv2 = _import_cv2(self.name)
        target = self.config.index_or_path
        self._kind = ("device" if isinstance(target, int) else "stream" if "://" in target
                      else "file" if Path(target).is_file() else "device")  # /dev/video0 is not a regular file
        self._reset()
        self._stop.clear()
        self._first.clear()
        capture = self._open_capture(cv2)
        period_s = None
        if self._kind == "file":
            fps = self.config.fps or capture.get(cv2.CAP_PROP_FPS)
            period_s = 1.0 / fps if 0 < fps <= 1000 else 1.0 / 30  # some containers report 0 or nonsense
        self._thread = threading.Thread(target=self._run, args=(cv2, capture, period_s),
                                        name=f"streamrec-camera-{self.name}")
        self._thread.start()
        self._first.wait(self.config.warmup_s)
        with self._lock:
            failure, frames, error = self._failure, self.frames_read, self._last_error
        if failure is None and frames:
            return
        self._stop_thread()
        if failure is not None:
            raise SourceError(f"camera {self.name!r} (opencv): {self.what}: {failure}") from failure
        raise SourceError(f"camera {self.name!r} (opencv): {self.what} opened but gave no frame within "
                          f"warmup_s = {self.config.warmup_s:g} s; last error: {error or 'none'}")

    def _open_capture(self, cv2: Any) -> Any:
        """A new, opened VideoCapture; OSError saying why not (the base class names the camera)."""
        target = self.config.index_or_path
        if self._kind == "stream":
            # Bound the FFmpeg backend's blocking calls, so a dead server cannot hang open() or close().
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(self.config.warmup_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(self.config.stall_timeout_s * 1000)]
            capture = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        else:
            if isinstance(target, str) and not Path(target).exists():
                raise OSError(f"{target} does not exist")
            capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            raise OSError(f"OpenCV could not open {self.what}")
        if self._kind == "device":
            # Requests only: a camera picks its nearest mode; the size it really delivers is checked per frame.
            if self.config.width is not None:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
            if self.config.fps is not None:
                capture.set(cv2.CAP_PROP_FPS, self.config.fps)
        return capture

    def _run(self, cv2: Any, capture: Any, period_s: float | None) -> None:
        """The reader thread: grab until stopped; a file is paced to `period_s` and reopened at its end."""
        bgr = None
        due = None
        frames_since_open = 0
        try:
            while not self._stop.is_set():
                if capture is None:
                    try:
                        capture = self._open_capture(cv2)
                        frames_since_open = 0
                    except OSError as e:
                        self._note_error(f"could not reopen: {e}")
                        self._stop.wait(self._RETRY_S)
                        continue
                if not capture.grab():
                    if self._kind == "file" and frames_since_open:
                        capture.release()  # end of the file: play it again
                        capture = None
                        continue
                    self._note_error(f"grab() got no frame from {self.what}")
                    self._stop.wait(self._RETRY_S)
                    continue
                frames_since_open += 1
                if period_s is not None:
                    # Play a file at its frame rate, as a camera would deliver it, not as fast as it decodes.
                    now = time.monotonic()
                    due = now if due is None or now > due + period_s else due
                    if self._stop.wait(max(0.0, due - now)):
                        break
                    due += period_s
                captured_at = time.time()
                ok, bgr = capture.retrieve(bgr)
                if not ok or bgr is None:
                    self._note_error(f"retrieve() could not decode the frame grabbed from {self.what}")
                    continue
                self._publish(cv2, bgr, captured_at)
        except BaseException as e:  # stored, and raised by the next read() in the capture loop
            with self._lock:
                self._failure = e
        finally:
            if capture is not None:
                capture.release()
            self._first.set()  # wake open() at once if the thread ends before a first frame

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message

    def _publish(self, cv2: Any, bgr: np.ndarray, captured_at: float) -> None:
        if self._back is None:  # the first frame decides the buffers' size
            if self.config.width is not None:
                h, w = self.config.height, self.config.width
            else:
                h, w = bgr.shape[:2]
                if h % 2 or w % 2:
                    raise SourceError(f"it delivers {w}x{h} images; the encoders need even sizes: set width and "
                                      "height in the camera's spec (frames are then resized)")
            self._shape = (h, w, 3)
            self._back, self._ready, self._front = (np.zeros(self._shape, np.uint8) for _ in range(3))
        h, w, _ = self.shape
        if bgr.shape[:2] != (h, w):
            if not self._resize_warned:
                self._resize_warned = True
                log.warning("camera %r (opencv): %s delivers %dx%d, not the configured %dx%d; resizing every "
                            "frame (costs CPU; pick a size the camera supports to avoid it)",
                            self.name, self.what, bgr.shape[1], bgr.shape[0], w, h)
            bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        if self.config.color_mode == "bgr":
            code = cv2.COLOR_GRAY2BGR if bgr.ndim == 2 else cv2.COLOR_BGRA2BGR if bgr.shape[2] == 4 else None
        else:
            code = (cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGRA2RGB if bgr.shape[2] == 4
                    else cv2.COLOR_BGR2RGB)
        if code is None:
            np.copyto(self._back, bgr)
        else:
            self._back = cv2.cvtColor(bgr, code, dst=self._back)  # writes into _back; keep what it returns anyway
        with self._lock:
            self._back, self._ready = self._ready, self._back
            self._ready_time = captured_at
            self._fresh = True
            self._last_frame_at = time.monotonic()
            self.frames_read += 1
        self._first.set()

    def read_timed(self) -> tuple[np.ndarray, float]:
        """The latest frame and its capture time (time.time() when it was grabbed); never waits for the camera.

        Raises:
            SourceError: no new frame for `stall_timeout_s`, or the reader thread failed; the message
                names the camera and its last error.
        """
        with self._lock:
            if self._fresh:
                self._front, self._ready = self._ready, self._front
                self._front_time, self._fresh = self._ready_time, False
            silent_s = time.monotonic() - self._last_frame_at
            failure, error = self._failure, self._last_error
        if failure is not None:
            raise SourceError(f"camera {self.name!r} (opencv): reading {self.what} failed: {failure}") from failure
        if silent_s > self.config.stall_timeout_s:
            raise SourceError(f"camera {self.name!r} (opencv): no new frame from {self.what} for {silent_s:.1f} s "
                              f"(stall_timeout_s = {self.config.stall_timeout_s:g}); last error: {error or 'none'}")
        assert self._front is not None
        return self._front, self._front_time

    def read(self) -> np.ndarray:
        return self.read_timed()[0]

    def _close_impl(self) -> None:
        self._stop_thread()
        self._back = self._ready = self._front = None

    def _stop_thread(self) -> None:
        """Stop the thread and wait for it; it releases the capture itself (never while it is inside a grab)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(self.config.stall_timeout_s + self._JOIN_MARGIN_S)
        if thread.is_alive():
            log.warning("camera %r (opencv): its reader thread is still blocked in the camera driver; "
                        "leaving it to finish on its own", self.name)
