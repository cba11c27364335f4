"""Where things live in a LeRobot v3.0 dataset, and the small JSON files at its top."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._config import DEFAULT_FEATURES, EncoderConfig, RecorderConfig

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
WORK_DIR = ".streamrec"
"""Scratch space inside the dataset while recording (packet spools, episode journals).

It is removed by `finalize()`; a dataset that still has it was interrupted.
"""


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


@dataclass(frozen=True, slots=True)
class Layout:
    """Paths of one dataset."""

    root: Path

    @property
    def info(self) -> Path:
        return self.root / "meta" / "info.json"

    @property
    def stats(self) -> Path:
        return self.root / "meta" / "stats.json"

    @property
    def tasks(self) -> Path:
        return self.root / "meta" / "tasks.parquet"

    @property
    def work(self) -> Path:
        return self.root / WORK_DIR

    def data(self, at: FileIndex) -> Path:
        return self.root / DATA_PATH.format(chunk_index=at.chunk, file_index=at.file)

    def episodes(self, at: FileIndex) -> Path:
        return self.root / EPISODES_PATH.format(chunk_index=at.chunk, file_index=at.file)

    def video(self, key: str, at: FileIndex) -> Path:
        return self.root / VIDEO_PATH.format(video_key=key, chunk_index=at.chunk, file_index=at.file)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that a reader (or a crash) sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def video_info(config: RecorderConfig, height: int, width: int, encoder: EncoderConfig | None = None,
               file_codecs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `info` block of a video feature: the encoded stream as it is written.

    Args:
        encoder: The encoder of the camera's first file (default: `config.camera_encoder`);
            with `vcodec=auto` or after a fallback it differs from what was configured.
        file_codecs: Codec of each of the camera's files (`chunk-000/file-000.mp4` -> `h264`),
            written as `video.codec_by_file` only when they are not all `video.codec`: an encoder
            that failed mid-recording was replaced by one making another codec (see `_fallback`).
    """
    enc = encoder or config.camera_encoder
    info = {
        "video.height": height,
        "video.width": width,
        "video.codec": enc.stream_codec,
        "video.pix_fmt": enc.pix_fmt,
        "video.is_depth_map": False,
        "video.fps": config.fps,
        "video.channels": 3,
        "video.g": enc.g,
        "video.crf": enc.crf,
        "video.preset": enc.effective_preset,
        "video.fast_decode": enc.fast_decode,
        "video.extra_options": dict(enc.extra_options),
        "has_audio": False,
    }
    if file_codecs and set(file_codecs.values()) != {enc.stream_codec}:
        info["video.codec_by_file"] = dict(file_codecs)
    return info


def build_info(config: RecorderConfig, *, total_episodes: int, total_frames: int, total_tasks: int,
               encoders: Mapping[str, EncoderConfig] | None = None,
               file_codecs: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """The full `meta/info.json` document; `encoders` and `file_codecs` per camera, see `video_info`."""
    features: dict[str, Any] = {}
    for f in config.features:
        features[f.name] = f.to_json()
        if f.is_video:
            features[f.name]["info"] = video_info(config, f.shape[0], f.shape[1], (encoders or {}).get(f.name),
                                                  (file_codecs or {}).get(f.name))
    features.update(DEFAULT_FEATURES)
    has_video = bool(config.video_features)
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
        "video_path": VIDEO_PATH if has_video else None,
        "features": features,
    }


class WorkLock:
    """An exclusive lock on the dataset's work folder, held while a recorder (or repair) uses it.

    The kernel drops the lock when its holder dies, so a held lock means a live recording, and
    a work folder without one means an interrupted recording.
    """

    def __init__(self, layout: Layout, who: str) -> None:
        layout.work.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(layout.work / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            from ._errors import DatasetError

            raise DatasetError(f"{layout.root} is in use by a running recording (or repair); {who} must wait "
                               "until it has finalized") from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
