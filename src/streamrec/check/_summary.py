"""`summarize()`: what a dataset holds, per camera and in total, without decoding any video.

The tables are read with the dataset reader verify uses, so both agree on what a dataset is and what it says.
Codec and resolution come from info.json; the first MP4 of each camera is opened (headers only)
to check that its stream says the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from .._errors import DatasetError
from ..dataset._depth import is_depth_info
from ..dataset._reader import DatasetReader
from ._depth import describe_depth
from ._video import codec_id

IMAGE_PREFIX = "observation.images."
_MB = 2**20
"""Bytes per MB, as in `video_files_size_in_mb`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraSummary:
    """One video feature of a dataset."""

    key: str
    """Video key, e.g. `observation.images.top`."""
    codec: str | None
    """`video.codec` from info.json (e.g. `av1`, `h264`); None when info.json does not say."""
    width: int | None
    """Pixels, from info.json."""
    height: int | None
    fps: int | None
    """`video.fps` from info.json, else the dataset's fps."""
    files: int
    """MP4 files on disk for this camera."""
    size_bytes: int
    """Total size of those MP4 files."""
    mb_per_minute: float | None
    """MB of video per minute recorded (MB = 2**20 bytes); None for an empty dataset."""
    dropped_frames: int | None
    """Frames dropped while recording, summed over episodes; None when the episodes do not record drops."""
    depth: str | None = None
    """A depth camera: how its depth is stored ("12-bit log codes 0.01-10 m (hevc gray12le lossless)", "exact
    16-bit mm (ffv1 gray16le)"); None for a colour camera."""

    @property
    def name(self) -> str:
        """The camera's name: the key without `observation.images.`."""
        return self.key.removeprefix(IMAGE_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "codec": self.codec, "width": self.width, "height": self.height, "fps": self.fps,
                "files": self.files, "size_bytes": self.size_bytes, "mb_per_minute": _round(self.mb_per_minute),
                "dropped_frames": self.dropped_frames, "depth": self.depth}


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSummary:
    """One task of `meta/tasks.parquet` and how much of the dataset shows it."""

    index: int
    """`task_index`."""
    task: str
    episodes: int
    """Episodes that list this task."""
    frames: int | None
    """Data rows with this task_index; None when the data files could not be read."""

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "task": self.task, "episodes": self.episodes, "frames": self.frames}


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetSummary:
    """What `summarize()` found in a dataset."""

    root: Path
    robot_type: str | None
    fps: int | None
    episodes: int
    """Episodes listed in `meta/episodes`."""
    frames: int
    """Data rows (or, when the data files cannot be read, the episodes' lengths summed)."""
    duration_s: float | None
    """frames / fps; None without a valid fps."""
    cameras: tuple[CameraSummary, ...]
    tasks: tuple[TaskSummary, ...]
    size_bytes: int
    """Every file under the root, metadata included."""
    notes: tuple[str, ...]
    """Anything that does not add up: info.json and an MP4 disagree, a table cannot be read, an interrupted
    recording. `streamrec verify` checks everything."""

    @property
    def dropped_frames(self) -> int:
        """Dropped frames summed over cameras and episodes."""
        return sum(c.dropped_frames or 0 for c in self.cameras)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {"root": str(self.root), "robot_type": self.robot_type, "fps": self.fps, "episodes": self.episodes,
                "frames": self.frames, "duration_s": _round(self.duration_s), "size_bytes": self.size_bytes,
                "dropped_frames": self.dropped_frames, "cameras": [c.to_dict() for c in self.cameras],
                "tasks": [t.to_dict() for t in self.tasks], "notes": list(self.notes)}

    def __repr__(self) -> str:
        return (f"<DatasetSummary {str(self.root)!r}: {self.episodes} episode(s), {self.frames} frames, "
                f"{len(self.cameras)} camera(s), {self.size_bytes / _MB:.1f} MB>")


