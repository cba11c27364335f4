"""What a recording command shows: the live status, one line per event, the end summary, the JSON report.

Shared by `streamrec record` and `streamrec lerobot-record`. The capture loop only copies counters
into a snapshot a few times a second (`update`); rich's refresh thread renders from the snapshot,
so drawing never runs on the capture loop. Piped or logged (no terminal), there is no live status,
only the lines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from streamrec import DatasetRecorder
from streamrec.record import EncodeProgress, EpisodeReport

from . import _tables

IMAGE_PREFIX = "observation.images."
STATUS_PERIOD_S = 0.25
"""How often the loop copies its counters for the live status (about 4 Hz)."""


@dataclass(slots=True)
class EpisodeFigures:
    """Counters of one episode (or one attempt at it), kept by the capture loop."""

    number: int
    """1-based position in this session (episode 1 of 3); a re-recorded attempt keeps its number."""
    ticks: int
    """Ticks the episode spans (episode_time_s * fps)."""
    frames: int = 0
    """Rows added."""
    late_ticks: int = 0
    """Ticks skipped because the loop was still busy when their slot passed."""
    late_at: list[tuple[int, int]] = field(default_factory=list)
    """(first tick skipped, how many in a row), for each time the loop fell behind."""
    stale: dict[str, int] = field(default_factory=dict)
    """Per camera: rows whose image is not a new one (the camera's previous frame again, or one captured more
    than a period before the row)."""
    add_frame_s: list[float] = field(default_factory=list)
    display_offer_s: list[float] = field(default_factory=list)
    """Time the loop spent handing each tick to the live display (empty without --display_data)."""
    report: EpisodeReport | None = None
    status: str = "recording"
    """saved, partial (saved when stopped), discarded, re-recorded, lost (an encoder was replaced) or empty."""

    def to_json(self) -> dict[str, Any]:
        p50, p99 = _percentiles_ms(self.add_frame_s)
        display = {}
        if self.display_offer_s:
            d50, d99 = _percentiles_ms(self.display_offer_s)
            display = {"display_offer_p50_ms": round(d50, 3), "display_offer_p99_ms": round(d99, 3)}
        cameras = self.report.cameras if self.report else {}
        return {"episode_index": self.report.episode_index if self.report else None, "status": self.status,
                "frames": self.frames, "ticks": self.ticks, "late_ticks": self.late_ticks,
                "late_at": [list(x) for x in self.late_at], "stale": dict(self.stale),
                "dropped": {name: c.dropped for name, c in cameras.items()},
                "adaptations": {name: [a.to_dict() for a in c.adaptations] for name, c in cameras.items()
                                if c.adaptations},
                "nonfinite": dict(self.report.nonfinite) if self.report else {},
                "save_s": round(self.report.save_s, 4) if self.report else None,
                "add_frame_p50_ms": None if p50 is None else round(p50, 3),
                "add_frame_p99_ms": None if p99 is None else round(p99, 3), **display}


def _percentiles_ms(samples_s: list[float]) -> tuple[float, float] | tuple[None, None]:
    if not samples_s:
        return None, None
    p50, p99 = np.percentile(np.asarray(samples_s) * 1e3, [50, 99])
    return float(p50), float(p99)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What the live status shows; copied from the loop's counters about 4 times a second."""

    phase: str
    number: int
    elapsed: float
    total: float
    """Seconds (recording, reset) or frames (encoding after the episode ended)."""
    frames: int
    late_ticks: int
    loop_hz: float
    cpu_pct: float
    cameras: tuple[tuple[str, int, int, int], ...]
    """(camera, frames waiting in its queue, dropped this episode, stale this episode)."""
    nonfinite: int = 0
    """NaN and infinite values recorded this episode (with allow_nonfinite)."""


