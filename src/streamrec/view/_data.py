"""Everything the viewer reads from a dataset's tables, behind one small interface.

This is the only module of `streamrec.view` that opens info.json or a parquet file, so that it
can move onto the package's dataset reader without the server noticing. The server needs:
the features, the tasks, per episode its length, tasks and per camera the MP4 with the
episode's span in it and what was dropped; and the numeric series of one episode.

Drops are stored per episode and camera in `meta/episodes`: `videos/<key>/dropped_frames` (a count,
written by streamrec), and when present `videos/<key>/dropped_slots` (the rows whose frame repeats
the previous one) and `videos/<key>/adaptations` (`"<row>:<what changed>"`). LeRobot's datasets
have none of these columns.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamrec import DatasetError

DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
DEFAULT_COLUMNS = frozenset({"timestamp", "frame_index", "episode_index", "index", "task_index"})
_NUMERIC = ("float", "int", "uint", "bool")


@dataclass(frozen=True, slots=True, kw_only=True)
class Camera:
    """One video feature, as info.json describes it."""

    key: str
    height: int | None
    width: int | None
    codec: str | None
    """`video.codec` from info.json; the MP4 itself is the authority (see the preview module)."""
    pix_fmt: str | None
    is_depth: bool
    codec_by_file: dict[str, str] = field(default_factory=dict)
    """`video.codec_by_file`: files whose codec differs from `codec` (an encoder replaced mid-recording)."""

    @property
    def name(self) -> str:
        return self.key.removeprefix("observation.images.")

    def stated_codec(self, video_file: str) -> str | None:
        """The codec info.json gives for one of this camera's files (relative to the dataset root)."""
        return self.codec_by_file.get(video_file.removeprefix(f"videos/{self.key}/"), self.codec)


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """Where one episode of one camera is: a span of a shared MP4."""

    video_file: str
    """Relative to the dataset root, with `/` separators."""
    from_s: float
    to_s: float
    dropped: int | None
    """Frames dropped while recording; None when the dataset does not record drops."""
    dropped_slots: tuple[int, ...] | None
    """Rows whose frame repeats the previous one; None when only the count (or nothing) is recorded."""
    adaptations: tuple[tuple[int, str], ...] | None
    """(row, what changed) for each step the encoder took under load; None when not recorded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Episode:
    index: int
    length: int
    tasks: tuple[str, ...]
    data_file: str | None
    spans: dict[str, Span] = field(default_factory=dict)
    """Video key -> span; a camera without a span for this episode is left out."""

    @property
    def dropped(self) -> int | None:
        """Dropped frames over all cameras; None when no camera records drops."""
        known = [s.dropped for s in self.spans.values() if s.dropped is not None]
        return sum(known) if known else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """One numeric feature over one episode: `values[row, dim]`."""

    name: str
    names: tuple[str, ...]
    values: np.ndarray


class Dataset:
    """A dataset opened for viewing: its metadata read once, frames' values read per episode."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        try:
            info = json.loads(info_path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"{self.root} is not a dataset: {info_path} does not exist") from None
        except (OSError, ValueError) as e:
            raise DatasetError(f"{info_path} cannot be read: {e}") from None
        if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
            raise DatasetError(f"{info_path}: expected an object with a 'features' object")
        fps = info.get("fps")
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or fps <= 0:
            raise DatasetError(f"{info_path}: fps must be a number > 0, got {fps!r}")
        self.info: dict[str, Any] = info
        self.fps: float = fps
        self.features: dict[str, dict[str, Any]] = info["features"]
        self.robot_type: str | None = info.get("robot_type")
        self._data_path: str = info.get("data_path") or DEFAULT_DATA_PATH
        self._video_path: str = info.get("video_path") or DEFAULT_VIDEO_PATH
        self.cameras: tuple[Camera, ...] = tuple(
            _camera(name, f) for name, f in self.features.items() if f.get("dtype") == "video")
        self.tasks: tuple[str, ...] = self._read_tasks()
        self.episodes: tuple[Episode, ...] = self._read_episodes()
        self.series_features: tuple[str, ...] = _series_features(self.features)

    # -- the interface ---------------------------------------------------------------------------

    def video_files(self) -> frozenset[str]:
        """Every MP4 the episodes reference, relative to the root: the only files the viewer serves."""
        return frozenset(s.video_file for e in self.episodes for s in e.spans.values())

    def series(self, episode: int) -> list[Series]:
        """The numeric features (observation.state and action first) of one episode, in row order."""
        ep = self.episodes[episode]
        if not self.series_features or ep.data_file is None:
            return []
        path = self.root / ep.data_file
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as e:
            raise DatasetError(f"{ep.data_file} (rows of episode {episode}) cannot be read: {e}") from None
        columns = [c for c in self.series_features if c in pf.schema_arrow.names]
        if not columns or "episode_index" not in pf.schema_arrow.names:
            return []
        groups = _row_groups_of(pf, episode)
        table = pf.read_row_groups(groups, columns=[*columns, "episode_index", "frame_index"]
                                   if "frame_index" in pf.schema_arrow.names else [*columns, "episode_index"],
                                   use_threads=False)
        table = table.filter(pc.equal(table["episode_index"], episode))
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        out = []
        for name in columns:
            values = _as_matrix(table[name])
            out.append(Series(name=name, names=_dim_names(self.features[name], values.shape[1]), values=values))
        del table
        # Arrow's allocator keeps freed memory for reuse; a viewer idles between episodes, so give it back.
        pa.default_memory_pool().release_unused()
        return out

    # -- reading ------------------------------------------------------------------------------

    def _read_tasks(self) -> tuple[str, ...]:
        path = self.root / "meta" / "tasks.parquet"
        if not path.exists():
            return ()
        try:
            table = _read(path)
        except (OSError, pa.ArrowException) as e:
            raise DatasetError(f"meta/tasks.parquet cannot be read: {e}") from None
        if "task" not in table.column_names:
            raise DatasetError(f"meta/tasks.parquet has no 'task' column (columns: {table.column_names})")
        tasks = table["task"].to_pylist()
        if "task_index" in table.column_names:
            order = np.argsort(np.asarray(table["task_index"].to_pylist()), kind="stable")
            tasks = [tasks[i] for i in order]
        return tuple(str(t) for t in tasks)

    def _read_episodes(self) -> tuple[Episode, ...]:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not files and self.info.get("total_episodes", 0):
            raise DatasetError(f"{self.root}: info.json lists {self.info['total_episodes']} episode(s) but "
                               "meta/episodes has no parquet file")
        episodes: list[Episode] = []
        for path in files:
            rel = path.relative_to(self.root).as_posix()
            try:
                pf = pq.ParquetFile(path)
                wanted = [c for c in pf.schema_arrow.names if not c.startswith("stats/")]
                rows = pf.read(columns=wanted, use_threads=False).to_pylist()
            except (OSError, pa.ArrowException) as e:
                raise DatasetError(f"{rel} cannot be read: {e}") from None
            for row in rows:
                episodes.append(self._episode(row, len(episodes), rel))
        pa.default_memory_pool().release_unused()
        return tuple(episodes)

    def _episode(self, row: dict[str, Any], position: int, where: str) -> Episode:
        length = row.get("length")
        if not isinstance(length, int) or length < 0:
            raise DatasetError(f"{where}: episode at position {position} has length {length!r}, expected an "
                               "integer >= 0")
        index = row.get("episode_index", position)
        data_file = None
        if row.get("data/chunk_index") is not None and row.get("data/file_index") is not None:
            data_file = self._data_path.format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        spans = {}
        for cam in self.cameras:
            p = f"videos/{cam.key}/"
            chunk, file = row.get(p + "chunk_index"), row.get(p + "file_index")
            start, end = row.get(p + "from_timestamp"), row.get(p + "to_timestamp")
            if None in (chunk, file, start):
                continue
            if end is None or not math.isfinite(end):
                end = start + length / self.fps
            spans[cam.key] = Span(
                video_file=self._video_path.format(video_key=cam.key, chunk_index=chunk, file_index=file),
                from_s=float(start), to_s=float(end), dropped=row.get(p + "dropped_frames"),
                dropped_slots=_slots(row.get(p + "dropped_slots")),
                adaptations=_adaptations(row.get(p + "adaptations"), f"{where}: episode {index}, {cam.key}"))
        tasks = row.get("tasks") or ()
        return Episode(index=int(index), length=length, tasks=tuple(str(t) for t in tasks), data_file=data_file,
                       spans=spans)


