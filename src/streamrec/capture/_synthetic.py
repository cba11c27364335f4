"""The synthetic camera (a scrolling, textured, noisy pattern showing the frame number) and a made-up arm."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._configs import SyntheticCameraConfig
from ._robot import RobotSource
from ._source import CameraSource

log = logging.getLogger("streamrec")


@dataclass(frozen=True, slots=True)
class DigitLayout:
    """Where the frame number is drawn: `digits` seven-segment digits in a dark panel at top left."""

    top: int
    left: int
    height: int
    """Digit height in pixels."""
    width: int
    stroke: int
    gap: int
    digits: int

    @classmethod
    def for_shape(cls, height: int, width: int) -> DigitLayout:
        dh = max(10, height // 4)
        dw, stroke, gap = dh // 2, max(2, dh // 8), max(2, dh // 6)
        margin = max(2, height // 32)
        digits = max(1, min(6, (width - 3 * margin) // (dw + gap)))
        return cls(2 * margin, 2 * margin, dh, dw, stroke, gap, digits)

    def segments(self, position: int) -> dict[str, tuple[slice, slice]]:
        """Row and column slices of the 7 segments (a..g, clockwise from the top, g in the middle)."""
        t, s = self.top, self.stroke
        x = self.left + position * (self.width + self.gap)
        mid = t + (self.height - s) // 2
        w, h = self.width, self.height
        return {
            "a": (slice(t, t + s), slice(x, x + w)),
            "b": (slice(t, mid + s), slice(x + w - s, x + w)),
            "c": (slice(mid, t + h), slice(x + w - s, x + w)),
            "d": (slice(t + h - s, t + h), slice(x, x + w)),
            "e": (slice(mid, t + h), slice(x, x + s)),
            "f": (slice(t, mid + s), slice(x, x + s)),
            "g": (slice(mid, mid + s), slice(x, x + w)),
        }

    @property
    def panel(self) -> tuple[slice, slice]:
        pad = self.gap
        right = self.left + self.digits * (self.width + self.gap) - self.gap
        return slice(self.top - pad, self.top + self.height + pad), slice(self.left - pad, right + pad)


SEGMENTS_OF_DIGIT = ("abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg")
"""Seven-segment encoding of 0..9."""


class SyntheticSource(CameraSource):
    """A test scene that costs an encoder about what a robot camera does: a static textured
    background with sensor-like noise, a textured object sweeping across it, and the frame
    number (since open) drawn as large seven-segment digits.

    Everything expensive happens once in `open()`; a read is one frame copy, one small patch
    copy and a few dozen rectangle fills, well under a millisecond at 640x480.
    """

    _VARIANTS = 4
    """Noise variants of the background; consecutive frames use different ones."""
    _NOISE_SIGMA = 2.0
    """Standard deviation of the per-pixel noise, in 8-bit levels (a camera in good light)."""
    _OBJECT_FRACTION = 0.25
    """Side of the moving object as a fraction of the frame height."""
    _PERIOD_FRAMES = 150
    """Frames for the object to sweep back and forth once (5 s at 30 fps)."""

    config: SyntheticCameraConfig

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.config.height, self.config.width, 3)

    def _open_impl(self) -> None:
        h, w = self.config.height, self.config.width
        seed = self.config.seed
        if seed is None:
            seed = sum(ord(c) * 31**i for i, c in enumerate(self.name)) % 2**32
        rng = np.random.default_rng(seed)
        x = np.arange(w, dtype=np.float32)[None, :, None]
        y = np.arange(h, dtype=np.float32)[:, None, None]
        phase = rng.uniform(0, 2 * math.pi, 3).astype(np.float32)
        # Smooth shading plus 16-pixel blocks: edges and texture like a table and a wall.
        waves = 50 * np.sin(2 * math.pi * 2 * x / w + phase) + 30 * np.cos(2 * math.pi * 2 * y / h + phase)
        blocks = rng.integers(-20, 21, (h // 16 + 1, w // 16 + 1, 3)).astype(np.float32)
        blocks = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:h, :w]
        base = 128 + waves + blocks
        self._backgrounds = [np.clip(base + rng.normal(0, self._NOISE_SIGMA, base.shape), 0, 255).astype(np.uint8)
                             for _ in range(self._VARIANTS)]
        side = max(8, int(h * self._OBJECT_FRACTION)) // 2 * 2
        checker = (np.indices((side, side)).sum(axis=0) // 8 % 2)[..., None]
        self._object = np.where(checker, rng.integers(150, 256, 3), rng.integers(0, 100, 3)).astype(np.uint8)
        self._out = np.empty((h, w, 3), np.uint8)
        self._layout = DigitLayout.for_shape(h, w)
        self._count = 0

    def read(self) -> np.ndarray:
        return self._draw(self._out)

    def read_into(self, out: np.ndarray) -> float:
        """Draws the frame straight into `out` (a queue buffer): no copy of it is ever made."""
        self._draw(out)
        return time.time()

    def _draw(self, out: np.ndarray) -> np.ndarray:
        i = self._count
        self._count += 1
        h, w = self.config.height, self.config.width
        np.copyto(out, self._backgrounds[i % self._VARIANTS])
        side = self._object.shape[0]
        # Back and forth along the lower half, bobbing a little: like an arm reaching.
        t = 2 * math.pi * i / self._PERIOD_FRAMES
        x0 = int((w - side) * (0.5 - 0.5 * math.cos(t)))
        y0 = int((h - side) * (0.7 + 0.2 * math.sin(2 * t)))
        out[y0: y0 + side, x0: x0 + side] = self._object
        draw_number(out, i, self._layout)
        return out


def draw_number(image: np.ndarray, number: int, layout: DigitLayout) -> None:
    """Draw the last `layout.digits` decimal digits of `number`, zero-padded, white on black."""
    image[layout.panel] = 0
    text = str(number % 10**layout.digits).zfill(layout.digits)
    for position, char in enumerate(text):
        segments = layout.segments(position)
        for seg in SEGMENTS_OF_DIGIT[int(char)]:
            image[segments[seg]] = 255




class SyntheticRobot(RobotSource):
    """A small made-up arm so that a camera-only recording still has table features: slow
    sinusoids of wall time, and an action that leads the state by one tick."""

    def __init__(self, dim: int = 6, fps: int = 30) -> None:
        self.dim = dim
        self._lead_s = 1.0 / fps
        self._freq = np.linspace(0.1, 0.5, dim)
        self._t0 = time.monotonic()

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        names = [f"joint_{i}" for i in range(self.dim)]
        return {"observation.state": {"dtype": "float32", "shape": [self.dim], "names": names},
                "action": {"dtype": "float32", "shape": [self.dim], "names": names}}

    def read(self) -> dict[str, np.ndarray]:
        t = time.monotonic() - self._t0
        return {"observation.state": np.sin(2 * np.pi * self._freq * t).astype(np.float32),
                "action": np.sin(2 * np.pi * self._freq * (t + self._lead_s)).astype(np.float32)}
