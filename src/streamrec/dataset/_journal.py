"""Saved episodes not yet assembled into the dataset's tables, under `<root>/.streamrec/episodes/`.

`save_episode()` writes the episode's rows (`episode-N.parquet`) and then, once its videos are in
the MP4s, its complete metadata row (`episode-N.json`): the JSON is what makes the episode count,
so a crash between the two leaves rows that repair ignores. `pending-N.json` marks an episode of
the PNG path saved with its PNGs but whose videos are not encoded yet. Every file is written
whole, synced, then renamed into place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._durable import fsync_replace, write_parquet_atomic
from ._layout import Layout
from ._stats import Stats


@dataclass(slots=True)
class SavedEpisode:
    """A saved episode, complete once its videos are in the MP4s (at once when streaming;
    at its batch's encode otherwise). Journaled as JSON in between."""

    meta: dict[str, Any]
    """The episodes-table columns known at save time, in column order."""
    stats: dict[str, Stats]
    """Per-episode stats of every table column and camera, in column order."""
    dropped: dict[str, int]
    dropped_slots: dict[str, list[int]] = field(default_factory=dict)
    """Per camera: the rows whose frame was dropped at the queue (its slot repeats the previous frame)."""

    @property
    def index(self) -> int:
        return self.meta["episode_index"]

    @property
    def length(self) -> int:
        return self.meta["length"]

    def to_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "dropped": self.dropped, "dropped_slots": self.dropped_slots,
                "stats": {name: {k: np.asarray(v).tolist() for k, v in s.items()} for name, s in self.stats.items()}}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SavedEpisode:
        return cls(obj["meta"], {name: {k: np.asarray(v) for k, v in s.items()} for name, s in obj["stats"].items()},
                   obj["dropped"], obj.get("dropped_slots", {}))


class EpisodeJournal:
    """The journal of one dataset (see the module docstring)."""

    def __init__(self, layout: Layout) -> None:
        self.dir = layout.journal

    def rows_path(self, episode_index: int) -> Path:
        return self.dir / f"episode-{episode_index:06d}.parquet"

    def meta_path(self, episode_index: int) -> Path:
        return self.dir / f"episode-{episode_index:06d}.json"

    def write_rows(self, episode_index: int, rows: pa.Table) -> None:
        """Write an episode's rows durably. They are not an episode yet: `write_meta` makes them one."""
        self.dir.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(self.rows_path(episode_index), rows)

    def write_meta(self, episode_index: int, meta: dict[str, Any]) -> None:
        """Write the metadata row that marks the episode complete (after its rows and videos)."""
        tmp = self.meta_path(episode_index).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta))
        fsync_replace(tmp, self.meta_path(episode_index))

    def pending_path(self, episode_index: int) -> Path:
        return self.dir / f"pending-{episode_index:06d}.json"

    def write_pending(self, episode_index: int, record: dict[str, Any]) -> None:
        """Record a saved episode whose videos are not encoded yet (its PNGs are on disk)."""
        tmp = self.pending_path(episode_index).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record))
        fsync_replace(tmp, self.pending_path(episode_index))

    def remove_pending(self, episode_index: int) -> None:
        self.pending_path(episode_index).unlink(missing_ok=True)

    def episodes(self) -> list[int]:
        """Indices of complete journaled episodes, in order."""
        return sorted(int(p.stem.split("-")[1]) for p in self.dir.glob("episode-*.json"))

    def read_meta(self, episode_index: int) -> dict[str, Any]:
        return json.loads(self.meta_path(episode_index).read_text())

    def read_rows(self, episode_index: int) -> pa.Table:
        return pq.read_table(self.rows_path(episode_index))

    def remove(self, episode_index: int) -> None:
        self.rows_path(episode_index).unlink(missing_ok=True)
        self.meta_path(episode_index).unlink(missing_ok=True)

    def pending(self) -> list[SavedEpisode]:
        """Saved PNG-path episodes whose videos are not encoded yet (those whose rows are on disk)."""
        out = [SavedEpisode.from_json(json.loads(p.read_text())) for p in sorted(self.dir.glob("pending-*.json"))]
        return [p for p in out if self.rows_path(p.index).exists()]

