"""Reopening a finalized v3.0 dataset to append episodes (`DatasetRecorder.resume`), and repair's view
of the dataset as it was before the interrupted session.

What the dataset already holds is read with the dataset reader: the next global index, the next
task index, and for data, episodes and every camera a new file after the last one, so no existing
file is rewritten but the small metadata files (info.json, tasks.parquet, stats.json). Settings
given by the caller must match the dataset's; anything not given is taken from it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError, DatasetError
from ..dataset._depth import depth_config_from_info
from ..dataset._features import DEFAULT_FEATURES, parse_features
from ..dataset._layout import CODEBASE_VERSION, WORK_DIR
from ..dataset._lock import WorkLock
from ..dataset._reader import DatasetReader
from ..dataset._writer import ExistingDataset
from ..encode._config import EncoderConfig
from ..encode._depth import DepthEncoderConfig

_ENCODER_FOR_STREAM = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265"}


def read_existing(root: Path, *, repairing: bool = False, leave_out: Collection[Path] = ()) -> ExistingDataset:
    """Read a finalized dataset, or raise DatasetError saying why it cannot be appended to.

    With `repairing`, an interrupted dataset is read as it was before the interrupted session:
    `leave_out` are the data and episodes files that session may have written.
    """
    reader = DatasetReader(root, leave_out=leave_out)
    layout = reader.layout
    if not layout.info.is_file():
        raise DatasetError(f"{root} has no meta/info.json; DatasetRecorder.resume needs a finalized v3.0 dataset "
                           "(DatasetRecorder.create starts a new one)")
    if layout.work.exists() and not repairing:
        WorkLock(layout, "DatasetRecorder.resume").release()  # raises if a recording is running in it
        raise DatasetError(f"{root} was interrupted while recording ({WORK_DIR}/ holds unfinished work); run "
                           f"`streamrec repair {root}` first, then resume")
    info = reader.info
    reader.require("appending episodes")  # info.json unreadable
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DatasetError(f"{root}: codebase_version is {info.get('codebase_version')!r}; streamrec appends to "
                           f"{CODEBASE_VERSION!r} datasets only")
    features = reader.user_features()
    cameras = [f.name for f in features if f.is_video]
    depth_cameras = [f.name for f in features if f.depth]
    episodes = reader.episodes
    # A dataset whose first session never finalized has no tasks file yet (repair).
    tasks = reader.tasks if layout.tasks.exists() or episodes else []
    # Repairing, info.json may already count the session's episodes (finalize writes it last, and
    # was killed after): the totals are rewritten from the journal anyway.
    reader.require("repair" if repairing else "appending episodes",
                   ignore=("episodes_missing",) if repairing else ())
    total_episodes = len(episodes)
    if total_episodes != info.get("total_episodes") and not repairing:
        raise DatasetError(f"{root}: info.json says total_episodes = {info.get('total_episodes')}, meta/episodes "
                           f"lists {total_episodes}; run `streamrec verify` on it")
    stat_names = [f.name for f in features if f.dtype != "string"] + list(DEFAULT_FEATURES)
    episode_stats = reader.episode_stats(stat_names)
    stats_json = None if episode_stats else reader.stats()
    return ExistingDataset(
        info=info, features=features,
        camera_encoder=encoder_from_info(root, reader.features, [c for c in cameras if c not in depth_cameras]),
        depth_encoder=depth_encoder_from_info(root, reader.features, depth_cameras),
        tasks={task: i for i, task in enumerate(tasks or [])},
        total_episodes=total_episodes, total_frames=episodes[-1].dataset_to_index if episodes else 0,
        episode_stats=episode_stats or [], stats_json=stats_json,
        next_data=reader.next_file("data"), next_episodes=reader.next_file("episodes"),
        next_video={c: reader.next_file("videos", c) for c in cameras},
        video_files={c: {ep.videos[c].at for ep in episodes} for c in cameras},
        data_schema=reader.last_schema("data"), episodes_schema=reader.last_schema("episodes"))


def check_matches(existing: ExistingDataset, *, fps: int | None, features: Mapping[str, Mapping[str, Any]] | None,
                  camera_encoder: EncoderConfig | None, robot_type: str | None,
                  depth_encoder: DepthEncoderConfig | None = None) -> None:
    """Raise DatasetError naming the first setting given that differs from the dataset's."""
    info = existing.info
    if fps is not None and fps != info["fps"]:
        raise DatasetError(f"resume: fps = {fps}, but the dataset was recorded at {info['fps']} fps")
    if robot_type is not None and robot_type != info.get("robot_type"):
        raise DatasetError(f"resume: robot_type = {robot_type!r}, but the dataset's is {info.get('robot_type')!r}")
    if features is not None:
        given = {f.name: f for f in parse_features(features)}
        have = {f.name: f for f in existing.features}
        for name in given.keys() - have.keys():
            raise DatasetError(f"resume: feature {name!r} is not in the dataset (it has {sorted(have)})")
        for name in have.keys() - given.keys():
            raise DatasetError(f"resume: the dataset's feature {name!r} is missing from the features given")
        for name, f in given.items():
            old = have[name]
            if (f.dtype, f.shape) != (old.dtype, old.shape):
                raise DatasetError(f"resume: feature {name!r} is dtype {f.dtype} shape {list(f.shape)} here, but "
                                   f"dtype {old.dtype} shape {list(old.shape)} in the dataset")
            if f.depth != old.depth:
                raise DatasetError(f"resume: feature {name!r} is {'' if f.depth else 'not '}a depth map here "
                                   f"(info.is_depth_map), but {'is' if old.depth else 'is not'} in the dataset")
    if depth_encoder is not None and existing.depth_encoder is not None:
        for name, mine, theirs in depth_encoder.same_stream(existing.depth_encoder):
            raise DatasetError(f"resume: depth_encoder {name} = {mine!r}, but the dataset's depth videos have "
                               f"{theirs!r}; leave depth_encoder out to use the dataset's settings")
    if camera_encoder is not None:
        old = existing.camera_encoder
        pairs = {"codec (video.codec)": (camera_encoder.stream_codec, old.stream_codec),
                 "pix_fmt": (camera_encoder.pix_fmt, old.pix_fmt), "g": (camera_encoder.g, old.g),
                 "crf": (camera_encoder.crf, old.crf),
                 "preset": (camera_encoder.effective_preset, old.effective_preset),
                 "fast_decode": (camera_encoder.fast_decode, old.fast_decode)}
        for name, (mine, theirs) in pairs.items():
            if theirs is not None and mine != theirs:
                raise DatasetError(f"resume: camera_encoder {name} = {mine!r}, but the dataset's videos have "
                                   f"{theirs!r}; leave camera_encoder out to use the dataset's settings")


