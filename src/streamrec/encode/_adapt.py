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
episode starts a new file.

A queue over its mark is a late sign: by then frames are about to drop, and a camera stepping
one setting at a time may take several episodes to reach one that fits. So in its first episode
each encoder also measures its own CPU per frame (`CpuCheck`, over a second of frames) against its
share of the machine (`_budget.camera_shares`). Over it, the camera decides once, at that frame:
fewer threads at once (step 1), and for the next episode the first setting down the ladder whose
CPU per frame, measured by encoding the camera's latest frames with it (`trial_cpu_per_frame`),
fits the share (or the fastest, if none does). The queue's mark still catches what comes later
(another program taking the CPUs). Every step is reported with the episode (`CameraReport.adaptations`).
A camera never steps back within a recording: a machine that was overloaded once is likely to be
again, and a setting that flips back and forth would give a dataset of many small files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import av

    from ._config import EncoderConfig

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
CHECK_AFTER_SLOTS = 15
"""First frames of an episode left out of the CPU check: a new encoder's first frames cost more,
and the recording's first half second has start-up work beside it."""
GOT_MARGIN = 0.9
"""Of the CPU an encoder got while falling behind, the part a new setting may plan on."""
TRIAL_FRAMES = 8
"""The camera's latest frames, kept in the first episode, that each candidate setting encodes."""


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
    trigger: Literal["queue", "cpu", "start"] = "queue"
    """What showed the overload: the queue over its mark, the first episode's CPU check, or the
    recorder's check of the settings on test frames at start (`_budget.plan_start`)."""

    def __str__(self) -> str:
        if self.trigger == "start":
            return f"{self.camera}: {self.change}, from the first frame"
        if self.trigger == "cpu":
            when = "from this frame on" if self.effective == "now" else "from the next episode (in a new file)"
            return f"{self.camera}: {self.change}, {when} (frame {self.at_frame})"
        if self.effective == "now":
            why, when = f"for {HOLD_S:g} s", "from this frame on"
        else:
            why, when = f"for {NEXT_EPISODE_AFTER_S:g} s of the episode", "from the next episode (in a new file)"
        return (f"{self.camera}: encoder queue over a third full {why} ({self.queue_depth}/{self.queue_size} at "
                f"frame {self.at_frame}): {self.change}, {when}")

    def to_dict(self) -> dict[str, object]:
        return {"at_frame": self.at_frame, "change": self.change, "effective": self.effective,
                "queue_depth": self.queue_depth, "queue_size": self.queue_size, "trigger": self.trigger}


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


class CpuCheck:
    """In the first episode, second by second: does this camera's encoder fit the CPU it has?

    Over each second of frames it measures the encoder process's CPU per frame and whether its
    queue grew. The CPU it can count on is its share of the machine; when the queue grew, the
    others (the capture loop, the other cameras, other programs) took more than theirs, and it is
    what the encoder actually got in that second, less a margin. The first second over it is the
    answer; after the first episode the check is off (`stop`).
    """

    def __init__(self, fps: int, share: float, queue_size: int) -> None:
        self.fps = fps
        self.share = share
        """CPUs this camera's encoder may use (`_budget.camera_shares`)."""
        self._grew = max(2, queue_size // 6)
        self._frames = 0
        self._start = (0.0, 0.0, 0)
        self.done = False
        self.cpu_per_frame: float | None = None
        """Seconds of CPU per frame taken from the queue in the last second measured (slots that
        repeat a dropped frame's predecessor are counted in, which errs on the side of overload)."""
        self.budget_per_frame = share / fps
        """Seconds of CPU per frame this camera could count on in the last second measured."""
        self.got: float | None = None
        """CPUs the encoder got in that second, if its queue grew."""

    def stop(self) -> None:
        self.done = True

    def restart(self) -> None:
        """A new episode: its first frames are left out again."""
        self._frames = 0

    def over(self, depth: int) -> bool:
        """Called after each frame taken from the queue, with the frames still waiting: True once,
        when a second's measurement says the camera needs more than it can count on."""
        if self.done:
            return False
        self._frames += 1
        if self._frames < CHECK_AFTER_SLOTS or (self._frames - CHECK_AFTER_SLOTS) % self.fps:
            return False
        now = (time.process_time(), time.monotonic(), depth)
        cpu0, wall0, depth0 = self._start
        self._start = now  # the whole process's CPU: the codec's own threads, the copies out of the queue
        if self._frames == CHECK_AFTER_SLOTS:
            return False
        cpu, wall = now[0] - cpu0, now[1] - wall0
        self.cpu_per_frame = cpu / self.fps
        self.got = cpu / wall if depth - depth0 >= self._grew and wall > 0 else None
        self.budget_per_frame = min(self.share, GOT_MARGIN * self.got if self.got else self.share) / self.fps
        self.done = self.cpu_per_frame > self.budget_per_frame
        return self.done

    def describe(self) -> str:
        assert self.cpu_per_frame is not None
        if self.got is not None and GOT_MARGIN * self.got < self.share:
            has = f"the {self.got:.2f} CPUs it got while its queue grew"
        else:
            has = f"its share of {self.share:.2f} CPUs"
        return (f"{self.cpu_per_frame * 1000:.1f} ms of CPU per frame at {self.fps} fps is more than {has} "
                f"({self.budget_per_frame * 1000:.1f} ms per frame)")


def trial_cpu_per_frame(config: EncoderConfig, threads: int | None, frames: Sequence[av.VideoFrame],
                        width: int, height: int, fps: int) -> float:
    """CPU seconds per frame for `config` to encode `frames` (after the first, a keyframe), flush included."""
    from ._codecs import open_codec

    codec = open_codec(config, width, height, fps, threads)
    start = 0.0
    for pts, frame in enumerate(frames):
        frame.pts = pts  # the episode's encoder is done with these frames; it sets pts on each it takes
        codec.encode(frame)
        if pts == 0:
            start = time.process_time()
    codec.encode(None)
    return (time.process_time() - start) / max(1, len(frames) - 1)


def fitting_setting(ladder: Sequence[EncoderConfig], cost: Callable[[EncoderConfig], float],
                    budget_per_frame: float) -> tuple[EncoderConfig, float, list[str]] | None:
    """The first setting of `ladder` whose `cost` (CPU seconds per frame) fits the budget, else the
    fastest that could be measured; with its cost and what each candidate measured. None when
    none could be measured (every one failed to open)."""
    measured: list[str] = []
    best: tuple[EncoderConfig, float] | None = None
    for config in ladder:
        try:
            took = cost(config)
        except Exception as e:  # noqa: BLE001 - a candidate that cannot open here is skipped
            measured.append(f"{describe_setting(config)}: failed ({type(e).__name__})")
            continue
        measured.append(f"{describe_setting(config)} {took * 1000:.1f} ms")
        if best is None or took < best[1]:
            best = (config, took)
        if took <= budget_per_frame:
            return config, took, measured
    return None if best is None else (*best, measured)


def describe_change(now: EncoderConfig, faster: EncoderConfig) -> str:
    return f"{describe_setting(now)} -> {describe_setting(faster)}" + \
        (f" crf {faster.crf}" if faster.crf != now.crf else "")


def describe_setting(config: EncoderConfig) -> str:
    """A setting as the user would name it: the encoder's own default preset has no value to show."""
    preset = config.effective_preset
    return f"{config.encoder} preset {'default' if preset is None else preset}"
