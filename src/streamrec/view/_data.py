"""What the viewer shows of a dataset, in the shapes its server sends: read through the dataset reader.

The server needs the features, the tasks, per episode its length, tasks and per camera the MP4 with
the episode's span in it and what was dropped; and the numeric series of one episode. All of it
comes from `streamrec.dataset`'s reader; this module only arranges it for the page.

Drops are stored per episode and camera in `meta/episodes`: `videos/<key>/dropped_frames` (a count)
and `videos/<key>/dropped_slots` (the rows whose frame repeats the previous one), with
`videos/<key>/adaptations` (`"<row>:<what changed>"`); LeRobot's datasets have none of these columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from streamrec import DatasetError
from streamrec.dataset._depth import is_depth_info
from streamrec.dataset._reader import DEFAULT_COLUMNS, DatasetReader
from streamrec.dataset._reader import Episode as _ReaderEpisode
from streamrec.dataset._tables import as_matrix

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
        reader = DatasetReader(self.root)
        if not reader.is_dataset or reader.fps is None or not reader.episodes_complete:
            errors = reader.findings.errors
            raise DatasetError(errors[0].message if errors else f"{self.root} cannot be read as a dataset")
        self._reader = reader
        self.info: dict[str, Any] = reader.info
        self.fps: float = reader.fps
        self.features: dict[str, dict[str, Any]] = reader.features
        self.robot_type: str | None = reader.info.get("robot_type")
        self.cameras: tuple[Camera, ...] = tuple(_camera(key, self.features[key]) for key in reader.cameras)
        self.tasks: tuple[str, ...] = tuple(reader.tasks or ())
        self._source = reader.episodes
        self.episodes: tuple[Episode, ...] = tuple(
            self._episode(ep, f"{reader.layout.rel(reader.files('episodes')[0])}") for ep in self._source)
        self.series_features: tuple[str, ...] = _series_features(self.features)
        # Arrow's allocator keeps freed memory for reuse; a viewer idles between episodes, so give it back.
        pa.default_memory_pool().release_unused()

    # -- the interface ---------------------------------------------------------------------------

    def video_files(self) -> frozenset[str]:
        """Every MP4 the episodes reference, relative to the root: the only files the viewer serves."""
        return frozenset(s.video_file for e in self.episodes for s in e.spans.values())

    def series(self, episode: int) -> list[Series]:
        """The numeric features (observation.state and action first) of one episode, in row order."""
        if not self.series_features:
            return []
        table = self._reader.episode_rows(self._source[episode], self.series_features)
        out = [Series(name=name, names=_dim_names(self.features[name], values.shape[1]), values=values)
               for name in table.column_names for values in [as_matrix(table[name])]]
        del table
        pa.default_memory_pool().release_unused()
        return out

    def _episode(self, ep: _ReaderEpisode, where: str) -> Episode:
        spans = {}
        for key, v in ep.videos.items():
            spans[key] = Span(video_file=v.file, from_s=v.from_s, to_s=v.to_s, dropped=v.dropped,
                              dropped_slots=v.dropped_slots,
                              adaptations=_adaptations(v.adaptations, f"{where}: episode {ep.episode_index}, {key}"))
        return Episode(index=ep.episode_index, length=ep.length, tasks=tuple(ep.tasks or ()), data_file=ep.data_file,
                       spans=spans)


def _camera(key: str, feature: dict[str, Any]) -> Camera:
    info = feature.get("info") or {}
    shape = feature.get("shape") or [None, None]
    depth = is_depth_info(info)
    by_file = info.get("video.codec_by_file")
    return Camera(key=key, height=info.get("video.height", shape[0]), width=info.get("video.width", shape[1]),
                  codec=info.get("video.codec"), pix_fmt=info.get("video.pix_fmt"), is_depth=depth,
                  codec_by_file={str(k): str(v) for k, v in by_file.items()} if isinstance(by_file, dict) else {})


def _series_features(features: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    numeric = [name for name, f in features.items()
               if name not in DEFAULT_COLUMNS and str(f.get("dtype", "")).startswith(_NUMERIC)]
    first = [n for n in ("observation.state", "action") if n in numeric]
    return tuple(first + [n for n in numeric if n not in first])


def _dim_names(feature: dict[str, Any], dims: int) -> tuple[str, ...]:
    names = feature.get("names")
    if isinstance(names, dict):  # e.g. {"motors": [...]}
        names = [n for group in names.values() if isinstance(group, list) for n in group]
    if isinstance(names, list) and len(names) == dims and all(isinstance(n, str) for n in names):
        return tuple(names)
    return tuple(str(i) for i in range(dims))


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
