"""`streamrec bench --cameras N --width W --height H --fps F`: a thin wrapper around `bench()`.

Exit codes: 0 a setting keeps up (the recommendation is printed); 1 none does (or no encoder works
here); 2 bad arguments, a budget too small for one trial, or --plot without matplotlib; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from streamrec import ConfigError, bench
from streamrec.bench import BenchReport
from streamrec.bench._bench import SUSTAIN_MARGIN, BenchProgress, check_request
from streamrec.cli import _tables

_OUTPUT_RESERVE_S = 0.3
"""Budget kept for printing the results."""
_PLOT_RESERVE_S = 1.0
"""Budget kept for drawing and writing the PNG (matplotlib is imported before the trials)."""
_STARTUP_WINDOW_S = 10.0
"""A process younger than this when the command starts is taken to be this command: its start-up
(Python, imports: ~0.7 s here) counts against the budget. An older one (tests, a notebook calling
main()) counts from here."""

_DESCRIPTION = (
    "Measure this machine for a camera layout: for each encoder that works here (see `streamrec probe`), a few "
    "speed presets and encoder_threads values, record with the real streaming pipeline (a temporary dataset, one "
    "encoder process per camera, the block policy) for a few seconds, fed as fast as the encoders take frames. "
    "Each setting gets the frame rate it sustains per camera, all cameras at once, and the CPU headroom left for "
    "the control loop when recording at --fps: 1 - fps x (cameras x encoder CPU per frame + add_frame CPU per "
    f"tick) / cores. A setting keeps up when it sustains at least {SUSTAIN_MARGIN:g} x --fps. Prints a ranked "
    "table: first the settings that keep up with at least 25 % of the CPU to spare, best stream first (AV1, then "
    "HEVC, then H.264; a slower preset first); then the other settings that keep up, by headroom (ties within 5 "
    "points going to the slower preset); then the rest by rate. The top one is the recommendation, with the exact "
    "`streamrec record` flags. Everything, probe included, fits "
    "--budget-s: trials share it, and settings that do not fit are dropped (least promising first: slower "
    "presets, more threads) and listed. Figures from a machine doing other work are noisy: run it when the robot "
    "computer is as busy as it will be while recording, or quieter. Exit codes: 0 a setting keeps up; 1 none "
    "does (or no encoder works); 2 bad arguments, a budget too small or --plot without matplotlib; 130 Ctrl-C.")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="which encoder settings record this camera layout here, with how much CPU to spare",
        description=_DESCRIPTION)
    parser.add_argument("--cameras", type=int, default=3, help="cameras recorded at once (default: 3)")
    parser.add_argument("--width", type=int, default=640, help="camera width in pixels (default: 640)")
    parser.add_argument("--height", type=int, default=480, help="camera height in pixels (default: 480)")
    parser.add_argument("--fps", type=int, default=30, help="frames per second of each camera (default: 30)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="length of the episodes you will record (default: 20). Only used to tell the disk space "
                             "per episode: with streaming encoding the rate a setting sustains and its memory do not "
                             "change with the episode's length (frames are encoded as they come, packets go to disk), "
                             "so trials of a few seconds tell them")
    parser.add_argument("--footage", type=Path, default=None, metavar="DIR",
                        help="feed a folder of <camera>.mkv clips (e.g. ../shared/footage/aloha_insertion), resized "
                             "to --width x --height, one clip per camera in turn; default: the synthetic source")
    parser.add_argument("--vcodec", default=None,
                        help="measure only this encoder (libsvtav1, h264, h264_nvenc, ...; auto: the one "
                             "vcodec=auto picks here); default: every encoder that works here")
    parser.add_argument("--budget-s", type=float, default=60.0, metavar="SECONDS",
                        help="time for the whole command, probe included (default: 60)")
    parser.add_argument("--plot", type=Path, default=None, metavar="PATH",
                        help="write a PNG: frames per second per camera and CPU per setting, with the required "
                             "rate marked (needs pip install 'streamrec[bench]')")
    parser.add_argument("--json", action="store_true",
                        help="print the measurements and the recommendation as JSON (progress still goes to stderr)")
    parser.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                        help="where the trial datasets are written (default: the system's temporary folder); "
                             "point it at the disk you will record to")
    parser.add_argument("--refresh", action="store_true", help="probe the encoders again instead of using the cache")
    parser.set_defaults(run=run)


def _started_at() -> float:
    """time.perf_counter() of the command's start (see _STARTUP_WINDOW_S)."""
    now = time.perf_counter()
    try:
        age = time.time() - psutil.Process().create_time()
    except psutil.Error:
        return now
    return now - age if 0 <= age < _STARTUP_WINDOW_S else now


