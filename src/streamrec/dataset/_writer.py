"""`DatasetWriter`: saved episodes into the dataset's files, and nothing else writes its metadata.

While recording, each saved episode goes to the journal (`_journal`): its rows first, then, once its
videos are in the MP4s, its metadata row. `assemble()` (at finalize, and at the end of a repair)
turns the journal into the v3.0 files — `data/`, `meta/episodes/`, `meta/tasks.parquet`,
`meta/stats.json` — and writes `meta/info.json` last, so that info.json only ever describes files
that exist. Appending to a finalized dataset (resume) writes new data, episodes and video files and
rewrites only the small metadata files.
"""

from __future__ import annotations

import copy
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .._errors import DatasetError
from ._depth import depth_feature_info
from ._durable import write_json_atomic, write_parquet_atomic
from ._features import DEFAULT_FEATURES, Feature
from ._journal import EpisodeJournal, SavedEpisode
from ._layout import CODEBASE_VERSION, DATA_PATH, VIDEO_PATH, FileIndex, Layout
from ._mp4 import rebuild_video_file
from ._stats import STAT_NAMES, Stats, aggregate
from ._tables import conform, data_schema, episodes_table, stats_to_json, write_data_files, write_tasks_file

if TYPE_CHECKING:
    from ..encode._config import EncoderConfig
    from ..encode._depth import DepthEncoderConfig
    from ..encode._messages import VideoEpisode
    from ..record._config import RecorderConfig

log = logging.getLogger("streamrec")


@dataclass(frozen=True, slots=True)
class ExistingDataset:
    """What a finalized dataset holds before episodes are appended, and where they go."""

    info: dict[str, Any]
    features: tuple[Feature, ...]
    camera_encoder: EncoderConfig
    tasks: dict[str, int]
    total_episodes: int
    total_frames: int
    episode_stats: list[dict[str, Stats]]
    """Per-episode stats of the saved episodes (empty if the table has none: then `stats_json`)."""
    stats_json: dict[str, Stats] | None
    next_data: FileIndex
    next_episodes: FileIndex
    next_video: dict[str, FileIndex]
    video_files: dict[str, set[FileIndex]]
    """The MP4s, per camera, that the saved episodes use."""
    data_schema: pa.Schema | None
    episodes_schema: pa.Schema | None
    depth_encoder: DepthEncoderConfig | None = None
    """How its depth cameras are stored (from their info blocks); None without depth cameras."""


