"""What the fleet commands (`merge`, `transcode`, `verify` of many datasets) share: the Ray flags and a progress bar."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from streamrec import ConfigError, DatasetError
from streamrec.fleet import TaskProgress


def add_ray_flags(parser: argparse.ArgumentParser, unit: str) -> None:
    parser.add_argument("--ray", metavar="local|auto|ADDRESS", default=None,
                        help=f"run the work as Ray tasks (one per {unit}): `local` starts Ray on this machine, `auto` "
                             "or an address (e.g. 10.0.0.5:6379) joins a running cluster, whose nodes must see the "
                             "datasets at the same paths. Default: in this process, without Ray. Needs "
                             "`pip install 'streamrec[ray]'`")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="with --ray: tasks at once (default: every CPU of the cluster; with `local`, this "
                             "machine's CPUs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


@contextmanager
def progress_bars(console: Console, enabled: bool) -> Iterator[object]:
    """A callback for the operations' `progress=`: one bar per stage."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[units]}"), TimeElapsedColumn(), TimeRemainingColumn())
    bars = Progress(*columns, console=console, transient=False)
    ids: dict[str, int] = {}

    def update(p: TaskProgress) -> None:
        if not ids:
            bars.start()  # at the first task: an operation refused before any work prints no bar
        if p.stage not in ids:
            ids[p.stage] = bars.add_task(p.stage, total=p.total, units="")
        units = f"{p.units_done:,.0f}/{p.units_total:,.0f} {p.unit}" if p.unit else ""
        bars.update(ids[p.stage], completed=p.done, total=p.total, units=units)

    try:
        yield update
    finally:
        if ids:
            bars.stop()


def message(error: Exception, command: str) -> str:
    """The error for the command line: `streamrec merge: <what>` (without the library's own `merge: `)."""
    return f"streamrec {command}: {str(error).removeprefix(command + ': ')}"


def run_operation(command: str, args: argparse.Namespace, work: Callable[[Any], Any]) -> Any:
    """`work(progress)` under progress bars (unless --no-progress or --json). A refusal is printed and its exit
    code returned instead of a report: 2 for bad arguments, 1 for a dataset that cannot be used; with --json the
    report is printed and 0 returned."""
    console = Console(highlight=False, stderr=True)
    try:
        with progress_bars(console, not args.no_progress and not args.json) as progress:
            report = work(progress)
    except ConfigError as e:
        print(message(e, command), file=sys.stderr)
        return 2
    except DatasetError as e:
        print(message(e, command), file=sys.stderr)
        return 1
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    return report
