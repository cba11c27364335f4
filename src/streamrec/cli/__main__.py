"""`streamrec` command line: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Each module defines add_parser(subparsers) and sets `run` (args -> exit code) as a default.
_SUBCOMMANDS = ("_record", "_verify", "_info", "_repair", "_probe", "_bench", "_merge", "_transcode")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamrec", description="Record and check LeRobot v3.0 robot datasets.")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMANDS:
        importlib.import_module(f"streamrec.cli.{name}").add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
