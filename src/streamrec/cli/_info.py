"""`streamrec info DATASET [--json]`: a thin wrapper around `streamrec.summarize()`.

Exit codes: 0 done, 2 not a dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from streamrec import DatasetError, summarize
from streamrec.check import DatasetSummary
from streamrec.cli import _tables

_MB = 2**20


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="summarize a dataset: episodes, frames, cameras (codec, size, drops), tasks",
        description="Summarize a LeRobot v3.0 dataset from its tables and video headers (no video is decoded; "
                    "`streamrec verify` checks it). Exit code 0: done; 2: not a dataset.")
    parser.add_argument("dataset", type=Path, metavar="DATASET", help="dataset folder (the one holding meta/)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        summary = summarize(args.dataset)
    except DatasetError as e:
        print(f"streamrec info: not a dataset: {e}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(summary.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(summary, Console(highlight=False))
    return 0


def render(summary: DatasetSummary, console: Console) -> None:
    """The cameras table, the totals, the tasks table and any notes."""
    console.print(f"streamrec info {summary.root}")
    cameras = _tables.table()
    for header, right in (("Camera", False), ("Codec", False), ("Size", True), ("FPS", True), ("Files", True),
                          ("MB", True), ("MB/min", True), ("Dropped", True)):
        _tables.column(cameras, header, right=right)
    for c in summary.cameras:
        codec = (c.codec or "?") + (" (depth)" if c.depth else "")
        cameras.add_row(c.name, codec, f"{c.width}x{c.height}", _text(c.fps), str(c.files),
                        f"{c.size_bytes / _MB:.2f}", "-" if c.mb_per_minute is None else f"{c.mb_per_minute:.1f}",
                        Text(_text(c.dropped_frames), "yellow" if c.dropped_frames else ""))
    console.print(cameras)
    for c in summary.cameras:
        if c.depth:
            console.print(f"Depth {c.name}: {c.depth}")
    duration = "-" if summary.duration_s is None else _duration(summary.duration_s)
    console.print(f"{summary.episodes} episode(s), {summary.frames} frames, {duration} at {_text(summary.fps)} fps; "
                  f"{summary.dropped_frames} frame(s) dropped; {summary.size_bytes / _MB:.2f} MB on disk")
    if summary.tasks:
        tasks = _tables.table()
        for header, right in (("Task", False), ("Episodes", True), ("Frames", True)):
            _tables.column(tasks, header, right=right)
        tasks.columns[0].no_wrap = False  # a task is a sentence: it may wrap between words
        for t in summary.tasks:
            tasks.add_row(t.task, str(t.episodes), _text(t.frames))
        console.print(tasks)
    for note in summary.notes:
        console.print(Text(f"note: {note}", "yellow"))


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{seconds:.1f} s" if not minutes else f"{int(minutes)} min {rest:.0f} s"
