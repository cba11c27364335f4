"""`verify()`: check a dataset on disk the way the LeRobot loader will use it.

Every check reads the files themselves: the parquet tables for rows and metadata, and every MP4
decoded once from start to end (a file that stops early is the most common damage after a
crash or a cut-off copy). A problem becomes a `Finding` with a stable `code`; `verify` never
raises for a damaged dataset, so the report can list everything that is wrong at once.

Video timing is checked against the loader's rule: row r of episode e is the frame at
`from_timestamp(e) + r / fps`, found within `TOLERANCE_S`; so each episode needs exactly
`length` frames on the 1/fps grid inside `[from_timestamp, to_timestamp)`.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._config import CAPTURE_TIME_SUFFIX
from ._dataset import CODEBASE_VERSION, DATA_PATH, VIDEO_PATH, WORK_DIR, Layout

log = logging.getLogger("streamrec.verify")

TOLERANCE_S = 1e-4
"""How far a frame's pts may be from where a row expects it; the LeRobot loader's default `tolerance_s`."""
DROP_OK_PCT = 2.0
"""Dropped frames up to this share of an episode are normal transient spikes."""
DROP_OVERLOAD_PCT = 5.0
"""From this share of dropped frames on, the machine could not keep up with encoding."""
OVERLOAD_REMEDIES = (
    "use fewer encoder threads (--dataset.encoder_threads)",
    "encode with H.264 (--dataset.camera_encoder.vcodec=h264)",
    "use hardware encoding if the machine has it",
    "encode after each episode instead of while recording (--dataset.streaming_encoding=false)",
)
CAPTURE_RATE_REL = 0.05
"""The median capture interval may differ from 1/fps by this fraction before it is reported."""
CAPTURE_JITTER_PERIODS = 1.5
"""A p99 capture interval above this many frame periods is reported as jitter."""
CAMERA_SKEW_PERIODS = 0.5
"""A p99 spread of one row's capture times across cameras above this many frame periods is reported."""
"""Optional data column `<video key>.capture_time`: wall-clock capture time of the row's frame, float64 s."""

_DEFAULT_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
_EPISODE_COLUMNS = ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                    "dataset_to_index")
_VIDEO_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
_FILE_RE = re.compile(r"chunk-(\d+)/file-(\d+)\.(?:parquet|mp4)$")


