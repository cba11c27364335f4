"""`streamrec lerobot-record`: lerobot-record's command line, recording through streamrec.

The robot and teleoperator are made as lerobot-record makes them (third-party plugins registered
first, LeRobot's default processor pipelines unless others are given), and each tick runs
lerobot-record's steps: observation, observation pipeline, teleoperator action, action pipelines,
`send_action`, then one row built by LeRobot's `build_dataset_frame` from that one observation and
action. The rows go to `streamrec.lerobot.LeRobotDataset`, hence `DatasetRecorder`.

What differs from lerobot-record's loop: ticks follow a fixed schedule (tick k is due at start + k /
fps); a tick whose slot passed while the loop was busy is skipped and counted, never caught up in a
burst, so rows stay evenly spaced and an episode has at most fps x episode_time_s rows. Camera
frames are counted as stale when an observation repeats the previous one's image or its capture
time (cameras that keep one, as LeRobot's OpenCV and RealSense cameras do) is older than one period.

Keyboard (LeRobot's own listener: arrows and Esc with a display, n / r / q on a terminal): next
ends the episode (or the reset) early, re-record discards the open episode and records it again
after the reset, stop saves the open episode and ends. Ctrl-C or SIGTERM discards the open episode.
The dataset is always finalized with the episodes saved so far, and pushed (--dataset.push_to_hub)
only then. Exit codes: 0 done; 1 a device, encoder, the dataset folder or the push failed; 2 bad
flags; 130 SIGINT, 143 SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from streamrec import ConfigError, EncoderRestarted, StreamrecError
from streamrec.record import EpisodeReport

from ._config import LeRobotRecordConfig
from ._features import aggregate_pipeline_dataset_features, create_initial_features
from ._hub import PushError
from ._writer import LeRobotDataset, default_root, encoder_config, say_ignored

log = logging.getLogger("streamrec.lerobot")

IMAGES = "observation.images."
STATUS_PERIOD_S = 0.25
_EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
_NO_MEANING = {
    "--dataset.num_image_writer_processes": "streamrec writes no images from the loop: each camera has its own "
                                            "encoder (or PNG writer) process",
    "--dataset.num_image_writer_threads_per_camera": "streamrec writes no images from the loop: each camera has "
                                                     "its own encoder (or PNG writer) process",
    "--display_compressed_images": "streamrec's live display always sends JPEG images",
}

USAGE = """\
usage: streamrec lerobot-record --robot.type=... --teleop.type=... --dataset.repo_id=USER/NAME \\
         --dataset.single_task=TEXT [lerobot-record's other flags] [streamrec's flags]

lerobot-record 0.6.1's flags, unchanged, recording through streamrec (see docs/lerobot.md). streamrec's own:
  --dataset.queue_full_policy={drop,block}  a camera frame its encoder cannot take: drop it (counted; the
                                            video repeats the previous frame) or wait (default drop)
  --dataset.adapt_on_overload=BOOL          an encoder falling behind moves to faster settings before frames
                                            are dropped (default true)
  --dataset.camera_encoder.*                the same as --dataset.rgb_encoder.*
  --report-json=PATH                        per-episode figures as JSON
Keys: n / right arrow ends the episode early, r / left arrow records it again, q / Esc stops.
Exit codes: 0 done, 1 a device, encoder, the dataset folder or the push failed, 2 bad flags, 130 Ctrl-C,
143 SIGTERM.

LeRobot's flags:
"""


def main(argv: Sequence[str]) -> int:
    """Parse lerobot-record's flags and record; returns the exit code."""
    argv = translate(argv)
    if "--help" in argv or "-h" in argv:
        sys.stdout.write(USAGE)
        sys.stdout.flush()
    try:
        config = parse(argv)
    except SystemExit as e:  # draccus and LeRobot's parser exit on --help (0) and on bad flags (1 or 2)
        return 0 if e.code in (0, None) else 2
    except Exception as e:  # noqa: BLE001 - draccus wraps a config class's own error; say that one
        print(f"streamrec lerobot-record: {_root_cause(e)}", file=sys.stderr)
        return 2
    for flag, why in _NO_MEANING.items():
        if any(a == flag or a.startswith(flag + "=") for a in argv):
            say_ignored(flag, "(given)", why)
    return Recording(config).run()


