"""The open episode's table rows: each checked as `add_frame` receives it, kept in memory until saved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .._errors import FrameError
from ..dataset._features import DEFAULT_FEATURES, Feature
from ..dataset._stats import Stats, numeric_stats
from ..dataset._tables import episode_table
from ..encode._depth import frame_to_mm


class EpisodeRows:
    """Rows of the episode being recorded: every feature but the cameras, plus each row's task."""

    def __init__(self, features: Sequence[Feature], *, allow_nonfinite: bool = False) -> None:
        self._features = tuple(features)
        self._allow_nonfinite = allow_nonfinite
        self._floats = frozenset(f.name for f in features if not f.is_video and f.dtype.startswith("float"))
        self._table_features = tuple(f for f in features if not f.is_video)
        self._allowed = {f.name for f in features} | {"task"}
        self.clear()

    def clear(self) -> None:
        self.frames = 0
        self.nonfinite: dict[str, int] = {}
        """Per feature: NaN and infinite values recorded in the open episode (with allow_nonfinite)."""
        self._values: dict[str, list] = {f.name: [] for f in self._table_features}
        self.tasks: list[str] = []
        """The episode's tasks, in order of first appearance."""
        self._task_of_row: list[str] = []
        self._pending_nonfinite: dict[str, int] = {}

    def check(self, frame: Mapping[str, Any]) -> dict[str, Any]:
        """Every key and value of a row, converted to the feature's dtype and shape; FrameError otherwise."""
        if not isinstance(frame, Mapping):
            raise FrameError(f"add_frame() takes a dict of feature -> value, got {type(frame).__name__}")
        if not self._allowed.issuperset(frame):
            unknown = sorted(set(frame) - self._allowed)
            raise FrameError(f"add_frame(): unknown key(s) {unknown}; the features are "
                             f"{sorted(self._allowed - {'task'})} plus 'task'")
        task = frame.get("task")
        if not isinstance(task, str) or not task:
            raise FrameError(f"add_frame(): 'task' must be a non-empty string, got {task!r}")
        self._pending_nonfinite: dict[str, int] = {}
        out: dict[str, Any] = {}
        for f in self._features:
            if f.name not in frame:
                raise FrameError(f"add_frame(): feature {f.name!r} is missing")
            out[f.name] = _check_value(f, frame[f.name])
        for name in self._floats:
            finite = np.isfinite(out[name])
            if not finite.all():
                self._refuse_or_count(name, out[name], finite)
        return out

    def _refuse_or_count(self, name: str, value: np.ndarray, finite: np.ndarray) -> None:
        if self._allow_nonfinite:  # counted when the row is appended (a later check may still refuse it)
            self._pending_nonfinite[name] = int(finite.size - np.count_nonzero(finite))
            return
        i = int(np.flatnonzero(~finite.ravel())[0])
        raise FrameError(f"add_frame(): {name!r} element {i} is {value.ravel()[i]}: numeric features must be finite "
                         "(a NaN in the data makes its stats NaN); nothing was added. Pass allow_nonfinite=True "
                         "(--dataset.allow_nonfinite=true) to record such values: they are counted and left out of "
                         "the stats")

    def append(self, values: Mapping[str, Any], task: str) -> None:
        """Keep a checked row (its images have gone to the encoders)."""
        for f in self._table_features:
            self._values[f.name].append(values[f.name])
        for name, n in self._pending_nonfinite.items():
            self.nonfinite[name] = self.nonfinite.get(name, 0) + n
        if task not in self.tasks:
            self.tasks.append(task)
        self._task_of_row.append(task)
        self.frames += 1

    def table(self, *, episode_index: int, first_index: int, tasks: Mapping[str, int],
              fps: int) -> tuple[pa.Table, dict[str, Stats]]:
        """The episode's rows as the data file stores them, and their per-episode stats."""
        columns = {f.name: (self._values[f.name] if f.dtype == "string" else np.stack(self._values[f.name]))
                   for f in self._table_features}
        task_idx = np.array([tasks[t] for t in self._task_of_row], np.int64)
        rows = episode_table(self._table_features, columns, episode_index=episode_index, first_index=first_index,
                             task_indices=task_idx, fps=fps)
        stats: dict[str, Stats] = {}
        for f in self._table_features:
            if f.dtype != "string":
                stats[f.name] = numeric_stats(columns[f.name])
        for name in DEFAULT_FEATURES:
            stats[name] = numeric_stats(rows.column(name).to_numpy())
        return rows, stats

    def warm_up(self, fps: int) -> None:
        """Build one row as an episode's are built, and write it to memory.

        pyarrow's first table and first parquet write in a process cost ~40 ms once (measured
        here: 7.9 and 32.7 ms, against 0.3 and 2-10 ms afterwards); this moves them out of the first
        save_episode().
        """
        import pyarrow.parquet as pq

        columns = {f.name: ([""] if f.dtype == "string" else np.zeros((1, *f.shape), np.dtype(f.dtype)))
                   for f in self._table_features}
        rows = episode_table(self._table_features, columns, episode_index=0, first_index=0,
                             task_indices=np.zeros(1, np.int64), fps=fps)
        pq.write_table(rows, pa.BufferOutputStream(), row_group_size=1)


def _check_value(f: Feature, value: Any) -> Any:
    if f.depth:  # uint16 millimetres for the queue, float32 metres converted
        return frame_to_mm(f.name, value, f.shape[0], f.shape[1])
    if f.is_video:
        if not isinstance(value, np.ndarray):
            raise FrameError(f"add_frame(): {f.name!r} must be a numpy uint8 array of shape {f.shape}, "
                             f"got {type(value).__name__}")
        if value.dtype != np.uint8:
            raise FrameError(f"add_frame(): {f.name!r} must have dtype uint8, got {value.dtype}")
        if value.shape != f.shape:
            raise FrameError(f"add_frame(): {f.name!r} must have shape {f.shape} (height, width, channels), "
                             f"got {value.shape}")
        return value
    if f.dtype == "string":
        if not isinstance(value, str):
            raise FrameError(f"add_frame(): {f.name!r} must be a str, got {type(value).__name__}")
        return value
    arr = np.asarray(value)
    expected = np.dtype(f.dtype)
    if not np.can_cast(arr.dtype, expected, casting="same_kind"):
        raise FrameError(f"add_frame(): {f.name!r} must have dtype {expected} (or one that converts to it "
                         f"without changing kind), got {arr.dtype}")
    if arr.shape != f.shape and not (f.shape == (1,) and arr.shape == ()):
        raise FrameError(f"add_frame(): {f.name!r} must have shape {f.shape}, got {arr.shape}")
    if expected.kind in "iu" and arr.dtype.kind in "iu" and arr.dtype != expected:
        limits = np.iinfo(expected)
        outside = (arr < limits.min) | (arr > limits.max)
        if outside.any():
            i = int(np.flatnonzero(outside.ravel())[0])
            raise FrameError(f"add_frame(): {f.name!r} element {i} = {arr.ravel()[i]} does not fit its dtype "
                             f"{expected} ({limits.min}..{limits.max})")
    # Always a copy: the row is kept until save_episode, and a loop may refill one array every tick.
    return np.array(arr, dtype=expected).reshape(f.shape)
