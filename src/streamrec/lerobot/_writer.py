"""`LeRobotDataset`: the recording surface of LeRobot's `LeRobotDataset`, written through `DatasetRecorder`.

Nothing here imports LeRobot: a custom loop keeps its own LeRobot imports and swaps only the dataset.
Arguments LeRobot's class takes for its own writer or for reading (image writer processes and
threads, `metadata_buffer_size`, `tolerance_s`, `video_backend`) are accepted; the first two are
reported once as having no meaning here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from streamrec import (
    ConfigError,
    DatasetError,
    DatasetRecorder,
    DepthEncoderConfig,
    EncoderConfig,
    FrameError,
    QueueFullPolicy,
)
from streamrec.dataset._reader import DatasetReader
from streamrec.record import EpisodeReport
from streamrec.record._reports import ProgressCallback

from ._hub import push_folder

log = logging.getLogger("streamrec.lerobot")

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": (1,), "names": None},
    "frame_index": {"dtype": "int64", "shape": (1,), "names": None},
    "episode_index": {"dtype": "int64", "shape": (1,), "names": None},
    "index": {"dtype": "int64", "shape": (1,), "names": None},
    "task_index": {"dtype": "int64", "shape": (1,), "names": None},
}
"""The columns the writer fills in itself; a frame never carries them."""

_IGNORED_SAID: set[str] = set()


def say_ignored(name: str, value: Any, why: str) -> None:
    """Log, once per process and setting, that a LeRobot setting has no meaning here."""
    if name in _IGNORED_SAID:
        return
    _IGNORED_SAID.add(name)
    log.warning("%s=%s has no meaning here and is ignored: %s", name, value, why)


_IMAGE_WRITER_WHY = ("streamrec hands each camera frame to that camera's own encoder process (PNG writer process "
                     "with --dataset.streaming_encoding=false); no image writer threads or processes are involved")


def default_root(repo_id: str) -> Path:
    """Where LeRobot puts a dataset when no root is given: $HF_LEROBOT_HOME/<repo_id>
    ($HF_LEROBOT_HOME defaults to $HF_HOME/lerobot, $HF_HOME to ~/.cache/huggingface)."""
    home = os.environ.get("HF_LEROBOT_HOME")
    if not home:
        hf_home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
        home = os.path.join(hf_home, "lerobot")
    return Path(home).expanduser() / repo_id


def encoder_config(rgb: Any) -> EncoderConfig | None:
    """streamrec's EncoderConfig from LeRobot's `RGBEncoderConfig` (or any object or mapping with its
    fields: vcodec, pix_fmt, g, crf, preset, fast_decode, extra_options). None stays None."""
    if rgb is None or isinstance(rgb, EncoderConfig):
        return rgb

    def get(name: str, default: Any) -> Any:
        return rgb.get(name, default) if isinstance(rgb, Mapping) else getattr(rgb, name, default)

    backend = get("video_backend", "pyav")
    if backend not in (None, "pyav"):
        raise ConfigError(f"rgb_encoder.video_backend = {backend!r}: streamrec encodes with PyAV only ('pyav')")
    extra = get("extra_options", None) or {}
    return EncoderConfig(vcodec=get("vcodec", "libsvtav1"), pix_fmt=get("pix_fmt", "yuv420p"), g=get("g", 2),
                         crf=get("crf", 30), preset=get("preset", None), fast_decode=get("fast_decode", 0),
                         extra_options={str(k): _option_text(v) for k, v in extra.items()})


def _option_text(value: Any) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def is_depth(spec: Mapping[str, Any]) -> bool:
    """LeRobot's mark of a depth map: `info.is_depth_map` (or the older `video.is_depth_map`), or one channel."""
    info = spec.get("info") or {}
    shape = tuple(spec.get("shape") or ())
    return bool(info.get("is_depth_map") or info.get("video.is_depth_map")) or (
        spec.get("dtype") in ("video", "image") and len(shape) == 3 and shape[2] == 1)