def _root_cause(error: BaseException) -> str:
    """The message of the error a config class raised, under the parser's wrappers."""
    found = error
    while found.__cause__ is not None:
        found = found.__cause__
        if isinstance(found, (ConfigError, ValueError, TypeError)):
            break
    return str(found) if found is not error else f"{type(error).__name__}: {error}"


def translate(argv: Sequence[str]) -> list[str]:
    """streamrec's spellings to the config's: --dataset.camera_encoder.* (the name in streamrec's docs)
    is --dataset.rgb_encoder.*, --report-json is --report_json."""
    out = []
    for arg in argv:
        if arg.startswith("--dataset.camera_encoder."):
            arg = "--dataset.rgb_encoder." + arg[len("--dataset.camera_encoder."):]
        elif arg == "--report-json" or arg.startswith("--report-json="):
            arg = "--report_json" + arg[len("--report-json"):]
        out.append(arg)
    return out


def parse(argv: Sequence[str]) -> LeRobotRecordConfig:
    """The config from flags, through LeRobot's parser (plugins, --config_path, scoped --help).

    Raises:
        SystemExit: --help, or flags the parser rejects (it prints why).
        ConfigError, ValueError: a value a config class rejects.
    """
    from lerobot.configs import parser
    from lerobot.utils.import_utils import register_third_party_plugins

    register_builtin_devices()
    register_third_party_plugins()

    def take(cfg):  # noqa: ANN001, ANN202 - the parser reads the type from __annotations__ below
        return cfg

    take.__annotations__ = {"cfg": LeRobotRecordConfig, "return": LeRobotRecordConfig}
    saved = sys.argv
    sys.argv = ["streamrec lerobot-record", *argv]
    try:
        return parser.wrap()(take)()
    finally:
        sys.argv = saved


BUILTIN_DEVICES = (
    "lerobot.cameras.opencv", "lerobot.cameras.reachy2_camera", "lerobot.cameras.realsense", "lerobot.cameras.zmq",
    *(f"lerobot.robots.{name}" for name in (
        "bi_openarm_follower", "bi_rebot_b601_follower", "bi_so_follower", "earthrover_mini_plus", "hope_jr",
        "koch_follower", "omx_follower", "openarm_follower", "reachy2", "rebot_b601_follower", "so_follower",
        "unitree_g1")),
    *(f"lerobot.teleoperators.{name}" for name in (
        "bi_openarm_leader", "bi_openarm_mini", "bi_rebot_102_leader", "bi_so_leader", "homunculus", "koch_leader",
        "omx_leader", "openarm_leader", "openarm_mini", "reachy2_teleoperator", "rebot_102_leader", "so_leader",
        "unitree_g1", "keyboard")),
)
"""The modules lerobot-record 0.6.1 imports so that their config classes register their --robot.type,
--teleop.type and camera type names."""


def register_builtin_devices() -> None:
    import importlib

    for module in BUILTIN_DEVICES:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - a device whose SDK is missing stays unlisted, as it would fail anyway
            log.debug("LeRobot device module %s not imported: %s", module, e)


