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
import logging
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from streamrec import ConfigError, EncoderRestarted, StreamrecError
from streamrec.cli._live_display import LiveDisplay, display_target
from streamrec.cli._loop import StopRequest, run_ticks
from streamrec.cli._paths import PathProblem, check_dataset_root, check_writable_file
from streamrec.cli._status import EpisodeFigures, RecordingStatus, write_report

from ._config import LeRobotRecordConfig
from ._features import aggregate_pipeline_dataset_features, create_initial_features
from ._hub import PushError
from ._writer import LeRobotDataset, default_root, encoder_config, say_ignored

log = logging.getLogger("streamrec.lerobot")

IMAGES = "observation.images."
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
        self.ds_cfg = ds = config.dataset
        self.processors = (teleop_action_processor, robot_action_processor, robot_observation_processor)
        self.status = RecordingStatus(
            command="streamrec lerobot-record", num_episodes=ds.num_episodes, fps=ds.fps,
            episode_time_s=ds.episode_time_s, reset_time_s=ds.reset_time_s, queue_maxsize=ds.encoder_queue_maxsize,
            streaming=ds.streaming_encoding, root=ds.root or "", batch_size=ds.video_encoding_batch_size,
            play_sounds=config.play_sounds, hint="keys: n (right arrow) next, r (left arrow) re-record, q (Esc) stop")
        self.stop = StopRequest("streamrec lerobot-record")
        self.robot: Any = None
        self.teleop: Any = None
        self.dataset: LeRobotDataset | None = None
        self.events: dict[str, bool] = {"exit_early": False, "rerecord_episode": False, "stop_recording": False}
        self.listener: Any = None
        self.cameras: dict[str, str] = {}
        """Observation key -> dataset feature key, for each camera."""
        self.display: LiveDisplay | None = None
        self._previous: dict[str, Any] = {}
        self._fig: EpisodeFigures | None = None
        self.pushed: bool | None = None
        self.push_error: str | None = None

    # -- top level ------------------------------------------------------------------------------

    def run(self) -> int:
        with self.stop.installed():
            return self._run()

    def _fail(self, message: str, code: int) -> int:
        self.status.fail(message)
        return code

    def _run(self) -> int:
        if self.config.report_json:
            try:
                check_writable_file(Path(self.config.report_json), "--report-json")
            except PathProblem as e:
                return self._fail(str(e), 1)
        try:
            self._open()
        except ConfigError as e:
            self._abandon()
            return self._fail(str(e), 2)
        except PathProblem as e:
            self._abandon()
            return self._fail(str(e), 1)
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
        display = self.display
        self.status.summary(ds.recorder, self.stop.signum, display.lines() if display else ())
        if self.config.report_json:
            extra = {"repo_id": ds.repo_id, "pushed": self.pushed, "push_error": self.push_error,
                     **(display.report() if display else {})}
            write_report(Path(self.config.report_json),
                         self.status.report(ds.recorder, self.stop.signum, list(self.cameras.values()), extra))
        if code == 0 and self.stop.signum is not None:
            code = self.stop.exit_code
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
        root = Path(ds_cfg.root) if ds_cfg.root else (default_root(ds_cfg.repo_id) if cfg.resume else None)
        if root is not None:
            try:
                check_dataset_root(root, resume=cfg.resume)
            except PathProblem as e:
                raise ConfigError(str(e)) from None
        if cfg.resume:
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
            if repo_id and not ds_cfg.no_stamp:  # as lerobot-record: each session gets its own name
                repo_id = f"{repo_id}_{datetime.now().strftime('%Y%m%d_%H%M%S')}"
            self.dataset = LeRobotDataset.create(repo_id, ds_cfg.fps, features, root=root,
                                                 robot_type=self.robot.name, **common)
        self.status.root = str(self.dataset.root)
        if cfg.display_data:
            values = {k: f for k, f in features.items() if not k.startswith(IMAGES) and f["dtype"] == "float32"}
            self.display = LiveDisplay(display_target(Path(self.dataset.root)), values, self.status.say)
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

    def _close_display(self) -> None:
        if self.display is not None:
            self.display.close()

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
            self.status.say(f"stopped by {signal.Signals(self.stop.signum).name}: not pushed to the Hub; push later "
                            f"with `hf upload-large-folder {ds.repo_id} {ds.root} --repo-type=dataset`")
            return code
        if ds.num_episodes == 0:
            log.warning("no episodes saved: nothing to push to the Hub")
            return code
        self.status.say(f"pushing {ds.root} to the Hub as {ds.repo_id} ...")
        try:
            ds.push_to_hub(tags=self.ds_cfg.tags, private=self.ds_cfg.private)
        except PushError as e:
            self.pushed, self.push_error = False, str(e)
            return self._fail(str(e), 1)
        self.pushed = True
        self.status.say(f"pushed to the Hub as dataset {ds.repo_id}")
        return code

    # -- the loop -------------------------------------------------------------------------------

    def _record_all(self) -> None:
        ds = self.dataset
        assert ds is not None
        cams = ", ".join(f"{name} {ds.features[key]['shape'][1]}x{ds.features[key]['shape'][0]}"
                         for name, key in self.cameras.items())
        self.status.say(f"recording {self.ds_cfg.num_episodes} episode(s) of {self.ds_cfg.episode_time_s:g} s at "
                        f"{self.ds_cfg.fps} fps to {ds.root} (robot {self.robot.name}, teleoperator "
                        f"{self.teleop.name}; cameras {cams or 'none'}; "
                        f"{', '.join(sorted(set(ds.recorder.encoders.values()))) or 'no video'})")
        with self.status.showing(ds.recorder):
            self._episodes()

    def _episodes(self) -> None:
        ds, n, events, status = self.dataset, self.ds_cfg.num_episodes, self.events, self.status
        assert ds is not None
        recorded = 0
        ticks = max(1, round(self.ds_cfg.episode_time_s * self.ds_cfg.fps))
        reset_ticks = round(self.ds_cfg.reset_time_s * self.ds_cfg.fps)
        while recorded < n and not events["stop_recording"] and self.stop.signum is None:
            status.announce(f"Recording episode {ds.num_episodes}")
            fig = self._fig = EpisodeFigures(number=recorded + 1, ticks=ticks)
            status.episodes.append(fig)
            try:
                run_ticks(ticks, self.ds_cfg.fps, self.stop, self._record_tick, status, "recording", fig,
                          should_end=self._exit_early)
                if self.stop.signum is not None:
                    fig.status = "discarded"
                    return
                if not events["stop_recording"] and (recorded < n - 1 or events["rerecord_episode"]):
                    status.announce("Reset the environment")
                    run_ticks(reset_ticks, self.ds_cfg.fps, self.stop, self._teleop_tick, status, "reset",
                              should_end=self._exit_early)
                    if self.stop.signum is not None:
                        fig.status = "discarded"
                        return
                if events["rerecord_episode"]:
                    status.announce("Re-record episode")
                    events["rerecord_episode"] = events["exit_early"] = False
                    ds.clear_episode_buffer()
                    fig.status = "re-recorded"
                    status.say(f"episode {fig.number}/{n}: {fig.frames} rows discarded, recording it again")
                    continue
                if fig.frames == 0:
                    fig.status = "empty"
                    continue
                status.update("saving", fig, force=True)
                fig.report = ds.save_episode(progress=status.encode_progress)
                fig.status = "saved"
                recorded += 1
                status.say(status.episode_line(fig))
            except EncoderRestarted as e:
                fig.status = "lost"
                log.warning("episode %d: %s; recording it again", fig.number, e)

    def _exit_early(self) -> bool:
        """LeRobot's "next" key, consumed once seen."""
        if self.events["exit_early"]:
            self.events["exit_early"] = False
            return True
        return False

    def _teleop_tick(self) -> tuple[Any, Any, list[str]]:
        """One tick of teleoperation: observation, pipelines, action sent (lerobot-record's steps); returns the
        processed observation and action, and the cameras whose image is stale (judged every tick, so that a
        reset's last image is what the next episode's first is compared with)."""
        robot, teleop = self.robot, self.teleop
        teleop_p, robot_p, obs_p = self.processors
        obs = robot.get_observation()
        observed_at = time.perf_counter()
        obs_processed = obs_p(obs)
        action = teleop.get_action()
        if robot.name == "unitree_g1":  # as lerobot-record: this teleoperator follows the robot's state
            teleop.send_feedback(obs)
        action_processed = teleop_p((action, obs))
        robot.send_action(robot_p((action_processed, obs)))
        return obs_processed, action_processed, self._stale_cameras(obs, observed_at, 1.0 / self.ds_cfg.fps)

    def _record_tick(self) -> None:
        """A teleoperation tick whose observation and action become one row."""
        from lerobot.utils.constants import ACTION, OBS_STR
        from lerobot.utils.feature_utils import build_dataset_frame

        ds, fig = self.dataset, self._fig
        obs_processed, action_processed, stale = self._teleop_tick()
        features = ds.features
        row = {**build_dataset_frame(features, obs_processed, prefix=OBS_STR),
               **build_dataset_frame(features, action_processed, prefix=ACTION), "task": self.ds_cfg.single_task}
        t0 = time.perf_counter()
        ds.add_frame(row)
        fig.add_frame_s.append(time.perf_counter() - t0)
        fig.frames += 1
        for key in stale:
            fig.stale[key] = fig.stale.get(key, 0) + 1
        display = self.display
        if display is not None and display.running:
            t0 = time.perf_counter()
            display.offer(row, episode_index=ds.num_episodes, frame_index=fig.frames - 1, capture_time_s=time.time(),
                          cameras=list(self.cameras.values()))
            fig.display_offer_s.append(time.perf_counter() - t0)

    def _stale_cameras(self, obs: dict, observed_at: float, period: float) -> list[str]:
        """Cameras (video keys) whose image in `obs` is the previous observation's, or was captured over a
        period ago."""
        camera_objects = getattr(self.robot, "cameras", {}) or {}
        stale = []
        for name, key in self.cameras.items():
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
                stale.append(key)
            self._previous[name] = image
        return stale


def record(config: LeRobotRecordConfig, teleop_action_processor: Any = None, robot_action_processor: Any = None,
           robot_observation_processor: Any = None) -> int:
    """Record as `streamrec lerobot-record` does, from Python, with processor pipelines of your own
    (lerobot-record's `record()` takes the same three); returns the exit code."""
    return Recording(config, teleop_action_processor=teleop_action_processor,
                     robot_action_processor=robot_action_processor,
                     robot_observation_processor=robot_observation_processor).run()

