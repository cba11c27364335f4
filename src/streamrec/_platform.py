"""What the operating system offers, asked in one place with a fallback where a platform lacks it."""

from __future__ import annotations

import contextlib
import os


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask on Linux, every CPU elsewhere (macOS has no mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def name_thread(name: str) -> None:
    """Name the calling thread as `top`, `ps -L` and /proc show it (threads it starts inherit it)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(15, name[:15].encode(), 0, 0, 0)  # PR_SET_NAME