@dataclass(slots=True)
class EpisodeFigures:
    """Counters of one episode attempt, kept by the loop."""

    index: int
    """The episode index it is saved under (a re-recorded attempt shares its index with the next)."""
    ticks: int
    rows: int = 0
    skipped_ticks: int = 0
    """Ticks whose slot passed while the loop was busy (no observation, no row)."""
    skipped_at: list[tuple[int, int]] = field(default_factory=list)
    """(first tick skipped, how many in a row), for each time the loop fell behind."""
    stale: dict[str, int] = field(default_factory=dict)
    """Per camera: rows whose image repeats the previous observation's or is older than one period."""
    add_frame_s: list[float] = field(default_factory=list)
    report: EpisodeReport | None = None
    status: str = "recording"
    """saved, re-recorded, discarded (stopped), lost (an encoder was replaced) or empty."""

    def to_json(self) -> dict[str, Any]:
        p50, p99 = (None, None) if not self.add_frame_s else (
            float(v) for v in np.percentile(np.asarray(self.add_frame_s) * 1e3, [50, 99]))
        cameras = self.report.cameras if self.report else {}
        return {"episode_index": self.index, "status": self.status, "rows": self.rows, "ticks": self.ticks,
                "skipped_ticks": self.skipped_ticks, "skipped_at": [list(x) for x in self.skipped_at],
                "stale_frames": dict(self.stale),
                "dropped": {name: c.dropped for name, c in cameras.items()},
                "adaptations": {name: [a.to_dict() for a in c.adaptations] for name, c in cameras.items()
                                if c.adaptations},
                "save_s": None if self.report is None else round(self.report.save_s, 4),
                "add_frame_p50_ms": None if p50 is None else round(p50, 3),
                "add_frame_p99_ms": None if p99 is None else round(p99, 3)}