def _read(path: Path, columns: list[str] | None = None) -> pa.Table:
    # Without Arrow's thread pool: the tables are small, and each pool thread keeps its own
    # allocator heap (about 8 MB of resident memory for the server, measured).
    return pq.ParquetFile(path).read(columns=columns, use_threads=False)


def _camera(key: str, feature: dict[str, Any]) -> Camera:
    info = feature.get("info") or {}
    shape = feature.get("shape") or [None, None]
    depth = bool(info.get("is_depth_map") or info.get("video.is_depth_map"))
    by_file = info.get("video.codec_by_file")
    return Camera(key=key, height=info.get("video.height", shape[0]), width=info.get("video.width", shape[1]),
                  codec=info.get("video.codec"), pix_fmt=info.get("video.pix_fmt"), is_depth=depth,
                  codec_by_file={str(k): str(v) for k, v in by_file.items()} if isinstance(by_file, dict) else {})


def _series_features(features: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    numeric = [name for name, f in features.items()
               if name not in DEFAULT_COLUMNS and str(f.get("dtype", "")).startswith(_NUMERIC)]
    first = [n for n in ("observation.state", "action") if n in numeric]
    return tuple(first + [n for n in numeric if n not in first])


def _row_groups_of(pf: pq.ParquetFile, episode: int) -> list[int]:
    """Row groups whose episode_index statistics may hold `episode` (all of them without statistics)."""
    col = pf.schema_arrow.get_field_index("episode_index")
    meta = pf.metadata
    groups = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max or stats.min <= episode <= stats.max:
            groups.append(g)
    return groups


def _as_matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A scalar or list column as a float64 [rows, dims] array (the browser plots doubles anyway)."""
    col = column.combine_chunks()
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
        rows = len(col)
        flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        return flat.reshape(rows, -1) if rows else np.zeros((0, 0))
    return col.to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 1)


def _dim_names(feature: dict[str, Any], dims: int) -> tuple[str, ...]:
    names = feature.get("names")
    if isinstance(names, dict):  # e.g. {"motors": [...]}
        names = [n for group in names.values() if isinstance(group, list) for n in group]
    if isinstance(names, list) and len(names) == dims and all(isinstance(n, str) for n in names):
        return tuple(names)
    return tuple(str(i) for i in range(dims))


def _slots(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(int(v) for v in value)


def _adaptations(value: Any, where: str) -> tuple[tuple[int, str], ...] | None:
    if value is None:
        return None
    out = []
    for item in value:
        row, sep, what = str(item).partition(":")
        if not sep or not row.strip().lstrip("-").isdigit():
            raise DatasetError(f"{where}: adaptation {item!r} is not '<row>:<what changed>'")
        out.append((int(row), what.strip()))
    return tuple(out)
