"""`streamrec merge SRC... --output OUT [--rename OLD=NEW] [--ray ...]`: a thin wrapper around `streamrec.merge()`.

Exit codes: 0 merged, 1 could not merge (the sources differ, or one is unsound), 2 bad arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from streamrec import merge

from ._fleet import add_ray_flags, run_operation

_MB = 2**20


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge", help="merge datasets (streamrec's or LeRobot's) into one; video copied, never re-encoded",
        description="Merge LeRobot v3.0 datasets written by streamrec or by LeRobot into a new one. Video packets are "
                    "copied (sources with different stream parameters go to separate files of the camera), tasks "
                    "unified, episode and frame indices renumbered, per-episode stats and drop counts kept, dataset "
                    "stats recomputed. A difference in fps or in a feature (name, dtype, shape) is refused before "
                    "anything is written. Sources are never written to; OUT appears complete or not at all (run "
                    "an interrupted merge again). Exit code 0: merged; 1: could not merge; 2: bad arguments.")
    parser.add_argument("sources", type=Path, nargs="+", metavar="SRC", help="dataset folders, in episode order")
    parser.add_argument("--output", "-o", type=Path, required=True, metavar="OUT", help="new dataset folder")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                        help="rename a feature key in every source that has it (one camera recorded under two "
                             "names); repeat for more")
    add_ray_flags(parser, "output camera file and data file")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = run_operation("merge", args, lambda progress: merge(
        args.sources, args.output, rename=args.rename, ray=args.ray, workers=args.workers, progress=progress))
    if isinstance(report, int):
        return report
    out = Console(highlight=False)
    files = ", ".join(f"{k} {n}" for k, n in report.video_files.items())
    out.print(f"Merged {len(report.sources)} dataset(s) into {report.output}: {report.episodes} episode(s), "
              f"{report.frames} frames, {report.tasks} task(s); video files: {files}; "
              f"{report.video_bytes / _MB:.1f} MB of video copied in {report.elapsed_s:.1f} s ({report.runner})")
    for old, new in report.renamed.items():
        out.print(f"  renamed {old} -> {new}")
    for note in report.notes:
        out.print(f"[yellow]note: {note}[/yellow]")
    out.print(f"Check it with: streamrec verify {report.output}")
    return 0
