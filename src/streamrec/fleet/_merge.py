"""`merge()`: several v3.0 datasets (streamrec's or LeRobot's) into one, video copied as packets.

Everything is checked before anything is written: each source is read through the dataset reader
and must be sound; fps and every feature (name, dtype, shape, names) must agree once `rename` is
applied; each referenced MP4's header must match its camera's shape. Then the plan is made in
this process — which episode goes to which output data file and camera file, at which frame —
so the output does not depend on where or in which order the tasks run:

- one task per output camera file: the episodes' packets copied from their source MP4s in
  order, timestamps shifted onto the file's 1/fps grid, never re-encoded. Episodes whose
  sources differ in stream parameters (codec, size, pixel format, codec configuration) go to
  separate files of the camera (`video.codec_by_file` names the codec of each when they differ);
- one task per output data file: the episodes' rows with `episode_index`, `index` and
  `task_index` renumbered, one row group per episode;
- then here: `meta/episodes` (every source column carried through — `videos/<key>/…` and
  `stats/…` renamed with their feature — the positions rewritten, the stats of the renumbered
  columns recomputed), tasks in order of first appearance, stats.json aggregated from the
  episodes' stats, info.json last.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .._errors import ConfigError, DatasetError
from ..dataset._durable import fsync_replace, write_json_atomic, write_parquet_atomic
from ..dataset._features import CAPTURE_TIME_SUFFIX, DEFAULT_FEATURES
from ..dataset._layout import DATA_PATH, VIDEO_PATH, FileIndex, Layout, file_sizes
from ..dataset._mp4 import VideoFile
from ..dataset._reader import DatasetReader, Episode
from ..dataset._stats import STAT_NAMES, Stats, aggregate, numeric_stats
from ..dataset._tables import conform, data_schema, stats_to_json, write_tasks_file
from ._output import StagedOutput
from ._runner import Progress, TaskLog, runner
from ._streams import TO_ANNEX_B, Grid, StreamParams, first_slot, stream_params

_MB = 2**20
RENUMBERED = ("episode_index", "index", "task_index")
"""Default columns whose values change in a merge; their per-episode stats are recomputed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeReport:
    """What `merge()` wrote."""

    output: Path
    sources: tuple[Path, ...]
    episodes: int
    frames: int
    tasks: int
    video_files: dict[str, int]
    """Camera -> MP4 files written."""
    video_bytes: int
    """Bytes of video packets copied."""
    data_files: int
    renamed: dict[str, str]
    notes: tuple[str, ...]
    """Things worth knowing that did not stop the merge (e.g. sources with different robot types)."""
    elapsed_s: float
    runner: str
    """Where the tasks ran: `in-process` or a description of the Ray cluster."""
    nodes: dict[str, int] = field(default_factory=dict)
    """Node -> tasks it ran (`local` in process; Ray node ids otherwise)."""

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "sources": [str(s) for s in self.sources], "episodes": self.episodes,
                "frames": self.frames, "tasks": self.tasks, "video_files": self.video_files,
                "video_bytes": self.video_bytes, "data_files": self.data_files, "renamed": self.renamed,
                "notes": list(self.notes), "elapsed_s": round(self.elapsed_s, 3), "runner": self.runner,
                "nodes": self.nodes}


# -- the tasks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Segment:
    """One episode's frames in a source MP4."""

    source: str
    first: int
    """Its first frame's slot in the source file."""
    length: int
    what: str
    """The episode, for messages (`/data/a episode 3`)."""


@dataclass(frozen=True, slots=True)
class _VideoJob:
    out: str
    codec: str
    fps: int
    width: int
    height: int
    segments: tuple[_Segment, ...]


def _copy_video(job: _VideoJob) -> int:
    """Write one output camera file from its episodes' source packets; returns the bytes copied."""
    out = Path(job.out)
    # Not fragmented: the file is renamed into place whole, and another writer's stream with B-frames
    # (dts before pts) needs the edit list only a regular MP4 can hold to start at pts 0.
    file = VideoFile(out, FileIndex.of(out) or FileIndex(), job.codec, job.fps, job.width, job.height,
                     fragmented=False)
    try:
        for source, group in groupby(job.segments, key=lambda s: s.source):
            _copy_from(file, source, list(group), job)
    finally:
        file.close()
    return file.bytes