def _fail(message: str, code: int = 2) -> int:
    Console(stderr=True, highlight=False).print(Text(f"streamrec bench: {message}", "bold red"))
    return code


def run(args: argparse.Namespace) -> int:
    started = _started_at()
    try:
        check_request(args.cameras, args.width, args.height, args.fps, args.seconds, args.budget_s, args.vcodec,
                      args.footage)
    except ConfigError as e:
        return _fail(_as_flags(str(e), args))
    pyplot = None
    if args.plot is not None:
        try:
            pyplot = _import_pyplot()
        except ImportError as e:
            return _fail(f"--plot needs matplotlib, which is not installed ({e}); pip install 'streamrec[bench]'")
        if not args.plot.parent.is_dir():
            return _fail(f"--plot={args.plot}: the folder {args.plot.parent} does not exist")
    if args.work_dir is not None and not args.work_dir.is_dir():
        return _fail(f"--work-dir={args.work_dir}: not a folder")
    keep = _OUTPUT_RESERVE_S + (_PLOT_RESERVE_S if pyplot is not None else 0.0)
    logger = logging.getLogger("streamrec")
    level = logger.level
    quiet = logger.getEffectiveLevel() == logging.INFO
    if quiet:  # the recorder's notes at each encoder start would repeat for every trial
        logger.setLevel(logging.WARNING)
    err = Console(stderr=True, highlight=False)
    try:
        with _Progress(err) as progress:
            report = bench(args.cameras, args.width, args.height, args.fps, seconds=args.seconds,
                           footage=args.footage, vcodec=args.vcodec, budget_s=args.budget_s, budget_started=started,
                           keep_s=keep, work_dir=args.work_dir, refresh_probe=args.refresh, progress=progress)
    except ConfigError as e:
        return _fail(_as_flags(str(e), args))
    except KeyboardInterrupt:
        err.print("streamrec bench: stopped (Ctrl-C); the trial datasets were removed")
        return 130
    finally:
        logger.setLevel(level)
    if pyplot is not None:
        write_plot(report, args.plot, pyplot)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = Console(highlight=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console.width = 160  # a file or a pipe: room for the table's eleven columns
        render(report, console, plot=args.plot)
    return 0 if report.recommendation is not None else 1


def _as_flags(message: str, args: argparse.Namespace) -> str:
    """bench()'s errors name its arguments (`budget_s = 3: ...`); say the flag instead."""
    for name in ("cameras", "width", "height", "fps", "seconds", "footage", "vcodec", "budget_s"):
        prefix = f"{name} = "
        if message.startswith(prefix):
            flag = "--" + name.replace("_", "-")
            value = getattr(args, name)
            shown = f"{value:g}" if isinstance(value, float) else value
            return f"{flag}={shown}: {message.split(': ', 1)[1]}"
    return message


class _Progress:
    """The progress callback: a rich bar on a terminal, one line per step otherwise (CI logs)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: Any = None

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            # The bar and the clock first, at fixed widths: the step's text, which can be long, comes last.
            self.bar = Progress(TextColumn("[bold]streamrec bench", table_column=Column(no_wrap=True)),
                                BarColumn(bar_width=20, table_column=Column(min_width=20)),
                                TimeElapsedColumn(table_column=Column(min_width=7)),
                                TextColumn("{task.fields[budget]}", table_column=Column(no_wrap=True)),
                                TextColumn("{task.fields[step]}", table_column=Column(no_wrap=True, overflow="ellipsis",
                                                                                       ratio=1)),
                                console=self.console, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("bench", total=None, step="", budget="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def __call__(self, p: BenchProgress) -> None:
        if p.phase == "trial":
            step = f"trial {p.trial}/{p.total}: {p.label}"
        elif p.phase == "done":
            step = f"{p.total} trial(s) done"
        else:
            step = p.label
        budget = f"{p.elapsed_s:.0f}/{p.budget_s:.0f} s"
        if self.bar is None:
            print(f"streamrec bench: {step} ({budget})", file=sys.stderr, flush=True)
            return
        completed = p.trial - 1 if p.phase == "trial" else p.trial
        self.bar.update(self.task, total=p.total or None, completed=max(completed, 0), step=step,
                        budget=f"of {p.budget_s:g} s")


# -- output -------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def render(report: BenchReport, console: Console, plot: Path | None = None) -> None:
    """The ranked table, what was not measured, the recommendation or the advice."""
    layout = f"{report.cameras} \u00d7 {report.width}x{report.height} at {report.fps} fps"
    source = "synthetic frames" if report.frames_source == "synthetic" else f"footage {report.frames_source}"
    console.print(f"streamrec bench: {layout}, {source}, {report.cpus} CPU(s); trials of {report.trial_s:.1f} s")
    table = _tables.table()
    more = _tables.wide(console)  # encoded size and memory only where there is room
    headers = [("#", True), ("Encoder", False), ("Preset", False), ("Thr", True), ("fps/cam", True),
               ("CPU ms", True), (f"CPU@{report.fps}", True), ("Spare", True)]
    headers += [("KB/frame", True), ("Enc MB", True)] if more else []
    for header, right in [*headers, ("Keeps up", False)]:
        _tables.column(table, header, right=right)
    for i, t in enumerate(report.trials, 1):
        s = t.setting
        if t.error is not None:
            keeps = Text("failed (below)", "red")
        elif t.sustainable:
            keeps = Text("yes", "green")
        else:
            keeps = Text("no" + (" (stopped)" if t.stopped_early else ""), "yellow")
        cells = [str(i), Text(s.encoder, "bold" if report.recommendation and t is report.recommendation.trial else ""),
                 "default" if s.preset is None else str(s.preset),
                 "auto" if s.encoder_threads is None else str(s.encoder_threads),
                 f"{t.fps_per_camera:.1f}" if t.error is None else "-",
                 "-" if t.cpu_ms_per_frame is None else f"{t.cpu_ms_per_frame:.1f}",
                 _pct(t.cpu_share), _pct(t.headroom)]
        if more:
            cells += ["-" if t.bytes_per_frame is None else f"{t.bytes_per_frame / 1e3:.1f}",
                      "-" if t.encoder_rss_mb is None else f"{t.encoder_rss_mb:.0f}"]
        table.add_row(*cells, keeps)
    console.print(table)
    console.print(f"Keeps up: at least {report.needed_fps_per_camera:g} fps per camera ({SUSTAIN_MARGIN:g} \u00d7 "
                  f"{report.fps}). Thr: encoder_threads. CPU ms: encoder CPU per frame. CPU@{report.fps}: the share "
                  f"of this machine's {report.cpus} core(s) that the encoders and add_frame take at {report.fps} fps; "
                  "Spare: what is left for the control loop.")
    failed = [t for t in report.trials if t.error is not None]
    for t in failed:
        console.print(Text(f"  {t.setting.label} failed: {t.error}", "red"))
    if report.dropped:
        console.print(f"Not measured ({len(report.dropped)}):")
        for d in report.dropped:
            console.print(f"  {d.setting.label}: {d.reason}")
    if report.not_working:
        names = ", ".join(report.not_working)
        console.print(Text(f"Not working here (see `streamrec probe`): {names}", "dim"))
    console.print(Text(f"{report.trials_run} trial(s) in {report.elapsed_s:.0f} s of a {report.budget_s:g} s budget. "
                       "A few seconds per setting on a machine that may be doing other work: rerun when in doubt.",
                       "dim"))
    rec = report.recommendation
    if rec is None:
        advice = report.advice or "no setting keeps up"
        console.print(Text(advice[0].upper() + advice[1:], "bold red"))
    else:
        console.print(Text.assemble(("Recommendation: ", "bold"), (rec.sentence, "bold green")))
        t = rec.trial
        runs = ("measured once (the budget left no time to repeat it)" if t.runs < 2 else
                f"worse of {t.runs} trials: " + ", ".join(f"{f:.1f}" for f in t.fps_runs) + " fps per camera")
        console.print(f"  {runs}")
        # One line whatever the terminal's width, so that it copies as it is.
        console.print(f"  streamrec record {rec.record_flags} ...", soft_wrap=True)
        extra = []
        if rec.disk_mb_per_episode is not None:
            extra.append(f"{report.seconds:g} s episodes: ~{rec.disk_mb_per_episode:.1f} MB per camera on disk")
        if rec.memory_mb is not None:
            extra.append(f"memory ~{rec.memory_mb:.0f} MB (queues and encoder processes), flat however long the "
                         "episode")
        if extra:
            console.print("  " + "; ".join(extra))
    if plot is not None:
        console.print(f"Plot: {plot}")


def _import_pyplot() -> Any:
    import matplotlib

    # Its first import builds a font cache and says so at INFO, which the CLI's logging would show.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")  # no screen needed; the PNG is the output
    import matplotlib.pyplot as pyplot

    return pyplot


def write_plot(report: BenchReport, path: Path, pyplot: Any) -> None:
    """Two panels, one bar per trial in ranked order: frames per second per camera with the required
    rate and its margin marked, and the CPU share at the required rate with the machine's limit."""
    trials = [t for t in report.trials if t.error is None]
    labels = [f"{t.setting.encoder}\n{'default' if t.setting.preset is None else t.setting.preset}, "
              f"t={'null' if t.setting.encoder_threads is None else t.setting.encoder_threads}" for t in trials]
    colours = ["tab:green" if t.sustainable else "tab:gray" for t in trials]
    best = report.recommendation.trial if report.recommendation else None
    edges = ["black" if t is best else "none" for t in trials]
    x = list(range(len(trials)))
    fig, (top, bottom) = pyplot.subplots(2, 1, figsize=(max(7.0, 0.9 * len(trials) + 2), 7.5), sharex=True)
    rates = [t.fps_per_camera for t in trials]
    # A cheap encoder can run at many times the required rate; past 4x it is cut (its figure is written on
    # the bar) so that the required rate stays readable.
    ceiling = 4 * report.needed_fps_per_camera
    top.bar(x, [min(r, ceiling) for r in rates], color=colours, edgecolor=edges, linewidth=2)
    for i, r in enumerate(rates):
        top.annotate(f"{r:.0f}", (i, min(r, ceiling)), ha="center", va="bottom", fontsize=8)
    top.set_ylim(0, 1.12 * max(min(max(rates, default=0.0), ceiling), report.needed_fps_per_camera))
    top.axhline(report.fps, color="tab:red", label=f"required: {report.fps} fps")
    top.axhline(report.needed_fps_per_camera, color="tab:red", linestyle="--",
                label=f"with the {100 * (SUSTAIN_MARGIN - 1):.0f} % margin")
    top.set_ylabel("frames per second per camera")
    top.legend(loc="best")
    shares = [100 * (t.cpu_share or 0.0) for t in trials]
    bottom.bar(x, shares, color=colours, edgecolor=edges, linewidth=2)
    for i, share in enumerate(shares):
        bottom.annotate(f"{share:.0f} %", (i, share), ha="center", va="bottom", fontsize=8)
    bottom.axhline(100, color="tab:red", label=f"all {report.cpus} core(s)")
    bottom.set_ylim(0, 1.15 * max([100.0, *shares]))
    bottom.set_ylabel(f"CPU at {report.fps} fps, % of the machine")
    bottom.legend(loc="best")
    bottom.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    source = "synthetic frames" if report.frames_source == "synthetic" else "footage"
    fig.suptitle(f"streamrec bench: {report.cameras} \u00d7 {report.width}x{report.height} at {report.fps} fps, "
                 f"{source}, {report.cpus} CPU(s)\ngreen: keeps up; outlined: recommended", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot.close(fig)
