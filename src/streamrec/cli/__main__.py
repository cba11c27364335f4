"""`streamrec` command line: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Each module defines add_parser(subparsers) and sets `run` (args -> exit code) as a default.
_SUBCOMMANDS = ("_record", "_verify", "_info", "_repair", "_probe", "_bench", "_view", "_merge", "_transcode")
_OWN_FLAG_PARSER = {"record", "lerobot-record"}
"""Subcommands whose flags are parsed by `_flags` or LeRobot's parser (dotted names) rather than argparse."""
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_EXIT_BROKEN_PIPE = 141
"""As a process ended by SIGPIPE: the reader of our output (`| head`) went away."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    level, argv = _take_log_level(argv)
    parser = argparse.ArgumentParser(prog="streamrec", description="Record and check LeRobot v3.0 robot datasets.")
    parser.add_argument("--log-level", default="INFO", choices=_LEVELS,
                        help="also accepted after the command; DEBUG shows third-party libraries' own logs too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMANDS:
        importlib.import_module(f"streamrec.cli.{name}").add_parser(sub)
    importlib.import_module("streamrec.lerobot._command").add_parser(sub)  # imports LeRobot only when run
    args = parser.parse_args(_dashes(argv, set(sub.choices)))
    level = level or args.log_level
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _quiet_third_party(level)
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:
        # Python would print a traceback while flushing; point stdout at nothing and leave quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE


def _take_log_level(argv: list[str]) -> tuple[str | None, list[str]]:
    """`--log-level` (or `--log_level`) wherever it is, so it also works after the subcommand."""
    out, level, i = [], None, 0
    while i < len(argv):
        token = argv[i]
        name, eq, value = token.partition("=")
        if name in ("--log-level", "--log_level"):
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            if value.upper() not in _LEVELS:
                sys.exit(f"streamrec: --log-level={value}: must be one of {', '.join(_LEVELS)}")
            level = value.upper()
        else:
            out.append(token)
        i += 1
    return level, out


def _dashes(argv: list[str], commands: set[str]) -> list[str]:
    """`--budget_s` as `--budget-s`: argparse options take either spelling, like the record command's flags."""
    command = next((a for a in argv if a in commands), None)
    if command in _OWN_FLAG_PARSER:
        return argv
    out = []
    for token in argv:
        if token.startswith("--") and token != "--":
            name, eq, value = token.partition("=")
            token = name.replace("_", "-") + eq + value
        out.append(token)
    return out


def _quiet_third_party(level: str) -> None:
    """OpenCV and the FFmpeg inside it print warnings of their own (a missing camera, a file being
    written); streamrec says what went wrong in its own words, so keep theirs for DEBUG."""
    if level != "DEBUG":
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
        os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")


if __name__ == "__main__":
    sys.exit(main())
