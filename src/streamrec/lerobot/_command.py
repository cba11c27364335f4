"""Registers `streamrec lerobot-record` without importing LeRobot: it is imported when the command runs."""

from __future__ import annotations

import argparse
import sys

LEROBOT_REQUIREMENT = "lerobot>=0.6.1,<0.7"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    # LeRobot's parser reads the flags: hand every argument through (`+` keeps argparse off `--robot.type`).
    parser = subparsers.add_parser(
        "lerobot-record", help="record with LeRobot's robots, teleoperators and cameras (lerobot-record's flags)",
        add_help=False, prefix_chars="+")
    parser.add_argument("flags", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


def missing_lerobot() -> str | None:
    """Why LeRobot cannot be used here, or None when it can."""
    if sys.version_info < (3, 12):
        return (f"needs Python >= 3.12 (LeRobot 0.6 does), this is {sys.version.split()[0]}; make a Python 3.12 "
                f"venv and pip install 'streamrec[lerobot]' in it")
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        found = version("lerobot")
    except PackageNotFoundError:
        return "needs LeRobot: pip install 'streamrec[lerobot]'"
    major_minor = tuple(int(p) for p in found.split(".")[:2] if p.isdigit())
    if major_minor != (0, 6):
        return f"needs {LEROBOT_REQUIREMENT}, found lerobot {found}: pip install 'streamrec[lerobot]'"
    return None


def run(args: argparse.Namespace) -> int:
    problem = missing_lerobot()
    if problem is not None:
        print(f"streamrec lerobot-record: {problem}", file=sys.stderr)
        return 2
    from ._record import main

    return main(list(args.flags))
