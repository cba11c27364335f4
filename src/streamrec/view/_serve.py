"""Run the view server until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import webbrowser
from pathlib import Path

from aiohttp import web

from ._server import VIEWER, is_loopback, make_app

log = logging.getLogger("streamrec.view")

DEFAULT_PORT = 8765


def serve(root: str | Path, *, host: str | None = None, port: int = DEFAULT_PORT, open_browser: bool = True,
          cache_dir: Path | None = None, run_verify: bool = True) -> int:
    """Serve the dataset at `root` until interrupted (Ctrl-C or SIGTERM); returns the exit code.

    Binds 127.0.0.1 unless `host` is given. Port 0 picks a free port. The URL is printed on
    stdout as the line `streamrec view: http://HOST:PORT/`.

    Raises:
        DatasetError: `root` is not a readable dataset.
        OSError: the address cannot be bound (e.g. the port is in use).
    """
    bind = host or "127.0.0.1"
    loopback = is_loopback(bind)
    if not loopback:
        print(f"streamrec view: WARNING: listening on {bind}: anyone who can reach this machine on port {port} "
              f"can see the dataset {root}", file=sys.stderr, flush=True)
    allowed = frozenset({"127.0.0.1", "localhost", "::1", bind}) if loopback else None
    app = make_app(root, cache_dir=cache_dir, run_verify=run_verify, allowed_hosts=allowed)
    # SIGINT is handled inside the loop; this catches one that arrives before the loop runs.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(app, bind, port, open_browser))
    return 0


async def _run(app: web.Application, host: str, port: int, open_browser: bool) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        url = f"http://{shown}:{bound[1]}/"
        viewer = app[VIEWER]
        print(f"streamrec view: {url}", flush=True)
        print(f"streamrec view: {viewer.root} ({len(viewer.dataset.episodes)} episodes); Ctrl-C stops the server",
              file=sys.stderr, flush=True)
        if open_browser:
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("streamrec view: stopped", file=sys.stderr, flush=True)
    finally:
        await runner.cleanup()
