"""The capture loop of a recording command: one row per tick at `fps`, against `time.monotonic()`.

It sleeps to each tick, asks for the row (cameras and robot values), calls `add_frame` and counts.
A tick whose slot has passed by more than half a period while the loop was busy is skipped and
counted as late: the loop never bursts rows to catch up, so rows stay evenly spaced in time except
where ticks are missing. Shared by `streamrec record` and `streamrec lerobot-record`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from streamrec import DatasetRecorder

from ._status import EpisodeFigures, RecordingStatus


class StopRequest:
    """Signal handler: remembers the first signal; the loop checks `signum` between ticks.

    Only sets an attribute (and writes a note with os.write): anything that takes a lock could
    deadlock if the signal lands while the main thread holds it.
    """

    def __init__(self, command: str) -> None:
        self.signum: int | None = None
        self._note = f"\n{command}: already stopping; finalizing the dataset, please wait\n".encode()

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        else:
            os.write(2, self._note)


def paced_episode(rec: DatasetRecorder, fig: EpisodeFigures, status: RecordingStatus, stop: StopRequest, fps: int,
                  read_row: Callable[[], dict[str, Any]],
                  after_add: Callable[[Mapping[str, Any], EpisodeFigures], None] | None = None,
                  should_end: Callable[[], bool] = lambda: False) -> None:
    """Record `fig.ticks` ticks (fewer if stopped or `should_end()` says so) into the open episode.

    Args:
        read_row: Reads the cameras and the robot for this tick; returns the row for `add_frame`.
        after_add: Called with the row once it is added (the live display).
        should_end: Polled between ticks (LeRobot's "exit early" key).
    """
    period = 1.0 / fps
    status.tick_times.clear()
    start = time.monotonic()
    status.start_phase()
    status.update("recording", fig, force=True)
    tick = 0
    while tick < fig.ticks and stop.signum is None and not should_end():
        due = start + tick * period
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
            if stop.signum is not None:
                break
        elif now - due > period / 2:
            # This tick's slot has passed: move to the nearest tick instead of bursting rows.
            missed = min(int((now - due) / period + 0.5), fig.ticks - tick)
            fig.late_ticks += missed
            tick += missed
            continue
        row = read_row()
        t0 = time.perf_counter()
        rec.add_frame(row)
        fig.add_frame_s.append(time.perf_counter() - t0)
        fig.frames += 1
        if after_add is not None:
            after_add(row, fig)
        tick += 1
        status.tick_times.append(time.monotonic())
        status.update("recording", fig)


def reset_wait(seconds: float, fig: EpisodeFigures, status: RecordingStatus, stop: StopRequest,
               should_end: Callable[[], bool] = lambda: False) -> None:
    """The pause between episodes, showing its countdown."""
    end = time.monotonic() + seconds
    status.start_phase()
    while stop.signum is None and not should_end():
        left = end - time.monotonic()
        if left <= 0:
            return
        status.update("reset", fig)
        time.sleep(min(left, 0.05))