def summarize(root: str | Path) -> DatasetSummary:
    """Summarize a LeRobot v3.0 dataset: episodes, frames, cameras (codec, resolution, size, drops), tasks.

    Reads the metadata and data tables and each camera's first MP4 header; decodes no video, so it
    is quick on large datasets. It does not check the dataset: see `verify()`.

    Args:
        root: The dataset folder (the one holding `meta/`).

    Returns:
        A `DatasetSummary`.

    Raises:
        DatasetError: `root` is not a dataset (no readable `meta/info.json`; the same test as `verify`).
    """
    root = Path(root)
    reader = DatasetReader(root)
    if not reader.is_dataset:
        raise DatasetError(" ".join(f.message for f in reader.findings))
    _ = reader.fps, reader.tasks, reader.episodes, reader.rows  # read in verify's order: findings alike
    notes = [f"{f.code}: {f.message}" for f in reader.findings.errors]
    if reader.layout.work.exists():
        journaled = reader.journaled_episodes()
        who = reader.recorded_by()
        if who is not None:
            notes.append(f"being recorded right now by {who}: {journaled} episode(s) saved so far; the tables "
                         "below are written when it finalizes")
        else:
            notes.append(f"the recording was interrupted: {journaled} saved episode(s) are not in the tables yet; "
                         f"run `streamrec repair {root}` to keep them")
    fps = reader.fps
    rows = reader.rows
    frames = len(rows.index) if rows is not None else sum(ep.length for ep in reader.episodes)
    duration_s = frames / fps if fps else None
    cameras = []
    for key in reader.cameras:
        camera, note = _camera(reader, key, duration_s)
        cameras.append(camera)
        notes.extend(note)
    task_frames = np.bincount(rows.task_index, minlength=len(reader.tasks or ())) if rows is not None else None
    tasks = tuple(
        TaskSummary(index=i, task=task, episodes=sum(task in (ep.tasks or ()) for ep in reader.episodes),
                 frames=None if task_frames is None else int(task_frames[i]))
        for i, task in enumerate(reader.tasks or ()))
    robot_type = reader.info.get("robot_type")
    return DatasetSummary(
        root=root, robot_type=robot_type if isinstance(robot_type, str) else None, fps=fps,
        episodes=len(reader.episodes), frames=frames, duration_s=duration_s, cameras=tuple(cameras), tasks=tasks,
        size_bytes=sum(p.stat().st_size for p in root.rglob("*") if p.is_file()), notes=tuple(notes))


def _camera(reader: DatasetReader, key: str, duration_s: float | None) -> tuple[CameraSummary, list[str]]:
    feature = reader.features.get(key, {})
    stated = feature.get("info") if isinstance(feature.get("info"), dict) else {}
    shape = feature.get("shape")
    height, width = (shape[0], shape[1]) if isinstance(shape, list) and len(shape) == 3 else (None, None)
    height, width = stated.get("video.height", height), stated.get("video.width", width)
    codec = stated.get("video.codec") if isinstance(stated.get("video.codec"), str) else None
    mp4s = reader.files("videos", key)
    size = sum(p.stat().st_size for p in mp4s)
    drops = [v.dropped for ep in reader.episodes if (v := ep.videos.get(key)) and v.dropped is not None]
    camera = CameraSummary(
        key=key, codec=codec, width=width, height=height, fps=stated.get("video.fps", reader.fps), files=len(mp4s),
        size_bytes=size, mb_per_minute=size / _MB / (duration_s / 60) if duration_s else None,
        dropped_frames=sum(drops) if drops else None,
        depth=describe_depth(stated) if is_depth_info(stated) else None)
    return camera, _stream_notes(camera, mp4s[0], reader.layout.rel(mp4s[0])) if mp4s else []


def _stream_notes(camera: CameraSummary, path: Path, name: str) -> list[str]:
    """What the MP4's video stream says differently from info.json (its header only; nothing is decoded)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return [f"{name} has no video stream"]
            context = container.streams.video[0].codec_context
            stream_codec, stream_id, width, height = context.codec.name, context.codec.id, context.width, context.height
    except (av.FFmpegError, OSError) as e:
        return [f"{name} cannot be opened: {e}"]
    notes = []
    if camera.codec is not None and codec_id(camera.codec) != stream_id:
        notes.append(f"{camera.key}: info.json says codec {camera.codec}, but {name} holds {stream_codec}")
    if (camera.width, camera.height) != (width, height):
        notes.append(f"{camera.key}: info.json says {camera.width}x{camera.height}, but {name} is {width}x{height}")
    return notes


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
