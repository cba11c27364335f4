"""`streamrec transcode SRC --output OUT --vcodec ... [--crf --preset --g --pix_fmt] [--ray ...]`:
a thin wrapper around `streamrec.transcode()`.

Exit codes: 0 transcoded, 1 could not (the source is unsound), 2 bad arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from streamrec import transcode
from streamrec.encode._codecs import VCODEC_CHOICES
from streamrec.fleet._transcode import TranscodeReport, parse_encoder

from ._fleet import add_ray_flags, run_operation

_MB = 2**20


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transcode", help="re-encode every video of a dataset (e.g. h264 -> AV1); rows and frames stay 1:1",
        description="Write a copy of a dataset with every video decoded and encoded again with new settings; data "
                    "rows, tasks, stats, drop counts and metadata are kept, each episode keeps exactly its frames. "
                    "OUT appears complete or not at all. Exit code 0: transcoded; 1: could not; 2: bad arguments.")
    parser.add_argument("source", type=Path, metavar="SRC", help="dataset folder")
    parser.add_argument("--output", "-o", type=Path, required=True, metavar="OUT", help="new dataset folder")
    parser.add_argument("--vcodec", required=True, choices=VCODEC_CHOICES, metavar="VCODEC",
                        help="encoder: libsvtav1 (av1), h264, hevc, a hardware encoder, or auto (the first that "
                             "works here, see `streamrec probe`)")
    parser.add_argument("--crf", type=float, default=None, help="constant quality (default: 30)")
    parser.add_argument("--preset", default=None, help="speed preset: 0..13 for libsvtav1 (default 12), a name such "
                                                       "as veryfast for h264/hevc")
    parser.add_argument("--g", type=int, default=None, help="keyframe interval in frames (default: 2)")
    parser.add_argument("--pix_fmt", default=None, help="pixel format of the stream (default: yuv420p)")
    parser.add_argument("--encoder-threads", type=int, default=1, metavar="N",
                        help="codec threads per task (default: 1; fixed so that a task encodes the same anywhere)")
    add_ray_flags(parser, "episode and camera")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    def work(progress: object) -> TranscodeReport:
        encoder = parse_encoder(args.vcodec, crf=args.crf, preset=args.preset, g=args.g, pix_fmt=args.pix_fmt)
        return transcode(args.source, args.output, encoder, encoder_threads=args.encoder_threads, ray=args.ray,
                         workers=args.workers, progress=progress)

    report = run_operation("transcode", args, work)
    if isinstance(report, int):
        return report
    out = Console(highlight=False)
    encoders = ", ".join(f"{k} {'+'.join(dict.fromkeys(v))}" for k, v in report.encoders.items())
    out.print(f"Transcoded {report.source} into {report.output}: {report.episodes} episode(s), {report.frames} rows; "
              f"{encoders}; video {report.source_video_bytes / _MB:.1f} MB -> {report.video_bytes / _MB:.1f} MB; "
              f"{report.frames_per_s:.1f} frames/s in {report.elapsed_s:.1f} s ({report.runner})")
    for fallback in report.fallbacks:
        out.print(f"[yellow]fallback: {fallback}[/yellow]")
    out.print(f"Check it with: streamrec verify {report.output}")
    return 0
