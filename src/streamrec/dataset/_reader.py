"""`DatasetReader`: the one reader of a dataset's metadata, for every stage that looks at a dataset.

It reads what the LeRobot loader reads — `meta/info.json`, `meta/tasks.parquet`, the
`meta/episodes` files and the default columns of the `data` files — and names every file through
the dataset's own path templates. `verify`, `info`, resume and repair use it; nothing else parses
those files.

Each part is read when first asked for, then kept. A reader never raises for a damaged dataset: a
problem reading a part becomes a `Finding` (the same ones `verify` reports) and the part is left
empty, so that verify can list everything at once; `require()` turns the first error into a
`DatasetError` for the operations that need a sound dataset (resume, repair).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._errors import DatasetError
from ._features import CAPTURE_TIME_SUFFIX, DEFAULT_FEATURES, Feature, parse_features
from ._findings import Findings
from ._layout import CODEBASE_VERSION, DATA_PATH, VIDEO_PATH, FileIndex, Layout, file_sizes
from ._lock import lock_holder
from ._stats import STAT_NAMES, Stats

DEFAULT_COLUMNS = tuple(DEFAULT_FEATURES)
_EPISODE_COLUMNS = ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                    "dataset_to_index")
_VIDEO_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")


@dataclass(slots=True)
class EpisodeVideo:
    """Where one camera's video of an episode is."""

    at: FileIndex
    file: str
    """The MP4, relative to the dataset root."""
    from_s: float
    to_s: float
    dropped: int | None
    """Frames the recorder dropped (`videos/<key>/dropped_frames`); None when the column is absent."""
    dropped_slots: tuple[int, ...] | None = None
    """Rows whose frame repeats the previous one because the queue dropped it (`videos/<key>/dropped_slots`);
    None when the column is absent (LeRobot's datasets, streamrec's before it wrote them)."""
    adaptations: tuple[str, ...] | None = None
    """`"<row>:<what changed>"` per step adaptive overload took (`videos/<key>/adaptations`); None when absent."""


@dataclass(slots=True)
class Episode:
    """One row of `meta/episodes`."""

    index: int
    """Position in the episodes table (the loader looks episodes up by position)."""
    episode_index: int
    length: int
    data_at: FileIndex
    data_file: str
    """The data parquet holding its rows, relative to the dataset root."""
    dataset_from_index: int
    dataset_to_index: int
    tasks: list[str] | None
    """None when the table has no `tasks` column."""
    videos: dict[str, EpisodeVideo] = field(default_factory=dict)
    wall_time_s: float | None = None
    """Seconds from the episode's first row to its save (`wall_time_s`, written by streamrec); None when absent."""


@dataclass(slots=True)
class Rows:
    """The data files' default columns, concatenated in file order as the loader does."""

    files: list[str]
    file_no: np.ndarray
    episode_index: np.ndarray
    index: np.ndarray
    frame_index: np.ndarray
    timestamp: np.ndarray
    task_index: np.ndarray
    capture: dict[str, np.ndarray]
    """Video key -> capture time per row (NaN where a file lacks the column)."""
    order: np.ndarray
    """Row positions sorted by episode_index (stable), for grouping."""
    sorted_episodes: np.ndarray

    def positions(self, episode_index: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.sorted_episodes, [episode_index, episode_index + 1])
        return self.order[lo:hi]