class _StopRequest:
    """Signal handler: remembers the first signal (an attribute only: nothing that takes a lock)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        else:
            os.write(2, b"\nstreamrec lerobot-record: already stopping; finalizing the dataset, please wait\n")


class Recording:
    """One run of `streamrec lerobot-record`.

    Args:
        config: The parsed flags.
        teleop_action_processor, robot_action_processor, robot_observation_processor: LeRobot processor
            pipelines, as lerobot-record's `record()` takes them; None uses LeRobot's defaults.
    """

    def __init__(self, config: LeRobotRecordConfig, *, teleop_action_processor: Any = None,
                 robot_action_processor: Any = None, robot_observation_processor: Any = None) -> None:
        self.config = config
        self.ds_cfg = config.dataset
        self.processors = (teleop_action_processor, robot_action_processor, robot_observation_processor)
        self.console = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.live = self.console.is_terminal
        self.stop = _StopRequest()
        self.robot: Any = None
        self.teleop: Any = None
        self.dataset: LeRobotDataset | None = None
        self.events: dict[str, bool] = {"exit_early": False, "rerecord_episode": False, "stop_recording": False}
        self.listener: Any = None
        self.episodes: list[EpisodeFigures] = []
        self.cameras: dict[str, str] = {}
        """Observation key -> dataset feature key, for each camera."""
        self.display: Any = None
        self._rrd_path: Path | None = None
        self._display_ticks = 0
        self._previous: dict[str, Any] = {}
        self._tick_times: deque[float] = deque(maxlen=max(2, self.ds_cfg.fps))
        self._phase = "starting"
        self._phase_start = self._status_at = 0.0
        self._phase_total = 0.0
        self._fig: EpisodeFigures | None = None
        self._snapshot: tuple = ()
        self._process = psutil.Process()
        self._children: dict[int, psutil.Process] = {}
        self.pushed: bool | None = None
        self.push_error: str | None = None

    # -- top level ------------------------------------------------------------------------------

    def run(self) -> int:
        previous = {s: signal.signal(s, self.stop) for s in _EXIT_ON_SIGNAL}
        try:
            return self._run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _fail(self, message: str, code: int) -> int:
        self.err.print(Text(f"streamrec lerobot-record: {message}", "bold red"))
        return code

    def _run(self) -> int:
        try:
            self._open()
        except ConfigError as e:
            self._abandon()
            return self._fail(str(e), 2)
        except Exception as e:  # noqa: BLE001 - a device or the dataset folder: said, then exit 1
            log.debug("opening failed", exc_info=True)
            self._abandon()
            return self._fail(f"{type(e).__name__}: {e}", 1)
        ds = self.dataset
        assert ds is not None
        code = 0
        finalized = False
        try:
            self._record_all()
        except StreamrecError as e:
            code = self._fail(f"{e}; finalizing with the {ds.num_episodes} episode(s) saved so far", 1)
        except Exception as e:  # noqa: BLE001 - a robot or teleoperator failed mid-recording
            log.debug("recording failed", exc_info=True)
            code = self._fail(f"{type(e).__name__}: {e}; finalizing with the {ds.num_episodes} episode(s) saved "
                              "so far", 1)
        finally:
            self._close_display()
            if ds.has_pending_frames():
                with contextlib.suppress(StreamrecError):  # finalize() reports a failed encoder
                    ds.clear_episode_buffer()
            try:
                ds.finalize()
                finalized = True
            except StreamrecError as e:
                code = self._fail(str(e), 1)
            self._close_devices()
        if finalized and self.ds_cfg.push_to_hub:
            code = self._push(code)
        self._summary()
        if self.config.report_json:
            self._write_report(Path(self.config.report_json))
        if code == 0 and self.stop.signum is not None:
            code = _EXIT_ON_SIGNAL[self.stop.signum]
        return code

    def _open(self) -> None:
        """Robot, teleoperator, pipelines, features, dataset, then the devices' connections and the keys,
        in lerobot-record's order."""
        from lerobot.processor import make_default_processors
        from lerobot.robots import make_robot_from_config
        from lerobot.teleoperators import make_teleoperator_from_config
        from lerobot.utils.feature_utils import combine_feature_dicts
        from lerobot.utils.keyboard_input import init_keyboard_listener

        cfg, ds_cfg = self.config, self.ds_cfg
        self.robot = make_robot_from_config(cfg.robot)
        self.teleop = make_teleoperator_from_config(cfg.teleop)
        teleop_p, robot_p, obs_p = self.processors
        if teleop_p is None or robot_p is None or obs_p is None:
            defaults = make_default_processors()
            teleop_p, robot_p, obs_p = (given or default for given, default in zip(self.processors, defaults))
        self.processors = (teleop_p, robot_p, obs_p)
        features = combine_feature_dicts(
            aggregate_pipeline_dataset_features(teleop_p, create_initial_features(action=self.robot.action_features),
                                                use_videos=ds_cfg.video),
            aggregate_pipeline_dataset_features(obs_p, create_initial_features(
                observation=self.robot.observation_features), use_videos=ds_cfg.video))
        self.features = features
        self.cameras = {key[len(IMAGES):]: key for key, f in features.items()
                        if key.startswith(IMAGES) and f["dtype"] == "video"}
        common = dict(batch_encoding_size=ds_cfg.video_encoding_batch_size,
                      rgb_encoder=encoder_config(ds_cfg.rgb_encoder), depth_encoder=ds_cfg.depth_encoder,
                      encoder_threads=ds_cfg.encoder_threads, streaming_encoding=ds_cfg.streaming_encoding,
                      encoder_queue_maxsize=ds_cfg.encoder_queue_maxsize,
                      queue_full_policy=ds_cfg.queue_full_policy, adapt_on_overload=ds_cfg.adapt_on_overload)
        if cfg.resume:
            root = Path(ds_cfg.root) if ds_cfg.root else default_root(ds_cfg.repo_id)
            if (root / ".streamrec").exists():
                raise ConfigError(f"{root} holds an interrupted recording; run `streamrec repair {root}` first")
            self.dataset = LeRobotDataset.resume(ds_cfg.repo_id, root=root, **common)
            from ._features import sanity_check_dataset_robot_compatibility

            try:
                sanity_check_dataset_robot_compatibility(self.dataset, self.robot, ds_cfg.fps, features)
            except ValueError as e:
                self.dataset.finalize()
                raise ConfigError(f"--resume=true: {e}") from None
        else:
            repo_id = ds_cfg.repo_id
            if repo_id.split("/", 1)[-1].startswith("eval_"):
                raise ConfigError(f"--dataset.repo_id={repo_id}: names starting with 'eval_' are reserved for "
                                  "policy evaluation (lerobot-rollout)")
            root = Path(ds_cfg.root) if ds_cfg.root else None
            if repo_id and not ds_cfg.no_stamp:  # as lerobot-record: each session gets its own name
                repo_id = f"{repo_id}_{datetime.now().strftime('%Y%m%d_%H%M%S')}"
            if root is not None and (root / ".streamrec").exists():
                raise ConfigError(f"{root} holds an interrupted recording; run `streamrec repair {root}` to keep its "
                                  "saved episodes, or record into a new folder")
            self.dataset = LeRobotDataset.create(repo_id, ds_cfg.fps, features, root=root,
                                                 robot_type=self.robot.name, **common)
        if cfg.display_data:
            self._open_display(features, self.dataset.root)
        # The teleoperator first, so that the robot is not left idle while it connects (as lerobot-record).
        self.teleop.connect()
        self.robot.connect()
        self.listener, self.events = init_keyboard_listener()

    def _abandon(self) -> None:
        """Opening failed: close what was opened; a dataset created by this run is removed again (it has
        no episode), so that the same command can simply be run again once the cause is fixed."""
        self._close_display()
        self._close_devices()
        ds = self.dataset
        if ds is None:
            return
        try:
            ds.finalize()
        except StreamrecError as e:
            log.warning("closing the dataset: %s", e)
        if not self.config.resume and ds.num_episodes == 0:
            shutil.rmtree(ds.root, ignore_errors=True)

    def _close_devices(self) -> None:
        for device in (self.robot, self.teleop):
            if device is not None and getattr(device, "is_connected", False):
                try:
                    device.disconnect()
                except Exception:  # noqa: BLE001 - the dataset matters more; say it and go on
                    log.exception("disconnecting %s failed", device)
        if self.listener is not None:
            with contextlib.suppress(Exception):
                self.listener.stop()
            self.listener = None

    def _push(self, code: int) -> int:
        ds = self.dataset
        assert ds is not None
        if self.stop.signum is not None:
            self._say(f"stopped by {signal.Signals(self.stop.signum).name}: not pushed to the Hub; push later with "
                      f"`hf upload-large-folder {ds.repo_id} {ds.root} --repo-type=dataset`")
            return code
        if ds.num_episodes == 0:
            log.warning("no episodes saved: nothing to push to the Hub")
            return code
        self._say(f"pushing {ds.root} to the Hub as {ds.repo_id} ...")
        try:
            ds.push_to_hub(tags=self.ds_cfg.tags, private=self.ds_cfg.private)
        except PushError as e:
            self.pushed, self.push_error = False, str(e)
            return self._fail(str(e), 1)
        self.pushed = True
        self._say(f"pushed to the Hub as dataset {ds.repo_id}")
        return code

    # -- the loop -------------------------------------------------------------------------------

    def _record_all(self) -> None:
        ds = self.dataset
        assert ds is not None
        cams = ", ".join(f"{name} {ds.features[key]['shape'][1]}x{ds.features[key]['shape'][0]}"
                         for name, key in self.cameras.items())
        self._say(f"recording {self.ds_cfg.num_episodes} episode(s) of {self.ds_cfg.episode_time_s:g} s at "
                  f"{self.ds_cfg.fps} fps to {ds.root} (robot {self.robot.name}, teleoperator {self.teleop.name}; "
                  f"cameras {cams or 'none'}; {', '.join(sorted(set(ds.recorder.encoders.values()))) or 'no video'})")
        if not self.live:
            self._episodes()
            return
        handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
        with Live(console=self.console, get_renderable=self._render, refresh_per_second=4, transient=True):
            # Live takes over stderr: log lines then print above the status instead of through it.
            old = [h.setStream(sys.stderr) for h in handlers]
            try:
                self._episodes()
            finally:
                for h, stream in zip(handlers, old):
                    if stream is not None:
                        h.setStream(stream)

    def _say_event(self, text: str) -> None:
        from lerobot.utils.utils import log_say

        log_say(text, self.config.play_sounds)

    def _episodes(self) -> None:
        ds, n, events = self.dataset, self.ds_cfg.num_episodes, self.events
        assert ds is not None
        recorded = 0
        ticks = max(1, round(self.ds_cfg.episode_time_s * self.ds_cfg.fps))
        while recorded < n and not events["stop_recording"] and self.stop.signum is None:
            self._say_event(f"Recording episode {ds.num_episodes}")
            fig = EpisodeFigures(index=ds.num_episodes, ticks=ticks, stale={name: 0 for name in self.cameras})
            self.episodes.append(fig)
            try:
                self._run_phase("recording", self.ds_cfg.episode_time_s, fig)
                if self.stop.signum is not None:
                    fig.status = "discarded"
                    return
                if not events["stop_recording"] and (recorded < n - 1 or events["rerecord_episode"]):
                    self._say_event("Reset the environment")
                    self._run_phase("reset", self.ds_cfg.reset_time_s, None)
                    if self.stop.signum is not None:
                        fig.status = "discarded"
                        return
                if events["rerecord_episode"]:
                    self._say_event("Re-record episode")
                    events["rerecord_episode"] = events["exit_early"] = False
                    ds.clear_episode_buffer()
                    fig.status = "re-recorded"
                    self._say(f"episode {fig.index}: {fig.rows} rows discarded, recording it again")
                    continue
                if fig.rows == 0:
                    fig.status = "empty"
                    continue
                self._phase = "saving"
                fig.report = ds.save_episode()
                fig.status = "saved"
                recorded += 1
                self._say(self._episode_line(fig))
            except EncoderRestarted as e:
                fig.status = "lost"
                log.warning("episode %d: %s; recording it again", fig.index, e)

    def _run_phase(self, phase: str, duration_s: float, fig: EpisodeFigures | None) -> None:
        """Run the teleoperation loop for duration_s; record a row per tick when `fig` is given."""
        from lerobot.utils.constants import ACTION, OBS_STR
        from lerobot.utils.feature_utils import build_dataset_frame

        ds = self.dataset
        assert ds is not None
        robot, teleop, events = self.robot, self.teleop, self.events
        teleop_p, robot_p, obs_p = self.processors
        features, task, fps = ds.features, self.ds_cfg.single_task, self.ds_cfg.fps
        period = 1.0 / fps
        ticks = max(1, round(duration_s * fps)) if duration_s > 0 else 0
        camera_objects = getattr(robot, "cameras", {}) or {}
        self._phase, self._fig, self._phase_total = phase, fig, duration_s
        self._tick_times.clear()
        start = self._phase_start = time.monotonic()
        self._update_status(force=True)
        tick = 0
        while tick < ticks and self.stop.signum is None:
            if events["exit_early"]:
                events["exit_early"] = False
                break
            due = start + tick * period
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
                continue  # check the events and the signal again before the tick
            if now - due > period / 2:
                # The slot has passed: go to the nearest tick rather than burst rows to catch up.
                missed = min(int((now - due) / period + 0.5), ticks - tick)
                if fig is not None:
                    fig.skipped_ticks += missed
                    fig.skipped_at.append((tick, missed))
                tick += missed
                continue
            obs = robot.get_observation()
            observed_at = time.perf_counter()
            obs_processed = obs_p(obs)
            action = teleop.get_action()
            if robot.name == "unitree_g1":  # as lerobot-record: this teleoperator follows the robot's state
                teleop.send_feedback(obs)
            action_processed = teleop_p((action, obs))
            robot.send_action(robot_p((action_processed, obs)))
            stale = self._stale_cameras(obs, camera_objects, observed_at, period)
            if fig is not None:
                frame = {**build_dataset_frame(features, obs_processed, prefix=OBS_STR),
                         **build_dataset_frame(features, action_processed, prefix=ACTION), "task": task}
                t0 = time.perf_counter()
                ds.add_frame(frame)
                fig.add_frame_s.append(time.perf_counter() - t0)
                fig.rows += 1
                for name in stale:
                    fig.stale[name] += 1
                if self.display is not None:
                    self._offer_display(frame, fig)
            tick += 1
            self._tick_times.append(time.monotonic())
            self._update_status()

    def _stale_cameras(self, obs: dict, camera_objects: dict, observed_at: float, period: float) -> list[str]:
        """Cameras whose image in `obs` is the previous observation's, or was captured over a period ago."""
        stale = []
        for name in self.cameras:
            image = obs.get(name)
            if image is None:  # a pipeline renamed the camera: its raw image cannot be told apart here
                continue
            old = image is self._previous.get(name)
            if not old:
                cam = camera_objects.get(name)
                stamp = getattr(cam, "latest_timestamp", None)
                # The stamp belongs to this image only while the camera still holds it as its latest.
                if stamp is not None and getattr(cam, "latest_frame", None) is image:
                    old = observed_at - stamp > period
            if old:
                stale.append(name)
            self._previous[name] = image
        return stale

    # -- live display (streamrec's Rerun display worker) ---------------------------------------

    def _open_display(self, features: dict, root: Path) -> None:
        # An internal of streamrec's record command; the display is the same.
        from streamrec.capture._display import DisplayWorker, RerunSink, has_screen, import_rerun, rrd_path_for

        import_rerun()
        if not has_screen():
            self._rrd_path = rrd_path_for(root)
            if self._rrd_path.exists():
                raise ConfigError(f"--display_data=true: there is no screen here, so the display is saved to "
                                  f"{self._rrd_path}, which exists already; move it away")
        names = {key: spec.get("names") for key, spec in features.items()
                 if not key.startswith(IMAGES) and spec["dtype"] == "float32"}
        self._display_values = list(names)
        self.display = DisplayWorker(RerunSink(rrd_path=self._rrd_path, value_names=names))
        self.display.start()
        self._say(f"live display: {'saving to ' + str(self._rrd_path) if self._rrd_path else 'in the Rerun viewer'}")

    def _offer_display(self, frame: dict, fig: EpisodeFigures) -> None:
        from streamrec.capture._display import DisplayError

        try:
            self.display.offer(index=self._display_ticks, episode_index=fig.index, frame_index=fig.rows - 1,
                               capture_time_s=time.time(), images={k: frame[k] for k in self.cameras.values()},
                               values={k: frame[k] for k in self._display_values if k in frame})
        except DisplayError as e:
            log.warning("%s; recording goes on without the live display", e)
            self._close_display()
            return
        self._display_ticks += 1

    def _close_display(self) -> None:
        if self.display is None:
            return
        self.display.stop()
        self.display.join(10.0)
        self.display = None

    # -- status ---------------------------------------------------------------------------------

    def _say(self, line: str) -> None:
        if self.live:
            self.console.print(line)
        else:
            print(line, flush=True)

    def _episode_line(self, fig: EpisodeFigures) -> str:
        r = fig.report
        assert r is not None
        drops = ", ".join(f"{name.removeprefix(IMAGES)} {c.dropped}" for name, c in r.cameras.items()) or "-"
        stale = ", ".join(f"{name} {n}" for name, n in fig.stale.items()) or "-"
        return (f"episode {fig.index}: {fig.rows}/{fig.ticks} rows, skipped ticks {fig.skipped_ticks}, dropped "
                f"{drops}, stale frames {stale}, saved in {r.save_s * 1e3:.0f} ms")

    def _update_status(self, force: bool = False) -> None:
        """Copy the counters for the live display, at most every STATUS_PERIOD_S."""
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._status_at < STATUS_PERIOD_S:
            return
        self._status_at = now
        times = self._tick_times
        hz = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else 0.0
        ds = self.dataset
        cams = tuple((c.camera, c.queue_depth, c.dropped) for c in ds.recorder.camera_status()) if ds else ()
        fig = self._fig
        self._snapshot = (self._phase, fig.index if fig else (ds.num_episodes if ds else 0), now - self._phase_start,
                          self._phase_total, fig.rows if fig else 0, fig.skipped_ticks if fig else 0,
                          dict(fig.stale) if fig else {}, hz, self._cpu_percent(), cams)

    def _cpu_percent(self) -> float:
        """This process and its children (the encoder processes), in % of one core, since the last call."""
        total = self._process.cpu_percent(None)
        with contextlib.suppress(psutil.Error):
            children = {p.pid: p for p in self._process.children(recursive=True)}
            self._children = {pid: self._children.get(pid, p) for pid, p in children.items()}
        for child in self._children.values():
            with contextlib.suppress(psutil.Error):
                total += child.cpu_percent(None)
        return total

    def _render(self) -> Group:
        if not self._snapshot:
            return Group(Text("starting ..."))
        phase, episode, elapsed, total, rows, skipped, stale, hz, cpu, cams = self._snapshot
        label = {"recording": f"Episode {episode}", "reset": "Reset", "saving": f"Saving episode {episode}"}.get(
            phase, phase)
        head = Table.grid(padding=(0, 2))
        head.add_row(Text(label, "bold"), ProgressBar(total=max(total, 1e-9), completed=min(elapsed, total), width=40),
                     Text(f"{max(0.0, total - elapsed):4.1f} s left"))
        rate = Text.assemble(f"loop {hz:5.1f} / {self.ds_cfg.fps} Hz   ",
                             (f"skipped ticks {skipped}", "yellow" if skipped else "green"),
                             f"   rows {rows}   CPU {cpu:.0f} %   keys: n next, r re-record, q stop")
        table = Table(box=None, padding=(0, 2), show_edge=False)
        for column in ("camera", "queue", "dropped", "stale"):
            table.add_column(column, justify="left" if column == "camera" else "right")
        for name, depth, dropped in cams:
            short = name.removeprefix(IMAGES)
            table.add_row(short, f"{depth}/{self.ds_cfg.encoder_queue_maxsize}",
                          Text(str(dropped), "yellow" if dropped else ""), str(stale.get(short, 0)))
        parts: list[Any] = [head, rate, table]
        if skipped:
            parts.append(Text(f"! loop running late: {skipped} tick(s) skipped this episode (the robot, the "
                              f"teleoperator or the machine cannot keep {self.ds_cfg.fps} fps)", "bold yellow"))
        if any(d for _, _, d in cams):
            parts.append(Text("! encoders falling behind, dropping frames: try --dataset.rgb_encoder.vcodec=h264 or "
                              "fewer --dataset.encoder_threads", "bold yellow"))
        if self.stop.signum is not None:
            parts.append(Text("stopping: finalizing the dataset", "bold"))
        return Group(*parts)

    def _summary(self) -> None:
        ds = self.dataset
        if ds is None:
            return
        table = Table(title=f"streamrec lerobot-record {ds.root}", title_justify="left")
        for column in ("Episode", "Rows", "Skipped ticks", "Dropped", "Stale", "Save ms", "add_frame p99 ms"):
            table.add_column(column, justify="right")
        table.add_column("Status")
        for fig in self.episodes:
            f = fig.to_json()
            table.add_row(str(fig.index), f"{fig.rows}/{fig.ticks}", str(fig.skipped_ticks),
                          str(sum(f["dropped"].values())), str(sum(fig.stale.values())),
                          "-" if f["save_s"] is None else f"{f['save_s'] * 1e3:.0f}",
                          "-" if f["add_frame_p99_ms"] is None else f"{f['add_frame_p99_ms']:.2f}", fig.status)
        self.console.print(table)
        rows = sum(f.rows for f in self.episodes if f.status == "saved")
        stopped = "" if self.stop.signum is None else f" (stopped by {signal.Signals(self.stop.signum).name})"
        self.console.print(f"Dataset: {ds.root} - {ds.num_episodes} episode(s), {rows} rows recorded in this run"
                           f"{stopped}")

    def _write_report(self, path: Path) -> None:
        ds = self.dataset
        report = {
            "dataset": None if ds is None else str(ds.root), "repo_id": None if ds is None else ds.repo_id,
            "fps": self.ds_cfg.fps, "episode_time_s": self.ds_cfg.episode_time_s,
            "cameras": dict(self.cameras), "stopped_by": None if self.stop.signum is None
            else signal.Signals(self.stop.signum).name,
            "num_episodes": None if ds is None else ds.num_episodes,
            "pushed": self.pushed, "push_error": self.push_error,
            "episodes": [f.to_json() for f in self.episodes],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")


def record(config: LeRobotRecordConfig, teleop_action_processor: Any = None, robot_action_processor: Any = None,
           robot_observation_processor: Any = None) -> int:
    """Record as `streamrec lerobot-record` does, from Python, with processor pipelines of your own
    (lerobot-record's `record()` takes the same three); returns the exit code."""
    return Recording(config, teleop_action_processor=teleop_action_processor,
                     robot_action_processor=robot_action_processor,
                     robot_observation_processor=robot_observation_processor).run()

