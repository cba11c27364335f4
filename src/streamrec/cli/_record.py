"""`streamrec record --dataset.root=... --cameras=...`: record episodes from camera sources.

The flags are generated from `RecordConfig` (see `_flags`); `streamrec record --help` lists them.

The capture loop runs on the main thread at `fps` against `time.monotonic()`: it sleeps to each
tick, reads every camera (stamping each image with its wall-clock capture time), reads the
robot state and calls `add_frame`. A tick whose slot has passed by more than half a period while
the loop was busy is skipped and counted as late: the loop never bursts frames to catch up, so
rows stay evenly spaced in time except where ticks are missing.

Exit codes: 0 done; 1 a camera, encoder or the dataset folder failed; 2 bad flags or settings;
130 stopped by SIGINT (Ctrl-C), 143 by SIGTERM. Stopped or failed, the dataset is always
finalized with the episodes completed so far.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import textwrap
import time
from collections import deque
from collections.abc import Mapping
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

from streamrec import ConfigError, DatasetRecorder, EncoderConfig, EncoderRestarted, QueueFullPolicy, StreamrecError
from streamrec.capture import (
    CAMERA_TYPES,
    CameraConfig,
    CameraSource,
    FootageCameraConfig,
    FootageRobot,
    FootageSource,
    RobotSource,
    SimCameraConfig,
    SimRobot,
    SourceError,
    SyntheticRobot,
    camera_config,
    make_source,
    sim_world,
)
from streamrec.capture._display import (
    DisplayError,
    DisplayWorker,
    RerunSink,
    has_screen,
    import_rerun,
    rrd_path_for,
)
from streamrec.cli import _flags
from streamrec.dataset._features import CAPTURE_TIME_SUFFIX
from streamrec.record import EncodeProgress, EpisodeReport

log = logging.getLogger("streamrec")

IMAGE_PREFIX = "observation.images."
"""Data column `<camera key>.capture_time`: wall-clock time the row's image was captured, float64 s."""
STATUS_PERIOD_S = 0.25
"""How often the loop copies its counters for the live display (about 4 Hz)."""
_EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
_DISPLAY_JOIN_S = 10.0
"""How long the end of a recording waits for the display thread to log what it has queued."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetSection:
    """Where and how episodes are recorded (`--dataset.<field>`)."""

    root: str
    """Dataset folder to create; must not exist yet or be empty."""
    single_task: str
    """Task description stored with every frame, e.g. "insert the peg"."""
    fps: int = 30
    """Frames per second of the capture loop, the cameras and the table rows."""
    num_episodes: int = 50
    """Episodes to record."""
    episode_time_s: float = 60.0
    """Length of each episode in seconds."""
    reset_time_s: float = 60.0
    """Pause between episodes, in seconds, to reset the scene (none after the last episode)."""
    robot_type: str | None = None
    """Free text stored in info.json (e.g. "aloha")."""
    streaming_encoding: bool = True
    """Encode video while recording; false writes PNGs and encodes them when episodes are saved."""
    camera_encoder: EncoderConfig = field(default_factory=EncoderConfig)
    encoder_threads: int | None = None
    """Threads per camera encoder; null lets the codec decide."""
    encoder_queue_maxsize: int = 30
    """Frames each camera's encoder queue holds before the queue_full_policy applies."""
    video_encoding_batch_size: int = 1
    """With streaming_encoding=false, encode the PNGs of this many episodes at once (1 when streaming)."""
    save_partial_episode: bool = False
    """On Ctrl-C / SIGTERM, save the open episode as it is instead of discarding it."""
    queue_full_policy: QueueFullPolicy = QueueFullPolicy.DROP
    """When an encoder queue is full: drop (count it, repeat the previous frame) or block (wait)."""
    adapt_on_overload: bool = True
    """Streaming: a camera whose encoder queue stays over a third full moves to a faster setting before
    frames are dropped (fewer threads at once, a faster preset or codec from its next episode); false
    keeps the settings fixed."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"DatasetSection.{name} = {getattr(self, name)!r}: {rule}")

        for name in ("fps", "num_episodes", "encoder_queue_maxsize", "video_encoding_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad(name, "must be an integer")
        for name in ("episode_time_s", "reset_time_s"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), (int, float)):
                raise bad(name, "must be a number of seconds")
        if not isinstance(self.root, str) or not self.root:
            raise bad("root", "must be a folder path")
        if not isinstance(self.single_task, str):
            raise bad("single_task", "must be a string")
        if not self.single_task.strip():
            raise bad("single_task", "must describe the task, e.g. 'insert the peg'")
        if self.fps <= 0:
            raise bad("fps", "must be an integer > 0")
        if self.num_episodes < 1:
            raise bad("num_episodes", "must be an integer >= 1")
        if not self.episode_time_s > 0:
            raise bad("episode_time_s", "must be > 0 seconds")
        if not self.reset_time_s >= 0:
            raise bad("reset_time_s", "must be >= 0 seconds")
        if self.encoder_threads is not None and self.encoder_threads < 1:
            raise bad("encoder_threads", "must be an integer >= 1, or null to let the codec decide")
        if self.encoder_queue_maxsize < 1:
            raise bad("encoder_queue_maxsize", "must be an integer >= 1")
        if self.video_encoding_batch_size < 1:
            raise bad("video_encoding_batch_size", "must be an integer >= 1")
        if self.streaming_encoding and self.video_encoding_batch_size != 1:
            raise bad("video_encoding_batch_size", "must be 1 with streaming_encoding=true (each episode is "
                      "encoded while it is recorded); batches apply to streaming_encoding=false")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordConfig:
    """Everything `streamrec record` takes; each field is a flag."""

    dataset: DatasetSection
    cameras: Mapping[str, CameraConfig]
    """Cameras as a YAML mapping of name -> spec, e.g. '{top: {type: synthetic, width: 640, height: 480},
    wrist: {type: synthetic}}'. Each camera is stored as observation.images.<name>. Types and their
    parameters are listed below."""
    display_data: bool = False
    """Show the cameras (10 images/s, shrunk to at most 320 pixels wide) and observation.state/action live in
    the Rerun viewer, which is spawned. Without a screen (no DISPLAY or WAYLAND_DISPLAY) they are saved to
    <dataset.root>.rrd instead, to open with `rerun <file>`. Capture never waits for it: a display that falls
    behind drops ticks (counted). Needs pip install 'streamrec[display]'."""
    report_json: str | None = None
    """Write per-episode figures (frames, drops, late ticks, save time, add_frame p50/p99) to this JSON file."""
    resume: bool = False
    """Add the episodes to the finalized dataset at --dataset.root instead of starting one. Its fps, cameras,
    robot features and video settings must match (the first difference is named); encoder settings left at
    their defaults take the dataset's."""

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ConfigError("RecordConfig.cameras = {}: give at least one camera, e.g. "
                              "--cameras='{top: {type: synthetic}}'")
        # Frozen: the mapping from YAML is replaced once by typed camera configs.
        typed = tuple(config_cls for config_cls, _ in CAMERA_TYPES.values())
        object.__setattr__(self, "cameras", {name: spec if isinstance(spec, typed) else camera_config(name, spec)
                                             for name, spec in self.cameras.items()})
        kinds = {type(c) for c in self.cameras.values()}
        if SimCameraConfig in kinds and FootageCameraConfig in kinds:
            raise ConfigError("RecordConfig.cameras: sim and footage cameras each bring their own robot state "
                              "(observation.state, action); record one kind at a time")
        sim_world(self.cameras, fps=1)  # sim cameras must agree on the simulation they share


