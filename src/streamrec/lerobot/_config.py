"""The flags of `streamrec lerobot-record`: lerobot-record 0.6.1's, plus streamrec's own.

LeRobot's `RecordConfig` cannot be used as it is: building its `dataset.rgb_encoder` imports
`lerobot.datasets`, which needs PyAV < 16 (see `_features`). So the same tree is declared here, field
for field (names, types and defaults as in lerobot 0.6.1's `RecordConfig` and `DatasetRecordConfig`;
`tests/lerobot` checks that every LeRobot field is here), and parsed by LeRobot's own command-line
parser, so `--robot.*`, `--teleop.*` (third-party plugins included), `--config_path` and `--help`
behave as in lerobot-record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lerobot.robots import RobotConfig
from lerobot.teleoperators import TeleoperatorConfig

from streamrec import ConfigError, QueueFullPolicy
from streamrec.cli._loop import check_plan


@dataclass(frozen=True)
class RGBEncoderSection:
    # Encoder: libsvtav1 (alias av1), h264, hevc, libaom-av1, a hardware encoder (h264_nvenc, ...) or auto.
    vcodec: str = "libsvtav1"
    # Pixel format of the stream (frames arrive as rgb24).
    pix_fmt: str = "yuv420p"
    # Keyframe interval in frames.
    g: int | None = 2
    # Constant quality; lower is better and bigger.
    crf: float | None = 30
    # Speed preset: 0..13 for libsvtav1 (default 12), a name such as ultrafast for h264/hevc.
    preset: str | None = None
    # Fast-decode level 0..2.
    fast_decode: int = 0
    # Encoding backend; streamrec encodes with PyAV ("pyav").
    video_backend: str = "pyav"
    # Further encoder options, merged last, e.g. {"tune": "film"}.
    extra_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.video_backend != "pyav":
            raise ConfigError(f"--dataset.rgb_encoder.video_backend = {self.video_backend!r}: must be 'pyav'")
        # A numeric preset arrives as text (libsvtav1 takes 0..13); names stay text.
        if isinstance(self.preset, str) and self.preset.strip().lstrip("-").isdigit():
            object.__setattr__(self, "preset", int(self.preset))
        if isinstance(self.crf, float) and self.crf.is_integer():
            object.__setattr__(self, "crf", int(self.crf))


@dataclass(frozen=True)
class DepthEncoderSection:
    # How depth cameras are stored (LeRobot's names and defaults: 12-bit codes in lossless HEVC); vcodec=ffv1
    # stores the millimetres exactly, which LeRobot 0.6.1 cannot load.
    vcodec: str = "hevc"
    pix_fmt: str = "gray12le"
    g: int | None = 2
    crf: float | None = 30
    preset: str | None = None
    fast_decode: int = 0
    video_backend: str = "pyav"
    extra_options: dict[str, Any] = field(default_factory=lambda: {"x265-params": "lossless=1"})
    # Depth range in metres mapped onto the 12-bit codes, the pre-log offset, log or linear scale.
    depth_min: float = 0.01
    depth_max: float = 10.0
    shift: float = 3.5
    use_log: bool = True


@dataclass(frozen=True)
class DatasetSection:
    # Dataset identifier, '{hf_username}/{dataset_name}'; a date-time tag is appended at creation unless no_stamp.
    repo_id: str = ""
    # Task description stored with every frame.
    single_task: str = ""
    # Dataset folder; default $HF_LEROBOT_HOME/<repo_id>.
    root: str | None = None
    # Frames per second of the loop, the cameras and the rows.
    fps: int = 30
    # Seconds recorded per episode.
    episode_time_s: float = 60
    # Seconds between episodes to reset the scene (the teleoperator keeps driving the robot).
    reset_time_s: float = 60
    # Episodes to record.
    num_episodes: int = 50
    # Store cameras as video (streamrec stores video only).
    video: bool = True
    # Upload to the Hugging Face Hub after the dataset is finalized.
    push_to_hub: bool = True
    # Upload as private; null defers to the organisation's default.
    private: bool | None = None
    # Tags for the dataset card.
    tags: list[str] | None = None
    # LeRobot's image writer processes: no meaning in streamrec (accepted, reported once).
    num_image_writer_processes: int = 0
    # LeRobot's image writer threads per camera: no meaning in streamrec (accepted, reported once).
    num_image_writer_threads_per_camera: int = 4
    # With streaming_encoding=false: encode the PNGs of this many episodes at once.
    video_encoding_batch_size: int = 1
    # Camera encoder settings (also --dataset.camera_encoder.*).
    rgb_encoder: RGBEncoderSection = field(default_factory=RGBEncoderSection)
    # Depth encoder settings.
    depth_encoder: DepthEncoderSection = field(default_factory=DepthEncoderSection)
    # Encode while recording (true), or write PNGs and encode at each save (false, LeRobot's default).
    streaming_encoding: bool = False
    # Frames each camera's encoder queue holds.
    encoder_queue_maxsize: int = 30
    # Threads per camera encoder; null lets the codec decide.
    encoder_threads: int | None = None
    # Keep repo_id as given (no date-time tag).
    no_stamp: bool = False
    # streamrec: when a camera's encoder queue is full, drop (count it, repeat the previous frame) or block.
    queue_full_policy: str = "drop"
    # streamrec: a camera whose encoder falls behind moves to faster settings before frames are dropped.
    adapt_on_overload: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"--dataset.{name} = {getattr(self, name)!r}: {rule}")

        QueueFullPolicy.parse(self.queue_full_policy)
        check_plan(self, bad)
        if not self.video:
            raise bad("video", "streamrec stores cameras as video only; leave it true")


@dataclass(frozen=True)
class LeRobotRecordConfig:
    robot: RobotConfig
    dataset: DatasetSection
    # Teleoperator driving the robot (required).
    teleop: TeleoperatorConfig | None = None
    # Show the cameras and values live in Rerun (streamrec's display: a worker thread, never the loop).
    display_data: bool = False
    # Display backend; streamrec shows in Rerun only.
    display_mode: str = "rerun"
    # Remote Rerun viewer address (not supported by streamrec's display).
    display_ip: str | None = None
    display_port: int | None = None
    # Compress images for the display (streamrec's display always sends JPEG).
    display_compressed_images: bool = False
    # Speak the events (episode start, reset, stop).
    play_sounds: bool = True
    # Add episodes to the dataset at --dataset.root.
    resume: bool = False
    # streamrec: write per-episode figures (rows, skipped ticks, drops, stale frames, save time) to this JSON file.
    report_json: str | None = None

    def __post_init__(self) -> None:
        if self.teleop is None:
            raise ConfigError("--teleop.type: a teleoperator is required for recording "
                              "(e.g. --teleop.type=so101_leader)")
        if self.display_data and self.display_mode != "rerun":
            raise ConfigError(f"--display_mode = {self.display_mode!r}: streamrec's live display is Rerun only")
        if self.display_data and (self.display_ip or self.display_port):
            raise ConfigError("--display_ip/--display_port: streamrec's live display opens a local Rerun viewer "
                              "(or saves <root>.rrd without a screen); a remote viewer is not supported")
