"""`CameraSource`: what the capture loop asks of a camera — open once, read once per tick, close."""

from __future__ import annotations

import abc
import logging
import time
from typing import Any

import numpy as np

from .._errors import StreamrecError

log = logging.getLogger("streamrec")


class SourceError(StreamrecError, RuntimeError):
    """A camera or robot source could not be opened or read; the message names it and the cause."""




class CameraSource(abc.ABC):
    """One camera: `open()` once, `read()` once per tick, `close()` once (safe to repeat).

    Args:
        name: The camera's name (the `<name>` of `observation.images.<name>`).
        config: Its config dataclass.
    """

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self._open = False

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int, int]:
        """(height, width, 3) of the images `read()` returns; known once the source is open."""

    @abc.abstractmethod
    def _open_impl(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> np.ndarray:
        """The next image, (H, W, 3) uint8 RGB; valid until the next call."""

    def _close_impl(self) -> None:  # noqa: B027 - most sources hold nothing to release
        pass

    def read_timed(self) -> tuple[np.ndarray, float]:
        """The next image and its capture time (wall clock, seconds since the epoch).

        This default stamps the image when `read()` returns; a source whose driver stamps its
        frames (at exposure) overrides it to return that time instead.
        """
        image = self.read()
        return image, time.time()

    def read_into(self, out: np.ndarray) -> float:
        """Put the next image into `out` (a queue buffer from `DatasetRecorder.frame_buffer`); returns
        its capture time. This default copies what `read_timed()` returns; a source that can fill a
        given array itself overrides it, and then the image is never copied."""
        image, captured_at = self.read_timed()
        np.copyto(out, image)
        return captured_at

    def open(self) -> None:
        """Acquire the camera (or decode the clip).

        Raises:
            SourceError: it could not be opened; the message names the camera and the cause.
        """
        try:
            self._open_impl()
        except SourceError:
            raise
        except Exception as e:
            raise SourceError(f"camera {self.name!r} ({self.config.type}): could not open: {e}") from e
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._close_impl()

    def __enter__(self) -> CameraSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"{self.shape[1]}x{self.shape[0]}" if self._open else "closed"
        return f"<{type(self).__name__} {self.name!r} {state}>"
