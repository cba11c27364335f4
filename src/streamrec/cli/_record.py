"""`streamrec record --dataset.root=... --cameras=...`: record episodes from camera sources.

The flags are generated from `RecordConfig` (see `_flags`); `streamrec record --help` lists them.
The recorder's own settings (`--dataset.streaming_encoding`, `--dataset.camera_encoder.*`, ...)
come from `streamrec.record.RecordingOptions`, so they are checked, named and defaulted as in Python.

This module opens the camera sources (`streamrec.capture`) and the recorder, then runs the episodes
with the paced loop (`_loop`) and shows them (`_status`). Each tick the cameras are read straight
into the recorder's queue buffers (`DatasetRecorder.frame_buffer`), so `add_frame` copies no image.

Exit codes: 0 done; 1 a camera, encoder or the dataset folder failed; 2 bad flags or settings;
130 stopped by SIGINT (Ctrl-C), 143 by SIGTERM. Stopped or failed, the dataset is always
finalized with the episodes completed so far.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec import (
    ConfigError,
    DatasetRecorder,
    DepthEncoderConfig,
    EncoderConfig,
    EncoderRestarted,
    StreamrecError,
)
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
    camera_sources,
    is_depth_source,
    sim_world,
)
from streamrec.capture._depth import check_source_names
from streamrec.cli import _flags
from streamrec.dataset._features import CAPTURE_TIME_SUFFIX
from streamrec.record import RecordingOptions
from streamrec.record._config import OPTION_NAMES

from ._live_display import LiveDisplay, display_target
from ._loop import StopRequest, check_plan, reset_wait, run_ticks
from ._paths import PathProblem, check_dataset_root, check_writable_file
from ._status import IMAGE_PREFIX, EpisodeFigures, RecordingStatus, write_report

log = logging.getLogger("streamrec")



@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetSection(RecordingOptions):
    """Where and how episodes are recorded (`--dataset.<field>`); the encoder settings are the recorder's."""

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
    save_partial_episode: bool = False
    """On Ctrl-C / SIGTERM, save the open episode as it is instead of discarding it."""
    video: bool = True
    """As lerobot-record's: cameras are stored as video. streamrec always does (false is refused)."""

    def __post_init__(self) -> None:
        RecordingOptions.__post_init__(self)  # zero-argument super() fails in slotted dataclasses

        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"DatasetSection.{name} = {getattr(self, name)!r}: {rule}")

        for name in ("fps", "num_episodes"):
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
        check_plan(self, bad)
        if self.video is not True:
            raise bad("video", "streamrec stores cameras as video only (false would store PNG images per row); "
                      "leave it true")


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
    play_sounds: bool = False
    """Speak the events (episode start, reset, end) as lerobot-record does, with the system's speech program
    (spd-say on Linux, say on macOS); silent where there is none."""
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
        check_source_names(self.cameras)  # a depth camera `<name>_depth` must not be another camera


_LEROBOT = ("is a flag of lerobot-record, whose robots, teleoperators and datasets `streamrec lerobot-record` "
            "takes with the same flags (pip install 'streamrec[lerobot]'); `streamrec record` records its own "
            "camera sources")
_HINTS = {
    **{group: f"--{group}.* {_LEROBOT}" for group in ("robot", "teleop", "policy", "display_ip", "display_port")},
    **{f"dataset.{name}": f"--dataset.{name} {_LEROBOT}" for name in (
        "repo_id", "push_to_hub", "private", "tags", "num_image_writer_processes",
        "num_image_writer_threads_per_camera", "rename_map", "depth_encoder")},
    "dataset.rgb_encoder": "LeRobot's --dataset.rgb_encoder.* is --dataset.camera_encoder.* here (same fields)",
}
"""Flags a LeRobot user brings: what to say instead of a close-looking flag of this command."""

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
        config = _flags.parse(RecordConfig, argv, hints=_HINTS)
    except _flags.FlagError as e:
        print(f"streamrec record: {e}", file=sys.stderr)
        return 2
    return Recording(config).run()


# -- the recording --------------------------------------------------------------------------------


class _Stopped(Exception):
    """A stop was requested while the sources were opening."""