def video_info(fps: int, height: int, width: int, encoder: EncoderConfig,
               file_codecs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `info` block of a video feature: the encoded stream as it is written.

    Args:
        encoder: The encoder of the camera's first file; with `vcodec=auto` or after a fallback it
            differs from what was configured.
        file_codecs: Codec of each of the camera's files (`chunk-000/file-000.mp4` -> `h264`),
            written as `video.codec_by_file` only when they are not all `video.codec`: an encoder
            that failed mid-recording was replaced by one making another codec (see `encode._fallback`).
    """
    info = {
        "video.height": height,
        "video.width": width,
        "video.codec": encoder.stream_codec,
        "video.pix_fmt": encoder.pix_fmt,
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": 3,
        "video.g": encoder.g,
        "video.crf": encoder.crf,
        "video.preset": encoder.effective_preset,
        "video.fast_decode": encoder.fast_decode,
        "video.extra_options": dict(encoder.extra_options),
        "has_audio": False,
    }
    if file_codecs and set(file_codecs.values()) != {encoder.stream_codec}:
        info["video.codec_by_file"] = dict(file_codecs)
    return info


class DatasetWriter:
    """Writes one recording session's episodes (see the module docstring).

    Args:
        config: The recorder's settings (root, fps, features, file limits).
        encoders: Per camera, the encoder its first file is made with (`info.json` describes it).
        existing: What the dataset held before this session (resume, repair); None for a new one.
    """

    def __init__(self, config: RecorderConfig, encoders: Mapping[str, EncoderConfig],
                 existing: ExistingDataset | None = None) -> None:
        self.config = config
        self.layout = Layout(config.root)
        self.journal = EpisodeJournal(self.layout)
        self.existing = existing
        self._start_encoders = dict(encoders)
        self.tasks: dict[str, int] = dict(existing.tasks) if existing else {}
        """Every task of the dataset, by task_index (this session's saved episodes included)."""
        self.episode_index = existing.total_episodes if existing else 0
        """The index the next saved episode gets."""
        self.total_frames = existing.total_frames if existing else 0
        self.episodes_at = existing.next_episodes if existing else FileIndex()
        """The meta/episodes file this session's episodes go to."""
        self.video_start = {f.name: (existing.next_video[f.name] if existing else FileIndex())
                            for f in config.video_features}
        """The MP4 each camera's first encoder process starts at."""
        self._data_at = existing.next_data if existing else FileIndex()
        self._data_bytes = 0
        self._file_encoders: dict[str, dict[FileIndex, EncoderConfig]] = {}
        """Per camera: the encoder that made each of its files in this session."""

    def take_over(self, metas: Sequence[dict[str, Any]], pending: Sequence[SavedEpisode],
                  video_start: Mapping[str, FileIndex]) -> None:
        """Go on where an interrupted session stopped (repair): its journaled episodes count, their tasks
        keep the indices save_episode() gave them, and new videos start at `video_start`."""
        journaled = sorted([*metas, *(p.meta for p in pending)], key=lambda m: m["episode_index"])
        for meta in journaled:
            for task in meta["tasks"]:
                self.tasks.setdefault(task, len(self.tasks))
        self.episode_index += len(journaled)
        if metas:
            self.episodes_at = FileIndex(metas[0]["meta/episodes/chunk_index"], metas[0]["meta/episodes/file_index"])
        self.video_start = dict(video_start)

    # -- while recording --------------------------------------------------------------------------

    def write_new_info(self) -> None:
        """info.json of a new, empty dataset (so that the folder is recognisable from the start)."""
        write_json_atomic(self.layout.info, self._new_info(0, 0, 0))

    def check_appendable(self) -> None:
        """Fail at resume, not at finalize, if new files could not share the existing files' schema."""
        existing = self.existing
        assert existing is not None
        ours = data_schema(self.config.table_features)
        for what, schema, names in (("data", existing.data_schema, ours.names),
                                    ("meta/episodes", existing.episodes_schema, self.episode_columns())):
            missing = [] if schema is None else [n for n in schema.names if n not in names]
            if missing:
                raise DatasetError(f"resume: the dataset's {what} files have column(s) {missing} that streamrec "
                                   "does not write, so episodes appended here could not share their schema")

    def task_indices(self, tasks: Sequence[str]) -> dict[str, int]:
        """`self.tasks` plus the new ones among `tasks`, numbered in order of appearance."""
        out = dict(self.tasks)
        for task in tasks:
            out.setdefault(task, len(out))
        return out

    def saved_episode(self, rows: pa.Table, tasks: Sequence[str], stats: dict[str, Stats],
                      dropped_slots: dict[str, Sequence[int]], wall_time_s: float) -> SavedEpisode:
        """The journal record of the next episode, its rows placed in a data file.

        `wall_time_s`: seconds from its first row to its save (with its length, this tells whether the
        rows came in real time: `verify` uses it to explain drops)."""
        if self._data_bytes and self._data_bytes + rows.nbytes > self.config.data_files_size_in_mb * 2**20:
            self._data_at = self._data_at.next(self.config.chunks_size)
            self._data_bytes = 0
        self._data_bytes += rows.nbytes
        n = rows.num_rows
        return SavedEpisode(
            meta={"episode_index": self.episode_index, "tasks": list(tasks), "length": n,
                  "data/chunk_index": self._data_at.chunk, "data/file_index": self._data_at.file,
                  "dataset_from_index": self.total_frames, "dataset_to_index": self.total_frames + n,
                  "wall_time_s": round(wall_time_s, 6)},
            stats=stats, dropped={name: len(slots) for name, slots in dropped_slots.items()},
            dropped_slots={name: list(slots) for name, slots in dropped_slots.items()})

    def commit(self, saved: SavedEpisode, tasks: dict[str, int]) -> None:
        """Count a saved episode: the next one gets the next index."""
        self.tasks = tasks
        self.episode_index += 1
        self.total_frames += saved.length

    def complete(self, saved: SavedEpisode, videos: Mapping[str, VideoEpisode]) -> None:
        """Write the episode's full metadata row now that its videos are in the MP4s; from here
        on it is in the dataset, whatever happens to the process."""
        fps = self.config.fps
        meta = dict(saved.meta)
        for name, v in videos.items():
            meta[f"videos/{name}/chunk_index"] = v.file.chunk
            meta[f"videos/{name}/file_index"] = v.file.file
            # From integer frame counts, so the value never drifts however long the file.
            meta[f"videos/{name}/from_timestamp"] = v.from_frame / fps
            meta[f"videos/{name}/to_timestamp"] = (v.from_frame + v.frames) / fps
            meta[f"videos/{name}/dropped_frames"] = saved.dropped[name]
            meta[f"videos/{name}/dropped_slots"] = saved.dropped_slots.get(name, [])
            meta[f"videos/{name}/adaptations"] = [f"{a.at_frame}:{a.change}" for a in v.adaptations]
        for name, s in saved.stats.items():
            for stat in STAT_NAMES:
                meta[f"stats/{name}/{stat}"] = np.asarray(s[stat]).tolist()
        meta["meta/episodes/chunk_index"] = self.episodes_at.chunk
        meta["meta/episodes/file_index"] = self.episodes_at.file
        self.journal.write_meta(saved.index, meta)
        self.journal.remove_pending(saved.index)
        for name in videos:
            shutil.rmtree(self.layout.episode_images(name, saved.index), ignore_errors=True)

    def note_file(self, camera: str, at: FileIndex, encoder: EncoderConfig) -> bool:
        """Remember which encoder made a camera's file; True when the file is new and not the first."""
        files = self._file_encoders.setdefault(camera, {})
        new = bool(files) and at not in files
        files[at] = encoder
        return new

    def rebuild_open_video(self, camera: str, encoder: EncoderConfig, height: int, width: int) -> FileIndex:
        """Rebuild the MP4 a dead encoder had open from the spools of its saved episodes; returns the
        file a new encoder for this camera starts at. `encoder`: the camera's, unless the file's is known."""
        metas = [self.journal.read_meta(e) for e in self.journal.episodes()]
        if not metas:
            at = self.video_start[camera]
        else:
            at = FileIndex(metas[-1][f"videos/{camera}/chunk_index"], metas[-1][f"videos/{camera}/file_index"])
            episodes = [m["episode_index"] for m in metas
                        if FileIndex(m[f"videos/{camera}/chunk_index"], m[f"videos/{camera}/file_index"]) == at]
            # Spools exist only for a file that was never closed.
            if all(self.layout.spool(camera, e).exists() for e in episodes):
                log.warning("encoder for %s died; rebuilding %s from the spools of episodes %s", camera,
                            self.layout.video(camera, at), episodes)
                made_by = self._file_encoders.get(camera, {}).get(at) or encoder
                rebuild_video_file(self.layout, camera, at, episodes, made_by.stream_codec, self.config.fps,
                                   width, height)
            at = at.next(self.config.chunks_size)
        shutil.rmtree(self.layout.spool_dir(camera), ignore_errors=True)
        return at

    # -- at the end -------------------------------------------------------------------------------

    def episode_columns(self) -> list[str]:
        """Every column streamrec writes to meta/episodes for this feature set."""
        columns = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                   "dataset_to_index", "wall_time_s"]
        for f in self.config.video_features:
            columns += [f"videos/{f.name}/{c}" for c in ("chunk_index", "file_index", "from_timestamp",
                                                          "to_timestamp", "dropped_frames", "dropped_slots",
                                                          "adaptations")]
        numeric = [f.name for f in self.config.features if f.dtype != "string"] + list(DEFAULT_FEATURES)
        columns += [f"stats/{n}/{s}" for n in numeric for s in STAT_NAMES]
        return columns + ["meta/episodes/chunk_index", "meta/episodes/file_index"]

    def assemble(self) -> None:
        """Assemble the journal into the v3.0 files; info.json last."""
        existing = self.existing
        metas = [self.journal.read_meta(e) for e in self.journal.episodes()]
        if metas:
            schema = existing.data_schema if existing and existing.data_schema else \
                data_schema(self.config.table_features)
            write_data_files(self.layout, self.journal, metas, schema)
            table = episodes_table(metas)
            if existing and existing.episodes_schema:
                table = conform(table, existing.episodes_schema, "meta/episodes")
            write_parquet_atomic(self.layout.episodes(self.episodes_at), table)
            names = [k[len("stats/"):-len("/min")] for k in metas[0] if k.startswith("stats/") and k.endswith("/min")]
            per_episode = [{name: {s: np.asarray(m[f"stats/{name}/{s}"]) for s in STAT_NAMES} for name in names}
                           for m in metas]
            if existing:
                per_episode = existing.episode_stats + per_episode
                if existing.stats_json:  # the old episodes' stats, already aggregated
                    per_episode.append(existing.stats_json)
            stats = {name: aggregate([e[name] for e in per_episode if name in e]) for name in names}
            write_json_atomic(self.layout.stats, stats_to_json(stats))
        write_tasks_file(self.layout.tasks, self.tasks)
        file_codecs = {name: {f"{at.name}.mp4": enc.stream_codec for at, enc in files.items()}
                       for name, files in self._file_encoders.items()}
        before = (existing.total_episodes, existing.total_frames) if existing else (0, 0)
        total_episodes = before[0] + len(metas)
        total_frames = before[1] + sum(m["length"] for m in metas)
        if existing:
            # Keep everything another writer put in info.json; only the totals change, and the
            # codec of any new file that is not the stated one (an encoder fallback).
            info = {**existing.info, "total_episodes": total_episodes, "total_frames": total_frames,
                    "total_tasks": len(self.tasks), "splits": {**existing.info.get("splits", {}),
                                                               "train": f"0:{total_episodes}"}}
            info["features"] = copy.deepcopy(info["features"])
            for name, codecs in file_codecs.items():
                stated = info["features"][name].setdefault("info", {})
                if any(codec != stated.get("video.codec") for codec in codecs.values()):
                    stated["video.codec_by_file"] = {**stated.get("video.codec_by_file", {}), **codecs}
        else:
            info = self._new_info(total_episodes, total_frames, len(self.tasks), file_codecs)
        write_json_atomic(self.layout.info, info)

    def _first_encoders(self) -> dict[str, EncoderConfig]:
        """Per camera: the encoder of its first file (what info.json describes), else the one it starts with."""
        out = dict(self._start_encoders)
        for name, files in self._file_encoders.items():
            if files:
                out[name] = files[min(files, key=lambda at: at.order)]
        return out

    def _new_info(self, total_episodes: int, total_frames: int, total_tasks: int,
                  file_codecs: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
        """The full `meta/info.json` document of a dataset this writer started."""
        config = self.config
        encoders = self._first_encoders()
        features: dict[str, Any] = {}
        for f in config.features:
            features[f.name] = f.to_json()
            if f.depth:  # LeRobot's depth block (see _depth)
                features[f.name]["info"] = depth_feature_info(encoders[f.name], height=f.shape[0], width=f.shape[1],
                                                              fps=config.fps)
            elif f.is_video:
                features[f.name]["info"] = video_info(config.fps, f.shape[0], f.shape[1], encoders[f.name],
                                                      (file_codecs or {}).get(f.name))
        features.update(DEFAULT_FEATURES)
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": config.robot_type,
            "total_episodes": total_episodes,
            "total_frames": total_frames,
            "total_tasks": total_tasks,
            "chunks_size": config.chunks_size,
            "data_files_size_in_mb": config.data_files_size_in_mb,
            "video_files_size_in_mb": config.video_files_size_in_mb,
            "fps": config.fps,
            "splits": {"train": f"0:{total_episodes}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if config.video_features else None,
            "features": features,
        }