class DatasetReader:
    """Reads one dataset's metadata (see the module docstring).

    Args:
        root: The dataset folder (the one holding `meta/`).
        leave_out: Data and episodes files to read as if absent (repair: the ones an interrupted
            finalize may have half written).
    """

    def __init__(self, root: str | Path, *, leave_out: Collection[Path] = ()) -> None:
        self.root = Path(root)
        self.layout = Layout(self.root)
        self.findings = Findings()
        self._leave_out = frozenset(leave_out)
        self._info: dict[str, Any] | None = None
        self._read: set[str] = set()
        self._fps: int | None = None
        self._features: dict[str, dict[str, Any]] = {}
        self._cameras: tuple[str, ...] = ()
        self._tasks: list[str] | None = None
        self._episodes: list[Episode] = []
        self._episodes_complete = False
        self._rows: Rows | None = None

    def _once(self, part: str) -> bool:
        """True the first time `part` is asked for (then it is read)."""
        if part in self._read:
            return False
        self._read.add(part)
        return True

    # -- info.json --------------------------------------------------------------------------------

    @property
    def is_dataset(self) -> bool:
        """`root` is a folder with a readable `meta/info.json` holding an object."""
        return self.info is not None

    @property
    def info(self) -> dict[str, Any] | None:
        if self._once("info"):
            self._info = self._load_info()
        return self._info

    def _load_info(self) -> dict[str, Any] | None:
        root, found = self.root, self.findings
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a folder"
            found.error("not_a_dataset", f"{root} {what}; expected a dataset folder holding meta/info.json")
            return None
        if not self.layout.meta.is_dir():
            found.error("not_a_dataset", f"{root} has no meta/ folder; expected a LeRobot dataset holding "
                        "meta/info.json")
            return None
        try:
            info = json.loads(self.layout.info.read_text())
        except FileNotFoundError:
            found.error("not_a_dataset", f"{root} has meta/ but no meta/info.json", file="meta/info.json")
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            found.error("not_a_dataset", f"meta/info.json cannot be read as JSON: {e}", file="meta/info.json")
            return None
        if not isinstance(info, dict):
            found.error("not_a_dataset", f"meta/info.json must hold a JSON object, got {type(info).__name__}",
                        file="meta/info.json")
            return None
        return info

    def _parse_info(self) -> None:
        if not self._once("parse_info") or self.info is None:
            return
        info, found, where = self.info, self.findings, {"file": "meta/info.json"}
        version = info.get("codebase_version")
        if version != CODEBASE_VERSION:
            found.error("codebase_version", f"info.json codebase_version = {version!r}: expected "
                        f"{CODEBASE_VERSION!r}; this layout is not the one verify checks", **where)
        fps = info.get("fps")
        if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
            found.error("info_invalid", f"info.json fps = {fps!r}: expected an integer > 0; video timing "
                        "checks were skipped", **where)
        else:
            self._fps = fps
        features = info.get("features")
        if not isinstance(features, dict) or not features:
            found.error("info_invalid", f"info.json features = {features!r}: expected an object of "
                        "name -> {dtype, shape, names}", **where)
            features = {}
        self._features = {k: v for k, v in features.items() if isinstance(v, dict)}
        self._cameras = tuple(k for k, v in self._features.items() if v.get("dtype") == "video")
        missing = [c for c in DEFAULT_COLUMNS if c not in self._features]
        if features and missing:
            found.warning("info_features", f"info.json features lack the default feature(s) {missing}", **where)

    @property
    def fps(self) -> int | None:
        """info.json's fps; None when it is not a positive integer."""
        self._parse_info()
        return self._fps

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """info.json's features, as written (each an object)."""
        self._parse_info()
        return self._features

    @property
    def cameras(self) -> tuple[str, ...]:
        """Video keys, in info.json's order."""
        self._parse_info()
        return self._cameras

    def user_features(self) -> tuple[Feature, ...]:
        """The features a recorder is given (all but the five default columns), checked.

        Raises:
            DatasetError: a feature streamrec cannot record (the message names it).
        """
        user = {name: spec for name, spec in self.features.items() if name not in DEFAULT_FEATURES}
        try:
            return parse_features({name: {k: spec[k] for k in ("dtype", "shape", "names", "info") if k in spec}
                                   for name, spec in user.items()})
        except ValueError as e:
            raise DatasetError(f"{self.root}: its features cannot be recorded by streamrec: {e}") from e

    @property
    def chunks_size(self) -> int:
        return file_sizes(self.info or {})["chunks_size"]

    # -- file names -------------------------------------------------------------------------------

    def _template(self, key: str, default: str) -> str:
        value = (self.info or {}).get(key)
        return value if isinstance(value, str) else default

    def data_file(self, at: FileIndex) -> str:
        """A data file's name relative to the root, by info.json's `data_path`."""
        return self._template("data_path", DATA_PATH).format(chunk_index=at.chunk, file_index=at.file)

    def video_file(self, key: str, at: FileIndex) -> str:
        """A camera's MP4 name relative to the root, by info.json's `video_path`."""
        return self._template("video_path", VIDEO_PATH).format(video_key=key, chunk_index=at.chunk, file_index=at.file)

    def files(self, kind: str, camera: str | None = None) -> list[Path]:
        """The files of a kind on disk ("data", "episodes" or "videos" of `camera`), in index order."""
        folder = {"data": self.root / "data", "episodes": self.layout.meta / "episodes"}.get(kind) \
            or self.layout.video_dir(camera or "")
        ext = "mp4" if kind == "videos" else "parquet"
        found = [p for p in folder.glob(f"*/*.{ext}") if p not in self._leave_out]
        return sorted(found, key=_file_order)

    def next_file(self, kind: str, camera: str | None = None) -> FileIndex:
        """The file after the last one on disk or referenced by an episode (where new episodes go)."""
        seen = [at for p in self.files(kind, camera) if (at := FileIndex.of(p)) is not None]
        if kind == "data":
            seen += [ep.data_at for ep in self.episodes]
        elif kind == "videos":
            seen += [ep.videos[camera].at for ep in self.episodes if camera in ep.videos]
        if not seen:
            return FileIndex()
        return max(seen, key=lambda at: at.order).next(self.chunks_size)

    def last_schema(self, kind: str) -> pa.Schema | None:
        """The schema of the last data or episodes file (appended files must share it)."""
        files = self.files(kind)
        return pq.read_schema(files[-1]).remove_metadata() if files else None

    # -- tasks ------------------------------------------------------------------------------------

    @property
    def tasks(self) -> list[str] | None:
        """Task texts by task_index; None when meta/tasks.parquet is missing or unreadable."""
        if self._once("tasks") and self.is_dataset:
            self._load_tasks()
        return self._tasks

    def _load_tasks(self) -> None:
        path, found, where = self.layout.tasks, self.findings, {"file": "meta/tasks.parquet"}
        if not path.exists():
            found.error("tasks_missing", "meta/tasks.parquet does not exist", **where)
            return
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            found.error("tasks_unreadable", f"meta/tasks.parquet cannot be read: {e}", **where)
            return
        if "task_index" not in table.column_names or "task" not in table.column_names:
            found.error("tasks_unreadable", f"meta/tasks.parquet columns = {table.column_names}: expected "
                        "'task_index' and 'task'", **where)
            return
        indices = table.column("task_index").to_pylist()
        if indices != list(range(len(indices))):
            found.error("tasks_order", f"meta/tasks.parquet task_index = {indices[:10]}: expected "
                        f"0..{len(indices) - 1} in row order (the loader picks a task by position)", **where)
        self._tasks = [str(t) for t in table.column("task").to_pylist()]

    # -- meta/episodes ----------------------------------------------------------------------------

    @property
    def episodes(self) -> list[Episode]:
        """The rows of meta/episodes in order; empty when they could not be read (see `findings`)."""
        if self._once("episodes") and self.is_dataset:
            self._load_episodes()
        return self._episodes

    @property
    def episodes_complete(self) -> bool:
        """meta/episodes was read whole (an empty dataset counts as read)."""
        _ = self.episodes
        return self._episodes_complete

    def _load_episodes(self) -> None:
        found = self.findings
        paths = self.files("episodes")
        if not paths:
            total = self.info.get("total_episodes")
            if total:
                found.error("episodes_missing", f"meta/episodes/ holds no parquet file, but info.json "
                            f"total_episodes = {total}")
            else:
                self._episodes_complete = True  # an empty dataset
            return
        table = self._episodes_table(paths, with_stats=False)
        if table is None:
            return
        cameras = self.cameras
        required = list(_EPISODE_COLUMNS) + [f"videos/{k}/{c}" for k in cameras for c in _VIDEO_COLUMNS]
        missing = [c for c in required if c not in table.column_names]
        if missing:
            found.error("episodes_columns", f"meta/episodes lacks column(s) {missing}; episode checks were skipped")
            return
        cols = {c: table.column(c).to_pylist() for c in table.column_names}
        for i in range(table.num_rows):
            if any(cols[c][i] is None for c in required):
                found.error("episodes_columns", f"meta/episodes row {i} has empty value(s) in "
                            f"{[c for c in required if cols[c][i] is None]}", episode=i)
                return
            data_at = FileIndex(int(cols["data/chunk_index"][i]), int(cols["data/file_index"][i]))
            ep = Episode(
                index=i, episode_index=int(cols["episode_index"][i]), length=int(cols["length"][i]),
                data_at=data_at, data_file=self.data_file(data_at),
                dataset_from_index=int(cols["dataset_from_index"][i]),
                dataset_to_index=int(cols["dataset_to_index"][i]),
                tasks=cols["tasks"][i] if "tasks" in cols else None,
                wall_time_s=_cell(cols, "wall_time_s", i))
            for k in cameras:
                at = FileIndex(int(cols[f"videos/{k}/chunk_index"][i]), int(cols[f"videos/{k}/file_index"][i]))
                dropped = _cell(cols, f"videos/{k}/dropped_frames", i)
                slots = _cell(cols, f"videos/{k}/dropped_slots", i)
                steps = _cell(cols, f"videos/{k}/adaptations", i)
                ep.videos[k] = EpisodeVideo(
                    at=at, file=self.video_file(k, at), from_s=float(cols[f"videos/{k}/from_timestamp"][i]),
                    to_s=float(cols[f"videos/{k}/to_timestamp"][i]), dropped=None if dropped is None else int(dropped),
                    dropped_slots=None if slots is None else tuple(int(x) for x in slots),
                    adaptations=None if steps is None else tuple(str(x) for x in steps))
            self._episodes.append(ep)
        self._episodes_complete = True
        bad = [(i, ep.episode_index) for i, ep in enumerate(self._episodes) if ep.episode_index != i]
        if bad:
            found.error("episode_index_order", f"meta/episodes row {bad[0][0]} has episode_index {bad[0][1]}: "
                        f"expected episode_index 0..{len(self._episodes) - 1} in row order (the loader finds "
                        f"episodes by position); {len(bad)} row(s) differ", episode=bad[0][0])
        tasks = self.tasks
        for ep in self._episodes:
            if ep.length <= 0:
                found.error("episode_length", f"episode {ep.index} length = {ep.length}: expected > 0",
                            episode=ep.index)
            if tasks is not None and ep.tasks is not None:
                unknown = sorted(set(ep.tasks) - set(tasks))
                if unknown:
                    found.error("task_unknown", f"episode {ep.index} lists task(s) {unknown} that are not in "
                                "meta/tasks.parquet", episode=ep.index)

    def _episodes_table(self, paths: list[Path], *, with_stats: bool) -> pa.Table | None:
        tables = []
        for path in paths:
            try:
                names = pq.read_schema(path).names
                # Stats columns are many; reading them dominates the time when they are not needed.
                columns = names if with_stats else [n for n in names if not n.startswith("stats/")]
                # Without Arrow's thread pool: the tables are small, and each pool thread keeps its
                # own allocator heap (about 8 MB of a long-running viewer's memory, measured).
                tables.append(pq.read_table(path, columns=columns, use_threads=False))
            except (OSError, pa.ArrowException) as e:
                self.findings.error("episodes_unreadable", f"{self.layout.rel(path)} cannot be read: {e}",
                                    file=self.layout.rel(path))
                return None
        try:
            return pa.concat_tables(tables, promote_options="default")
        except pa.ArrowException as e:
            self.findings.error("episodes_unreadable", f"the meta/episodes files do not share one schema: {e}")
            return None

    def episode_stats(self, names: Iterable[str]) -> list[dict[str, Stats]] | None:
        """Per-episode stats of these features from meta/episodes' `stats/<feature>/<stat>` columns;
        None when the table lacks any of them (LeRobot writes them; other writers may not)."""
        names = list(names)
        paths = self.files("episodes")
        if not paths:
            return []
        table = self._episodes_table(paths, with_stats=True)
        wanted = [f"stats/{n}/{s}" for n in names for s in STAT_NAMES]
        if table is None or any(c not in table.column_names for c in wanted):
            return None
        columns = {c: table.column(c).to_pylist() for c in wanted}
        return [{n: {s: np.asarray(columns[f"stats/{n}/{s}"][i]) for s in STAT_NAMES} for n in names}
                for i in range(table.num_rows)]

    def episodes_table(self) -> pa.Table | None:
        """meta/episodes as written, every column (stats and any writer's own), its files concatenated;
        None when it could not be read (see `findings`). For operations that carry rows through (merge)."""
        paths = self.files("episodes")
        if not paths:
            return None
        return self._episodes_table(paths, with_stats=True)

    def stats(self) -> dict[str, Stats] | None:
        """meta/stats.json as arrays; None when it is absent."""
        if not self.layout.stats.exists():
            return None
        return {name: {k: np.asarray(v) for k, v in s.items()}
                for name, s in json.loads(self.layout.stats.read_text()).items()}

    # -- data rows --------------------------------------------------------------------------------

    @property
    def rows(self) -> Rows | None:
        """The default columns of every data file; None when a file is missing or unreadable."""
        if self._once("rows") and self.is_dataset:
            self._load_rows()
        return self._rows

    def _load_rows(self) -> None:
        found, layout = self.findings, self.layout
        on_disk = {layout.rel(p): p for p in self.files("data")}
        referenced = {ep.data_file for ep in self.episodes}
        for name in sorted(referenced - set(on_disk)):
            eps = [ep.index for ep in self.episodes if ep.data_file == name]
            found.error("data_file_missing", f"{name} does not exist; it holds the rows of episode(s) "
                        f"{short_list(eps)}", file=name)
        for name in sorted(set(on_disk) - referenced):
            found.warning("data_file_unreferenced", f"{name} is not referenced by any episode, but the loader "
                          "reads every file under data/ and will see its rows", file=name)
        if not on_disk:
            return
        files = list(on_disk)  # already in file order
        features = self.features
        user = [k for k, v in features.items() if v.get("dtype") not in ("video", "image") and k not in DEFAULT_COLUMNS]
        parts: dict[str, list[np.ndarray]] = {c: [] for c in (*DEFAULT_COLUMNS, "file_no")}
        capture: dict[str, list[np.ndarray]] = {k: [] for k in self.cameras}
        complete = not (referenced - set(on_disk))
        for no, name in enumerate(files):
            path = on_disk[name]
            try:
                schema = pq.read_schema(path)
            except (OSError, pa.ArrowException) as e:
                found.error("data_file_unreadable", f"{name} cannot be read: {e}", file=name)
                complete = False
                continue
            missing = [c for c in (*DEFAULT_COLUMNS, *user) if c not in schema.names]
            if missing:
                found.error("data_columns", f"{name} lacks column(s) {missing} that info.json features list",
                            file=name)
            extra = [c for c in schema.names if c not in features]
            if extra:
                # lerobot 0.6.1 loads data files with the features as the schema and fails on
                # any other column (DatasetGenerationError), so this is not cosmetic.
                found.error("data_columns_unlisted", f"{name} has column(s) {extra} that info.json features do "
                            "not list; the LeRobot loader refuses such files. Add them to features or drop them",
                            file=name)
            if any(c in missing for c in DEFAULT_COLUMNS):
                complete = False
                continue
            wanted = [*DEFAULT_COLUMNS, *(k + CAPTURE_TIME_SUFFIX for k in self.cameras
                                          if k + CAPTURE_TIME_SUFFIX in schema.names)]
            try:
                table = pq.read_table(path, columns=wanted)
            except (OSError, pa.ArrowException) as e:
                found.error("data_file_unreadable", f"{name} cannot be read: {e}", file=name)
                complete = False
                continue
            n = table.num_rows
            for c in DEFAULT_COLUMNS:
                parts[c].append(table.column(c).to_numpy(zero_copy_only=False))
            parts["file_no"].append(np.full(n, no, np.int32))
            for k in self.cameras:
                col = k + CAPTURE_TIME_SUFFIX
                capture[k].append(table.column(col).to_numpy(zero_copy_only=False).astype(np.float64)
                                  if col in table.column_names else np.full(n, np.nan))
        if not complete:
            # Without every file the row positions the episodes refer to are unknown.
            return
        cat = {c: np.concatenate(v) if v else np.zeros(0) for c, v in parts.items()}
        episode_index = cat["episode_index"].astype(np.int64)
        order = np.argsort(episode_index, kind="stable")
        self._rows = Rows(
            files=files, file_no=cat["file_no"], episode_index=episode_index, index=cat["index"].astype(np.int64),
            frame_index=cat["frame_index"].astype(np.int64), timestamp=cat["timestamp"].astype(np.float32),
            task_index=cat["task_index"].astype(np.int64),
            capture={k: t for k, t in ((k, np.concatenate(v)) for k, v in capture.items() if v)
                     if not np.isnan(t).all()},
            order=order, sorted_episodes=episode_index[order])

    def episode_rows(self, episode: Episode, columns: Iterable[str] | None = None) -> pa.Table:
        """The data rows of one episode in frame order: these columns (those its data file has), or every
        column as written. Reads only the row groups that may hold it (streamrec and LeRobot write one per
        episode).

        Raises:
            DatasetError: its data file cannot be read.
        """
        path = self.root / episode.data_file
        try:
            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
            wanted = names if columns is None else [c for c in columns if c in names]
            if "episode_index" not in names:
                return pa.table({c: pa.array([], pf.schema_arrow.field(c).type) for c in wanted})
            extra = [c for c in ("episode_index", "frame_index") if c in names and c not in wanted]
            table = pf.read_row_groups(_row_groups_of(pf, episode.episode_index), columns=[*wanted, *extra],
                                       use_threads=False)
        except (OSError, pa.ArrowException) as e:
            raise DatasetError(f"{self.root}: {episode.data_file} (rows of episode {episode.index}) cannot be read: "
                               f"{e}") from None
        table = table.filter(pc.equal(table["episode_index"], episode.episode_index))
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        return table.select(wanted).replace_schema_metadata(None)

    def data_columns(self, columns: Iterable[str]) -> Iterable[tuple[str, pa.Table]]:
        """These columns (those each data file has) with `episode_index` and `frame_index`, file by file.

        A file that cannot be read is skipped (`rows` reports it)."""
        wanted = list(columns)
        for path in self.files("data"):
            try:
                names = pq.read_schema(path).names
                table = pq.read_table(path, columns=[c for c in (*wanted, "episode_index", "frame_index")
                                                     if c in names])
            except (OSError, pa.ArrowException):
                continue
            yield self.layout.rel(path), table

    # -- the work folder --------------------------------------------------------------------------

    @property
    def recording_pid(self) -> int | None:
        """The process recording into this dataset right now (or repairing it); None when none is."""
        return lock_holder(self.layout)

    def recorded_by(self) -> str | None:
        """Who is recording into this dataset right now ("process 1234 (streamrec record ...)"); None if nobody."""
        pid = self.recording_pid
        if pid is None:
            return None
        if not pid:
            return "another process"
        command = pid_command(pid)
        return f"process {pid}" + (f" ({command})" if command else "")

    @property
    def interrupted(self) -> bool:
        """The recorder's work folder is here and no live process holds it."""
        return self.layout.work.exists() and self.recording_pid is None

    def journaled_episodes(self) -> int:
        """Episodes saved into the work folder and not yet assembled into the tables."""
        return len(list(self.layout.journal.glob("episode-*.json")))

    # -- for operations that need a sound dataset -------------------------------------------------

    def require(self, what: str, *, ignore: Collection[str] = ()) -> None:
        """Raise DatasetError for the first error found so far (but those with a code in `ignore`),
        saying `what` cannot go on."""
        errors = [f for f in self.findings.errors if f.code not in ignore]
        if errors:
            raise DatasetError(f"{self.root}: {errors[0].message}; {what} needs a sound dataset (run "
                               f"`streamrec verify {self.root}` for every problem)")

    def require_finalized(self, what: str) -> None:
        """Raise DatasetError, saying `what` cannot go on, unless this is a sound dataset that no recording is
        writing or left interrupted, with its episodes table read whole (for operations that read a dataset)."""
        if not self.is_dataset:
            self.require(what)
        if self.layout.work.exists():
            who = self.recorded_by()
            state = f"is being recorded by {who}" if who else "was interrupted (run `streamrec repair` on it first)"
            raise DatasetError(f"{what}: {self.root} {state}; {what} reads finalized datasets only")
        _ = self.fps, self.tasks, self.episodes
        self.require(what)
        if not self.episodes_complete:
            raise DatasetError(f"{what}: {self.root}: meta/episodes could not be read whole")


def _cell(columns: dict[str, list], name: str, row: int) -> Any:
    column = columns.get(name)
    return None if column is None else column[row]


def _row_groups_of(pf: pq.ParquetFile, episode_index: int) -> list[int]:
    """Row groups whose episode_index statistics may hold `episode_index` (all of them without statistics)."""
    col = pf.schema_arrow.get_field_index("episode_index")
    meta = pf.metadata
    groups = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max or stats.min <= episode_index <= stats.max:
            groups.append(g)
    return groups


def _file_order(path: Path) -> tuple[int, int, str]:
    at = FileIndex.of(path)
    return (*at.order, path.as_posix()) if at else (1 << 62, 0, path.as_posix())


def short_list(items: Iterable[Any], limit: int = 8) -> str:
    items = list(items)
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f", … ({len(items)} in all)" if len(items) > limit else "")


def pid_command(pid: int) -> str:
    """What a process runs, for messages ("streamrec record ..."); empty when it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return ""
    words = [os.path.basename(a.decode(errors="replace")) if i == 0 else a.decode(errors="replace")
             for i, a in enumerate(args) if a]
    return " ".join(words)[:120]
