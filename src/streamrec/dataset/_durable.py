"""Writes that a crash leaves as the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from ._layout import Layout


def fsync_replace(tmp: Path, path: Path) -> None:
    """Sync `tmp` to disk, then rename it over `path`."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """Sync a folder, so that renames inside it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    fsync_replace(tmp, path)


def write_parquet_atomic(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, row_group_size=max(1, table.num_rows))
    fsync_replace(tmp, path)


def remove_work(layout: Layout) -> None:
    """Remove the recorder's work folder from a dataset whose files are complete.

    Renamed first, in one step, then deleted: a crash in the middle of deleting it must not leave a
    half-emptied journal where repair would take it for an interrupted recording and rebuild the
    tables from what is left of it.
    """
    shutil.rmtree(layout.finished_work, ignore_errors=True)  # left by a crash during an earlier removal
    if layout.work.exists():
        os.replace(layout.work, layout.finished_work)
        fsync_dir(layout.root)
    shutil.rmtree(layout.finished_work, ignore_errors=True)
