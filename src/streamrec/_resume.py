"""Reopening a finalized v3.0 dataset to append episodes (`DatasetRecorder.resume`).

Reads what the dataset already holds (info.json, tasks, the episodes table) and works out
where new episodes go: the next global index, the next task index, and for data, episodes
and every camera a new file after the last one, so no existing file is rewritten but the
small metadata files (info.json, tasks.parquet, stats.json). Settings given by the caller
must match the dataset's; anything not given is taken from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._config import DEFAULT_FEATURES, EncoderConfig, Feature, parse_features
from ._dataset import CODEBASE_VERSION, WORK_DIR, FileIndex, Layout, WorkLock
from ._errors import DatasetError
from ._stats import STAT_NAMES, Stats

_ENCODER_FOR_STREAM = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265"}
_FILE_RE = re.compile(r"chunk-(\d+)/file-(\d+)\.(parquet|mp4)$")


@dataclass(frozen=True, slots=True)
class ExistingDataset:
    """What a finalized dataset holds, and where appended episodes go."""

    info: dict[str, Any]
    features: tuple[Feature, ...]
    camera_encoder: EncoderConfig
    tasks: dict[str, int]
    total_episodes: int
    total_frames: int
    episode_stats: list[Stats]
    """Per-episode stats of the saved episodes (empty if the table has none: then `stats_json`)."""
    stats_json: dict[str, Stats] | None
    next_data: FileIndex
    next_episodes: FileIndex
    next_video: dict[str, FileIndex]
    video_files: dict[str, set[FileIndex]]
    """The MP4s, per camera, that the saved episodes use."""
    data_schema: pa.Schema | None
    episodes_schema: pa.Schema | None


def read_existing(root: Path, *, repairing: bool = False, session_files: frozenset[Path] = frozenset()
                  ) -> ExistingDataset:
    """Read a finalized dataset, or raise DatasetError saying why it cannot be appended to.

    With `repairing`, an interrupted dataset is read as it was before the interrupted session:
    `session_files` are the data and episodes files that session may have written.
    """
    layout = Layout(root)
    if not layout.info.is_file():
        raise DatasetError(f"{root} has no meta/info.json; DatasetRecorder.resume needs a finalized v3.0 dataset "
                           "(DatasetRecorder.create starts a new one)")
    if layout.work.exists() and not repairing:
        WorkLock(layout, "DatasetRecorder.resume").release()  # raises if a recording is running in it
        raise DatasetError(f"{root} was interrupted while recording ({WORK_DIR}/ holds unfinished work); run "
                           f"`streamrec repair {root}` first, then resume")
    info = json.loads(layout.info.read_text())
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DatasetError(f"{root}: codebase_version is {info.get('codebase_version')!r}; streamrec appends to "
                           f"{CODEBASE_VERSION!r} datasets only")
    user = {name: spec for name, spec in info["features"].items() if name not in DEFAULT_FEATURES}
    try:
        features = parse_features({name: {k: spec[k] for k in ("dtype", "shape", "names") if k in spec}
                                   for name, spec in user.items()})
    except ValueError as e:
        raise DatasetError(f"{root}: its features cannot be recorded by streamrec: {e}") from e
    cameras = [f.name for f in features if f.is_video]

    rows = _episodes_rows(root, session_files)
    total_episodes = len(rows)
    if [r["episode_index"] for r in rows] != list(range(total_episodes)):
        raise DatasetError(f"{root}: meta/episodes does not list episodes 0..{total_episodes - 1} in order; "
                           "run `streamrec verify` on it")
    if total_episodes != info.get("total_episodes") and not repairing:
        raise DatasetError(f"{root}: info.json says total_episodes = {info.get('total_episodes')}, meta/episodes "
                           f"lists {total_episodes}; run `streamrec verify` on it")
    total_frames = rows[-1]["dataset_to_index"] if rows else 0

    tasks_table = pq.read_table(layout.tasks).to_pydict() if layout.tasks.exists() else {"task": [], "task_index": []}
    order = np.argsort(tasks_table["task_index"])
    tasks = {tasks_table["task"][i]: int(tasks_table["task_index"][i]) for i in order}
    if sorted(tasks.values()) != list(range(len(tasks))):
        raise DatasetError(f"{root}: meta/tasks.parquet task_index values are not 0..{len(tasks) - 1}")

    chunks_size = int(info.get("chunks_size", 1000))
    next_video = {c: _next_file(root / "videos" / c, "mp4", chunks_size,
                                [(r.get(f"videos/{c}/chunk_index"), r.get(f"videos/{c}/file_index")) for r in rows])
                  for c in cameras}
    data_files = [p for p in sorted((root / "data").glob("chunk-*/file-*.parquet")) if p not in session_files]
    episodes_files = [p for p in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
                      if p not in session_files]
    stat_names = [f.name for f in features if f.dtype != "string"] + list(DEFAULT_FEATURES)
    has_stats = bool(rows) and all(f"stats/{n}/{s}" in rows[0] for n in stat_names for s in STAT_NAMES)
    episode_stats = [{f"{n}/{s}": np.asarray(r[f"stats/{n}/{s}"]) for n in stat_names for s in STAT_NAMES}
                     for r in rows] if has_stats else []
    stats_json = None
    if not has_stats and layout.stats.exists():
        stats_json = {name: {k: np.asarray(v) for k, v in s.items()}
                      for name, s in json.loads(layout.stats.read_text()).items()}
    return ExistingDataset(
        info=info, features=features, camera_encoder=_encoder_from_info(root, user, cameras), tasks=tasks,
        total_episodes=total_episodes, total_frames=int(total_frames),
        episode_stats=[_by_feature(s) for s in episode_stats], stats_json=stats_json,
        next_data=_next_file(root / "data", "parquet", chunks_size,
                             [(r.get("data/chunk_index"), r.get("data/file_index")) for r in rows]),
        next_episodes=_next_file(root / "meta" / "episodes", "parquet", chunks_size, []),
        next_video=next_video,
        video_files={c: {FileIndex(r[f"videos/{c}/chunk_index"], r[f"videos/{c}/file_index"]) for r in rows}
                     for c in cameras},
        data_schema=pq.read_schema(data_files[-1]).remove_metadata() if data_files else None,
        episodes_schema=pq.read_schema(episodes_files[-1]).remove_metadata() if episodes_files else None)


def check_matches(existing: ExistingDataset, *, fps: int | None, features: Mapping[str, Mapping[str, Any]] | None,
                  camera_encoder: EncoderConfig | None, robot_type: str | None) -> None:
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


def _episodes_rows(root: Path, leave_out: frozenset[Path]) -> list[dict[str, Any]]:
    paths = [p for p in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")) if p not in leave_out]
    return [row for p in paths for row in pq.read_table(p).to_pylist()]


def _by_feature(flat: dict[str, np.ndarray]) -> dict[str, Stats]:
    out: dict[str, Stats] = {}
    for key, value in flat.items():
        name, stat = key.rsplit("/", 1)
        out.setdefault(name, {})[stat] = value
    return out


def _next_file(folder: Path, ext: str, chunks_size: int, referenced: list[tuple[Any, Any]]) -> FileIndex:
    """The file after the last one that exists on disk or is referenced by an episode."""
    seen = [FileIndex(int(c), int(f)) for c, f in referenced if c is not None and f is not None]
    for path in folder.glob(f"chunk-*/file-*.{ext}"):
        m = _FILE_RE.search(path.as_posix())
        if m:
            seen.append(FileIndex(int(m[1]), int(m[2])))
    if not seen:
        return FileIndex()
    return max(seen, key=lambda at: (at.chunk, at.file)).next(chunks_size)


def _encoder_from_info(root: Path, features: dict[str, Any], cameras: list[str]) -> EncoderConfig:
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
