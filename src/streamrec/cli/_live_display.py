"""`--display_data` of a recording command: the live Rerun display, opened, fed each tick, closed, reported.

The display thread itself (`capture._display.DisplayWorker`) never makes the capture loop wait: a
display that falls behind drops ticks. A display that fails stops; the recording goes on without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streamrec.capture._display import DisplayError, DisplayWorker, RerunSink, has_screen, import_rerun, rrd_path_for
from streamrec.cli._paths import PathProblem

log = logging.getLogger("streamrec")

JOIN_S = 10.0
"""How long the end of a recording waits for the display thread to log what it has queued."""


def display_target(root: Path) -> Path | None:
    """Where the display goes: None for the Rerun viewer (a screen), else the `.rrd` beside the dataset.

    Raises:
        ConfigError: Rerun is not installed.
        PathProblem: the `.rrd` exists already.
    """
    import_rerun()
    if has_screen():
        return None
    rrd = rrd_path_for(root)
    if rrd.exists():
        raise PathProblem(f"--display_data=true: there is no screen here (DISPLAY and WAYLAND_DISPLAY are unset), so "
                          f"the display is saved to {rrd}, which exists already; move it away or record to another "
                          "folder")
    return rrd


class LiveDisplay:
    """The display of one recording session.

    Args:
        rrd: From `display_target` (None: the viewer).
        values: Robot feature key -> its spec (for the value names); these are plotted.
        say: Prints a line for the user.
    """

    def __init__(self, rrd: Path | None, values: Mapping[str, Mapping[str, Any]], say: Callable[[str], None]) -> None:
        self.rrd = rrd
        self._values = list(values)
        self._worker: DisplayWorker | None = DisplayWorker(
            RerunSink(rrd_path=rrd, value_names={key: spec.get("names") for key, spec in values.items()}))
        self._worker.start()
        self._ticks = 0
        self.error: DisplayError | None = None
        self._counts: tuple[int, int, int] | None = None
        """(offered, dropped, logged) ticks, once the display thread has ended."""
        config = self._worker.config
        where = f"saving to {rrd} (no screen here)" if rrd else "in the Rerun viewer"
        say(f"live display: {where}; {config.image_hz:g} images/s per camera, at most {config.max_width} pixels wide")

    @property
    def running(self) -> bool:
        return self._worker is not None

    def offer(self, row: Mapping[str, Any], *, episode_index: int, frame_index: int, capture_time_s: float,
              cameras: Sequence[str]) -> None:
        """Hand one tick to the display thread (a stopped display is closed and said so, once)."""
        worker = self._worker
        if worker is None:
            return
        try:
            worker.offer(index=self._ticks, episode_index=episode_index, frame_index=frame_index,
                         capture_time_s=capture_time_s, images={key: row[key] for key in cameras},
                         values={key: row[key] for key in self._values if key in row})
        except DisplayError as e:
            # The recording matters more than its preview: say so once and go on without it.
            self.error = e
            log.warning("%s; recording goes on without the live display", e)
            self.close()
            return
        self._ticks += 1

    def close(self) -> None:
        """Stop the display thread after it has logged what is queued (an .rrd is complete after this)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        worker.stop()
        if not worker.join(JOIN_S):
            log.warning("live display: its thread is still busy after %.0f s; leaving it to finish on its own", JOIN_S)
        if worker.failure is not None and self.error is None:
            self.error = DisplayError(f"live display stopped: {worker.failure}")
            log.warning("%s", self.error)
        self._counts = (worker.offered, worker.dropped, worker.logged)

    def lines(self) -> list[str]:
        """For the end summary."""
        if self._counts is None:
            return []
        offered, dropped, logged = self._counts
        failed = f"; stopped early: {self.error}" if self.error else ""
        lines = [f"Live display: {logged} of {offered} ticks shown, {dropped} dropped while the display was "
                 f"behind{failed}"]
        if self.rrd:
            lines.append(f"Live display saved to {self.rrd}; open it with: rerun {self.rrd}")
        return lines

    def report(self) -> dict[str, Any]:
        """For `--report-json`."""
        if self._counts is None:
            return {}
        offered, dropped, logged = self._counts
        return {"display": {"offered": offered, "dropped": dropped, "logged": logged,
                            "rrd": None if self.rrd is None else str(self.rrd),
                            "error": None if self.error is None else str(self.error)}}
