"""Adaptive overload (`adapt_on_overload`, on by default): a camera that cannot keep up moves to a faster setting.

Runs inside the camera's encoder process, which sees how many frames wait in its queue. When
more than a third of the queue stays full, the encoder is losing ground and frames will soon be
dropped. Then it takes the first of these steps that is left:

1. Fewer codec threads, at once, after HOLD_S above the mark. Threads only change how the work is shared out, not the
   stream, so the episode goes on in a new encoder instance whose first frame is a keyframe, just
   as at an episode boundary. It is a step only when the cameras together start more threads
   than there are CPUs: one SVT-AV1 thread used 14.7 and 13.9 instead of 18.3 and 17.7 ms of CPU
   per 1280x720 frame of two cameras here (benchmarks/overload_steps.py).
2. A faster preset, from the next episode (`_codecs.faster_encoder`), once the queue has been above
   the mark for NEXT_EPISODE_AFTER_S in all during the episode.
3. A faster codec, from the next episode, the same way.

Steps 2 and 3 change the stream's parameters, and one MP4 holds one set of them, so the next
episode starts a new file. Every step is reported with the episode (`CameraReport.adaptations`).
A camera never steps back within a recording: a machine that was overloaded once is likely to be
again, and a setting that flips back and forth would give a dataset of many small files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

NEXT_EPISODE_AFTER_S = 1.0
"""Time above the mark, summed over the episode, before a step for the next episode is chosen. It
cannot help the episode being recorded, so it waits longer than HOLD_S: a second's burst of other
work on the machine does not change the camera's codec for the rest of the recording."""
HOLD_S = 0.3
"""How long the queue must stay above its high-water mark before a step is taken. With the default
queue of 30 frames at 30 fps, an encoder that stops altogether fills it in one second: the mark
(10 frames) plus this leaves about half a second for a step to take effect before frames drop. A
new encoder instance's first frame took ~0.1 s at 1280x720 here."""
SETTLE_S = 2.0
"""After a step that applies at once, time for the queue to drain before the next is judged."""


@dataclass(frozen=True, slots=True)
class Adaptation:
    """A camera moved to a faster setting because its encoder queue stayed above its high-water mark."""

    camera: str
    at_frame: int
    """Frame of the episode at which it was decided."""
    change: str
    """What changed, e.g. "encoder_threads auto -> 1" or "libsvtav1 preset 12 -> libx264 preset veryfast"."""
    effective: Literal["now", "next episode"]
    queue_depth: int
    """Frames waiting when it was decided."""
    queue_size: int

    def __str__(self) -> str:
        if self.effective == "now":
            why, when = f"for {HOLD_S:g} s", "from this frame on"
        else:
            why, when = f"for {NEXT_EPISODE_AFTER_S:g} s of the episode", "from the next episode (in a new file)"
        return (f"{self.camera}: encoder queue over a third full {why} ({self.queue_depth}/{self.queue_size} at "
                f"frame {self.at_frame}): {self.change}, {when}")

    def to_dict(self) -> dict[str, object]:
        return {"at_frame": self.at_frame, "change": self.change, "effective": self.effective,
                "queue_depth": self.queue_depth, "queue_size": self.queue_size}


class OverloadWatch:
    """Watches a queue's depth against its high-water mark (a third of it)."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self.high_water = max(1, queue_size // 3)
        self._above_since: float | None = None
        self._quiet_until = -math.inf
        self._last_above: float | None = None
        self.above_s = 0.0
        """Time above the mark in this episode (not counting the settling after a step)."""

    def reset(self) -> None:
        """A new episode: what the queue did before says nothing about the new encoder."""
        self._above_since = self._last_above = None
        self._quiet_until = -math.inf
        self.above_s = 0.0

    def overloaded(self, depth: int, now: float) -> bool:
        """Called after each frame with the frames still waiting; True once per HOLD_S above the mark."""
        if depth <= self.high_water or now < self._quiet_until:
            self._above_since = self._last_above = None
            return False
        if self._last_above is not None:
            self.above_s += now - self._last_above
        self._last_above = now
        if self._above_since is None:
            self._above_since = now
            return False
        if now - self._above_since < HOLD_S:
            return False
        self._above_since = None
        return True

    def settle(self, now: float) -> None:
        """A step that applies at once was taken: let the queue drain before judging again."""
        self._quiet_until = now + SETTLE_S


def fewer_threads(current: int | None, cpus: int, cameras: int) -> int | None:
    """The thread count to step down to, or None when fewer threads would not help.

    A codec left to decide (None) starts about one thread per CPU, in every camera.
    """
    share = max(1, cpus // max(1, cameras))
    threads = cpus if current is None else current
    if cameras * threads <= cpus or threads <= share:
        return None
    return share


def describe_threads(threads: int | None) -> str:
    return "auto" if threads is None else str(threads)
