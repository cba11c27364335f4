"""`streamrec repair DATASET [--json]`: finish what an interrupted recording left.

Exit codes: 0 repaired (or nothing to do), 1 could not repair, 2 not a dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from streamrec import DatasetError, repair
from streamrec.record import EncodeProgress


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "repair", help="finish an interrupted recording: keep every saved episode, remove the rest",
        description="Finish what an interrupted recording (killed, power cut, crash during finalize) left in a "
                    "dataset: rebuild open MP4s from their packet spools, encode saved PNG episodes, remove the "
                    "episode that was being recorded and anything no saved episode uses, and write the tables. "
                    "Safe to run twice. Exit code 0: repaired or nothing to do; 1: could not repair; "
                    "2: not a dataset.")
    parser.add_argument("dataset", type=Path, metavar="DATASET", help="dataset folder (the one holding meta/)")
    parser.add_argument("--json", action="store_true", help="print what was done as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False, stderr=args.json)
    if not (args.dataset / "meta" / "info.json").is_file():
        print(f"streamrec repair: not a dataset: {args.dataset} has no meta/info.json", file=sys.stderr)
        return 2

    def progress(p: EncodeProgress) -> None:
        console.print(f"encoding saved episode {p.episode_index} ({p.camera}): {p.frames_done}/{p.frames_total}")

    try:
        report = repair(args.dataset, progress=progress)
    except DatasetError as e:
        print(f"streamrec repair: {e}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not report.interrupted:
        console.print(f"{args.dataset}: not interrupted; nothing to repair")
        return 0
    kept = f"its {len(report.episodes_kept)} saved episode(s) ({_span(report.episodes_kept)} of the dataset)" \
        if report.episodes_kept else "no saved episode"
    console.print(f"Repaired {args.dataset}: kept {kept} of the interrupted recording")
    if report.episodes_encoded:
        console.print(f"  encoded the saved PNGs of {_span(report.episodes_encoded)}")
    for path in report.videos_rebuilt:
        console.print(f"  rebuilt {path.relative_to(args.dataset)} from its packet spools")
    for line in report.removed:
        console.print(f"  removed {line}")
    console.print(f"Check it with: streamrec verify {args.dataset}")
    return 0


def _span(indices: list[int]) -> str:
    """`episode 3` or `episodes 3-7` (dataset episode indices)."""
    return f"episode {indices[0]}" if len(indices) == 1 else f"episodes {indices[0]}-{indices[-1]}"
