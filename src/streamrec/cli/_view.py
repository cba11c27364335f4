"""`streamrec view DATASET [--port P] [--host H] [--no-browser]`: the dataset in the browser.

The server's libraries (the `view` extra) are imported only when this command runs.
Exit codes: 0 stopped by Ctrl-C; 2 not a dataset, the address cannot be bound, or the extra is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PORT = 8765  # also streamrec.view.DEFAULT_PORT; repeated so that --help needs no aiohttp


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "view", help="look at a dataset in the browser: episodes, cameras in sync, plots, drops, verify's findings",
        description="Start a local, read-only web server for one dataset and open it in the browser: every episode "
                    "listed, one episode's cameras in sync on one scrubber, observation.state and action plotted, "
                    "dropped frames on the timeline and verify's findings. Ctrl-C stops it. Listens on 127.0.0.1 "
                    "unless --host is given.")
    parser.add_argument("dataset", type=Path, metavar="DATASET", help="dataset folder (the one holding meta/)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"TCP port (default: {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default=None,
                        help="address to listen on (default: 127.0.0.1; any other address makes the dataset "
                             "visible on the network)")
    parser.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print(f"streamrec view: --port={args.port}: must be 0..65535", file=sys.stderr)
        return 2
    try:
        from streamrec.view import serve
    except ImportError as e:
        print(f"streamrec view needs the view extra: pip install 'streamrec[view]' ({e})", file=sys.stderr)
        return 2
    from streamrec import DatasetError

    try:
        return serve(args.dataset, host=args.host, port=args.port, open_browser=not args.no_browser)
    except DatasetError as e:
        print(f"streamrec view: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"streamrec view: cannot listen on {args.host or '127.0.0.1'}:{args.port}: {e}", file=sys.stderr)
        return 2