class Severity(str, enum.Enum):
    """How bad a finding is. Only errors make a dataset unhealthy."""

    ERROR = "error"
    """The dataset will load wrong data, fail to load, or is not what the recording should have produced."""
    WARNING = "warning"
    """Loads correctly, but something is off and worth a look."""
    INFO = "info"
    """Worth knowing; nothing to fix."""


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One thing `verify` noticed."""

    severity: Severity
    code: str
    """Stable identifier, e.g. `video_truncated`; the message may change, the code does not."""
    message: str
    episode: int | None = None
    """Episode it concerns; None for the dataset or a whole file."""
    camera: str | None = None
    """Video key it concerns; None when it is not about one camera."""
    file: str | None = None
    """File it concerns, relative to the dataset root; None when it is not about one file."""

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity.value, "code": self.code, "episode": self.episode,
                "camera": self.camera, "file": self.file, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeCameraCheck:
    """What `verify` measured for one camera of one episode."""

    episode: int
    camera: str
    length: int
    """Frames the episode has according to `meta/episodes` (`length`)."""
    rows: int | None
    """Data rows with this `episode_index`; None if the data files could not be read."""
    frames: int | None
    """Video frames inside `[from_timestamp, to_timestamp)`; None if the MP4 could not be read."""
    dropped: int | None
    """Frames the recorder dropped (`videos/<key>/dropped_frames`); None when the column is absent."""
    from_timestamp_s: float | None
    to_timestamp_s: float | None
    video_file: str | None
    """MP4 holding the episode, relative to the dataset root."""
    data_file: str | None
    """Data parquet holding the episode's rows, relative to the dataset root."""
    interval_p50_ms: float | None = None
    """Median interval between capture times of consecutive rows (only with a capture_time column)."""
    interval_p99_ms: float | None = None
    skew_p50_ms: float | None = None
    """Median spread of one row's capture times across all cameras that have them."""
    skew_p99_ms: float | None = None
    status: str = "ok"
    """Worst severity of the findings about this episode and camera: "ok", "warning" or "error"."""

    @property
    def dropped_pct(self) -> float | None:
        """Dropped frames as a percentage of the episode's length."""
        if self.dropped is None or self.length <= 0:
            return None
        return 100.0 * self.dropped / self.length

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode, "camera": self.camera, "length": self.length, "rows": self.rows,
            "frames": self.frames, "dropped": self.dropped, "dropped_pct": _round(self.dropped_pct, 3),
            "from_timestamp_s": self.from_timestamp_s, "to_timestamp_s": self.to_timestamp_s,
            "video_file": self.video_file, "data_file": self.data_file,
            "interval_p50_ms": _round(self.interval_p50_ms, 3), "interval_p99_ms": _round(self.interval_p99_ms, 3),
            "skew_p50_ms": _round(self.skew_p50_ms, 3), "skew_p99_ms": _round(self.skew_p99_ms, 3),
            "status": self.status,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """Everything `verify` found. `healthy` means no errors (warnings are allowed)."""

    root: Path
    is_dataset: bool
    """False when `root` has no readable `meta/info.json`; nothing else was checked then."""
    fps: int | None
    episodes: int
    """Episodes listed in `meta/episodes`."""
    frames: int
    """Data rows read."""
    cameras: tuple[str, ...]
    """Video keys from `info.json`."""
    rows: tuple[EpisodeCameraCheck, ...]
    """One per episode and camera, in episode order."""
    findings: tuple[Finding, ...]
    """Errors first, then warnings, then info; each group in the order found."""
    elapsed_s: float

    @property
    def healthy(self) -> bool:
        """A dataset with no error findings (warnings and info are allowed)."""
        return self.is_dataset and not self.errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def codes(self) -> frozenset[str]:
        """Codes of all findings."""
        return frozenset(f.code for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 healthy (warnings allowed), 1 errors found, 2 not a dataset."""
        if not self.is_dataset:
            return 2
        return 1 if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: `summary`, `rows` and `findings`."""
        return {
            "root": str(self.root),
            "summary": {
                "is_dataset": self.is_dataset, "healthy": self.healthy, "exit_code": self.exit_code,
                "fps": self.fps, "episodes": self.episodes, "frames": self.frames, "cameras": list(self.cameras),
                "errors": len(self.errors), "warnings": len(self.warnings),
                "info": sum(f.severity is Severity.INFO for f in self.findings),
                "elapsed_s": round(self.elapsed_s, 3),
            },
            "rows": [r.to_dict() for r in self.rows],
            "findings": [f.to_dict() for f in self.findings],
        }

    def __repr__(self) -> str:
        state = "not a dataset" if not self.is_dataset else "healthy" if self.healthy else "problems found"
        return (f"<VerifyReport {str(self.root)!r} {state}: {self.episodes} episode(s), {len(self.cameras)} "
                f"camera(s), {len(self.errors)} error(s), {len(self.warnings)} warning(s)>")


def verify(root: str | Path) -> VerifyReport:
    """Check a LeRobot v3.0 dataset: metadata, data rows, every MP4 (decoded), drops and timing.

    Each MP4 is decoded once, whole, so the time taken grows with the total video length.

    Args:
        root: The dataset folder (the one holding `meta/`).

    Returns:
        A `VerifyReport`; `report.healthy` is False if any error was found, and
        `report.is_dataset` is False if `root` has no readable `meta/info.json`.
    """
    t0 = time.perf_counter()
    checker = _Checker(Path(root))
    checker.run()
    return checker.report(time.perf_counter() - t0)


# -- internals ----------------------------------------------------------------------------------


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _file_order(path: Path) -> tuple[int, int, str]:
    m = _FILE_RE.search(path.as_posix())
    return (int(m.group(1)), int(m.group(2)), path.as_posix()) if m else (1 << 62, 0, path.as_posix())


@dataclass(slots=True)
class _Episode:
    """One row of `meta/episodes`, with the columns verify uses."""

    index: int
    """Position in the episodes table (the loader looks episodes up by position)."""
    episode_index: int
    length: int
    data_file: str
    dataset_from_index: int
    dataset_to_index: int
    tasks: list[str] | None
    videos: dict[str, _EpisodeVideo] = field(default_factory=dict)


@dataclass(slots=True)
class _EpisodeVideo:
    file: str
    from_s: float
    to_s: float
    dropped: int | None


@dataclass(slots=True)
class _Rows:
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


@dataclass(slots=True)
class _Video:
    """What decoding one MP4 produced."""

    path: str
    opened: bool = False
    pts: np.ndarray | None = None
    """Decoded frames' pts in presentation order (int64)."""
    time_base: Fraction | None = None
    width: int = 0
    height: int = 0
    codec_id: int | None = None
    codec_name: str = ""
    header_frames: int = 0
    missing_pts: int = 0
    truncated: str | None = None
    """Why the file is known to be cut short, if it is."""
    error: str | None = None
    """The FFmpeg error that stopped opening or decoding, if any."""
    decoded_before_error: int = 0


class _Checker:
    """Runs the checks in order and collects findings; later checks skip what earlier ones found broken."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = Layout(root)
        self.findings: list[Finding] = []
        self.is_dataset = False
        self.info: dict[str, Any] = {}
        self.fps: int | None = None
        self.features: dict[str, Any] = {}
        self.cameras: tuple[str, ...] = ()
        self.episodes: list[_Episode] = []
        self.tasks: list[str] | None = None
        self.rows: _Rows | None = None
        self.videos: dict[str, _Video] = {}
        self.checks: list[EpisodeCameraCheck] = []
        self._capture_stats: dict[tuple[int, str], tuple[float, float]] = {}
        self._skew_stats: dict[int, tuple[float, float]] = {}
        self._frames: dict[tuple[int, str], int] = {}
        self._episodes_loaded = False

    # -- bookkeeping ----------------------------------------------------------------------------

    def add(self, severity: Severity, code: str, message: str, *, episode: int | None = None,
            camera: str | None = None, file: str | None = None) -> None:
        self.findings.append(Finding(severity=severity, code=code, message=message, episode=episode,
                                     camera=camera, file=file))

    def error(self, code: str, message: str, **where: Any) -> None:
        self.add(Severity.ERROR, code, message, **where)

    def warning(self, code: str, message: str, **where: Any) -> None:
        self.add(Severity.WARNING, code, message, **where)

    def note(self, code: str, message: str, **where: Any) -> None:
        self.add(Severity.INFO, code, message, **where)

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def report(self, elapsed_s: float) -> VerifyReport:
        findings = sorted(self.findings, key=lambda f: -_RANK[f.severity])  # stable: keeps found order
        return VerifyReport(
            root=self.root, is_dataset=self.is_dataset, fps=self.fps, episodes=len(self.episodes),
            frames=0 if self.rows is None else len(self.rows.index), cameras=self.cameras,
            rows=tuple(self._with_status(c) for c in self.checks), findings=tuple(findings), elapsed_s=elapsed_s)

    def _with_status(self, check: EpisodeCameraCheck) -> EpisodeCameraCheck:
        worst = -1
        for f in self.findings:
            if f.camera not in (None, check.camera):
                continue
            if f.episode == check.episode or (f.episode is None and f.file is not None
                                              and f.file in (check.video_file, check.data_file)):
                worst = max(worst, _RANK[f.severity])
        return replace(check, status="error" if worst == 2 else "warning" if worst == 1 else "ok")

    # -- the checks, in order -------------------------------------------------------------------

    def read_tables(self) -> bool:
        """Only read info.json, tasks, episodes and data rows (for `info`), collecting what is wrong
        with them as findings; False when `root` is not a dataset."""
        if not self._load_info():
            return False
        self.is_dataset = True
        self._check_info()
        self._load_tasks()
        self._load_episodes()
        self._load_rows()
        return True

    def run(self) -> None:
        if not self._load_info():
            return
        self.is_dataset = True
        if self.layout.work.exists():
            journaled = len(list((self.layout.work / "episodes").glob("episode-*.json")))
            assembled = any(self.root.glob("meta/episodes/*/*.parquet"))
            state = ("the meta files were written, so finalize() stopped near its end" if assembled else
                     "the meta, data and video files are incomplete, so nothing else was checked")
            self.error("interrupted", f"the recording was interrupted: {WORK_DIR}/ is still in the dataset "
                       f"({journaled} saved episode(s) journaled there); {state}. Recover it with "
                       f"`streamrec repair {self.root}` (it keeps every saved episode).", file=WORK_DIR)
            if not assembled:
                # finalize() writes tasks, data and episodes files only at the end: anything
                # else reported now would be a consequence of the interruption, not news.
                return
        self._check_info()
        self._load_tasks()
        self._load_episodes()
        self._load_rows()
        self._check_totals()
        self._check_episode_rows()
        if self.fps is not None:
            self._check_videos()
            self._check_capture_times()
        self._check_drops()
        self._build_checks()

    def _load_info(self) -> bool:
        root = self.root
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a folder"
            self.error("not_a_dataset", f"{root} {what}; expected a dataset folder holding meta/info.json")
            return False
        if not (root / "meta").is_dir():
            self.error("not_a_dataset", f"{root} has no meta/ folder; expected a LeRobot dataset holding "
                       "meta/info.json")
            return False
        path = self.layout.info
        try:
            info = json.loads(path.read_text())
        except FileNotFoundError:
            self.error("not_a_dataset", f"{root} has meta/ but no meta/info.json", file="meta/info.json")
            return False
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            self.error("not_a_dataset", f"meta/info.json cannot be read as JSON: {e}", file="meta/info.json")
            return False
        if not isinstance(info, dict):
            self.error("not_a_dataset", f"meta/info.json must hold a JSON object, got {type(info).__name__}",
                       file="meta/info.json")
            return False
        self.info = info
        return True

    def _check_info(self) -> None:
        info = self.info
        version = info.get("codebase_version")
        if version != CODEBASE_VERSION:
            self.error("codebase_version", f"info.json codebase_version = {version!r}: expected "
                       f"{CODEBASE_VERSION!r}; this layout is not the one verify checks", file="meta/info.json")
        fps = info.get("fps")
        if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
            self.error("info_invalid", f"info.json fps = {fps!r}: expected an integer > 0; video timing "
                       "checks were skipped", file="meta/info.json")
        else:
            self.fps = fps
        features = info.get("features")
        if not isinstance(features, dict) or not features:
            self.error("info_invalid", f"info.json features = {features!r}: expected an object of "
                       "name -> {dtype, shape, names}", file="meta/info.json")
            features = {}
        self.features = {k: v for k, v in features.items() if isinstance(v, dict)}
        self.cameras = tuple(k for k, v in self.features.items() if v.get("dtype") == "video")
        missing = [c for c in _DEFAULT_COLUMNS if c not in self.features]
        if features and missing:
            self.warning("info_features", f"info.json features lack the default feature(s) {missing}",
                         file="meta/info.json")

    def _template(self, key: str, default: str) -> str:
        value = self.info.get(key)
        return value if isinstance(value, str) else default

    def _load_tasks(self) -> None:
        path = self.layout.tasks
        if not path.exists():
            self.error("tasks_missing", "meta/tasks.parquet does not exist", file="meta/tasks.parquet")
            return
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            self.error("tasks_unreadable", f"meta/tasks.parquet cannot be read: {e}", file="meta/tasks.parquet")
            return
        if "task_index" not in table.column_names or "task" not in table.column_names:
            self.error("tasks_unreadable", f"meta/tasks.parquet columns = {table.column_names}: expected "
                       "'task_index' and 'task'", file="meta/tasks.parquet")
            return
        indices = table.column("task_index").to_pylist()
        if indices != list(range(len(indices))):
            self.error("tasks_order", f"meta/tasks.parquet task_index = {indices[:10]}: expected 0..{len(indices) - 1} "
                       "in row order (the loader picks a task by position)", file="meta/tasks.parquet")
        self.tasks = [str(t) for t in table.column("task").to_pylist()]

    def _load_episodes(self) -> None:
        paths = sorted(self.root.glob("meta/episodes/*/*.parquet"), key=_file_order)
        if not paths:
            total = self.info.get("total_episodes")
            if total:
                self.error("episodes_missing", f"meta/episodes/ holds no parquet file, but info.json "
                           f"total_episodes = {total}")
            else:
                self._episodes_loaded = True  # an empty dataset
            return
        tables = []
        for path in paths:
            try:
                names = pq.read_schema(path).names
                # Stats columns are many and not needed here; reading them would dominate the time.
                tables.append(pq.read_table(path, columns=[n for n in names if not n.startswith("stats/")]))
            except (OSError, pa.ArrowException) as e:
                self.error("episodes_unreadable", f"{self.rel(path)} cannot be read: {e}", file=self.rel(path))
                return
        try:
            table = pa.concat_tables(tables, promote_options="default")
        except pa.ArrowException as e:
            self.error("episodes_unreadable", f"the meta/episodes files do not share one schema: {e}")
            return
        required = list(_EPISODE_COLUMNS) + [f"videos/{k}/{c}" for k in self.cameras for c in _VIDEO_COLUMNS]
        missing = [c for c in required if c not in table.column_names]
        if missing:
            self.error("episodes_columns", f"meta/episodes lacks column(s) {missing}; episode checks were skipped")
            return
        cols = {c: table.column(c).to_pylist() for c in table.column_names}
        data_tpl = self._template("data_path", DATA_PATH)
        video_tpl = self._template("video_path", VIDEO_PATH)
        for i in range(table.num_rows):
            if any(cols[c][i] is None for c in required):
                self.error("episodes_columns", f"meta/episodes row {i} has empty value(s) in "
                           f"{[c for c in required if cols[c][i] is None]}", episode=i)
                return
            ep = _Episode(
                index=i, episode_index=int(cols["episode_index"][i]), length=int(cols["length"][i]),
                data_file=data_tpl.format(chunk_index=cols["data/chunk_index"][i],
                                          file_index=cols["data/file_index"][i]),
                dataset_from_index=int(cols["dataset_from_index"][i]),
                dataset_to_index=int(cols["dataset_to_index"][i]),
                tasks=cols["tasks"][i] if "tasks" in cols else None)  # None (unknown) when absent
            for k in self.cameras:
                dropped = cols.get(f"videos/{k}/dropped_frames")
                ep.videos[k] = _EpisodeVideo(
                    file=video_tpl.format(video_key=k, chunk_index=cols[f"videos/{k}/chunk_index"][i],
                                          file_index=cols[f"videos/{k}/file_index"][i]),
                    from_s=float(cols[f"videos/{k}/from_timestamp"][i]),
                    to_s=float(cols[f"videos/{k}/to_timestamp"][i]),
                    dropped=None if dropped is None or dropped[i] is None else int(dropped[i]))
            self.episodes.append(ep)
        self._episodes_loaded = True
        bad = [(i, ep.episode_index) for i, ep in enumerate(self.episodes) if ep.episode_index != i]
        if bad:
            self.error("episode_index_order", f"meta/episodes row {bad[0][0]} has episode_index {bad[0][1]}: "
                       f"expected episode_index 0..{len(self.episodes) - 1} in row order (the loader finds "
                       f"episodes by position); {len(bad)} row(s) differ", episode=bad[0][0])
        for ep in self.episodes:
            if ep.length <= 0:
                self.error("episode_length", f"episode {ep.index} length = {ep.length}: expected > 0",
                           episode=ep.index)
            if self.tasks is not None and ep.tasks is not None:
                unknown = sorted(set(ep.tasks) - set(self.tasks))
                if unknown:
                    self.error("task_unknown", f"episode {ep.index} lists task(s) {unknown} that are not in "
                               "meta/tasks.parquet", episode=ep.index)

    def _load_rows(self) -> None:
        on_disk = {self.rel(p): p for p in self.root.glob("data/*/*.parquet")}
        referenced = {ep.data_file for ep in self.episodes}
        for name in sorted(referenced - set(on_disk)):
            eps = [ep.index for ep in self.episodes if ep.data_file == name]
            self.error("data_file_missing", f"{name} does not exist; it holds the rows of episode(s) "
                       f"{_short_list(eps)}", file=name)
        for name in sorted(set(on_disk) - referenced):
            self.warning("data_file_unreferenced", f"{name} is not referenced by any episode, but the loader "
                         "reads every file under data/ and will see its rows", file=name)
        if not on_disk:
            return
        files = sorted(on_disk, key=lambda n: _file_order(on_disk[n]))
        user = [k for k, v in self.features.items() if v.get("dtype") not in ("video", "image")
                and k not in _DEFAULT_COLUMNS]
        parts: dict[str, list[np.ndarray]] = {c: [] for c in (*_DEFAULT_COLUMNS, "file_no")}
        capture: dict[str, list[np.ndarray]] = {k: [] for k in self.cameras}
        complete = not (referenced - set(on_disk))
        for no, name in enumerate(files):
            path = on_disk[name]
            try:
                schema = pq.read_schema(path)
            except (OSError, pa.ArrowException) as e:
                self.error("data_file_unreadable", f"{name} cannot be read: {e}", file=name)
                complete = False
                continue
            missing = [c for c in (*_DEFAULT_COLUMNS, *user) if c not in schema.names]
            if missing:
                self.error("data_columns", f"{name} lacks column(s) {missing} that info.json features list",
                           file=name)
            extra = [c for c in schema.names if c not in self.features]
            if extra:
                # lerobot 0.6.1 loads data files with the features as the schema and fails on
                # any other column (DatasetGenerationError), so this is not cosmetic.
                self.error("data_columns_unlisted", f"{name} has column(s) {extra} that info.json features do "
                           "not list; the LeRobot loader refuses such files. Add them to features or drop them",
                           file=name)
            if any(c in missing for c in _DEFAULT_COLUMNS):
                complete = False
                continue
            wanted = [*_DEFAULT_COLUMNS, *(k + CAPTURE_TIME_SUFFIX for k in self.cameras
                                           if k + CAPTURE_TIME_SUFFIX in schema.names)]
            try:
                table = pq.read_table(path, columns=wanted)
            except (OSError, pa.ArrowException) as e:
                self.error("data_file_unreadable", f"{name} cannot be read: {e}", file=name)
                complete = False
                continue
            n = table.num_rows
            for c in _DEFAULT_COLUMNS:
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
        self.rows = _Rows(
            files=files, file_no=cat["file_no"], episode_index=episode_index, index=cat["index"].astype(np.int64),
            frame_index=cat["frame_index"].astype(np.int64), timestamp=cat["timestamp"].astype(np.float32),
            task_index=cat["task_index"].astype(np.int64),
            capture={k: t for k, t in ((k, np.concatenate(v)) for k, v in capture.items() if v)
                     if not np.isnan(t).all()},
            order=order, sorted_episodes=episode_index[order])

    def _check_totals(self) -> None:
        info = self.info
        where = {"file": "meta/info.json"}
        if self._episodes_loaded and info.get("total_episodes") != len(self.episodes):
            self.error("total_episodes_mismatch", f"info.json total_episodes = {info.get('total_episodes')!r}, "
                       f"but meta/episodes lists {len(self.episodes)}", **where)
        # Rows when they could be read; otherwise the lengths in meta/episodes (a mismatch between
        # those two is reported per episode as rows_mismatch).
        if self.rows is not None:
            frames, source = len(self.rows.index), "the data files hold"
        elif self._episodes_loaded:
            frames, source = sum(ep.length for ep in self.episodes), "the episode lengths in meta/episodes sum to"
        else:
            frames = None
        if frames is not None and info.get("total_frames") != frames:
            self.error("total_frames_mismatch", f"info.json total_frames = {info.get('total_frames')!r}, but "
                       f"{source} {frames}", **where)
        if self.tasks is not None and info.get("total_tasks") != len(self.tasks):
            self.error("total_tasks_mismatch", f"info.json total_tasks = {info.get('total_tasks')!r}, but "
                       f"meta/tasks.parquet has {len(self.tasks)} task(s)", **where)

    def _check_episode_rows(self) -> None:
        rows = self.rows
        if rows is not None:
            n = len(rows.index)
            bad = np.flatnonzero(rows.index != np.arange(n))
            if bad.size:
                p = int(bad[0])
                self.error("index_column", f"data column 'index' must count 0..{n - 1} through the data files; "
                           f"row {p} ({rows.files[rows.file_no[p]]}) has index {rows.index[p]} "
                           f"({bad.size} row(s) differ)", file=rows.files[rows.file_no[p]])
            if self.tasks is not None and n:
                bad = np.flatnonzero((rows.task_index < 0) | (rows.task_index >= len(self.tasks)))
                if bad.size:
                    p = int(bad[0])
                    self.error("task_index_range", f"{bad.size} data row(s) have a task_index outside "
                               f"0..{len(self.tasks) - 1} (first: row {p}, task_index {rows.task_index[p]})",
                               episode=int(rows.episode_index[p]))
            known = {ep.episode_index for ep in self.episodes}
            stray = sorted(set(np.unique(rows.episode_index).tolist()) - known)
            if stray:
                self.error("rows_without_episode", f"the data files have rows of episode(s) {_short_list(stray)} "
                           "that meta/episodes does not list")
        expected_from = 0
        for ep in self.episodes:
            e = ep.index
            span = ep.dataset_to_index - ep.dataset_from_index
            if ep.dataset_from_index != expected_from or span != ep.length:
                self.error("index_range", f"episode {e} dataset_from_index..to_index = "
                           f"{ep.dataset_from_index}..{ep.dataset_to_index}: expected {expected_from}.."
                           f"{expected_from + ep.length} (contiguous, length {ep.length})", episode=e)
            expected_from = ep.dataset_to_index
            if rows is None:
                continue
            pos = rows.positions(ep.episode_index)
            if len(pos) != ep.length:
                self.error("rows_mismatch", f"episode {e} has {len(pos)} data row(s), but its length is "
                           f"{ep.length}", episode=e, file=ep.data_file)
            if len(pos) and (pos[0] != ep.dataset_from_index or pos[-1] != ep.dataset_to_index - 1
                             or len(pos) != pos[-1] - pos[0] + 1):
                self.error("index_range", f"episode {e}'s rows are at positions {pos[0]}..{pos[-1] + 1} of the "
                           f"data files, but dataset_from_index..to_index say {ep.dataset_from_index}.."
                           f"{ep.dataset_to_index}", episode=e)
            in_files = {rows.files[i] for i in np.unique(rows.file_no[pos])}
            if len(pos) and in_files != {ep.data_file}:
                self.error("data_location", f"episode {e}'s rows are in {sorted(in_files)}, but meta/episodes "
                           f"points to {ep.data_file}", episode=e, file=ep.data_file)
            frame_index = rows.frame_index[pos]
            bad = np.flatnonzero(frame_index != np.arange(len(pos)))
            if bad.size:
                self.error("frame_index", f"episode {e}: frame_index must be 0..{len(pos) - 1} in row order; "
                           f"row {bad[0]} has {frame_index[bad[0]]} ({bad.size} row(s) differ)", episode=e)
            elif self.fps is not None and len(pos):
                self._check_timestamps(e, rows.timestamp[pos], frame_index)

    def _check_timestamps(self, e: int, timestamp: np.ndarray, frame_index: np.ndarray) -> None:
        expected = (frame_index / self.fps).astype(np.float32)
        off = np.abs(timestamp.astype(np.float64) - expected.astype(np.float64))
        worst = int(np.argmax(off))
        if off[worst] > TOLERANCE_S:
            self.error("timestamp_grid", f"episode {e}: data timestamp must be frame_index / fps; row {worst} has "
                       f"{float(timestamp[worst]):.6f} s, expected {float(expected[worst]):.6f} s "
                       f"({int((off > TOLERANCE_S).sum())} row(s) off by more than {TOLERANCE_S:g} s)", episode=e)
        elif off[worst] > 0:
            self.note("timestamp_inexact", f"episode {e}: {int((off > 0).sum())} data timestamp(s) differ from "
                      f"float32(frame_index / fps) by up to {off[worst]:.2g} s (within the loader's "
                      f"{TOLERANCE_S:g} s tolerance)", episode=e)

    # -- video ----------------------------------------------------------------------------------

    def _check_videos(self) -> None:
        referenced: dict[str, list[tuple[_Episode, str]]] = {}
        for ep in self.episodes:
            for k, v in ep.videos.items():
                referenced.setdefault(v.file, []).append((ep, k))
        on_disk = {self.rel(p) for k in self.cameras for p in self.root.glob(f"videos/{glob_escape(k)}/*/*.mp4")}
        for name in sorted(on_disk - set(referenced)):
            self.warning("video_file_unreferenced", f"{name} is not referenced by any episode", file=name)
        present = []
        for name, uses in referenced.items():
            camera = uses[0][1]
            if (self.root / name).is_file():
                present.append(name)
            else:
                self.error("video_file_missing", f"{name} does not exist; it holds episode(s) "
                           f"{_short_list([ep.index for ep, _ in uses])} of {camera}", camera=camera, file=name)
        # Decoding dominates the run time, and PyAV releases the GIL while decoding.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="streamrec-verify") as pool:
            for name, video in zip(present, pool.map(lambda n: _decode(self.root / n, n), present), strict=True):
                self.videos[name] = video
                log.debug("%s: %d frame(s) decoded, time base %s%s", name, 0 if video.pts is None else len(video.pts),
                          video.time_base, f", error: {video.error}" if video.error else "")
        for name in present:
            video = self.videos[name]
            uses = referenced[name]
            camera = uses[0][1]
            if self._check_video_file(video, camera):
                self._check_file_episodes(video, camera, [ep for ep, _ in uses])

    def _check_video_file(self, video: _Video, camera: str) -> bool:
        """File-level checks; returns whether the frames are good enough for per-episode checks."""
        where = {"camera": camera, "file": video.path}
        if video.truncated:
            self.error("video_truncated", f"{video.path} is truncated: {video.truncated}", **where)
        if not video.opened:
            if not video.truncated:
                self.error("video_unreadable", f"{video.path} cannot be opened as a video: {video.error}", **where)
            return False
        if video.error:
            self.error("video_decode_error", f"{video.path} stops decoding after {video.decoded_before_error} "
                       f"frame(s): {video.error}", **where)
        spec = self.features.get(camera, {})
        shape = spec.get("shape")
        if isinstance(shape, list) and len(shape) == 3 and [video.height, video.width] != shape[:2]:
            self.error("video_shape", f"{video.path} is {video.width}x{video.height} (width x height), but "
                       f"info.json gives {camera} shape {shape} (height, width, channels)", **where)
        stated = (spec.get("info") or {}).get("video.codec")
        by_file = (spec.get("info") or {}).get("video.codec_by_file")
        if isinstance(by_file, dict):  # a camera whose encoder was replaced mid-recording (streamrec's fallback)
            stated = by_file.get(video.path.removeprefix(f"videos/{camera}/"), stated)
        if isinstance(stated, str) and video.codec_id is not None and codec_id(stated) != video.codec_id:
            self.warning("video_codec", f"{video.path} is {video.codec_name}, but info.json says "
                         f"video.codec = {stated!r}", **where)
        if video.missing_pts:
            self.error("pts_off_grid", f"{video.path}: {video.missing_pts} decoded frame(s) have no pts; the "
                       "loader cannot place them", **where)
        pts = video.pts
        if pts is None or not len(pts):
            self.error("video_empty", f"{video.path} has no decodable video frames", **where)
            return False
        k, rem, den = _grid(pts, video.time_base, self.fps)
        off_s = rem.astype(np.float64) / (float(den) * self.fps)
        bad = np.flatnonzero(np.abs(off_s) > TOLERANCE_S)
        if bad.size:
            i = int(bad[0])
            self.error("pts_off_grid", f"{video.path}: {bad.size} of {len(pts)} frame(s) are more than "
                       f"{TOLERANCE_S:g} s off the 1/{self.fps} s grid (first: pts {pts[i]} = "
                       f"{_seconds(pts[i], video.time_base):.6f} s, {off_s[i]:+.6f} s off); the loader will "
                       "raise FrameTimestampError for them", **where)
        inexact = int(np.count_nonzero(rem)) - bad.size
        if inexact:
            self.note("pts_inexact", f"{video.path}: {inexact} frame pts are not exactly on the 1/{self.fps} s grid "
                      f"(time base {video.time_base}) but within {TOLERANCE_S:g} s", **where)
        unique, counts = np.unique(k, return_counts=True)
        if (counts > 1).any():
            dup = unique[counts > 1]
            self.error("pts_duplicate", f"{video.path}: {len(dup)} frame slot(s) hold more than one frame (first: "
                       f"{dup[0] / self.fps:.4f} s)", **where)
        if video.header_frames and len(pts) < video.header_frames and not video.truncated:
            self.error("video_truncated", f"{video.path} is truncated: its index lists {video.header_frames} "
                       f"frames, only {len(pts)} could be decoded", **where)
        return True

    def _check_file_episodes(self, video: _Video, camera: str, episodes: list[_Episode]) -> None:
        fps = self.fps
        times = np.sort(video.pts.astype(np.float64) * float(video.time_base))
        file_end = float(times[-1]) + 1.0 / fps
        previous: _Episode | None = None
        previous_end = 0.0
        for ep in sorted(episodes, key=lambda ep: ep.videos[camera].from_s):
            v = ep.videos[camera]
            where = {"episode": ep.index, "camera": camera, "file": video.path}
            if abs((v.to_s - v.from_s) - ep.length / fps) > TOLERANCE_S:
                self.error("video_span", f"episode {ep.index}: to_timestamp - from_timestamp = {v.to_s:.6f} - "
                           f"{v.from_s:.6f} = {v.to_s - v.from_s:.6f} s, expected length / fps = "
                           f"{ep.length}/{fps} = {ep.length / fps:.6f} s", **where)
            before = f"episode {previous.index} ends" if previous else "the file starts"
            if v.from_s < previous_end - TOLERANCE_S:
                self.error("video_overlap", f"episode {ep.index} starts at {v.from_s:.6f} s in {video.path}, before "
                           f"{before} at {previous_end:.6f} s", **where)
            elif v.from_s > previous_end + TOLERANCE_S:
                gap = v.from_s - previous_end
                self.warning("video_gap", f"episode {ep.index} starts at {v.from_s:.6f} s in {video.path}, "
                             f"{gap:.6f} s (~{gap * fps:.1f} frames) after {before}; those frames belong to no "
                             "episode", **where)
            if v.to_s > previous_end:
                previous, previous_end = ep, v.to_s
            lo, hi = np.searchsorted(times, [v.from_s - TOLERANCE_S, v.to_s - TOLERANCE_S])
            frames = int(hi - lo)
            self._frames[(ep.index, camera)] = frames
            if frames != ep.length:
                self.error("frame_count_mismatch", f"episode {ep.index}: {video.path} has {frames} frame(s) in "
                           f"[{v.from_s:.4f}, {v.to_s:.4f}) s, but the episode has {ep.length} rows", **where)
            targets = v.from_s + np.arange(ep.length) / fps
            missing = _unmatched(times, targets)
            if missing.size:
                r = int(missing[0])
                self.error("frame_lookup", f"episode {ep.index}: for {missing.size} of {ep.length} row(s) there is no "
                           f"frame within {TOLERANCE_S:g} s of from_timestamp + timestamp (first: row {r} at "
                           f"{targets[r]:.6f} s); the loader raises FrameTimestampError there", **where)
        last = f"episode {previous.index}" if previous else "its last episode"
        if previous_end > file_end + TOLERANCE_S:
            self.error("video_duration", f"{video.path} ends at {file_end:.4f} s ({len(times)} frames), but "
                       f"{last} ends at {previous_end:.4f} s", camera=camera, file=video.path)
        elif file_end > previous_end + TOLERANCE_S:
            extra = file_end - previous_end
            self.warning("video_unreferenced_frames", f"{video.path} runs to {file_end:.4f} s, {extra:.4f} s "
                         f"(~{extra * fps:.1f} frames) past the end of {last} at {previous_end:.4f} s",
                         camera=camera, file=video.path)

    # -- drops and capture timing ---------------------------------------------------------------

    def _check_drops(self) -> None:
        for ep in self.episodes:
            for k, v in ep.videos.items():
                if v.dropped is None or ep.length <= 0:
                    continue
                where = {"episode": ep.index, "camera": k}
                if not 0 <= v.dropped <= ep.length:
                    self.error("dropped_frames_invalid", f"episode {ep.index} {k}: dropped_frames = {v.dropped}, "
                               f"expected 0..{ep.length}", **where)
                    continue
                if not v.dropped:
                    continue
                pct = 100.0 * v.dropped / ep.length
                counted = f"{v.dropped} of {ep.length} frames dropped ({pct:.1f} %)"
                if pct <= DROP_OK_PCT:
                    self.note("dropped_frames_ok", f"episode {ep.index} {k}: {counted}; ok: expected transient "
                              "spikes", **where)
                elif pct < DROP_OVERLOAD_PCT:
                    self.warning("dropped_frames", f"episode {ep.index} {k}: {counted}, more than the "
                                 f"{DROP_OK_PCT:g} % of transient spikes; the encoder is close to its limit "
                                 "(each dropped frame's slot repeats the previous frame)", **where)
                else:
                    self.error("system_overloaded", f"episode {ep.index} {k}: {counted}: system overloaded, "
                               "the encoder could not keep up (each dropped frame's slot repeats the previous "
                               f"frame). Remedies: {'; '.join(OVERLOAD_REMEDIES)}", **where)

    def _check_capture_times(self) -> None:
        rows = self.rows
        if rows is None or not rows.capture:
            return
        period = 1.0 / self.fps
        for ep in self.episodes:
            pos = rows.positions(ep.episode_index)
            if len(pos) < 2:
                continue
            per_camera = {}
            for k, column in rows.capture.items():
                t = column[pos]
                per_camera[k] = t
                t = t[~np.isnan(t)]
                if len(t) < 2:
                    continue
                intervals = np.diff(t)
                p50, p99 = (float(x) for x in np.percentile(intervals, [50, 99]))
                self._capture_stats[(ep.index, k)] = (p50 * 1e3, p99 * 1e3)
                where = {"episode": ep.index, "camera": k}
                stats = f"capture interval p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"
                if (intervals <= 0).any():
                    self.warning("capture_time_order", f"episode {ep.index} {k}: {int((intervals <= 0).sum())} "
                                 "capture time(s) do not increase from one row to the next", **where)
                if abs(p50 - period) > CAPTURE_RATE_REL * period:
                    self.warning("capture_rate", f"episode {ep.index} {k}: {stats}; at fps={self.fps} it should "
                                 f"be {period * 1e3:.1f} ms: the camera does not deliver {self.fps} frames/s",
                                 **where)
                if p99 > CAPTURE_JITTER_PERIODS * period:
                    limit_ms = CAPTURE_JITTER_PERIODS * period * 1e3
                    self.warning("capture_jitter", f"episode {ep.index} {k}: {stats}, above "
                                 f"{CAPTURE_JITTER_PERIODS:g} frame periods ({limit_ms:.1f} ms): frames arrive "
                                 "irregularly", **where)
            if len(per_camera) >= 2:
                stacked = np.stack(list(per_camera.values()))
                ok = ~np.isnan(stacked).any(axis=0)
                if ok.sum() == 0:
                    continue
                spread = stacked[:, ok].max(axis=0) - stacked[:, ok].min(axis=0)
                p50, p99 = (float(x) for x in np.percentile(spread, [50, 99]))
                self._skew_stats[ep.index] = (p50 * 1e3, p99 * 1e3)
                if p99 > CAMERA_SKEW_PERIODS * period:
                    self.warning("camera_skew", f"episode {ep.index}: the cameras' capture times within one row "
                                 f"differ by p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, above half a frame "
                                 f"period ({CAMERA_SKEW_PERIODS * period * 1e3:.1f} ms)", episode=ep.index)

    # -- per episode and camera -----------------------------------------------------------------

    def _build_checks(self) -> None:
        rows = self.rows
        for ep in self.episodes:
            n_rows = None if rows is None else len(rows.positions(ep.episode_index))
            for k, v in ep.videos.items():
                interval = self._capture_stats.get((ep.index, k), (None, None))
                skew = self._skew_stats.get(ep.index, (None, None)) if (ep.index, k) in self._capture_stats \
                    else (None, None)
                self.checks.append(EpisodeCameraCheck(
                    episode=ep.index, camera=k, length=ep.length, rows=n_rows,
                    frames=self._frames.get((ep.index, k)), dropped=v.dropped, from_timestamp_s=v.from_s,
                    to_timestamp_s=v.to_s, video_file=v.file, data_file=ep.data_file,
                    interval_p50_ms=interval[0], interval_p99_ms=interval[1], skew_p50_ms=skew[0],
                    skew_p99_ms=skew[1]))


def _short_list(items: Iterable[Any], limit: int = 8) -> str:
    items = list(items)
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f", … ({len(items)} in all)" if len(items) > limit else "")


def codec_id(name: str) -> int | None:
    """FFmpeg's id of a codec as info.json names it (`h264`, `av1`); None when FFmpeg has no decoder of that name.

    Decoders differ from the stream's codec name (`libdav1d` decodes `av1`), so streams are compared by id.
    """
    try:
        return av.codec.Codec(name, "r").id
    except (ValueError, av.FFmpegError):
        return None


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _seconds(pts: int, time_base: Fraction) -> float:
    return float(Fraction(int(pts)) * time_base)


def _grid(pts: np.ndarray, time_base: Fraction, fps: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Nearest frame slot k of each pts, and the exact remainder: t - k/fps = rem / (den * fps).

    Integer arithmetic, so "exactly on the grid" means exactly (rem == 0), not "close in float".
    """
    num = pts.astype(object) * (time_base.numerator * fps)  # Python ints: no overflow on long files
    den = time_base.denominator
    k = (2 * num + den) // (2 * den)
    rem = num - k * den
    return k.astype(np.int64), rem.astype(np.int64), den


def _unmatched(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Indices of targets with no time within TOLERANCE_S (times sorted ascending)."""
    if not len(times):
        return np.arange(len(targets))
    i = np.searchsorted(times, targets)
    after = times[np.minimum(i, len(times) - 1)]
    before = times[np.maximum(i - 1, 0)]
    nearest = np.minimum(np.abs(after - targets), np.abs(before - targets))
    return np.flatnonzero(nearest > TOLERANCE_S)


_TOP_LEVEL_BOXES = frozenset({"ftyp", "styp", "moov", "mdat", "moof", "mfra", "free", "skip", "wide", "sidx",
                               "uuid", "meta", "pdin"})
"""Top-level MP4 box types; a walk stops at anything else, which is left to FFmpeg to judge."""


def _mp4_truncation(path: Path) -> str | None:
    """Walk the top-level MP4 boxes; say why the file is cut short if a box runs past its end."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if kind not in _TOP_LEVEL_BOXES:
                return None
            if box_size == 1 and len(header) >= 16:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:  # the box runs to the end of the file
                return None
            if box_size < 8:
                return None  # not a box structure we understand; leave it to FFmpeg
            if offset + box_size > size:
                return (f"its '{kind}' box at byte {offset} declares {box_size} bytes, but the file ends after "
                        f"{size - offset} of them ({size} bytes in all); it was cut short (interrupted copy or "
                        "write, full disk)")
            offset += box_size
    return None


def _decode(path: Path, name: str) -> _Video:
    """Demux and decode the file's first video stream once, to the end; never raises for bad files."""
    video = _Video(path=name)
    try:
        video.truncated = _mp4_truncation(path)
    except OSError as e:
        video.error = str(e)
        return video
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        video.error = str(e)
        return video
    with container:
        if not container.streams.video:
            video.error = "it has no video stream"
            return video
        video.opened = True
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        video.time_base = stream.time_base
        video.width, video.height = stream.codec_context.width, stream.codec_context.height
        video.codec_id = stream.codec_context.codec.id
        video.codec_name = stream.codec_context.codec.name
        video.header_frames = stream.frames or 0
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if frame.pts is None:
                        video.missing_pts += 1
                    else:
                        pts.append(frame.pts)
        except (av.FFmpegError, OSError) as e:
            video.error = str(e)
            video.decoded_before_error = len(pts)
        video.pts = np.array(pts, np.int64)
    return video