def recorder_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """The features DatasetRecorder is given: LeRobot's, less the default columns; a depth camera (`is_depth`)
    as streamrec's depth feature, [H, W, 1] with `info.is_depth_map`."""
    out: dict[str, dict] = {}
    for name, spec in features.items():
        if name in DEFAULT_FEATURES:
            continue
        if spec.get("dtype") == "image":
            raise ConfigError(f"features[{name!r}]['dtype'] = 'image': streamrec stores cameras as video only; "
                              "record with use_videos=True (lerobot-record: --dataset.video=true)")
        out[name] = {"dtype": spec["dtype"], "shape": list(spec["shape"]), "names": spec.get("names")}
        if is_depth(spec):
            out[name]["info"] = {"is_depth_map": True}
    return out


_LEROBOT_DEPTH_DEFAULTS: dict[str, Any] = {
    "vcodec": "hevc", "pix_fmt": "gray12le", "g": 2, "crf": 30, "preset": None, "fast_decode": 0,
    "extra_options": {"x265-params": "lossless=1"}, "depth_min": 0.01, "depth_max": 10.0, "shift": 3.5,
    "use_log": True}
"""LeRobot 0.6.1's `DepthEncoderConfig()`: streamrec's `DepthEncoderConfig()` writes the same stream."""


def depth_encoder_config(depth: Any) -> DepthEncoderConfig | None:
    """streamrec's DepthEncoderConfig from LeRobot's (or any object or mapping with its fields). A field at
    LeRobot's default is left unset, so that streamrec's mode defaults apply (the same values for hevc; none
    for ffv1). None stays None."""
    if depth is None or isinstance(depth, DepthEncoderConfig):
        return depth

    def get(name: str, default: Any) -> Any:
        return depth.get(name, default) if isinstance(depth, Mapping) else getattr(depth, name, default)

    backend = get("video_backend", "pyav")
    if backend not in (None, "pyav"):
        raise ConfigError(f"depth_encoder.video_backend = {backend!r}: streamrec encodes with PyAV only ('pyav')")
    chosen = {}
    for name, default in _LEROBOT_DEPTH_DEFAULTS.items():
        value = get(name, default)
        if name == "extra_options":
            value = {str(k): _option_text(v) for k, v in (value or {}).items()}
        if value != default:
            chosen[name] = value
    return DepthEncoderConfig(**chosen)


class Meta:
    """The part of LeRobot's `LeRobotDatasetMetadata` a recording loop reads, read from the dataset."""

    def __init__(self, dataset: LeRobotDataset) -> None:
        self._ds = dataset

    repo_id = property(lambda self: self._ds.repo_id)
    root = property(lambda self: self._ds.root)
    fps = property(lambda self: self._ds.fps)
    features = property(lambda self: self._ds.features)
    robot_type = property(lambda self: self._ds.robot_type)
    total_episodes = property(lambda self: self._ds.num_episodes)
    total_frames = property(lambda self: self._ds.num_frames)

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] in ("video", "image")]

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "image"]

    @property
    def depth_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if is_depth(f)]

    @property
    def names(self) -> dict[str, Any]:
        return {k: f.get("names") for k, f in self.features.items()}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(f["shape"]) for k, f in self.features.items()}

    @property
    def info(self) -> dict[str, Any]:
        """meta/info.json as on disk (totals as of the last finalize or creation)."""
        return DatasetReader(self.root).info or {}

    @property
    def total_tasks(self) -> int:
        return self.info["total_tasks"]