_USAGE = "streamrec record --dataset.root=PATH --dataset.single_task=TEXT --cameras=YAML [--flag=value ...]"
_DESCRIPTION = ("Record episodes from cameras into a new LeRobot v3.0 dataset, encoding video while recording. "
                "Ctrl-C (or SIGTERM) stops: the open episode is discarded (or saved with "
                "--dataset.save_partial_episode=true) and the dataset is finalized. Exit codes: 0 done, 1 a camera, "
                "encoder or the dataset folder failed, 2 bad flags, 130 Ctrl-C, 143 SIGTERM.")


def help_text() -> str:
    """`--help`: the generated flag list plus the camera types and their parameters."""
    text = _flags.format_help(RecordConfig, usage=_USAGE, description=_DESCRIPTION)
    lines = ["", "camera types (in --cameras; `type` defaults to synthetic):"]
    for kind, (config_cls, _) in CAMERA_TYPES.items():
        lines.extend(textwrap.wrap(f"{kind}: {' '.join((config_cls.__doc__ or '').split())}", 100,
                                   initial_indent="  ", subsequent_indent="    "))
        for flag in _flags.flags_of(config_cls):
            default = "required" if flag.required else f"default: {_flags.format_value(flag.default)}"
            lines.extend(textwrap.wrap(f"{flag.name}  ({flag.type_name}; {default})  {flag.help}", 100,
                                       initial_indent="    ", subsequent_indent="        "))
    return text + "\n".join(lines) + "\n"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    # The flags are parsed by `_flags`, not argparse: hand every argument through untouched.
    # `+` as prefix keeps argparse from treating `--dataset.fps=30` as one of its own options.
    parser = subparsers.add_parser("record", help="record episodes from cameras into a new dataset",
                                   add_help=False, prefix_chars="+")
    parser.add_argument("flags", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    argv = list(args.flags)
    if "--help" in argv or "-h" in argv:
        sys.stdout.write(help_text())
        return 0
    try:
        config = _flags.parse(RecordConfig, argv)
    except _flags.FlagError as e:
        print(f"streamrec record: {e}", file=sys.stderr)
        return 2
    return Recording(config).run()


# -- the recording --------------------------------------------------------------------------------


@dataclass(slots=True)
class EpisodeFigures:
    """Counters of one episode, kept by the capture loop."""

    index: int
    ticks: int
    """Ticks the episode spans (episode_time_s * fps)."""
    frames: int = 0
    late_ticks: int = 0
    """Ticks skipped because the loop was still busy when their slot passed."""
    add_frame_s: list[float] = field(default_factory=list)
    display_offer_s: list[float] = field(default_factory=list)
    """Time the loop spent handing each tick to the live display (empty without --display_data)."""
    report: EpisodeReport | None = None
    partial: bool = False

    def to_json(self) -> dict[str, Any]:
        p50, p99 = _percentiles_ms(self.add_frame_s)
        display = {}
        if self.display_offer_s:
            d50, d99 = _percentiles_ms(self.display_offer_s)
            display = {"display_offer_p50_ms": round(d50, 3), "display_offer_p99_ms": round(d99, 3)}
        cameras = self.report.cameras if self.report else {}
        return {"episode_index": self.report.episode_index if self.report else None, "frames": self.frames,
                "ticks": self.ticks, "partial": self.partial, "late_ticks": self.late_ticks,
                "dropped": {name: c.dropped for name, c in cameras.items()},
                "adaptations": {name: [a.to_dict() for a in c.adaptations] for name, c in cameras.items()
                                if c.adaptations},
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
    """What the live display shows; copied from the loop's counters about 4 times a second."""

    phase: str
    episode: int
    elapsed_s: float
    total_s: float
    frames: int
    late_ticks: int
    loop_hz: float
    cpu_pct: float
    cameras: tuple[tuple[str, int, int], ...]
    """(camera, queue depth, dropped this episode)."""


class _StopRequest:
    """Signal handler: remembers the first signal; the loop checks `signum` between ticks.

    Only sets an attribute (and writes a note with os.write): anything that takes a lock could
    deadlock if the signal lands while the main thread holds it.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        else:
            os.write(2, b"\nstreamrec record: already stopping; finalizing the dataset, please wait\n")


class Recording:
    """One run of `streamrec record`: opens the sources and the recorder, loops, finalizes."""

    def __init__(self, config: RecordConfig) -> None:
        self.config = config
        self.ds = config.dataset
        self.console = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)
        self.live = self.console.is_terminal
        self.stop = _StopRequest()
        self.sources: list[CameraSource] = []
        self.display: DisplayWorker | None = None
        self.display_error: DisplayError | None = None
        self._display_ticks = 0
        self._rrd_path: Path | None = None
        self._display_values: list[str] = []
        """Robot feature keys the display shows."""
        self._display_counts: tuple[int, int, int] | None = None
        """(offered, dropped, logged) ticks, once the display thread has ended."""
        self.robot: RobotSource | None = None
        self.episodes: list[EpisodeFigures] = []
        self._process = psutil.Process()
        self._children: dict[int, psutil.Process] = {}
        self._tick_times: deque[float] = deque(maxlen=max(2, self.ds.fps))
        self._snapshot = _Snapshot("starting", 0, 0.0, 0.0, 0, 0, 0.0, 0.0, ())
        self._rec: DatasetRecorder | None = None
        self._episode_start = self._status_at = 0.0

    # -- top level ------------------------------------------------------------------------------

    def run(self) -> int:
        previous = {s: signal.signal(s, self.stop) for s in _EXIT_ON_SIGNAL}
        try:
            return self._run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _fail(self, message: str, code: int) -> int:
        self.err.print(Text(f"streamrec record: {message}", "bold red"))
        return code

    def _run(self) -> int:
        root = Path(self.ds.root)
        if (root / ".streamrec").exists():
            return self._fail(f"{root} holds an interrupted recording; run `streamrec repair {root}` to keep its "
                              "saved episodes, or record into a new folder", 1)
        if self.config.resume and not (root / "meta" / "info.json").is_file():
            return self._fail(f"--resume=true: {root} holds no dataset (no meta/info.json) to add episodes to", 1)
        if not self.config.resume and root.exists() and (not root.is_dir() or any(root.iterdir())):
            return self._fail(f"{root} is not empty; record into a new or empty folder, or add episodes to the "
                              "dataset in it with --resume=true", 1)
        if self.config.display_data:
            try:
                import_rerun()
            except ConfigError as e:
                return self._fail(str(e), 2)
            if not has_screen():
                self._rrd_path = rrd_path_for(root)
                if self._rrd_path.exists():
                    return self._fail(f"--display_data=true: there is no screen here (DISPLAY and WAYLAND_DISPLAY "
                                      f"are unset), so the display is saved to {self._rrd_path}, which exists "
                                      "already; move it away or record to another --dataset.root", 1)
        try:
            rec = self._open()
        except SourceError as e:
            return self._fail(str(e), 1)
        except ConfigError as e:
            return self._fail(str(e), 2)
        except StreamrecError as e:  # also DisplayError: asked for, the display must start
            return self._fail(str(e), 1)
        if rec is None:  # stopped while the cameras were opening
            return _EXIT_ON_SIGNAL[self.stop.signum]
        code = 0
        try:
            self._record_all(rec)
        except StreamrecError as e:
            code = self._fail(f"{e}; finalizing with the {rec.num_episodes} episode(s) saved so far", 1)
        finally:
            self._close_display()
            if rec.episode_frames:
                with contextlib.suppress(StreamrecError):  # finalize() below reports a failed encoder
                    rec.clear_episode()
            try:
                rec.finalize(progress=self._encode_progress)
            except StreamrecError as e:
                code = self._fail(str(e), 1)
            for source in self.sources:
                source.close()
        self._summary(rec)
        if self.config.report_json:
            self._write_report(Path(self.config.report_json), rec)
        if code == 0 and self.stop.signum is not None:
            code = _EXIT_ON_SIGNAL[self.stop.signum]
        return code

    def _open(self) -> DatasetRecorder | None:
        """Open every camera, then the recorder; None when a stop was requested meanwhile."""
        try:
            world = sim_world(self.config.cameras, self.ds.fps)
            for name, cam in self.config.cameras.items():
                source = make_source(name, cam, world=world)
                source.open()
                self.sources.append(source)
                if self.stop.signum is not None:
                    raise _Stopped
            footage = [s for s in self.sources if isinstance(s, FootageSource)]
            # The simulated arms, or the footage's recorded ones, go with their frames; otherwise a
            # made-up arm keeps the dataset's table features (state, action) present as with a real robot.
            if world is not None:
                self.robot = SimRobot(world)
            elif footage:
                self.robot = FootageRobot(footage[0])
            else:
                self.robot = SyntheticRobot(fps=self.ds.fps)
            features: dict[str, dict[str, Any]] = {}
            for source in self.sources:
                features[IMAGE_PREFIX + source.name] = {"dtype": "video", "shape": list(source.shape)}
            for source in self.sources:
                features[IMAGE_PREFIX + source.name + CAPTURE_TIME_SUFFIX] = {
                    "dtype": "float64", "shape": [1], "names": None}
            features.update(self.robot.features)
            if self.config.display_data:
                self._open_display(self.robot.features)
            ds = self.ds
            if self.config.resume:
                rec = DatasetRecorder.resume(
                    ds.root, fps=ds.fps, features=features, robot_type=ds.robot_type,
                    camera_encoder=None if ds.camera_encoder == EncoderConfig() else ds.camera_encoder,
                    streaming_encoding=ds.streaming_encoding, encoder_threads=ds.encoder_threads,
                    encoder_queue_maxsize=ds.encoder_queue_maxsize, queue_full_policy=ds.queue_full_policy,
                    adapt_on_overload=ds.adapt_on_overload, batch_encoding_size=ds.video_encoding_batch_size)
            else:
                rec = DatasetRecorder.create(
                    ds.root, ds.fps, features, robot_type=ds.robot_type, streaming_encoding=ds.streaming_encoding,
                    camera_encoder=ds.camera_encoder, encoder_threads=ds.encoder_threads,
                    encoder_queue_maxsize=ds.encoder_queue_maxsize, queue_full_policy=ds.queue_full_policy,
                    adapt_on_overload=ds.adapt_on_overload, batch_encoding_size=ds.video_encoding_batch_size)
        except _Stopped:
            self._close_display()
            for source in self.sources:
                source.close()
            return None
        except BaseException:
            self._close_display()
            for source in self.sources:
                source.close()
            raise
        self._rec = rec
        return rec

    # -- the loop -------------------------------------------------------------------------------

    def _record_all(self, rec: DatasetRecorder) -> None:
        cams = ", ".join(f"{s.name} {s.shape[1]}x{s.shape[0]} {s.config.type}" for s in self.sources)
        self._say(f"recording {self.ds.num_episodes} episode(s) of {self.ds.episode_time_s:g} s at "
                  f"{self.ds.fps} fps to {rec.root} (cameras: {cams}; {', '.join(sorted(set(rec.encoders.values())))})")
        if not self.live:
            self._episodes(rec)
            return
        handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
        with Live(console=self.console, get_renderable=self._render, refresh_per_second=4, transient=True):
            # Live redirects sys.stderr through itself; point log output there so that warnings
            # print above the display instead of tearing through it.
            old = [h.setStream(sys.stderr) for h in handlers]
            try:
                self._episodes(rec)
            finally:
                for h, stream in zip(handlers, old):
                    if stream is not None:
                        h.setStream(stream)

    def _episodes(self, rec: DatasetRecorder) -> None:
        n = self.ds.num_episodes
        k = 0
        while k < n:
            if self.stop.signum is not None:
                return
            fig = EpisodeFigures(index=k, ticks=max(1, round(self.ds.episode_time_s * self.ds.fps)))
            self.episodes.append(fig)
            assert self.robot is not None
            self.robot.start_episode(k)
            try:
                try:
                    self._record_episode(rec, fig)
                except SourceError:
                    # A camera stopped mid-episode: the recording ends; what the other cameras and
                    # this one delivered until then is kept if the user keeps partial episodes.
                    if fig.frames and self.ds.save_partial_episode:
                        fig.partial = True
                        fig.report = rec.save_episode(progress=self._encode_progress)
                        self._say(self._episode_line(fig) + ", up to the camera failure")
                    raise
                stopped = self.stop.signum is not None
                if fig.frames and (not stopped or self.ds.save_partial_episode):
                    fig.partial = stopped
                    self._update_status("saving", fig, force=True)
                    fig.report = rec.save_episode(progress=self._encode_progress)
                    self._say(self._episode_line(fig))
                elif fig.frames:
                    rec.clear_episode()
                    self._say(f"episode {k + 1}/{n}: stopped after {fig.frames} frames; discarded "
                              "(--dataset.save_partial_episode=true keeps it)")
            except EncoderRestarted as e:
                # The episode in progress is gone and a new encoder took over: record it again.
                self.episodes.pop()
                log.warning("episode %d/%d: %s; recording it again", k + 1, n, e)
                continue
            if stopped:
                return
            if k < n - 1 and self.ds.reset_time_s > 0:
                self._reset_wait(fig)
            k += 1

    def _record_episode(self, rec: DatasetRecorder, fig: EpisodeFigures) -> None:
        period = 1.0 / self.ds.fps
        task = self.ds.single_task
        keys = [(s, IMAGE_PREFIX + s.name, IMAGE_PREFIX + s.name + CAPTURE_TIME_SUFFIX) for s in self.sources]
        robot = self.robot
        assert robot is not None
        self._tick_times.clear()
        start = time.monotonic()
        self._episode_start = start
        self._update_status("recording", fig, force=True)
        tick = 0
        while tick < fig.ticks and self.stop.signum is None:
            due = start + tick * period
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
                if self.stop.signum is not None:
                    break
            elif now - due > period / 2:
                # This tick's slot has passed: move to the nearest tick instead of bursting frames.
                missed = min(int((now - due) / period + 0.5), fig.ticks - tick)
                fig.late_ticks += missed
                tick += missed
                continue
            frame: dict[str, Any] = {"task": task}
            for source, key, time_key in keys:
                frame[key], frame[time_key] = source.read_timed()
            frame.update(robot.read())
            t0 = time.perf_counter()
            rec.add_frame(frame)
            t1 = time.perf_counter()
            fig.add_frame_s.append(t1 - t0)
            if self.display is not None:
                self._offer_display(frame, fig, keys)
            fig.frames += 1
            tick += 1
            self._tick_times.append(time.monotonic())
            self._update_status("recording", fig)

    def _reset_wait(self, fig: EpisodeFigures) -> None:
        end = time.monotonic() + self.ds.reset_time_s
        self._episode_start = time.monotonic()
        while self.stop.signum is None:
            left = end - time.monotonic()
            if left <= 0:
                return
            self._update_status("reset", fig)
            time.sleep(min(left, 0.05))

    # -- live display ---------------------------------------------------------------------------

    def _open_display(self, robot_features: Mapping[str, Mapping[str, Any]]) -> None:
        """Start the display thread and its Rerun sink (the viewer, or the .rrd file without a screen).

        Raises:
            DisplayError: Rerun could not start.
        """
        names = {key: spec.get("names") for key, spec in robot_features.items()}
        self._display_values = list(names)
        sink = RerunSink(rrd_path=self._rrd_path, value_names=names)
        self.display = DisplayWorker(sink)
        self.display.start()
        where = f"saving to {self._rrd_path} (no screen here)" if self._rrd_path else "in the Rerun viewer"
        self._say(f"live display: {where}; {self.display.config.image_hz:g} images/s per camera, at most "
                  f"{self.display.config.max_width} pixels wide")

    def _offer_display(self, frame: Mapping[str, Any], fig: EpisodeFigures,
                       keys: list[tuple[CameraSource, str, str]]) -> None:
        display = self.display
        assert display is not None
        t0 = time.perf_counter()
        try:
            display.offer(index=self._display_ticks, episode_index=fig.index, frame_index=fig.frames - 1,
                          capture_time_s=frame[keys[0][2]], images={key: frame[key] for _, key, _ in keys},
                          values={key: frame[key] for key in self._display_values})
        except DisplayError as e:
            # The recording matters more than its preview: say so once and go on without it.
            self.display_error = e
            log.warning("%s; recording goes on without the live display", e)
            self._close_display()
            return
        fig.display_offer_s.append(time.perf_counter() - t0)
        self._display_ticks += 1

    def _close_display(self) -> None:
        """Stop the display thread after it has logged what is queued (the .rrd is complete after this)."""
        display = self.display
        if display is None:
            return
        display.stop()
        if not display.join(_DISPLAY_JOIN_S):
            log.warning("live display: its thread is still busy after %.0f s; leaving it to finish on its own",
                        _DISPLAY_JOIN_S)
        if display.failure is not None and self.display_error is None:
            self.display_error = DisplayError(f"live display stopped: {display.failure}")
            log.warning("%s", self.display_error)
        self._display_counts = (display.offered, display.dropped, display.logged)
        self.display = None

    # -- status ---------------------------------------------------------------------------------

    def _say(self, line: str) -> None:
        """One plain line per event; on a terminal rich prints it above the live display."""
        if self.live:
            self.console.print(line)
        else:
            print(line, flush=True)

    def _episode_line(self, fig: EpisodeFigures) -> str:
        r = fig.report
        assert r is not None
        drops = ", ".join(f"{name.removeprefix(IMAGE_PREFIX)} {c.dropped}" for name, c in r.cameras.items())
        partial = " (partial)" if fig.partial else ""
        if r.videos_pending:
            video = f" (video waits for the batch of {self.ds.video_encoding_batch_size})"
        elif r.encoded_episodes != (r.episode_index,):
            video = f" (encoded episodes {r.encoded_episodes[0] + 1}-{r.encoded_episodes[-1] + 1})"
        else:
            video = ""
        return (f"episode {fig.index + 1}/{self.ds.num_episodes}{partial}: {fig.frames} frames, dropped {drops}, "
                f"late ticks {fig.late_ticks}, saved in {r.save_s * 1e3:.0f} ms{video}")

    def _encode_progress(self, p: EncodeProgress) -> None:
        """Progress of encoding saved PNG episodes (streaming_encoding=false), for the live display."""
        if not self.live:
            return
        s = self._snapshot
        self._snapshot = _Snapshot("encoding", p.episode_index, p.frames_done, p.frames_total, s.frames,
                                   s.late_ticks, 0.0, self._cpu_percent(), s.cameras)

    def _update_status(self, phase: str, fig: EpisodeFigures, force: bool = False) -> None:
        """Copy the counters for the display thread, at most every STATUS_PERIOD_S (cheap reads only)."""
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._status_at < STATUS_PERIOD_S:
            return
        self._status_at = now
        times = self._tick_times
        loop_hz = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else 0.0
        rec = self._rec
        cameras = tuple((c.camera, c.queue_depth, c.dropped) for c in rec.camera_status()) if rec else ()
        total = self.ds.reset_time_s if phase == "reset" else self.ds.episode_time_s
        self._snapshot = _Snapshot(phase, fig.index, now - self._episode_start, total, fig.frames,
                                   fig.late_ticks, loop_hz, self._cpu_percent(), cameras)

    def _cpu_percent(self) -> float:
        """CPU use since the last call, in % of one core: this process (all its threads) plus its
        children, since encoders may run in worker processes."""
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
        """The live display; runs on rich's refresh thread and reads only the snapshot."""
        s = self._snapshot
        n = self.ds.num_episodes
        left = max(0.0, s.total_s - s.elapsed_s)
        head = Table.grid(padding=(0, 2))
        label = {"recording": f"Episode {s.episode + 1}/{n}", "reset": f"Reset before episode {s.episode + 2}/{n}",
                 "saving": f"Saving episode {s.episode + 1}/{n}",
                 "encoding": f"Encoding episode {s.episode + 1} from PNGs"}.get(s.phase, s.phase)
        # While encoding, the bar counts frames, not seconds.
        remaining = f"{left:.0f} frames left" if s.phase == "encoding" else f"{left:4.1f} s left"
        head.add_row(Text(label, "bold"), ProgressBar(total=max(s.total_s, 1e-9), completed=min(s.elapsed_s, s.total_s),
                                                      width=40), Text(remaining))
        late_style = "yellow" if s.late_ticks else "green"
        rate = Text.assemble(
            f"loop {s.loop_hz:5.1f} / {self.ds.fps} Hz   ", (f"late ticks {s.late_ticks}", late_style),
            f"   frames {s.frames}   CPU {s.cpu_pct:.0f} %   -> {self.ds.root}")
        cams = Table(box=None, padding=(0, 2), show_edge=False)
        cams.add_column("camera")
        cams.add_column("queue", justify="right")
        cams.add_column("dropped", justify="right")
        for name, depth, dropped in s.cameras:
            cams.add_row(name.removeprefix(IMAGE_PREFIX), f"{depth}/{self.ds.encoder_queue_maxsize}",
                         Text(str(dropped), "yellow" if dropped else ""))
        parts: list[Any] = [head, rate, cams]
        dropping = [name.removeprefix(IMAGE_PREFIX) for name, _, dropped in s.cameras if dropped]
        if s.late_ticks:
            parts.append(Text(f"! loop running late: {s.late_ticks} tick(s) skipped this episode; the machine "
                              f"cannot keep {self.ds.fps} fps with this load", "bold yellow"))
        if dropping and self.ds.streaming_encoding:
            parts.append(Text(f"! encoders falling behind, dropping frames ({', '.join(dropping)}): try "
                              "--dataset.camera_encoder.vcodec=h264, fewer --dataset.encoder_threads, or "
                              "--dataset.streaming_encoding=false", "bold yellow"))
        elif dropping:
            parts.append(Text(f"! PNG writing falling behind, dropping frames ({', '.join(dropping)}): the disk or "
                              "the CPU is too slow for these cameras; fewer or smaller cameras help", "bold yellow"))
        if self.stop.signum is not None:
            parts.append(Text("stopping: finishing the episode and finalizing the dataset", "bold"))
        return Group(*parts)

    def _summary(self, rec: DatasetRecorder) -> None:
        table = Table(title=f"streamrec record {rec.root}", title_justify="left")
        for column in ("Episode", "Frames", "Dropped", "Late ticks", "Save ms", "add_frame p99 ms"):
            table.add_column(column, justify="right")
        table.add_column("Status")
        for fig in self.episodes:
            figures = fig.to_json()
            drops = sum(figures["dropped"].values())
            status = "partial" if fig.partial else "saved" if fig.report else "discarded"
            save = "-" if fig.report is None else f"{fig.report.save_s * 1e3:.0f}"
            p99 = "-" if figures["add_frame_p99_ms"] is None else f"{figures['add_frame_p99_ms']:.2f}"
            table.add_row(str(fig.index), str(fig.frames), str(drops), str(fig.late_ticks), save, p99, status)
        self.console.print(table)
        frames = sum(f.frames for f in self.episodes if f.report)
        stopped = "" if self.stop.signum is None else f" (stopped by {signal.Signals(self.stop.signum).name})"
        self.console.print(f"Dataset: {rec.root} - {rec.num_episodes} episode(s), {frames} frames{stopped}")
        if self._display_counts is not None:
            offered, dropped, logged = self._display_counts
            failed = f"; stopped early: {self.display_error}" if self.display_error else ""
            self.console.print(f"Live display: {logged} of {offered} ticks shown, {dropped} dropped while the "
                               f"display was behind{failed}")
            if self._rrd_path:
                self.console.print(f"Live display saved to {self._rrd_path}; open it with: rerun {self._rrd_path}")

    def _write_report(self, path: Path, rec: DatasetRecorder) -> None:
        report = {
            "dataset": str(rec.root), "fps": self.ds.fps, "episode_time_s": self.ds.episode_time_s,
            "cameras": [IMAGE_PREFIX + s.name for s in self.sources],
            "stopped_by": None if self.stop.signum is None else signal.Signals(self.stop.signum).name,
            "episodes": [f.to_json() for f in self.episodes],
        }
        if self._display_counts is not None:
            offered, dropped, logged = self._display_counts
            report["display"] = {"offered": offered, "dropped": dropped, "logged": logged,
                                 "rrd": None if self._rrd_path is None else str(self._rrd_path),
                                 "error": None if self.display_error is None else str(self.display_error)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")


class _Stopped(Exception):
    """A stop was requested while the sources were opening."""

