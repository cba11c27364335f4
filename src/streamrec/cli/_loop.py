"""The capture loop of a recording command: one tick at a time at `fps`, against `time.monotonic()`.

Tick k is due at start + k / fps. The loop sleeps to each tick and runs it. A tick whose slot has
passed by more than half a period while the loop was busy is skipped and counted as late: the loop
never bursts ticks to catch up, so rows stay evenly spaced in time except where ticks are missing.
Shared by `streamrec record` and `streamrec lerobot-record`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from ._status import EpisodeFigures, RecordingStatus

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
"""The signals that stop a recording (finalizing what was recorded), and the exit code each gives (128 + number)."""


def check_plan(plan: Any, bad: Callable[[str, str], Exception]) -> None:
    """The session's plan, as both recording commands take it: fps, num_episodes, episode_time_s, reset_time_s
    and single_task of `plan`; `bad(field, rule)` makes the error."""
    if plan.fps <= 0:
        raise bad("fps", "must be an integer > 0")
    if plan.num_episodes < 1:
        raise bad("num_episodes", "must be an integer >= 1")
    if not plan.episode_time_s > 0:
        raise bad("episode_time_s", "must be > 0 seconds")
    if not plan.reset_time_s >= 0:
        raise bad("reset_time_s", "must be >= 0 seconds")
    if not plan.single_task.strip():
        raise bad("single_task", "must describe the task, e.g. 'insert the peg'")


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

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """This request handles SIGINT and SIGTERM while the block runs; the previous handlers after."""
        previous = {s: signal.signal(s, self) for s in EXIT_CODES}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @property
    def exit_code(self) -> int | None:
        """The command's exit code for the signal received; None before one."""
        return None if self.signum is None else EXIT_CODES[self.signum]


def run_ticks(ticks: int, fps: int, stop: StopRequest, tick: Callable[[], None], status: RecordingStatus,
              phase: str, fig: EpisodeFigures | None = None,
              should_end: Callable[[], bool] = lambda: False) -> None:
    """Run `tick()` once per tick for `ticks` ticks (fewer if stopped or `should_end()` says so).

    Args:
        tick: One tick's work (read the devices; add the row when recording).
        status: Shown live; told of each tick.
        phase: What the status calls this ("recording", "reset").
        fig: The episode being recorded, which counts the ticks skipped (None in a reset).
        should_end: Polled before each tick (LeRobot's "next" key).
    """
    period = 1.0 / fps
    status.tick_times.clear()
    status.start_phase()
    status.update(phase, fig, force=True)
    start = time.monotonic()
    k = 0
    while k < ticks and stop.signum is None and not should_end():
        due = start + k * period
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
            continue  # look at the stop request and the keys again before the tick
        if now - due > period / 2:
            # This tick's slot has passed: move to the nearest tick instead of bursting rows.
            missed = min(int((now - due) / period + 0.5), ticks - k)
            if fig is not None:
                fig.late_ticks += missed
                fig.late_at.append((k, missed))
            k += missed
            continue
        tick()
        k += 1
        status.tick_times.append(time.monotonic())
        status.update(phase, fig)


def reset_wait(seconds: float, fig: EpisodeFigures, status: RecordingStatus, stop: StopRequest,
               should_end: Callable[[], bool] = lambda: False) -> None:
    """The pause between episodes when there is nothing to tick, showing its countdown."""
    end = time.monotonic() + seconds
    status.start_phase()
    while stop.signum is None and not should_end():
        left = end - time.monotonic()
        if left <= 0:
            return
        status.update("reset", fig)
        time.sleep(min(left, 0.05))