class LeRobotDataset:
    """Records a LeRobot v3.0 dataset with the calls LeRobot's recording loops make.

    Make one with `create` or `resume` (arguments as LeRobot 0.6's, plus streamrec's
    `queue_full_policy` and `adapt_on_overload`). Differences from LeRobot's class: `save_episode()`
    returns streamrec's `EpisodeReport` (frames, drops per camera, save time); a camera frame the
    encoder cannot take in time is dropped and counted instead of stalling the loop; an episode is
    durable once `save_episode()` returns, and a crashed recording is recovered by `streamrec repair`;
    `push_to_hub()` uploads only a finalized dataset. Reading (`__getitem__`) is not offered: load the
    finished dataset with LeRobot's class.
    """

    writer = None
    """LeRobot's `VideoEncodingManager` calls `finalize()` when it finds no LeRobot writer here."""

    def __init__(self, recorder: DatasetRecorder, repo_id: str, features: Mapping[str, Mapping[str, Any]],
                 robot_type: str | None, total_frames: int) -> None:
        """Use `create` or `resume`."""
        self._rec = recorder
        self.repo_id = repo_id
        self.root = recorder.root
        self.robot_type = robot_type
        self._features = {**{k: dict(v) for k, v in features.items() if k not in DEFAULT_FEATURES},
                          **{k: dict(v) for k, v in DEFAULT_FEATURES.items()}}
        self._rgb_keys = [k for k, f in self._features.items() if f["dtype"] == "video" and not is_depth(f)]
        """Colour cameras, whose images LeRobot may give in other forms; depth goes to the recorder as it is."""
        self._total_frames = total_frames
        self._finalized = False
        self.meta = Meta(self)

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        repo_id: str,
        fps: int,
        features: Mapping[str, Mapping[str, Any]],
        root: str | Path | None = None,
        robot_type: str | None = None,
        use_videos: bool = True,
        tolerance_s: float = 1e-4,
        image_writer_processes: int = 0,
        image_writer_threads: int = 0,
        video_backend: str | None = None,
        batch_encoding_size: int = 1,
        rgb_encoder: Any = None,
        depth_encoder: Any = None,
        metadata_buffer_size: int = 10,
        streaming_encoding: bool = False,
        encoder_queue_maxsize: int = 30,
        encoder_threads: int | None = None,
        video_files_size_in_mb: float | None = None,
        data_files_size_in_mb: float | None = None,
        *,
        queue_full_policy: str | QueueFullPolicy = QueueFullPolicy.DROP,
        adapt_on_overload: bool = True,
    ) -> LeRobotDataset:
        """Start a new dataset in `root` (default: $HF_LEROBOT_HOME/<repo_id>), which must not exist or be empty.

        `streaming_encoding=False` (LeRobot's default) writes each frame as a PNG in the camera's worker
        process and encodes at `save_episode()`; True encodes while recording.

        Raises:
            ConfigError: a setting or feature is invalid (`use_videos=False`, image features, ...).
            DatasetError: `root` holds files already.
        """
        if not use_videos:
            raise ConfigError("use_videos=False: streamrec stores cameras as video only")
        if image_writer_processes or image_writer_threads:
            say_ignored("image_writer_processes/threads", f"{image_writer_processes}/{image_writer_threads}",
                        _IMAGE_WRITER_WHY)
        ours = recorder_features(features)
        depth = depth_encoder_config(depth_encoder)
        rec = DatasetRecorder.create(
            root if root is not None else default_root(repo_id), fps, ours, robot_type=robot_type,
            streaming_encoding=streaming_encoding, camera_encoder=encoder_config(rgb_encoder),
            **({} if depth is None else {"depth_encoder": depth}),
            encoder_threads=encoder_threads, encoder_queue_maxsize=encoder_queue_maxsize,
            queue_full_policy=queue_full_policy, adapt_on_overload=adapt_on_overload,
            batch_encoding_size=batch_encoding_size,
            **{k: v for k, v in (("video_files_size_in_mb", video_files_size_in_mb),
                                 ("data_files_size_in_mb", data_files_size_in_mb)) if v is not None})
        return cls(rec, repo_id, features, robot_type, 0)

    @classmethod
    def resume(
        cls,
        repo_id: str,
        root: str | Path | None = None,
        tolerance_s: float = 1e-4,
        revision: str | None = None,
        force_cache_sync: bool = False,
        video_backend: str | None = None,
        batch_encoding_size: int = 1,
        rgb_encoder: Any = None,
        depth_encoder: Any = None,
        encoder_threads: int | None = None,
        image_writer_processes: int = 0,
        image_writer_threads: int = 0,
        streaming_encoding: bool = False,
        encoder_queue_maxsize: int = 30,
        *,
        token: str | bool | None = None,
        queue_full_policy: str | QueueFullPolicy = QueueFullPolicy.DROP,
        adapt_on_overload: bool = True,
    ) -> LeRobotDataset:
        """Add episodes to the finalized dataset in `root` (a local folder: nothing is downloaded).

        `rgb_encoder` and `depth_encoder` left at LeRobot's defaults (or None) take the dataset's own settings.

        Raises:
            DatasetError: no finalized dataset in `root`, an interrupted one (run `streamrec repair`), or
                settings that differ from the dataset's.
        """
        if not root:
            raise ConfigError("resume(): root is required (the local dataset folder to add episodes to)")
        root = Path(root)
        info = DatasetReader(root).info
        if info is None:
            raise DatasetError(f"resume(): {root} holds no dataset (no readable meta/info.json)")
        if image_writer_processes or image_writer_threads:
            say_ignored("image_writer_processes/threads", f"{image_writer_processes}/{image_writer_threads}",
                        _IMAGE_WRITER_WHY)
        recorder_features(info["features"])  # refuses what cannot be appended to
        encoder = encoder_config(rgb_encoder)
        # Default settings mean "the dataset's own" (LeRobot's RGBEncoderConfig() carries preset 12, set by
        # its __post_init__; streamrec's default leaves it None): only settings a user chose are checked.
        if encoder in (EncoderConfig(), EncoderConfig(preset=12)):
            encoder = None
        depth = depth_encoder_config(depth_encoder)
        chosen = {} if encoder is None else {"camera_encoder": encoder}
        if depth not in (None, DepthEncoderConfig()):
            chosen["depth_encoder"] = depth
        rec = DatasetRecorder.resume(
            root, **chosen,
            streaming_encoding=streaming_encoding, encoder_threads=encoder_threads,
            encoder_queue_maxsize=encoder_queue_maxsize, queue_full_policy=queue_full_policy,
            adapt_on_overload=adapt_on_overload, batch_encoding_size=batch_encoding_size)
        return cls(rec, repo_id, info["features"], info.get("robot_type"), int(info["total_frames"]))

    # -- recording -------------------------------------------------------------------------------

    def add_frame(self, frame: Mapping[str, Any]) -> None:
        """Add one row: every feature plus "task" (never the default columns).

        Camera images are uint8 (H, W, 3) arrays as cameras give them; LeRobot's other forms are
        converted: channel-first, float in [0, 1], PIL images, torch tensors. Depth maps are uint16
        millimetres, (H, W) or (H, W, 1), or float32 metres, as a RealSense gives them.

        Raises:
            FrameError: a key is missing or unknown, or a value has the wrong shape or dtype.
        """
        values = dict(frame)
        for key, value in values.items():
            if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, without importing torch
                values[key] = value = value.detach().cpu().numpy()
            if key in self._rgb_keys and not (isinstance(value, np.ndarray) and value.dtype == np.uint8
                                                and value.ndim == 3 and value.shape[2] == 3):
                values[key] = _as_hwc_uint8(key, value, self._features[key]["shape"])
        self._rec.add_frame(values)

    def save_episode(self, episode_data: dict | None = None, parallel_encoding: bool = True, *,
                     progress: ProgressCallback | None = None) -> EpisodeReport:
        """Complete the open episode (durable once this returns); returns what was saved. `progress`
        (streamrec's) hears the frames encoded after the episode ended, as `DatasetRecorder.save_episode`.

        Raises:
            ConfigError: `episode_data` was given (frames come through add_frame only).
            DatasetError: the open episode has no frames.
            WorkerError: an encoder failed; episodes saved before are intact.
        """
        if episode_data is not None:
            raise ConfigError("save_episode(episode_data=...): streamrec takes an episode's frames through "
                              "add_frame() only")
        report = self._rec.save_episode(progress=progress)
        self._total_frames += report.frames
        return report

    def clear_episode_buffer(self, delete_images: bool = True) -> None:
        """Discard the open episode (to record it again); saved episodes are untouched."""
        self._rec.clear_episode()

    def has_pending_frames(self) -> bool:
        return self._rec.episode_frames > 0

    def finalize(self) -> None:
        """Close the videos and write the tables and metadata; safe to call twice. An open episode
        that was not saved is discarded."""
        if self._finalized:
            return
        self._finalized = True
        self._rec.finalize()

    def push_to_hub(
        self,
        branch: str | None = None,
        tags: list | None = None,
        license: str | None = "apache-2.0",
        tag_version: bool = True,
        push_videos: bool = True,
        private: bool | None = None,
        allow_patterns: list[str] | str | None = None,
        upload_large_folder: bool = True,
        **card_kwargs: Any,
    ) -> None:
        """Upload the finalized dataset with huggingface_hub's large-folder upload (resumable), then its card
        and the `v3.0` tag LeRobot loads by default. `upload_large_folder` is accepted for LeRobot's
        signature; the upload is always the large-folder one.

        Raises:
            DatasetError: the dataset is not finalized.
            PushError: the upload failed (no network, no token, ...); the dataset on disk is unchanged.
        """
        if not self._finalized:
            raise DatasetError("push_to_hub(): call finalize() first; only a finalized dataset is uploaded")
        push_folder(self.root, self.repo_id, branch=branch, tags=tags, license=license, tag_version=tag_version,
                    push_videos=push_videos, private=private, allow_patterns=allow_patterns, card_kwargs=card_kwargs)

    def __enter__(self) -> LeRobotDataset:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finalize()

    # -- read-only views ----------------------------------------------------------------------------

    @property
    def recorder(self) -> DatasetRecorder:
        """The streamrec recorder underneath (camera_status(), encoders, ...)."""
        return self._rec

    @property
    def fps(self) -> int:
        return self._rec.config.fps

    @property
    def features(self) -> dict[str, dict]:
        """Every feature, the default columns included, as LeRobot's `features`."""
        return self._features

    @property
    def num_episodes(self) -> int:
        """Episodes in the dataset: those it had when resumed plus those saved since."""
        return self._rec.num_episodes

    @property
    def num_frames(self) -> int:
        return self._total_frames

    def __repr__(self) -> str:
        return f"<streamrec.lerobot.LeRobotDataset {self.repo_id!r} at {str(self.root)!r}, {self._rec!r}>"


def _as_hwc_uint8(key: str, value: Any, shape: Any) -> np.ndarray:
    """A camera image in LeRobot's other accepted forms, as uint8 (H, W, C)."""
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)  # PIL images convert
        except Exception:  # noqa: BLE001 - reported below with the type
            raise FrameError(f"add_frame(): {key!r} must be an image array, got {type(value).__name__}") from None
    h, w, c = (int(d) for d in shape)
    if value.shape == (c, h, w) and value.shape != (h, w, c):
        value = np.transpose(value, (1, 2, 0))
    if value.dtype.kind == "f":
        value = (np.clip(value, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(value)


class VideoEncodingManager:
    """`with VideoEncodingManager(dataset):` finalizes the dataset on the way out, as LeRobot's does;
    on an exception the open episode is discarded first (saved episodes are kept)."""

    def __init__(self, dataset: LeRobotDataset) -> None:
        self.dataset = dataset

    def __enter__(self) -> VideoEncodingManager:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and self.dataset.has_pending_frames():
            try:
                self.dataset.clear_episode_buffer()
            except Exception:  # noqa: BLE001 - finalize() below reports a failed encoder
                log.exception("discarding the open episode failed")
        self.dataset.finalize()
        return False
