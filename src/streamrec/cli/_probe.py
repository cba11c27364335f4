"""`streamrec probe [--width W --height H --fps F] [--json] [--refresh]`: a thin wrapper around `probe()`.

Exit codes: 0 done (whatever works); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from streamrec import ConfigError, probe
from streamrec.cli import _tables
from streamrec.encode import ProbeReport


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe", help="which video encoders work on this machine, how fast, and what vcodec=auto picks",
        description="Try each video encoder by encoding a few frames at the cameras' size (each in a child process "
                    "with a deadline), and say what --dataset.camera_encoder.vcodec=auto would pick. Results are "
                    "cached per machine; --refresh measures again. Exit code 0: done; 2: bad arguments.")
    parser.add_argument("--width", type=int, default=640, help="camera width in pixels (default: 640)")
    parser.add_argument("--height", type=int, default=480, help="camera height in pixels (default: 480)")
    parser.add_argument("--fps", type=int, default=30, help="frames per second (default: 30)")
    parser.add_argument("--pix-fmt", default="yuv420p", help="pixel format of the stream (default: yuv420p)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="per encoder, before it counts as hung (default: 20)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--refresh", action="store_true", help="measure again instead of reading the cache")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from streamrec import EncoderConfig

    for name in ("width", "height", "fps"):
        value = getattr(args, name)
        if value <= 0 or (name != "fps" and value % 2):
            rule = "an integer > 0" if name == "fps" else "an even integer > 0"
            print(f"streamrec probe: --{name}={value}: must be {rule}", file=sys.stderr)
            return 2
    kwargs = {} if args.timeout is None else {"timeout_s": args.timeout}
    try:
        report = probe(width=args.width, height=args.height, fps=args.fps, refresh=args.refresh,
                       encoder=EncoderConfig(vcodec="auto", pix_fmt=args.pix_fmt), **kwargs)
    except ConfigError as e:
        print(f"streamrec probe: {e}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(report, Console(highlight=False))
    return 0


def render(report: ProbeReport, console: Console) -> None:
    """One row per encoder, then what `auto` picks."""
    first = report.results[0] if report.results else None
    size = f"{first.width}x{first.height} {first.pix_fmt} at {first.fps} fps" if first else ""
    console.print(f"streamrec probe: {size}")
    table = _tables.table()
    fps = first.fps if first else "?"
    for header, right in (("Encoder", False), ("Family", False), ("Built in", False), ("Works", False),
                          ("ms/frame", True), ("CPU ms", True), (f"Cams@{fps}", True)):
        _tables.column(table, header, right=right)
    for r in report.results:
        works = Text("yes", "green") if r.works else Text("no", "red" if r.compiled_in else "dim")
        name = Text(r.encoder, "bold" if r.encoder == report.auto else "")
        table.add_row(name, r.family, "yes" if r.compiled_in else "no", works,
                      "-" if r.ms_per_frame is None else f"{r.ms_per_frame:.1f}",
                      "-" if r.cpu_ms_per_frame is None else f"{r.cpu_ms_per_frame:.1f}",
                      "-" if r.max_cameras is None else str(r.max_cameras))
    console.print(table)
    failed = [r for r in report.results if r.compiled_in and not r.works]
    if failed:
        console.print("Why not:")
        for r in failed:
            console.print(Padding(Text.assemble((r.encoder, "bold"), f" ({r.platform}): {r.error or 'failed'}"),
                                  (0, 0, 0, 2)))
    cached = sum(r.cached for r in report.results)
    console.print(f"vcodec=auto picks [bold]{report.auto}[/bold] here. CPU ms: CPU time per frame over the encoder's "
                  f"threads. Cams@{fps}: streams of this size the machine's cores (and for hardware, the device) keep "
                  "up with by this measurement alone; leave room for the capture loop.")
    if cached:
        console.print(Text(f"{cached} result(s) from the cache {report.cache_file}; --refresh measures again.", "dim"))
