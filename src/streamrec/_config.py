"""Typed settings, checked when they are built so that a bad value fails before anything records."""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _codecs
from ._errors import ConfigError

# SVT-AV1 prints a banner and its settings to stderr at every encoder open (once per episode and
# camera); keep its errors only, unless the user asked for something else.
os.environ.setdefault("SVT_LOG", "1")

CAPTURE_TIME_SUFFIX = ".capture_time"
"""`<camera key><suffix>` (float64, seconds since the epoch) holds when each frame was captured."""

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
"""The five columns every v3.0 data file has; the recorder fills them, the user never does."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EncoderConfig:
    """How each camera stream is encoded. Field names and defaults follow the reference docs.

    Example: `EncoderConfig(vcodec="libsvtav1", crf=30, g=2, preset=12, pix_fmt="yuv420p")`.
    How each field maps onto each encoder's own options is the table in `_codecs`.
    """

    vcodec: str = "libsvtav1"
    """Encoder: `libsvtav1` (alias `av1`), `h264` (`libx264`), `hevc` (`libx265`), a hardware encoder such as
    `h264_nvenc`, or `auto`: the first that works here, hardware first (see `streamrec probe`)."""
    pix_fmt: str = "yuv420p"
    """Pixel format of the encoded stream; frames arrive as rgb24 and are converted in the worker."""
    g: int | None = 2
    """Keyframe interval in frames. Small values make random access (training) cheap."""
    crf: int | float | None = 30
    """Constant quality; lower is better and bigger. Range depends on the encoder."""
    preset: int | str | None = None
    """Speed preset: 0..13 for libsvtav1 (default 12), a name such as `ultrafast` for x264/x265."""
    fast_decode: int = 0
    """0..2; SVT-AV1's fast-decode level, `tune=fastdecode` for x264/x265 when non-zero."""
    extra_options: Mapping[str, str] = field(default_factory=dict)
    """Further encoder AVOptions, merged last (e.g. `{"svtav1-params": "tune=0"}`)."""

    def __post_init__(self) -> None:
        _codecs.check(self)

    @property
    def encoder(self) -> str:
        """The FFmpeg encoder `vcodec` resolves to (`auto` until resolved for the cameras)."""
        return _codecs.encoder_name(self.vcodec)

    @property
    def stream_codec(self) -> str:
        """Codec of the encoded stream (`av1`, `h264`, `hevc`)."""
        if self.encoder == _codecs.AUTO:
            raise ConfigError("EncoderConfig.vcodec = 'auto' has no stream codec until it is resolved "
                              "for the cameras (DatasetRecorder.create does that)")
        return _codecs.ENCODERS[self.encoder].stream_codec

    @property
    def effective_preset(self) -> int | str | None:
        return _codecs.effective_preset(self)

    def codec_options(self, encoder_threads: int | None) -> dict[str, str]:
        """AVOptions for the encoder, as strings. `g` is set on the codec context, not here."""
        return _codecs.codec_options(self, encoder_threads)


class QueueFullPolicy(str, enum.Enum):
    """What `add_frame` does when a camera's encoder queue is full."""

    DROP = "drop"
    """Never wait: the new frame is dropped and counted; its video slot repeats the previous frame."""
    BLOCK = "block"
    """Wait for the encoder (offline conversion, where no frame may be lost)."""

    @classmethod
    def parse(cls, value: str | QueueFullPolicy) -> QueueFullPolicy:
        """The policy named `value`, or ConfigError listing the names."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"queue_full_policy = {value!r}: must be one of {[p.value for p in cls]}") from None


@dataclass(frozen=True, slots=True)
class Feature:
    """One entry of `info.json`'s `features`."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    names: Any = None

    @property
    def is_video(self) -> bool:
        return self.dtype == "video"

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape), "names": self.names}


