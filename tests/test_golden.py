"""The same input gives the same dataset: tables, metadata and decoded frames equal to the fixture.

The fixture (`tests/data/golden/`) was written before the code was reorganised into stages; this
test is what says the reorganisation (and any later refactor) changed no output.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers.frames import decode
from helpers.golden import GOLDEN, PATHS, record_golden


def _files(root, pattern):
    return sorted(p.relative_to(root).as_posix() for p in root.glob(pattern))


@pytest.mark.parametrize("path", PATHS)
def test_same_input_same_dataset(tmp_path, path):
    want = GOLDEN / path
    got = tmp_path / path
    record_golden(got, path)

    assert _files(got, "**/*") == _files(want, "**/*")
    for name in ("meta/info.json", "meta/stats.json"):
        assert json.loads((got / name).read_text()) == json.loads((want / name).read_text()), name
    for name in _files(want, "**/*.parquet"):
        a, b = pq.read_table(got / name), pq.read_table(want / name)
        assert a.schema.remove_metadata() == b.schema.remove_metadata(), name
        if "wall_time_s" in a.column_names:  # how long recording the episode took: never the same twice
            assert all(t > 0 for t in a.column("wall_time_s").to_pylist())
            a, b = a.drop_columns(["wall_time_s"]), b.drop_columns(["wall_time_s"])
        assert a.to_pylist() == b.to_pylist(), name
    for name in _files(want, "videos/**/*.mp4"):
        a, b = decode(got / name), decode(want / name)
        assert a.pts_s == b.pts_s, name
        assert len(a.frames) == len(b.frames)
        for i, (x, y) in enumerate(zip(a.frames, b.frames)):
            assert np.array_equal(x, y), f"{name}: frame {i} differs"
