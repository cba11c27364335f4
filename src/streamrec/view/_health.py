"""verify()'s findings for the page, computed in the background and cached.

`streamrec.verify` decodes every MP4, which takes a while on a large dataset, so it runs in a
child process at low priority: the server keeps answering (no shared interpreter lock) and the
browser keeps playing. The report is cached as JSON under a key made of every dataset file's
path, size and modification time, so a second `streamrec view` of an unchanged dataset shows the
findings at once, and any change to the dataset makes a new check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("streamrec.view")

_SCANNED = ("meta", "data", "videos")


def signature(root: Path) -> str:
    """A digest of the dataset's files (path, size, mtime): changes whenever verify's answer could."""
    h = hashlib.sha256(str(root.resolve()).encode())
    for top in _SCANNED:
        for dirpath, dirnames, filenames in os.walk(root / top):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath, name)
                try:
                    st = path.stat()
                except OSError:
                    continue
                h.update(f"{path.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _child(root: str, out: str) -> None:
    with contextlib.suppress(OSError):
        os.nice(10)
    from streamrec import verify

    report = verify(root).to_dict()
    tmp = f"{out}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f)
    os.replace(tmp, out)


class HealthCheck:
    """One background verify of one dataset; `state()` says where it is."""

    def __init__(self, root: Path, cache_dir: Path) -> None:
        self.root = root
        self.cache_file = cache_dir / f"verify-{signature(root)}.json"
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._report: dict[str, Any] | None = None
        self._error: str | None = None
        self.cached = self.cache_file.exists()

    def start(self) -> None:
        if self.cached or self._proc is not None:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        # spawn, not fork: the server has threads, and a forked copy of a threaded process may hang.
        self._proc = multiprocessing.get_context("spawn").Process(
            target=_child, args=(str(self.root), str(self.cache_file)), name="streamrec-view-verify", daemon=True)
        self._proc.start()
        log.info("verify started in the background (pid %s)", self._proc.pid)

    def state(self) -> dict[str, Any]:
        if self._report is None and self._error is None:
            if self.cache_file.exists():
                try:
                    self._report = json.loads(self.cache_file.read_text())
                except (OSError, ValueError) as e:
                    self._error = f"the cached report {self.cache_file} cannot be read: {e}"
            elif self._proc is not None and not self._proc.is_alive():
                self._error = f"verify stopped with exit code {self._proc.exitcode} before writing its report"
        if self._report is not None:
            return {"state": "done", "cached": self.cached, "report": self._report}
        if self._error is not None:
            return {"state": "failed", "error": self._error}
        return {"state": "running" if self._proc is not None else "off"}

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