def _copy_from(file: VideoFile, source: str, segments: list[_Segment], job: _VideoJob) -> None:
    starts = [s.first for s in segments]
    if starts != sorted(starts):
        raise DatasetError(f"{source}: its episodes are not in the file's frame order; merge copies them in one "
                           "pass through the file")
    with av.open(source) as container:
        stream = container.streams.video[0]
        bsf = av.BitStreamFilterContext(TO_ANNEX_B[job.codec], stream) if job.codec in TO_ANNEX_B else None
        grid = Grid(stream.time_base, job.fps, source)
        current, packets = 0, []

        def flush() -> None:
            seg = segments[current]
            got = sorted(p[1] for p in packets)
            if got != list(range(seg.length)):
                raise DatasetError(f"{seg.what}: {source} holds {len(got)} frame(s) for its {seg.length} rows in "
                                   f"slots {seg.first}..{seg.first + seg.length - 1}; run `streamrec verify` on it")
            if not packets[0][3]:
                # Copied alone, its first frames would refer to frames of the episode before it.
                raise DatasetError(f"{seg.what}: its video in {source} does not start with a keyframe, so it cannot "
                                   "be copied on its own; `streamrec transcode` the dataset first")
            file.append_copied(packets)

        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            if packet.pts is None:
                raise DatasetError(f"{source}: a packet has no pts; its frames cannot be placed")
            k = grid.slot(packet.pts)
            i = bisect_right(starts, k) - 1
            if i < 0 or k >= starts[i] + segments[i].length:
                continue  # a frame no episode refers to
            if i < current:
                raise DatasetError(f"{source}: a frame of {segments[i].what} comes after frames of a later episode")
            while i > current:
                flush()
                current, packets = current + 1, []
            base = segments[i].first
            dts = k if packet.dts is None else grid.slot(packet.dts)
            key = packet.is_keyframe
            for payload in (bsf.filter(packet) if bsf else [packet]):
                packets.append((bytes(payload), k - base, dts - base, key))
        while current < len(segments):
            flush()
            current, packets = current + 1, []


@dataclass(frozen=True, slots=True)
class _RowsSegment:
    root: str
    episode: Episode
    new_episode: int
    first_index: int
    task_map: tuple[int, ...]
    """Source task_index -> merged task_index."""
    renames: tuple[tuple[str, str], ...]
    what: str


@dataclass(frozen=True, slots=True)
class _DataJob:
    out: str
    schema: pa.Schema
    segments: tuple[_RowsSegment, ...]


