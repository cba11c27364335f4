"""`streamrec verify DATASET... [--json] [--ray ...]`: a thin wrapper around `streamrec.verify()`
(`streamrec.verify_many()` for several datasets).

Exit codes: 0 healthy (warnings allowed), 1 problems found, 2 not a dataset; with several datasets,
the worst of theirs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from streamrec import ConfigError, verify, verify_many
from streamrec.check import Severity, VerifyReport
from streamrec.cli import _tables
from streamrec.fleet import worst_exit_code

from ._fleet import add_ray_flags, progress_bars

_STYLE = {"ok": "green", "info": "cyan", "warning": "yellow", "error": "bold red"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify", help="check a dataset: metadata, rows, every video decoded, drops and timing",
        description="Check a LeRobot v3.0 dataset the way the loader will use it. Every MP4 is decoded once. "
                    "Exit code 0: healthy (warnings allowed); 1: problems found; 2: not a dataset.")
    parser.add_argument("dataset", type=Path, nargs="+", metavar="DATASET",
                        help="dataset folder (the one holding meta/); several: each is checked, a summary table "
                             "follows, the exit code is the worst")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of tables (a list of "
                                                            "reports for several datasets)")
    add_ray_flags(parser, "dataset")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if len(args.dataset) > 1 or args.ray is not None:
        return run_many(args)
    report = verify(args.dataset[0])
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(report, Console(highlight=False))
    return report.exit_code


def render(report: VerifyReport, console: Console) -> None:
    """Print the per-episode table, the findings and a one-line verdict."""
    if report.rows:
        console.print(f"streamrec verify {report.root}")
        console.print(_rows_table(report))
    if report.findings:
        # A list, not a table: messages are long and stay readable in an 80-column log.
        console.print(Text("Findings", "bold"))
        for f in report.findings:
            where = [f"episode {f.episode}" if f.episode is not None else "", f.camera or "",
                     f.file if f.file and f.episode is None and f.camera is None else ""]
            console.print(Text.assemble((f"{f.severity.value:<8}", _STYLE[f.severity.value]), (f.code, "bold"),
                                        ("  " + " ".join(w for w in where if w), "dim")))
            console.print(Padding(Text(f.message), (0, 0, 0, 8)))
    info = sum(f.severity is Severity.INFO for f in report.findings)
    counts = f"{len(report.errors)} error(s), {len(report.warnings)} warning(s), {info} note(s)"
    if not report.is_dataset:
        console.print(Text(f"Not a dataset: {report.root}", _STYLE["error"]))
    elif report.healthy and report.episodes == 0:
        console.print(Text(f"Empty: {report.root} holds no episode (none was saved); its files are "
                           f"consistent; {counts}", _STYLE["warning"]))
    elif report.healthy:
        console.print(Text(f"Healthy: {report.episodes} episode(s) x {len(report.cameras)} camera(s), "
                           f"{report.frames} frames; {counts}; checked in {report.elapsed_s:.2f} s", _STYLE["ok"]))
    else:
        console.print(Text(f"Problems found: {counts}; checked in {report.elapsed_s:.2f} s", _STYLE["error"]))


def _rows_table(report: VerifyReport) -> Table:
    timing = any(r.interval_p50_ms is not None for r in report.rows)
    t = _tables.table()
    for header, right in (("Episode", True), ("Camera", False), ("Frames", True), ("Rows", True),
                          ("Dropped", True)):
        _tables.column(t, header, right=right)
    if timing:
        _tables.column(t, "Capture ms", right=True)
        _tables.column(t, "Skew ms", right=True)
    _tables.column(t, "Status")
    for r in report.rows:
        frames = "-" if r.frames is None else str(r.frames)
        rows = "-" if r.rows is None else str(r.rows)
        drops = "-" if r.dropped is None else str(r.dropped) if not r.dropped else f"{r.dropped} ({r.dropped_pct:.1f}%)"
        cells = [str(r.episode), r.camera.removeprefix("observation.images."), frames, rows, drops]
        if timing:
            cells.append("-" if r.interval_p50_ms is None else f"{r.interval_p50_ms:.1f}/{r.interval_p99_ms:.1f}")
            cells.append("-" if r.skew_p99_ms is None else f"{r.skew_p99_ms:.1f}")
        t.add_row(*cells, Text(r.status, _STYLE[r.status]))
    if timing:
        t.caption = "Capture ms: interval between rows' capture times, p50/p99; Skew: spread across cameras, p99"
        t.caption_justify = "left"
    return t


def run_many(args: argparse.Namespace) -> int:
    """Several datasets: each one's findings when it has any, then one summary row per dataset."""
    console = Console(highlight=False)
    try:
        with progress_bars(Console(stderr=True), not args.no_progress and not args.json) as progress:
            reports = verify_many(args.dataset, ray=args.ray, workers=args.workers, progress=progress)
    except ConfigError as e:
        print(f"streamrec verify: {e}", file=sys.stderr)
        return 2
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return worst_exit_code(reports)
    if len(reports) == 1:
        render(reports[0], console)
        return reports[0].exit_code
    for report in reports:
        if report.findings and not report.healthy:
            console.print(Text(f"{report.root}", "bold"))
            render(dataclasses.replace(report, rows=()), console)  # its findings; the table is for one dataset
    console.print(f"streamrec verify: {len(reports)} datasets")
    table = _tables.table()
    for column in ("Dataset", "Episodes", "Frames", "Cameras", "Errors", "Warnings", "Seconds", "Status"):
        _tables.column(table, column, right=column not in ("Dataset", "Status"))
    table.columns[0].no_wrap, table.columns[0].overflow = False, "fold"  # a path may be longer than the line
    for r in reports:
        status = "not a dataset" if not r.is_dataset else "healthy" if r.healthy else "problems"
        style = _STYLE["ok"] if r.healthy else _STYLE["error"]
        table.add_row(str(r.root), str(r.episodes), str(r.frames), str(len(r.cameras)), str(len(r.errors)),
                      str(len(r.warnings)), f"{r.elapsed_s:.2f}", Text(status, style))
    console.print(table)
    healthy = sum(r.healthy for r in reports)
    console.print(Text(f"{healthy} of {len(reports)} dataset(s) healthy; "
                       f"{sum(r.episodes for r in reports)} episode(s), {sum(r.frames for r in reports)} frames",
                       _STYLE["ok"] if healthy == len(reports) else _STYLE["error"]))
    return worst_exit_code(reports)
