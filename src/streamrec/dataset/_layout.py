"""Where everything of a LeRobot v3.0 dataset lives: its files, and the recorder's work folder inside it.

Every path of a dataset is spelled here, and every file name is parsed here (`FileIndex.of`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CODEBASE_VERSION = "v3.0"
FILE_SIZE_DEFAULTS: dict[str, float | int] = {"video_files_size_in_mb": 200.0, "data_files_size_in_mb": 100.0,
                                              "chunks_size": 1000}
"""The v3.0 format's file limits when info.json does not give them (LeRobot's defaults too)."""


def file_sizes(info: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset's file limits from its info.json, the defaults where a value is missing or null."""
    return {key: type(default)(info.get(key) or default) for key, default in FILE_SIZE_DEFAULTS.items()}

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
WORK_DIR = ".streamrec"
"""Scratch space inside the dataset while recording (packet spools, episode journals, PNGs).

It is removed by `finalize()`; a dataset that still has it is being recorded or was interrupted.
"""

_FILE_NAME = re.compile(r"chunk-(\d+)/file-(\d+)\.[a-z0-9]+$")


@dataclass(frozen=True, slots=True)
class FileIndex:
    """Position of a data, episodes or video file: `chunk-XXX/file-YYY`."""

    chunk: int = 0
    file: int = 0

    def next(self, chunks_size: int) -> FileIndex:
        """The following file; after `chunks_size` files the chunk index goes up."""
        if self.file + 1 >= chunks_size:
            return FileIndex(self.chunk + 1, 0)
        return FileIndex(self.chunk, self.file + 1)

    @property
    def order(self) -> tuple[int, int]:
        return (self.chunk, self.file)

    @property
    def name(self) -> str:
        """`chunk-000/file-000` (add the extension)."""
        return f"chunk-{self.chunk:03d}/file-{self.file:03d}"

    @classmethod
    def of(cls, path: Path | str) -> FileIndex | None:
        """The index a file's path names (`.../chunk-001/file-007.mp4`), None if it names none."""
        m = _FILE_NAME.search(Path(path).as_posix())
        return cls(int(m[1]), int(m[2])) if m else None


@dataclass(frozen=True, slots=True)
class Layout:
    """Paths of one dataset, and of the recorder's work folder in it."""

    root: Path

    @property
    def meta(self) -> Path:
        return self.root / "meta"

    @property
    def info(self) -> Path:
        return self.root / "meta" / "info.json"

    @property
    def stats(self) -> Path:
        return self.root / "meta" / "stats.json"

    @property
    def tasks(self) -> Path:
        return self.root / "meta" / "tasks.parquet"

    def data(self, at: FileIndex) -> Path:
        return self.root / DATA_PATH.format(chunk_index=at.chunk, file_index=at.file)

    def episodes(self, at: FileIndex) -> Path:
        return self.root / EPISODES_PATH.format(chunk_index=at.chunk, file_index=at.file)

    def video(self, key: str, at: FileIndex) -> Path:
        return self.root / VIDEO_PATH.format(video_key=key, chunk_index=at.chunk, file_index=at.file)

    def video_dir(self, key: str) -> Path:
        return self.root / "videos" / key

    def rel(self, path: Path) -> str:
        """`path` relative to the root, with `/` separators (as findings and tables name files)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    # -- the work folder -------------------------------------------------------------------------

    @property
    def work(self) -> Path:
        return self.root / WORK_DIR

    @property
    def finished_work(self) -> Path:
        """Where the work folder goes once the dataset is complete, to be deleted (see `_durable.remove_work`)."""
        return self.root / (WORK_DIR + ".finished")

    @property
    def lock(self) -> Path:
        return self.work / "lock"

    @property
    def journal(self) -> Path:
        """Saved episodes not yet assembled into the dataset's tables (see `_journal`)."""
        return self.work / "episodes"

    def spool_dir(self, camera: str) -> Path:
        """Packets of a camera's episodes whose MP4 is still open (see `_mp4`)."""
        return self.work / "spool" / camera

    def spool(self, camera: str, episode_index: int) -> Path:
        """The kept packets of one saved episode of a camera."""
        return self.spool_dir(camera) / f"episode-{episode_index:06d}.bin"

    def open_spool(self, camera: str) -> Path:
        """The packets of the episode being recorded."""
        return self.spool_dir(camera) / "open.bin"

    def unsaved_note(self, camera: str) -> Path:
        """Left by an encoder process whose recorder died mid-episode: how many frames that episode had."""
        return self.spool_dir(camera) / "unsaved.json"

    def codec_note(self, camera: str, at: FileIndex) -> Path:
        """Beside a camera's spools: the stream codec of its open MP4 `at` (for repair after a fallback)."""
        return self.spool_dir(camera) / f"file-{at.chunk:03d}-{at.file:03d}.codec"

    def images_dir(self, camera: str) -> Path:
        """PNG path: the camera's spilled frames (see `encode._spill`)."""
        return self.work / "images" / camera

    def episode_images(self, camera: str, episode_index: int) -> Path:
        """PNG path: the frames of one saved episode, waiting to be encoded."""
        return self.images_dir(camera) / f"episode-{episode_index:06d}"

    def open_images(self, camera: str) -> Path:
        """PNG path: the frames of the episode being recorded."""
        return self.images_dir(camera) / "open"
