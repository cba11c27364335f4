"""Small real datasets for the verify tests, and the ways the tests damage copies of them.

Shared by tests/test_verify.py and tests/cli/test_verify.py (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamrec import DatasetRecorder, EncoderConfig

FPS = 30
TOP = "observation.images.top"
WRIST = "observation.images.wrist"
CAMERAS = (TOP, WRIST)
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"
DATA_FILE = "data/chunk-000/file-000.parquet"


def video_file(camera: str) -> str:
    return f"videos/{camera}/chunk-000/file-000.mp4"


def record_dataset(root: Path, lengths: Sequence[int] = (100, 20, 30)) -> Path:
    """Record a dataset with two 64x48 cameras and a float32 vector, one episode per length.

    H.264 ultrafast is the quickest encoder; "block" guarantees no frame is dropped even on a
    busy machine, so the healthy dataset is the same every time.
    """
    features = {
        TOP: {"dtype": "video", "shape": [48, 64, 3]},
        WRIST: {"dtype": "video", "shape": [48, 64, 3]},
        "observation.state": {"dtype": "float32", "shape": [3]},
    }
    rng = np.random.default_rng(7)
    with DatasetRecorder.create(root, FPS, features, queue_full_policy="block",
                                camera_encoder=EncoderConfig(vcodec="h264", preset="ultrafast")) as rec:
        for length in lengths:
            for i in range(length):
                rec.add_frame({
                    TOP: rng.integers(0, 255, (48, 64, 3), dtype=np.uint8),
                    WRIST: np.full((48, 64, 3), (i * 7) % 256, np.uint8),
                    "observation.state": np.array([i, i / 2, -i], np.float32),
                    "task": "pick" if length % 2 else "place",
                })
            rec.save_episode()
    return root


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def update_info(root: Path, **changes: Any) -> None:
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    info.update(changes)
    path.write_text(json.dumps(info, indent=2))


def rewrite_column(path: Path, name: str, change: Callable[[list], list]) -> None:
    """Replace one column of a parquet file by `change(old values)`, keeping its type."""
    table = pq.read_table(path)
    i = table.schema.get_field_index(name)
    field = table.schema.field(i)
    values = change(table.column(name).to_pylist())
    pq.write_table(table.set_column(i, field, pa.array(values, field.type)), path)


def add_column(path: Path, name: str, values: np.ndarray) -> None:
    table = pq.read_table(path)
    pq.write_table(table.append_column(name, pa.array(values)), path)


def drop_column(path: Path, name: str) -> None:
    pq.write_table(pq.read_table(path).drop_columns([name]), path)


def truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def remux(path: Path, *, drop: int | None = None, faststart: bool = False) -> None:
    """Copy the MP4's packets into a new MP4, leaving out packet number `drop`; the others keep
    their timestamps. `faststart` puts the index (moov) before the frames, as LeRobot writes."""
    tmp = path.with_name("remux.mp4")
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path)) as src, av.open(str(tmp), "w", format="mp4", options=options) as dst:
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        n = 0
        for packet in src.demux(stream):
            if packet.dts is None:  # the demuxer's empty flush packet
                continue
            if n != drop:
                packet.stream = out
                dst.mux(packet)
            n += 1
    tmp.replace(path)