def depth_encoder_from_info(root: Path, features: Mapping[str, Any], cameras: list[str]) -> DepthEncoderConfig | None:
    """How the dataset's depth cameras are stored, from their info blocks (LeRobot's or streamrec's); None
    without depth cameras."""
    if not cameras:
        return None
    configs = []
    for c in cameras:
        try:
            configs.append(depth_config_from_info(features[c].get("info") or {}))
        except ConfigError as e:
            raise DatasetError(f"{root}: depth camera {c!r} is stored in a way streamrec cannot write: {e}") from e
    for c, config in zip(cameras[1:], configs[1:]):
        for name, theirs, mine in configs[0].same_stream(config):
            raise DatasetError(f"{root}: depth cameras {cameras[0]!r} and {c!r} differ in {name} ({theirs!r}, "
                               f"{mine!r}); streamrec stores every depth camera alike")
    return configs[0]


def encoder_from_info(root: Path, features: Mapping[str, Any], cameras: list[str]) -> EncoderConfig:
    """The encoder settings the dataset's videos were made with, from their info blocks."""
    if not cameras:
        return EncoderConfig()
    blocks = [features[c].get("info") or {} for c in cameras]
    first = blocks[0]
    for c, block in zip(cameras[1:], blocks[1:]):
        for key in ("video.codec", "video.pix_fmt"):
            if block.get(key) != first.get(key):
                raise DatasetError(f"{root}: cameras {cameras[0]!r} and {c!r} differ in {key}; streamrec encodes "
                                   "every camera alike")
    codec = first.get("video.codec")
    if codec not in _ENCODER_FOR_STREAM:
        raise DatasetError(f"{root}: its videos are {codec!r} (video.codec); streamrec encodes "
                           f"{sorted(_ENCODER_FOR_STREAM)}")
    encoder = _ENCODER_FOR_STREAM[codec]
    preset = first.get("video.preset")
    kwargs: dict[str, Any] = {"vcodec": encoder, "pix_fmt": first.get("video.pix_fmt") or "yuv420p",
                              "g": first.get("video.g"), "crf": first.get("video.crf"),
                              "fast_decode": first.get("video.fast_decode") or 0,
                              "extra_options": first.get("video.extra_options") or {}}
    # A preset of another encoder family (a name for SVT-AV1, a number for x264) cannot carry over.
    if preset is not None and isinstance(preset, int) == (encoder == "libsvtav1"):
        kwargs["preset"] = preset
    try:
        return EncoderConfig(**kwargs)
    except ValueError as e:
        raise DatasetError(f"{root}: its video settings cannot be reproduced here: {e}; pass camera_encoder") from e
