"""The dataset's parquet tables as arrow builds and writes them: rows, episodes, tasks.

`finalize()` assembles the journaled episodes (`_journal`) into `data/…parquet` (one row group
per episode), `meta/episodes/…parquet` and `meta/tasks.parquet`. A data file is written once,
whole, so no parquet file of the dataset is ever left without its footer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._durable import fsync_replace, write_parquet_atomic
from ._features import Feature
from ._journal import EpisodeJournal
from ._layout import FileIndex, Layout
from ._stats import Stats


def _arrow_type(f: Feature) -> pa.DataType:
    if f.dtype == "string":
        return pa.string()
    scalar = pa.from_numpy_dtype(np.dtype(f.dtype))
    return scalar if f.shape == (1,) else pa.list_(scalar, f.shape[0])


def data_schema(table_features: Sequence[Feature]) -> pa.Schema:
    """Schema of `data/…parquet`: the user's non-video features, then the five default columns."""
    fields = [pa.field(f.name, _arrow_type(f)) for f in table_features]
    fields += [pa.field("timestamp", pa.float32()), pa.field("frame_index", pa.int64()),
               pa.field("episode_index", pa.int64()), pa.field("index", pa.int64()),
               pa.field("task_index", pa.int64())]
    return pa.schema(fields)


def episode_table(table_features: Sequence[Feature], values: dict[str, np.ndarray | list],
                  *, episode_index: int, first_index: int, task_indices: np.ndarray,
                  fps: int) -> pa.Table:
    """The rows of one episode. `values[name]` is (N,) or (N, D) for numbers, a list for strings."""
    n = len(task_indices)
    columns = []
    for f in table_features:
        v = values[f.name]
        if f.dtype == "string":
            columns.append(pa.array(v, pa.string()))
            continue
        arr = np.asarray(v, dtype=f.dtype)
        if f.shape == (1,):
            columns.append(pa.array(arr.reshape(n)))
        else:
            columns.append(pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), f.shape[0]))
    frame_index = np.arange(n, dtype=np.int64)
    columns += [
        pa.array((frame_index / fps).astype(np.float32)),
        pa.array(frame_index),
        pa.array(np.full(n, episode_index, np.int64)),
        pa.array(np.arange(first_index, first_index + n, dtype=np.int64)),
        pa.array(task_indices.astype(np.int64)),
    ]
    return pa.Table.from_arrays(columns, schema=data_schema(table_features))


def stats_to_json(stats: dict[str, Stats]) -> dict[str, dict[str, list]]:
    return {name: {k: np.asarray(v).tolist() for k, v in s.items()} for name, s in stats.items()}


def conform(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """`table` with the columns, order and types of `schema` (an existing file's, when appending
    to a dataset another writer made: every file of a kind must share one schema)."""
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{what}: the dataset's files have column(s) {missing} that streamrec does not write")
    return table.select(schema.names).cast(schema)


def write_data_files(layout: Layout, journal: EpisodeJournal, metas: Sequence[dict[str, Any]],
                     schema: pa.Schema) -> None:
    """Write each data file from the journaled episodes assigned to it, one row group per episode."""
    by_file: dict[FileIndex, list[int]] = {}
    for m in metas:
        by_file.setdefault(FileIndex(m["data/chunk_index"], m["data/file_index"]), []).append(m["episode_index"])
    for at, episodes in by_file.items():
        path = layout.data(at)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with pq.ParquetWriter(tmp, schema) as writer:
            for e in episodes:
                writer.write_table(conform(journal.read_rows(e), schema, "data"), row_group_size=1 << 30)
        fsync_replace(tmp, path)


def episodes_table(metas: Sequence[dict[str, Any]]) -> pa.Table:
    """The `meta/episodes` rows: one per episode, columns in the order of the first row."""
    columns = list(metas[0].keys())
    types = {"tasks": pa.list_(pa.string())}
    arrays = []
    for c in columns:
        values = [m[c] for m in metas]
        if c in types:
            arrays.append(pa.array(values, types[c]))
        elif c.endswith("/dropped_slots"):
            arrays.append(pa.array(values, pa.list_(pa.int64())))
        elif c.endswith("/adaptations"):
            arrays.append(pa.array(values, pa.list_(pa.string())))
        elif c.endswith(("_timestamp", "_s")):
            arrays.append(pa.array(values, pa.float64()))
        elif c.startswith("stats/"):
            arrays.append(pa.array(values))
        else:
            arrays.append(pa.array(values, pa.int64()))
    return pa.Table.from_arrays(arrays, names=columns)


def write_tasks_file(path: Path, tasks: Iterable[str]) -> None:
    """`meta/tasks.parquet`: rows sorted by task_index (the loader picks tasks by position).

    The loader reads this file with pandas and takes the task text from the frame's index, so
    the file carries the pandas metadata that makes the `task` column that index.
    """
    tasks = list(tasks)
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    schema = pa.schema([pa.field("task_index", pa.int64()), pa.field("task", pa.string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    table = pa.table([pa.array(range(len(tasks)), pa.int64()), pa.array(tasks, pa.string())], schema=schema)
    write_parquet_atomic(path, table)


def as_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A scalar or list column as a float64 [rows, dims] array."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
        rows = len(col)
        flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        return flat.reshape(rows, -1) if rows else np.zeros((0, 0))
    return col.to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 1)
