"""Keep encoder threads below the capture loop in the CPU's eyes.

SVT-AV1 asks for SCHED_FIFO priority 99 for its worker threads whenever the process may (root,
or CAP_SYS_NICE). On a small robot computer that lets the encoder pre-empt the capture loop for
hundreds of milliseconds. Linux keeps capabilities, nice values and scheduling policy per thread,
and a new thread inherits them from the thread that creates it. So each encoder process calls
`demote_current_thread()` before it opens a codec: every thread the codec library spawns from
then on is born without CAP_SYS_NICE (its request for real-time priority fails harmlessly),
niced and SCHED_BATCH. The capture thread keeps its own priority.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("streamrec")

_CAP_SYS_NICE = 23
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# Syscall numbers differ per architecture; these are the only two we use.
_SYSCALLS = {"x86_64": (125, 126), "aarch64": (90, 91), "armv7l": (184, 185)}


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_cap_sys_nice() -> bool:
    """Remove CAP_SYS_NICE from the calling thread only (capset acts per thread).

    Returns True when the thread no longer holds it (also when it never did).
    """
    numbers = _SYSCALLS.get(os.uname().machine)
    if numbers is None:
        return False
    capget, capset = numbers
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.syscall(capget, ctypes.byref(header), data) != 0:
        return False
    mask = ~(1 << _CAP_SYS_NICE) & 0xFFFFFFFF
    if not data[0].effective & (1 << _CAP_SYS_NICE) and not data[0].permitted & (1 << _CAP_SYS_NICE):
        return True
    data[0].effective &= mask
    data[0].permitted &= mask
    data[0].inheritable &= mask
    return libc.syscall(capset, ctypes.byref(header), data) == 0


def demote_current_thread(nice: int = 10) -> None:
    """Make the calling thread, and every thread it creates later, a background worker.

    Drops CAP_SYS_NICE from this thread, raises its nice value by `nice` and moves it to
    SCHED_BATCH. Each step is best effort: on a platform without it the thread simply keeps
    normal priority, which is safe.
    """
    if not hasattr(os, "sched_setscheduler"):
        return
    if not _drop_cap_sys_nice():
        log.debug("could not drop CAP_SYS_NICE in thread %s", threading.current_thread().name)
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


@dataclass(frozen=True, slots=True)
class ThreadSched:
    """Scheduling state of one thread of this process, read from /proc."""

    tid: int
    name: str
    policy: int
    """0 SCHED_OTHER, 1 SCHED_FIFO, 2 SCHED_RR, 3 SCHED_BATCH, 5 SCHED_IDLE."""
    nice: int


def thread_scheds(pid: int | None = None) -> list[ThreadSched]:
    """Every thread of a process (default: this one) with its policy and nice value (Linux only)."""
    out = []
    for task in Path(f"/proc/{pid or 'self'}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue  # the thread ended while we looked
        fields = stat.rsplit(")", 1)[1].split()
        out.append(ThreadSched(int(task.name), name, int(fields[38]), int(fields[16])))
    return out


def realtime_threads(pid: int | None = None) -> list[ThreadSched]:
    """Threads of a process (default: this one) running under SCHED_FIFO or SCHED_RR."""
    return [t for t in thread_scheds(pid) if t.policy in (1, 2)]