class _QueueFullFilter(logging.Filter):
    """The queue's "Encoder queue full" warnings: the live status counts drops, so they would only
    tear through it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Encoder queue full")


class RecordingStatus:
    """The live status and the lines of one recording session.

    Args:
        command: The command's name, for its messages.
        num_episodes, fps, episode_time_s, reset_time_s: the session's plan.
        queue_maxsize: each camera queue's size (frames waiting).
        streaming: streaming encoding (else the PNG path; the warnings differ).
        root: the dataset folder, shown on the status line.
        hint: one more line under the status (the keys a command listens to).
    """

    def __init__(self, *, command: str, num_episodes: int, fps: int, episode_time_s: float, reset_time_s: float,
                 queue_maxsize: int, streaming: bool, root: str | Path, batch_size: int = 1,
                 play_sounds: bool = False, hint: str = "") -> None:
        self.command = command
        self.num_episodes = num_episodes
        self.fps = fps
        self.episode_time_s = episode_time_s
        self.reset_time_s = reset_time_s
        self.queue_maxsize = queue_maxsize
        self.streaming = streaming
        self.batch_size = batch_size
        self.root = str(root)
        self.hint = hint
        self.console = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line to grep
        self.live = self.console.is_terminal
        self.stopping = False
        """A stop was requested: the status says the dataset is being finalized."""
        self.episodes: list[EpisodeFigures] = []
        self.tick_times: deque[float] = deque(maxlen=max(2, fps))
        self._process = psutil.Process()
        self._children: dict[int, psutil.Process] = {}
        self._snapshot = _Snapshot("starting", 0, 0.0, 0.0, 0, 0, 0.0, 0.0, ())
        self._rec: DatasetRecorder | None = None
        self._phase_start = self._status_at = 0.0
        self._done: dict[str, int] = {}
        """Per camera: frames encoded of the episode being saved (see `encode_progress`)."""
        self._speech = _speech_command() if play_sounds else None
        if play_sounds and self._speech is None:
            logging.getLogger("streamrec").warning("--play_sounds: no speech program (spd-say, say) on this machine; "
                                                   "events are only printed")

    def announce(self, text: str) -> None:
        """An event, logged and (with --play_sounds) said aloud, as lerobot-record does; never waits for the speech."""
        logging.getLogger("streamrec").info("%s", text)
        if self._speech is not None:
            with contextlib.suppress(OSError):
                subprocess.Popen([*self._speech, text], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # -- lines ------------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        """One plain line per event; on a terminal rich prints it above the live status."""
        if self.live:
            self.console.print(line)
        else:
            print(line, flush=True)

    def fail(self, message: str) -> None:
        self.err.print(Text(f"{self.command}: {message}", "bold red"))

    def episode_line(self, fig: EpisodeFigures) -> str:
        r = fig.report
        assert r is not None
        drops = ", ".join(f"{name.removeprefix(IMAGE_PREFIX)} {c.dropped}" for name, c in r.cameras.items()) or "-"
        partial = " (partial)" if fig.status == "partial" else ""
        if r.videos_pending:
            video = f" (video waits for the batch of {self.batch_size})"
        elif r.encoded_episodes != (r.episode_index,):
            video = f" (encoded episodes {r.encoded_episodes[0]}-{r.encoded_episodes[-1]})"
        else:
            video = ""
        stale = "".join(f", {name.removeprefix(IMAGE_PREFIX)} {n} stale frame(s)" for name, n in fig.stale.items()
                        if n)
        stale += "".join(f", {n} non-finite value(s) in {name}" for name, n in r.nonfinite.items())
        return (f"episode {fig.number}/{self.num_episodes}{partial}: saved as episode {r.episode_index}, "
                f"{fig.frames} frames, dropped {drops}{stale}, late ticks {fig.late_ticks}, saved in "
                f"{r.save_s * 1e3:.0f} ms{video}")

    # -- the live status --------------------------------------------------------------------------

    @contextlib.contextmanager
    def showing(self, rec: DatasetRecorder) -> Iterator[None]:
        """Show the live status (on a terminal) while the block runs."""
        self._rec = rec
        if not self.live:
            yield
            return
        quiet = _QueueFullFilter()
        streamrec_log = logging.getLogger("streamrec")
        streamrec_log.addFilter(quiet)
        handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
        try:
            with Live(console=self.console, get_renderable=self._render, refresh_per_second=4, transient=True):
                # Live redirects sys.stderr through itself; point log output there so that warnings
                # print above the status instead of tearing through it.
                old = [h.setStream(sys.stderr) for h in handlers]
                try:
                    yield
                finally:
                    for h, stream in zip(handlers, old):
                        if stream is not None:
                            h.setStream(stream)
        finally:
            streamrec_log.removeFilter(quiet)

    def start_phase(self) -> None:
        self._phase_start = time.monotonic()

    def update(self, phase: str, fig: EpisodeFigures | None, force: bool = False) -> None:
        """Copy the counters for the refresh thread, at most every STATUS_PERIOD_S (cheap reads only)."""
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._status_at < STATUS_PERIOD_S:
            return
        self._status_at = now
        times = self.tick_times
        loop_hz = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else 0.0
        rec = self._rec
        stale = fig.stale if fig else {}
        cameras = tuple((c.camera, c.queue_depth, c.dropped, stale.get(c.camera, 0))
                        for c in rec.camera_status()) if rec else ()
        total = self.reset_time_s if phase == "reset" else self.episode_time_s
        self._done.clear()
        nonfinite = sum(rec.episode_nonfinite.values()) if rec else 0
        number = fig.number if fig else self._snapshot.number
        self._snapshot = _Snapshot(phase, number, now - self._phase_start, total, fig.frames if fig else 0,
                                   fig.late_ticks if fig else 0, loop_hz, self._cpu_percent(), cameras, nonfinite)

    def encode_progress(self, p: EncodeProgress) -> None:
        """Frames encoded after an episode ended: a streaming encoder's backlog, or saved PNG episodes."""
        if not self.live:
            return
        self._done[p.camera] = p.frames_done
        s = self._snapshot
        phase = "flushing" if self.streaming else "encoding"
        self._snapshot = _Snapshot(phase, s.number, min(self._done.values()), p.frames_total, s.frames, s.late_ticks,
                                   0.0, self._cpu_percent(), s.cameras)

    def _cpu_percent(self) -> float:
        """CPU use since the last call, in % of one core: this process (all its threads) plus its
        children, since encoders run in their own processes."""
        total = self._process.cpu_percent(None)
        with contextlib.suppress(psutil.Error):
            children = {p.pid: p for p in self._process.children(recursive=True)}
            # Keep each child's Process object: cpu_percent measures from the previous call on it.
            self._children = {pid: self._children.get(pid, p) for pid, p in children.items()}
        for child in self._children.values():
            with contextlib.suppress(psutil.Error):
                total += child.cpu_percent(None)
        return total

    def _render(self) -> Group:
        """The live status; runs on rich's refresh thread and reads only the snapshot."""
        s = self._snapshot
        n = self.num_episodes
        left = max(0.0, s.total - s.elapsed)
        head = Table.grid(padding=(0, 2))
        label = {"recording": f"Episode {s.number}/{n}", "reset": f"Reset before episode {s.number + 1}/{n}",
                 "saving": f"Saving episode {s.number}/{n}",
                 "flushing": f"Saving episode {s.number}/{n}: encoding what the encoders still hold",
                 "encoding": f"Encoding episode {s.number} from PNGs"}.get(s.phase, s.phase)
        # While encoding, the bar counts frames, not seconds.
        by_frames = s.phase in ("encoding", "flushing")
        remaining = f"{left:.0f} frames left" if by_frames else "" if s.phase == "saving" else f"{left:4.1f} s left"
        head.add_row(Text(label, "bold"), ProgressBar(total=max(s.total, 1e-9), completed=min(s.elapsed, s.total),
                                                      width=40), Text(remaining))
        late_style = "yellow" if s.late_ticks else "green"
        rate = Text.assemble(
            f"loop {s.loop_hz:5.1f} / {self.fps} Hz   ", (f"late ticks {s.late_ticks}", late_style),
            f"   frames {s.frames}   CPU {s.cpu_pct:.0f} %   -> {self.root}")
        cams = Table(box=None, padding=(0, 2), show_edge=False)
        for column in ("camera", "queue", "dropped", "stale"):
            cams.add_column(column, justify="left" if column == "camera" else "right")
        for name, depth, dropped, stale in s.cameras:
            cams.add_row(name.removeprefix(IMAGE_PREFIX), f"{depth}/{self.queue_maxsize}",
                         Text(str(dropped), "yellow" if dropped else ""), Text(str(stale), "yellow" if stale else ""))
        parts: list[Any] = [head, rate, cams]
        if self.hint:
            parts.append(Text(self.hint, "dim"))
        dropping = [name.removeprefix(IMAGE_PREFIX) for name, _, dropped, _ in s.cameras if dropped]
        if s.late_ticks:
            parts.append(Text(f"! loop running late: {s.late_ticks} tick(s) skipped this episode; the devices or the "
                              f"machine cannot keep {self.fps} fps with this load", "bold yellow"))
        if dropping and self.streaming:
            parts.append(Text(f"! encoders falling behind, dropping frames ({', '.join(dropping)}): try "
                              "--dataset.camera_encoder.vcodec=h264, fewer --dataset.encoder_threads, or "
                              "--dataset.streaming_encoding=false", "bold yellow"))
        elif dropping:
            parts.append(Text(f"! PNG writing falling behind, dropping frames ({', '.join(dropping)}): the disk or "
                              "the CPU is too slow for these cameras; fewer or smaller cameras help", "bold yellow"))
        if s.nonfinite:
            parts.append(Text(f"! {s.nonfinite} non-finite value(s) (NaN, inf) recorded this episode; left out of the "
                              "stats", "bold yellow"))
        if self.stopping:
            parts.append(Text("stopping: finishing the episode and finalizing the dataset", "bold"))
        return Group(*parts)

    # -- the end ----------------------------------------------------------------------------------

    def summary(self, rec: DatasetRecorder, stopped_by: int | None, extra: Sequence[str] = ()) -> None:
        stale = any(f.stale.get(k) for f in self.episodes for k in f.stale)
        table = _tables.table()
        columns = ["Episode", "Index", "Frames", "Dropped", *(["Stale"] if stale else []), "Late", "Save ms",
                   "add_frame p99 ms"]
        for column in columns:
            _tables.column(table, column, right=True)
        _tables.column(table, "Status")
        for fig in self.episodes:
            figures = fig.to_json()
            save = "-" if fig.report is None else f"{fig.report.save_s * 1e3:.0f}"
            index = "-" if fig.report is None else str(fig.report.episode_index)
            p99 = "-" if figures["add_frame_p99_ms"] is None else f"{figures['add_frame_p99_ms']:.2f}"
            cells = [f"{fig.number}/{self.num_episodes}", index, str(fig.frames), str(sum(figures["dropped"].values())),
                     *([str(sum(fig.stale.values()))] if stale else []), str(fig.late_ticks), save, p99, fig.status]
            table.add_row(*cells)
        self.console.print(table)
        saved = [f for f in self.episodes if f.report]
        frames = sum(f.frames for f in saved)
        stopped = "" if stopped_by is None else f" (stopped by {signal.Signals(stopped_by).name})"
        self.console.print(f"This session: {len(saved)} episode(s), {frames} frames{stopped}. The dataset "
                           f"{rec.root} now holds {rec.num_episodes} episode(s).")
        for line in extra:
            self.console.print(line)

    def report(self, rec: DatasetRecorder, stopped_by: int | None, cameras: Sequence[str],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `--report-json` document."""
        return {"dataset": str(rec.root), "fps": self.fps, "episode_time_s": self.episode_time_s,
                "cameras": list(cameras), "num_episodes": rec.num_episodes,
                "stopped_by": None if stopped_by is None else signal.Signals(stopped_by).name,
                "episodes": [f.to_json() for f in self.episodes], **(extra or {})}


def _speech_command() -> list[str] | None:
    if sys.platform == "darwin":
        return ["say"] if shutil.which("say") else None
    return ["spd-say"] if shutil.which("spd-say") else None


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")
