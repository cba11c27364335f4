"""How a recording is set up: the recorder's settings, each default written once, checked when built.

`RecordingOptions` holds what a user tunes (encoders, queues, timeouts); `DatasetRecorder.create`
and `.resume` take its fields as keyword arguments, and the command line's `--dataset.*` section
inherits it, so a default is written here and nowhere else. `RecorderConfig` adds what describes
the dataset itself (root, fps, features, file sizes), which a resumed dataset brings with it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..dataset._features import Feature
from ..dataset._layout import FILE_SIZE_DEFAULTS
from ..encode._codecs import ENCODERS
from ..encode._config import EncoderConfig
from ..encode._depth import DepthEncoderConfig
from ..encode._queue import QueueFullPolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingOptions:
    """How frames are encoded while recording. Field names follow the reference docs."""

    streaming_encoding: bool = True
    """Encode while recording (True), or write each frame as a PNG and encode at save time (False:
    capture never competes with the video encoder; saving waits for it)."""
    camera_encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """Encoder settings of every camera."""
    depth_encoder: DepthEncoderConfig = field(default_factory=DepthEncoderConfig)
    """How depth cameras (video features with info.is_depth_map) are stored: hevc, LeRobot's 12-bit codes, or
    ffv1, exact 16-bit millimetres that LeRobot 0.6.1 cannot read."""
    encoder_threads: int | None = None
    """Threads per camera encoder; None (null) lets the codec decide."""
    encoder_queue_maxsize: int = 30
    """Frames each camera's encoder queue holds before the full-queue policy applies. Its shared memory,
    maxsize + 1 frames per camera, is written once at start, so add_frame never pays first-touch faults."""
    queue_full_policy: QueueFullPolicy = QueueFullPolicy.DROP
    """When an encoder queue is full: drop (count it, its video slot repeats the previous frame) or block
    (wait for the encoder; for feeding recorded data)."""
    adapt_on_overload: bool = True
    """Cameras that need more encoding CPU than the whole machine (probe's figure, at create) start on
    a faster setting. A camera that needs more encoding CPU than it has (measured once, in its first episode) or
    whose encoder queue stays over a third full (0.3 s) moves to a faster setting: fewer codec
    threads at once, then a faster preset or codec from its next episode (in a new MP4). False keeps
    the settings fixed. Streaming only: the PNG path does not encode while recording, except with
    idle CPU."""
    batch_encoding_size: int = field(default=1, metadata={"flag": "video_encoding_batch_size"})
    """With streaming_encoding=False: encode the PNGs of this many saved episodes at once (every
    batch_encoding_size-th save_episode(), and the rest at finalize()); 1 when streaming."""
    allow_nonfinite: bool = False
    """Accept NaN and infinite values in numeric features (a sensor that reports "no reading" so). False:
    add_frame refuses them (FrameError), since one NaN in the data makes its stats NaN and a policy
    normalized with them trains on NaN. True: they are recorded and counted per episode and feature,
    and the stats leave them out."""
    encoder_nice: int = 10
    """How much lower than the capture loop encoder threads run (added to their nice value)."""
    encoder_timeout_s: float = 30.0
    """An encoder that does no work this long while it owes an answer (finishing an episode) is taken as
    hung and replaced; a slow one that keeps encoding is waited for."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"{type(self).__name__}.{name} = {getattr(self, name)!r}: {rule}")

        if isinstance(self.queue_full_policy, str) and not isinstance(self.queue_full_policy, QueueFullPolicy):
            object.__setattr__(self, "queue_full_policy", QueueFullPolicy.parse(self.queue_full_policy))
        if not isinstance(self.streaming_encoding, bool):
            raise bad("streaming_encoding", "must be True (encode while recording) or False (write PNGs, "
                      "encode at save_episode)")
        if not isinstance(self.camera_encoder, EncoderConfig):
            raise bad("camera_encoder", "must be an EncoderConfig, e.g. EncoderConfig(vcodec='h264')")
        if not isinstance(self.depth_encoder, DepthEncoderConfig):
            raise bad("depth_encoder", "must be a DepthEncoderConfig, e.g. DepthEncoderConfig(vcodec='ffv1')")
        if self.encoder_threads is not None and (isinstance(self.encoder_threads, bool)
                                                 or not isinstance(self.encoder_threads, int)
                                                 or self.encoder_threads < 1):
            raise bad("encoder_threads", "must be None (codec decides) or an integer >= 1")
        if isinstance(self.encoder_queue_maxsize, bool) or not isinstance(self.encoder_queue_maxsize, int) \
                or self.encoder_queue_maxsize < 1:
            raise bad("encoder_queue_maxsize", "must be an integer >= 1")
        if not isinstance(self.queue_full_policy, QueueFullPolicy):
            raise bad("queue_full_policy", f"must be one of {[p.value for p in QueueFullPolicy]}")
        if not isinstance(self.adapt_on_overload, bool):
            raise bad("adapt_on_overload", "must be True or False")
        if not isinstance(self.allow_nonfinite, bool):
            raise bad("allow_nonfinite", "must be True or False")
        if isinstance(self.batch_encoding_size, bool) or not isinstance(self.batch_encoding_size, int) \
                or self.batch_encoding_size < 1:
            raise bad("batch_encoding_size", "must be an integer >= 1")
        if self.streaming_encoding and self.batch_encoding_size != 1:
            raise bad("batch_encoding_size", "streaming encoding encodes every episode while it is "
                      "recorded, so there is nothing to batch: keep it 1, or set streaming_encoding=False "
                      "to write PNGs and encode them every batch_encoding_size episodes")
        if isinstance(self.encoder_nice, bool) or not isinstance(self.encoder_nice, int) \
                or not 0 <= self.encoder_nice <= 19:
            raise bad("encoder_nice", "must be an integer 0..19")
        if isinstance(self.encoder_timeout_s, bool) or not isinstance(self.encoder_timeout_s, (int, float)) \
                or not self.encoder_timeout_s > 0:
            raise bad("encoder_timeout_s", "must be a number of seconds > 0")


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(RecordingOptions))