def _write_data(job: _DataJob) -> list[dict[str, Stats]]:
    """Write one output data file; returns the recomputed stats of the renumbered columns per episode."""
    out = Path(job.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    stats = []
    readers: dict[str, DatasetReader] = {}
    with pq.ParquetWriter(tmp, job.schema) as writer:
        for seg in job.segments:
            reader = readers.setdefault(seg.root, DatasetReader(seg.root))
            table = reader.episode_rows(seg.episode)
            n = table.num_rows
            if n != seg.episode.length:
                raise DatasetError(f"{seg.what}: {seg.episode.data_file} holds {n} row(s), but the episode's length "
                                   f"is {seg.episode.length}")
            names = dict(seg.renames)
            table = table.rename_columns([names.get(c, c) for c in table.column_names])
            old_tasks = table.column("task_index").to_numpy()
            if n and (old_tasks.min() < 0 or old_tasks.max() >= len(seg.task_map)):
                raise DatasetError(f"{seg.what}: a row has task_index {int(old_tasks.max())}, outside its "
                                   f"{len(seg.task_map)} task(s)")
            new = {"episode_index": np.full(n, seg.new_episode, np.int64),
                   "index": np.arange(seg.first_index, seg.first_index + n, dtype=np.int64),
                   "task_index": np.asarray(seg.task_map, np.int64)[old_tasks]}
            for name, values in new.items():
                table = table.set_column(table.column_names.index(name), name, pa.array(values))
            writer.write_table(conform(table, job.schema, "data"), row_group_size=1 << 30)
            stats.append({name: numeric_stats(values) for name, values in new.items()})
    fsync_replace(tmp, out)
    return stats


# -- the plan -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Source:
    root: Path
    reader: DatasetReader
    features: dict[str, dict[str, Any]]
    """info.json's features, renamed."""
    to_source: dict[str, str]
    """Merged feature name -> the source's own."""
    episodes: list[Episode]
    table: pa.Table


def parse_renames(renames: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """`{"old": "new"}` or `["old=new", ...]` (the command's form), checked."""
    if renames is None:
        return {}
    if not isinstance(renames, Mapping):
        pairs = {}
        for text in renames:
            old, sep, new = str(text).partition("=")
            if not sep or not old or not new:
                raise ConfigError(f"rename {text!r}: expected OLD=NEW, e.g. observation.images.cam_high="
                                  "observation.images.top")
            pairs[old] = new
        renames = pairs
    for old, new in renames.items():
        if not isinstance(old, str) or not isinstance(new, str) or not old or not new or "/" in new:
            raise ConfigError(f"rename {old!r} -> {new!r}: both must be non-empty feature names without '/'")
        if old in DEFAULT_FEATURES or new in DEFAULT_FEATURES:
            raise ConfigError(f"rename {old!r} -> {new!r}: the default columns {list(DEFAULT_FEATURES)} keep "
                              "their names")
    targets = list(renames.values())
    if len(set(targets)) != len(targets):
        raise ConfigError(f"rename: two features renamed to the same name ({targets})")
    return dict(renames)


def _with_capture_times(renames: Mapping[str, str], readers: Sequence[DatasetReader]) -> dict[str, str]:
    """A renamed camera's capture-time column (`<key>.capture_time`, written by `streamrec record`) goes with it."""
    out = dict(renames)
    for old, new in renames.items():
        if any(old + CAPTURE_TIME_SUFFIX in r.features for r in readers):
            out.setdefault(old + CAPTURE_TIME_SUFFIX, new + CAPTURE_TIME_SUFFIX)
    return out


def _read_source(reader: DatasetReader, renames: Mapping[str, str]) -> _Source:
    root = reader.root
    reader.require_finalized("merge")
    table = reader.episodes_table()
    if reader.episodes and table is None:
        reader.require("merge")
    if any(ep.tasks is None for ep in reader.episodes):
        raise DatasetError(f"merge: {root}: meta/episodes has no 'tasks' column")
    names = [renames.get(name, name) for name in reader.features]
    if len(set(names)) != len(names):
        clash = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"rename: in {root}, {clash} would name two features (one renamed onto another)")
    features = {renames.get(name, name): copy.deepcopy(spec) for name, spec in reader.features.items()}
    to_source = {renames.get(name, name): name for name in reader.features}
    return _Source(root, reader, features, to_source, reader.episodes, table)


def _names(spec: Mapping[str, Any]) -> Any:
    return spec.get("names")


def check_compatible(sources: Sequence[_Source]) -> None:
    """Raise DatasetError naming the dataset and the field of the first difference from the first source."""
    first = sources[0]
    for src in sources[1:]:
        if src.reader.fps != first.reader.fps:
            raise DatasetError(f"merge: {src.root} has fps = {src.reader.fps}, but {first.root} has "
                               f"{first.reader.fps}; datasets of different rates cannot share episodes")
        mine, theirs = set(src.features), set(first.features)
        extra, missing = sorted(mine - theirs), sorted(theirs - mine)
        if extra or missing:
            parts = ([f"has feature(s) {extra} that {first.root} lacks"] if extra else []) + \
                    ([f"lacks feature(s) {missing} that {first.root} has"] if missing else [])
            hint = " (the same camera under two names? pass --rename OLD=NEW)" if extra and missing else ""
            raise DatasetError(f"merge: {src.root} {', and '.join(parts)}{hint}")
        for name, spec in first.features.items():
            other = src.features[name]
            for key in ("dtype", "shape"):
                if other.get(key) != spec.get(key):
                    raise DatasetError(f"merge: {src.root}: feature {name!r} has {key} {other.get(key)!r}, but "
                                       f"{first.root} has {spec.get(key)!r}")
            if _names(spec) is not None and _names(other) is not None and _names(spec) != _names(other):
                raise DatasetError(f"merge: {src.root}: feature {name!r} has names {_names(other)!r}, but "
                                   f"{first.root} has {_names(spec)!r}")


def merge(sources: Sequence[str | Path], output: str | Path, *, rename: Mapping[str, str] | Sequence[str] | None = None,
          ray: str | None = None, workers: int | None = None, progress: Progress | None = None) -> MergeReport:
    """Merge LeRobot v3.0 datasets (written by streamrec or by LeRobot) into a new one at `output`.

    Video is copied as packets, never re-encoded. Tasks are unified, episode and frame indices
    renumbered, per-episode stats and drop counts kept, dataset stats recomputed. Sources are only
    read; `output` is written beside itself and renamed into place at the end, so it appears
    complete or not at all (an interrupted merge is simply run again).

    Args:
        sources: Dataset folders, in the order their episodes go into the result.
        output: A folder that does not exist yet.
        rename: Feature keys to rename in every source that has them (`{"old": "new"}` or
            `["old=new"]`): one camera recorded under two names.
        ray: None: run in this process (Ray is not imported). `local`, `auto` or a cluster address:
            one Ray task per output camera file and per output data file (see `streamrec.fleet`).
        workers: Ray tasks at once (default: every CPU of the cluster).
        progress: Called after each task.

    Raises:
        DatasetError: a source is unsound, or the sources differ in fps or a feature (the message
            names the dataset and the field); nothing is written then.
    """
    t0 = time.perf_counter()
    renames = parse_renames(rename)
    roots = [Path(s) for s in sources]
    if not roots:
        raise ConfigError("merge: give at least one source dataset")
    resolved = [r.resolve() for r in roots]
    for i, r in enumerate(resolved):
        if r in resolved[:i]:
            raise ConfigError(f"merge: {roots[i]} is given twice")
    staged = StagedOutput(output, roots, "merge")
    readers = [DatasetReader(r) for r in roots]
    renames = _with_capture_times(renames, readers)
    srcs = [_read_source(r, renames) for r in readers]
    unknown = [old for old in renames if not any(old in s.reader.features for s in srcs)]
    if unknown:
        raise ConfigError(f"rename: no source has feature(s) {unknown}")
    check_compatible(srcs)
    plan = _Plan(srcs, staged.layout, renames)
    with staged, runner(ray, workers, progress) as run:
        video_bytes = run.map(_copy_video, plan.video_jobs, stage="copy video",
                              units=[sum(s.length for s in j.segments) for j in plan.video_jobs], unit="frames")
        stats = run.map(_write_data, plan.data_jobs, stage="write rows",
                        units=[sum(s.episode.length for s in j.segments) for j in plan.data_jobs], unit="rows")
        plan.write_meta([s for file_stats in stats for s in file_stats])
        staged.commit()
        log: TaskLog = run.log
        name = run.name
    return MergeReport(
        output=staged.output, sources=tuple(roots), episodes=plan.total_episodes, frames=plan.total_frames,
        tasks=len(plan.tasks), video_files={k: len(v) for k, v in plan.file_codecs.items()},
        video_bytes=int(sum(video_bytes)), data_files=len(plan.data_jobs), renamed=renames, notes=tuple(plan.notes),
        elapsed_s=time.perf_counter() - t0, runner=name, nodes=dict(log.nodes))


class _Plan:
    """Where every episode of every source goes (see the module docstring)."""

    def __init__(self, sources: list[_Source], layout: Layout, renames: Mapping[str, str]) -> None:
        self.sources = sources
        self.layout = layout
        self.renames = renames
        first = sources[0]
        self.fps = int(first.reader.fps)
        info = first.reader.info
        self.chunks_size = first.reader.chunks_size
        self.features = first.features
        self.cameras = [k for k, v in self.features.items() if v.get("dtype") == "video"]
        self.notes: list[str] = []
        robot_types = {s.reader.info.get("robot_type") for s in sources}
        if len(robot_types) > 1:
            self.notes.append(f"the sources' robot_type differ ({sorted(map(str, robot_types))}); the result keeps "
                              f"{info.get('robot_type')!r}, the first source's")
        self.tasks: dict[str, int] = {}
        self.task_maps = []
        for s in sources:
            self.task_maps.append(tuple(self.tasks.setdefault(t, len(self.tasks)) for t in s.reader.tasks or []))
        # Global numbering: sources in order, their episodes in order.
        self.placed: list[tuple[int, Episode]] = [(i, ep) for i, s in enumerate(sources) for ep in s.episodes]
        self.total_episodes = len(self.placed)
        self.total_frames = sum(ep.length for _, ep in self.placed)
        self.video_at: list[dict[str, tuple[FileIndex, int]]] = [{} for _ in self.placed]
        """Per merged episode: camera -> (output file, first frame in it)."""
        self.file_codecs: dict[str, dict[FileIndex, str]] = {k: {} for k in self.cameras}
        self.video_jobs = [job for k in self.cameras for job in self._plan_camera(k, info)]
        self.data_at: list[FileIndex] = []
        self.data_jobs = self._plan_data(info)

    def _what(self, src: int, ep: Episode) -> str:
        return f"{self.sources[src].root} episode {ep.episode_index}"

    def _plan_camera(self, camera: str, info: Mapping[str, Any]) -> list[_VideoJob]:
        limit = file_sizes(info)["video_files_size_in_mb"] * _MB
        shape = self.features[camera]["shape"]
        params: dict[str, StreamParams] = {}
        in_file: dict[str, int] = {}
        for i, ep in self.placed:
            path = str(self.sources[i].root / ep.videos[self.sources[i].to_source[camera]].file)
            in_file[path] = in_file.get(path, 0) + ep.length
        jobs: list[_VideoJob] = []
        at, segments, current, size = FileIndex(), [], None, 0.0

        def close() -> None:
            self.file_codecs[camera][at] = current.codec
            jobs.append(_VideoJob(str(self.layout.video(camera, at)), current.codec, self.fps, current.width,
                                  current.height, tuple(segments)))

        for n, (i, ep) in enumerate(self.placed):
            src = self.sources[i]
            video = ep.videos[src.to_source[camera]]
            path = str(src.root / video.file)
            if path not in params:
                p = params[path] = stream_params(Path(path))
                if [p.height, p.width] != list(shape[:2]):
                    raise DatasetError(f"merge: {path} is {p.width}x{p.height} (width x height), but {camera} has "
                                       f"shape {shape} (height, width, channels)")
            p = params[path]
            estimate = Path(path).stat().st_size * ep.length / in_file[path]
            if current is not None and (p != current or (size and size + estimate > limit)):
                close()
                at, segments, size = at.next(self.chunks_size), [], 0.0
            if not segments:
                current, frames = p, 0
            first = first_slot(video.from_s, self.fps, self._what(i, ep))
            segments.append(_Segment(path, first, ep.length, self._what(i, ep)))
            self.video_at[n][camera] = (at, frames)
            frames += ep.length
            size += estimate
        if segments:
            close()
        return jobs

    def _plan_data(self, info: Mapping[str, Any]) -> list[_DataJob]:
        limit = file_sizes(info)["data_files_size_in_mb"] * _MB
        first = self.sources[0]
        try:
            features = first.reader.user_features()
        except DatasetError as e:
            raise DatasetError(f"merge: {e}") from e
        renamed = [f for f in features if not f.is_video]
        schema = data_schema([dataclasses.replace(f, name=self.renames.get(f.name, f.name)) for f in renamed])
        in_file: dict[str, int] = {}
        for i, ep in self.placed:
            path = str(self.sources[i].root / ep.data_file)
            in_file[path] = in_file.get(path, 0) + ep.length
        jobs, at, segments, size, index = [], FileIndex(), [], 0.0, 0
        for n, (i, ep) in enumerate(self.placed):
            src = self.sources[i]
            path = src.root / ep.data_file
            estimate = path.stat().st_size * ep.length / in_file[str(path)] if path.exists() else 0.0
            if segments and size + estimate > limit:
                jobs.append(_DataJob(str(self.layout.data(at)), schema, tuple(segments)))
                at, segments, size = at.next(self.chunks_size), [], 0.0
            renames = tuple((old, new) for old, new in self.renames.items() if old in src.reader.features)
            segments.append(_RowsSegment(str(src.root), ep, n, index, self.task_maps[i], renames, self._what(i, ep)))
            self.data_at.append(at)
            index += ep.length
            size += estimate
        if segments:
            jobs.append(_DataJob(str(self.layout.data(at)), schema, tuple(segments)))
        return jobs

    # -- the metadata, once the tasks are done ----------------------------------------------------

    def write_meta(self, renumbered_stats: list[dict[str, Stats]]) -> None:
        layout = self.layout
        table = self._episodes_table(renumbered_stats)
        if table is not None:
            write_parquet_atomic(layout.episodes(FileIndex()), table)
            stats = _dataset_stats(table, self.features)
            if stats:
                write_json_atomic(layout.stats, stats_to_json(stats))
        write_tasks_file(layout.tasks, self.tasks)
        write_json_atomic(layout.info, self._info())

    def _episodes_table(self, renumbered_stats: list[dict[str, Stats]]) -> pa.Table | None:
        parts = []
        n = 0
        for src in self.sources:
            if not src.episodes:
                continue
            table = src.table
            back = {f"/{old}/": f"/{new}/" for old, new in self.renames.items() if old in src.reader.features}
            table = table.rename_columns([_rename_column(c, back) for c in table.column_names])
            rows = range(n, n + len(src.episodes))
            n += len(src.episodes)
            frames_before = sum(ep.length for _, ep in self.placed[:rows.start])
            lengths = np.array([ep.length for ep in src.episodes], np.int64)
            ends = frames_before + np.cumsum(lengths)
            new: dict[str, pa.Array] = {
                "episode_index": pa.array(np.arange(rows.start, rows.stop, dtype=np.int64)),
                "data/chunk_index": pa.array([self.data_at[r].chunk for r in rows], pa.int64()),
                "data/file_index": pa.array([self.data_at[r].file for r in rows], pa.int64()),
                "dataset_from_index": pa.array(ends - lengths),
                "dataset_to_index": pa.array(ends),
                "meta/episodes/chunk_index": pa.array(np.zeros(len(rows), np.int64)),
                "meta/episodes/file_index": pa.array(np.zeros(len(rows), np.int64)),
            }
            for k in self.cameras:
                at = [self.video_at[r][k] for r in rows]
                new[f"videos/{k}/chunk_index"] = pa.array([a.chunk for a, _ in at], pa.int64())
                new[f"videos/{k}/file_index"] = pa.array([a.file for a, _ in at], pa.int64())
                # From integer frame counts, as the recorder writes them: no drift.
                new[f"videos/{k}/from_timestamp"] = pa.array([f / self.fps for _, f in at], pa.float64())
                new[f"videos/{k}/to_timestamp"] = pa.array(
                    [(f + ep.length) / self.fps for (_, f), ep in zip(at, src.episodes)], pa.float64())
            for name in RENUMBERED:
                if f"stats/{name}/min" in table.column_names:
                    for stat in STAT_NAMES:
                        new[f"stats/{name}/{stat}"] = pa.array(
                            [np.asarray(renumbered_stats[r][name][stat]).tolist() for r in rows])
            for column, values in new.items():
                if column in table.column_names:
                    table = table.set_column(table.column_names.index(column), column, values)
                else:
                    table = table.append_column(column, values)
            parts.append(table.replace_schema_metadata(None))
        if not parts:
            return None
        table = pa.concat_tables(parts, promote_options="permissive")
        return table.select(self._column_order([p.column_names for p in parts]))

    def _column_order(self, names: list[list[str]]) -> list[str]:
        seen: list[str] = []
        for columns in names:
            seen += [c for c in columns if c not in seen]
        head = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index"]
        order = [c for c in head if c in seen]
        for k in self.cameras:
            fixed = [f"videos/{k}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
            order += fixed + [c for c in seen if c.startswith(f"videos/{k}/") and c not in fixed]
        tail = ["meta/episodes/chunk_index", "meta/episodes/file_index"]
        order += [c for c in seen if c.startswith("stats/") and c not in order]
        order += [c for c in seen if c not in order and c not in tail]
        return order + tail

    def _info(self) -> dict[str, Any]:
        first = self.sources[0]
        info = copy.deepcopy(first.reader.info)
        features = {}
        for name, spec in self.features.items():
            spec = copy.deepcopy(spec)
            if name in self.file_codecs and isinstance(spec.get("info"), dict):
                block = spec["info"]
                block.pop("video.codec_by_file", None)
                codecs = {f"{at.name}.mp4": codec for at, codec in self.file_codecs[name].items()}
                if set(codecs.values()) - {block.get("video.codec")}:
                    block["video.codec_by_file"] = codecs
            features[name] = spec
        info.update(total_episodes=self.total_episodes, total_frames=self.total_frames, total_tasks=len(self.tasks),
                    splits={"train": f"0:{self.total_episodes}"}, data_path=DATA_PATH,
                    video_path=VIDEO_PATH if self.cameras else None, features=features)
        return info


def _rename_column(column: str, back: Mapping[str, str]) -> str:
    """`videos/<old>/x` and `stats/<old>/x` with the feature renamed."""
    for old, new in back.items():
        prefix, sep, rest = column.partition(old)
        if sep and prefix in ("videos", "stats"):
            return prefix + new + rest
    return column


def _dataset_stats(table: pa.Table, features: Mapping[str, Any]) -> dict[str, Stats]:
    """meta/stats.json from the episodes' stats columns, over the episodes that have them."""
    out = {}
    for name in features:
        columns = [f"stats/{name}/{s}" for s in STAT_NAMES]
        if any(c not in table.column_names for c in columns):
            continue
        values = {c: table.column(c).to_pylist() for c in columns}
        per_episode = [{s: np.asarray(values[f"stats/{name}/{s}"][r]) for s in STAT_NAMES}
                       for r in range(table.num_rows)
                       if all(values[c][r] is not None for c in columns)]
        if per_episode:
            out[name] = aggregate(per_episode)
    return out