def parse_features(features: Mapping[str, Mapping[str, Any]]) -> tuple[Feature, ...]:
    """Check a user's feature dict and return it as `Feature`s, in the user's order."""
    if not isinstance(features, Mapping) or not features:
        raise ConfigError(f"features = {features!r}: must be a non-empty dict of name -> "
                          "{'dtype', 'shape', 'names'}")
    out = []
    for name, spec in features.items():
        where = f"features[{name!r}]"
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigError(f"{where}: a feature name must be a non-empty string without '/'")
        if name in DEFAULT_FEATURES or name == "task":
            raise ConfigError(f"{where}: {name!r} is filled in by the recorder; remove it from features")
        if not isinstance(spec, Mapping) or "dtype" not in spec or "shape" not in spec:
            raise ConfigError(f"{where} = {spec!r}: must be a dict with 'dtype' and 'shape'")
        dtype, shape = spec["dtype"], spec["shape"]
        if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ConfigError(f"{where}['shape'] = {shape!r}: must be a list of positive integers")
        if dtype == "video":
            if len(shape) != 3 or shape[2] != 3:
                raise ConfigError(f"{where}['shape'] = {list(shape)}: a video feature is [height, width, 3]")
            if shape[0] % 2 or shape[1] % 2:
                raise ConfigError(f"{where}['shape'] = {list(shape)}: height and width must be even")
            names = spec.get("names") or ["height", "width", "channels"]
        elif dtype == "image":
            raise ConfigError(f"{where}['dtype'] = 'image': image features are not supported; use 'video'")
        elif dtype == "string":
            if tuple(shape) != (1,):
                raise ConfigError(f"{where}['shape'] = {list(shape)}: a string feature has shape [1]")
            names = spec.get("names")
        else:
            try:
                np_dtype = np.dtype(dtype)
            except TypeError as e:
                raise ConfigError(f"{where}['dtype'] = {dtype!r}: must be 'video', 'string' or a numpy "
                                  "dtype name such as 'float32'") from e
            if np_dtype.kind not in "biuf":
                raise ConfigError(f"{where}['dtype'] = {dtype!r}: numeric features must be bool, int or float")
            if len(shape) > 1:
                raise ConfigError(f"{where}['shape'] = {list(shape)}: only scalars ([1]) and vectors ([D]) "
                                  "are supported")
            names = spec.get("names")
        out.append(Feature(name, dtype, tuple(shape), names))
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecorderConfig:
    """Everything `DatasetRecorder.create` needs. Field names follow the reference docs."""

    root: Path
    """Dataset folder: new, or an empty folder."""
    fps: int
    """Frames per second of every camera and of the table rows."""
    features: tuple[Feature, ...]
    """User features (cameras as dtype 'video', vectors, scalars); the default columns are added."""
    robot_type: str | None = None
    streaming_encoding: bool = True
    """Encode while recording (True), or write each frame as a PNG and encode at save time (False:
    capture never competes with the video encoder; saving waits for it)."""
    camera_encoder: EncoderConfig = field(default_factory=EncoderConfig)
    encoder_threads: int | None = None
    """Threads per camera encoder; None lets the codec decide."""
    encoder_queue_maxsize: int = 30
    """Frames each camera's encoder queue holds before the full-queue policy applies."""
    queue_full_policy: QueueFullPolicy = QueueFullPolicy.DROP
    adapt_on_overload: bool = True
    """A camera whose encoder queue stays over a third full (0.3 s) moves to a faster setting before
    frames are dropped: fewer codec threads at once, then a faster preset or codec from its next
    episode (in a new MP4). Each change is in `CameraReport.adaptations`. False keeps the settings
    fixed. Streaming only: the PNG path does not encode while recording, except with idle CPU."""
    video_files_size_in_mb: float = 200.0
    data_files_size_in_mb: float = 100.0
    chunks_size: int = 1000
    batch_encoding_size: int = 1
    """With streaming_encoding=False: encode the PNGs of this many saved episodes at once (every
    batch_encoding_size-th save_episode(), and the rest at finalize())."""
    encoder_nice: int = 10
    """How much lower than the capture loop encoder threads run (added to their nice value)."""
    encoder_timeout_s: float = 30.0
    """An encoder silent this long while finishing an episode is taken as hung and stopped."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"RecorderConfig.{name} = {getattr(self, name)!r}: {rule}")

        if isinstance(self.fps, bool) or not isinstance(self.fps, int) or self.fps <= 0:
            raise bad("fps", "must be an integer > 0")
        if not isinstance(self.streaming_encoding, bool):
            raise bad("streaming_encoding", "must be True (encode while recording) or False (write PNGs, "
                      "encode at save_episode)")
        if self.encoder_threads is not None and (not isinstance(self.encoder_threads, int)
                                                 or self.encoder_threads < 1):
            raise bad("encoder_threads", "must be None (codec decides) or an integer >= 1")
        if not isinstance(self.encoder_queue_maxsize, int) or self.encoder_queue_maxsize < 1:
            raise bad("encoder_queue_maxsize", "must be an integer >= 1")
        if not isinstance(self.queue_full_policy, QueueFullPolicy):
            raise bad("queue_full_policy", f"must be one of {[p.value for p in QueueFullPolicy]}")
        if not isinstance(self.adapt_on_overload, bool):
            raise bad("adapt_on_overload", "must be True or False")
        for name in ("video_files_size_in_mb", "data_files_size_in_mb"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise bad(name, "must be a number > 0")
        if not isinstance(self.chunks_size, int) or self.chunks_size < 1:
            raise bad("chunks_size", "must be an integer >= 1")
        if isinstance(self.batch_encoding_size, bool) or not isinstance(self.batch_encoding_size, int) \
                or self.batch_encoding_size < 1:
            raise bad("batch_encoding_size", "must be an integer >= 1")
        if self.streaming_encoding and self.batch_encoding_size != 1:
            raise bad("batch_encoding_size", "streaming encoding encodes every episode while it is "
                      "recorded, so there is nothing to batch: keep it 1, or set streaming_encoding=False "
                      "to write PNGs and encode them every batch_encoding_size episodes")
        if not isinstance(self.encoder_nice, int) or not 0 <= self.encoder_nice <= 19:
            raise bad("encoder_nice", "must be an integer 0..19")
        if not isinstance(self.encoder_timeout_s, (int, float)) or not self.encoder_timeout_s > 0:
            raise bad("encoder_timeout_s", "must be a number of seconds > 0")

    @property
    def video_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.is_video)

    @property
    def table_features(self) -> tuple[Feature, ...]:
        """User features stored in the data parquet (everything but video)."""
        return tuple(f for f in self.features if not f.is_video)