class Recording:
    """One run of `streamrec record`: opens the sources and the recorder, loops, finalizes."""

    def __init__(self, config: RecordConfig) -> None:
        self.config = config
        self.ds = ds = config.dataset
        self.status = RecordingStatus(command="streamrec record", num_episodes=ds.num_episodes, fps=ds.fps,
                                      episode_time_s=ds.episode_time_s, reset_time_s=ds.reset_time_s,
                                      queue_maxsize=ds.encoder_queue_maxsize, streaming=ds.streaming_encoding,
                                      root=ds.root, batch_size=ds.batch_encoding_size, play_sounds=config.play_sounds)
        self.stop = StopRequest("streamrec record")
        self.sources: list[CameraSource] = []
        self.robot: RobotSource | None = None
        self._keys: list[tuple[CameraSource, str, str]] = []
        """Per camera: its source, its video key, its capture-time key."""
        self._last_capture: dict[str, float] = {}
        self._rec: DatasetRecorder | None = None
        self._fig: EpisodeFigures | None = None
        """The episode being recorded."""
        self._rrd: Path | None = None
        self.display: LiveDisplay | None = None

    # -- top level ------------------------------------------------------------------------------

    def run(self) -> int:
        with self.stop.installed():
            return self._run()

    def _fail(self, message: str, code: int) -> int:
        self.status.fail(message)
        return code

    def _run(self) -> int:
        root = Path(self.ds.root)
        try:
            check_dataset_root(root, resume=self.config.resume)
            if self.config.report_json:
                check_writable_file(Path(self.config.report_json), "--report-json")
        except PathProblem as e:
            return self._fail(str(e), 1)
        if self.config.display_data:
            try:
                self._rrd = display_target(root)
            except ConfigError as e:  # Rerun is not installed
                return self._fail(str(e), 2)
            except PathProblem as e:
                return self._fail(str(e), 1)
        try:
            rec = self._open()
        except SourceError as e:
            return self._fail(str(e), 1)
        except ConfigError as e:
            return self._fail(str(e), 2)
        except StreamrecError as e:  # also DisplayError: asked for, the display must start
            return self._fail(str(e), 1)
        except OSError as e:  # the dataset folder cannot be made or written
            return self._fail(f"cannot write the dataset at {root}: {e}", 1)
        if rec is None:  # stopped while the cameras were opening
            return self.stop.exit_code
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
                rec.finalize(progress=self.status.encode_progress)
            except StreamrecError as e:
                code = self._fail(str(e), 1)
            for source in self.sources:
                source.close()
        display = self.display
        self.status.summary(rec, self.stop.signum, display.lines() if display else ())
        if self.config.report_json:
            write_report(Path(self.config.report_json), self.status.report(
                rec, self.stop.signum, [key for _, key, _ in self._keys], display.report() if display else None))
        if code == 0 and self.stop.signum is not None:
            code = self.stop.exit_code
        return code

    def _open(self) -> DatasetRecorder | None:
        """Open every camera, then the recorder; None when a stop was requested meanwhile."""
        try:
            world = sim_world(self.config.cameras, self.ds.fps)
            for name, cam in self.config.cameras.items():
                for source in camera_sources(name, cam, world=world):  # a depth camera may come with it
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
            self._keys = [(s, IMAGE_PREFIX + s.name, IMAGE_PREFIX + s.name + CAPTURE_TIME_SUFFIX)
                          for s in self.sources]
            features: dict[str, dict[str, Any]] = {}
            for source, key, _ in self._keys:
                features[key] = {"dtype": "video", "shape": list(source.shape)}
                if is_depth_source(source):
                    features[key]["info"] = {"is_depth_map": True}
            for _, _, time_key in self._keys:
                features[time_key] = {"dtype": "float64", "shape": [1], "names": None}
            features.update(self.robot.features)
            if self.config.display_data:
                self.display = LiveDisplay(self._rrd, self.robot.features, self.status.say)
            ds = self.ds
            options = {name: getattr(ds, name) for name in OPTION_NAMES}
            if self.config.resume:
                if ds.camera_encoder == EncoderConfig():  # left at its default: the dataset's settings
                    del options["camera_encoder"]
                if ds.depth_encoder == DepthEncoderConfig():
                    del options["depth_encoder"]
                rec = DatasetRecorder.resume(ds.root, fps=ds.fps, features=features, robot_type=ds.robot_type,
                                             **options)
            else:
                rec = DatasetRecorder.create(ds.root, ds.fps, features, robot_type=ds.robot_type, **options)
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

    def _close_display(self) -> None:
        if self.display is not None:
            self.display.close()

    # -- the loop -------------------------------------------------------------------------------

    def _record_all(self, rec: DatasetRecorder) -> None:
        cams = ", ".join(f"{s.name} {s.shape[1]}x{s.shape[0]} {s.config.type}" for s in self.sources)
        self.status.say(f"recording {self.ds.num_episodes} episode(s) of {self.ds.episode_time_s:g} s at "
                        f"{self.ds.fps} fps to {rec.root} (cameras: {cams}; "
                        f"{', '.join(sorted(set(rec.encoders.values())))})")
        try:
            with self.status.showing(rec):
                self._episodes(rec)
        finally:
            self.status.announce("Stop recording")

    def _tick(self) -> None:
        """One tick: every camera read into its queue buffer (no copy on the way), the robot, the row."""
        rec, fig = self._rec, self._fig
        row: dict[str, Any] = {"task": self.ds.single_task}
        for source, key, time_key in self._keys:
            buffer = rec.frame_buffer(key)
            captured_at = row[time_key] = source.read_into(buffer)
            row[key] = buffer
            if captured_at == self._last_capture.get(key):  # no new frame since the last tick
                fig.stale[key] = fig.stale.get(key, 0) + 1
            self._last_capture[key] = captured_at
        row.update(self.robot.read())
        t0 = time.perf_counter()
        rec.add_frame(row)
        fig.add_frame_s.append(time.perf_counter() - t0)
        fig.frames += 1
        display = self.display
        if display is not None and display.running:
            t0 = time.perf_counter()
            display.offer(row, episode_index=fig.number - 1, frame_index=fig.frames - 1,
                          capture_time_s=row[self._keys[0][2]], cameras=[key for _, key, _ in self._keys])
            fig.display_offer_s.append(time.perf_counter() - t0)

    def _episodes(self, rec: DatasetRecorder) -> None:
        n = self.ds.num_episodes
        status = self.status
        ticks = max(1, round(self.ds.episode_time_s * self.ds.fps))
        k = 0
        while k < n:
            if self.stop.signum is not None:
                return
            fig = self._fig = EpisodeFigures(number=k + 1, ticks=ticks)
            status.episodes.append(fig)
            status.announce(f"Recording episode {k + 1}")
            self.robot.start_episode(k)
            try:
                try:
                    run_ticks(ticks, self.ds.fps, self.stop, self._tick, status, "recording", fig)
                except SourceError:
                    # A camera stopped mid-episode: the recording ends; what the other cameras and
                    # this one delivered until then is kept if the user keeps partial episodes.
                    if fig.frames and self.ds.save_partial_episode:
                        fig.status = "partial"
                        fig.report = rec.save_episode(progress=status.encode_progress)
                        status.say(status.episode_line(fig) + ", up to the camera failure")
                    else:
                        fig.status = "discarded"
                    raise
                stopped = self.stop.signum is not None
                status.stopping = stopped
                if fig.frames and (not stopped or self.ds.save_partial_episode):
                    status.update("saving", fig, force=True)
                    fig.report = rec.save_episode(progress=status.encode_progress)
                    fig.status = "partial" if stopped else "saved"
                    status.say(status.episode_line(fig))
                elif fig.frames:
                    rec.clear_episode()
                    fig.status = "discarded"
                    status.say(f"episode {k + 1}/{n}: stopped after {fig.frames} frames; discarded "
                               "(--dataset.save_partial_episode=true keeps it)")
            except EncoderRestarted as e:
                # The episode in progress is gone and a new encoder took over: record it again.
                fig.status = "lost"
                log.warning("episode %d/%d: %s; recording it again", k + 1, n, e)
                continue
            if stopped:
                return
            if k < n - 1 and self.ds.reset_time_s > 0:
                status.announce("Reset the environment")
                reset_wait(self.ds.reset_time_s, fig, status, self.stop)
            k += 1