def check_settings(settings: Mapping[str, Any], allowed: Sequence[str], caller: str) -> None:
    """Raise ConfigError for a keyword that is not one of `allowed`, naming the closest one."""
    for name in settings:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{caller}: unknown setting {name!r}; {hint}it takes {list(allowed)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecorderConfig(RecordingOptions):
    """Everything a `DatasetRecorder` needs: the dataset's own description plus `RecordingOptions`."""

    root: Path
    """Dataset folder: new, or an empty folder."""
    fps: int
    """Frames per second of every camera and of the table rows."""
    features: tuple[Feature, ...]
    """User features (cameras as dtype 'video', vectors, scalars); the default columns are added."""
    robot_type: str | None = None
    """Free text stored in info.json."""
    video_files_size_in_mb: float = FILE_SIZE_DEFAULTS["video_files_size_in_mb"]
    data_files_size_in_mb: float = FILE_SIZE_DEFAULTS["data_files_size_in_mb"]
    chunks_size: int = FILE_SIZE_DEFAULTS["chunks_size"]

    def __post_init__(self) -> None:
        RecordingOptions.__post_init__(self)  # zero-argument super() fails in slotted dataclasses

        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"RecorderConfig.{name} = {getattr(self, name)!r}: {rule}")

        if isinstance(self.fps, bool) or not isinstance(self.fps, int) or self.fps <= 0:
            raise bad("fps", "must be an integer > 0")
        for name in ("video_files_size_in_mb", "data_files_size_in_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise bad(name, "must be a number > 0")
        if isinstance(self.chunks_size, bool) or not isinstance(self.chunks_size, int) or self.chunks_size < 1:
            raise bad("chunks_size", "must be an integer >= 1")
        limit = getattr(ENCODERS.get(self.camera_encoder.encoder), "max_fps", None)
        if limit is not None and self.fps > limit and any(f.is_video and not f.depth for f in self.features):
            raise bad("fps", f"{self.camera_encoder.encoder} (camera_encoder.vcodec = "
                      f"{self.camera_encoder.vcodec!r}) opens at most {limit} fps; record at {limit} or less, "
                      f"or choose vcodec='h264' or 'hevc' for the cameras")

    @property
    def options(self) -> RecordingOptions:
        """The tunable part alone."""
        return RecordingOptions(**{name: getattr(self, name) for name in OPTION_NAMES})

    @property
    def video_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.is_video)

    @property
    def table_features(self) -> tuple[Feature, ...]:
        """User features stored in the data parquet (everything but video)."""
        return tuple(f for f in self.features if not f.is_video)
