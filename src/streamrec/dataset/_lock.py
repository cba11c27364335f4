"""`WorkLock`: tells a live recording from an interrupted one."""

from __future__ import annotations

import fcntl
import os

from .._errors import DatasetError
from ._layout import Layout


class WorkLock:
    """An exclusive lock on the dataset's work folder, held while a recorder (or repair) uses it.

    The kernel drops the lock when its holder dies, so a held lock means a live recording, and
    a work folder without one means an interrupted recording.
    """

    def __init__(self, layout: Layout, who: str, busy: str | None = None) -> None:
        """`busy`: the error's message when another process holds the lock (default: a recording's)."""
        layout.work.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            holder = lock_holder(layout)
            by = f" (process {holder})" if holder else ""
            raise DatasetError(f"{busy}{by}" if busy else f"{layout.root} is in use by a running recording (or "
                               f"repair){by}; {who} must wait until it has finalized") from None
        # Who holds it, for the messages of verify, info and repair.
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_holder(layout: Layout) -> int | None:
    """The process holding the dataset's work folder (a live recorder or repair); None when none does
    (0 when one does but did not say which)."""
    try:
        fd = os.open(layout.lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        return None
    finally:
        os.close(fd)
