"""Checks of the paths a command is given, made before it records anything, in words a user can act on."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from streamrec.dataset._reader import DatasetReader


class PathProblem(Exception):
    """A path given on the command line cannot be used; the message says why and what to do."""


def check_dataset_root(root: Path, *, resume: bool) -> None:
    """A folder a recording can go into: new or empty (or, resuming, a finalized dataset), and creatable.

    Raises:
        PathProblem: it is a file, lies under a file, cannot be created, holds an interrupted or a
            running recording, or is not empty.
    """
    if root.exists() and not root.is_dir():
        raise PathProblem(f"--dataset.root={root} is a file, not a folder; give a new or empty folder")
    reader = DatasetReader(root)
    if reader.layout.work.exists():
        who = reader.recorded_by()
        if who is not None:
            raise PathProblem(f"{root} is being recorded right now by {who}; record into another folder, or wait "
                              "until that recording has finished")
        raise PathProblem(f"{root} holds an interrupted recording; run `streamrec repair {root}` to keep its saved "
                          "episodes, or record into a new folder")
    if resume:
        if not reader.layout.info.is_file():
            raise PathProblem(f"--resume=true: {root} holds no dataset (no meta/info.json) to add episodes to")
        return
    if root.is_dir() and any(root.iterdir()):
        raise PathProblem(f"{root} is not empty; record into a new or empty folder, or add episodes to the dataset "
                          "in it with --resume=true")
    _check_creatable(root, "--dataset.root")


def _check_creatable(path: Path, flag: str) -> None:
    """The nearest existing ancestor of `path` is a writable folder."""
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if ancestor != path.absolute() and not ancestor.is_dir():
        raise PathProblem(f"{flag}={path}: {ancestor} is a file, so nothing can be created under it")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PathProblem(f"{flag}={path}: {ancestor} is not writable by this user")


def check_writable_file(path: Path, flag: str) -> None:
    """A file that can be written at the end of the run (tried now, so that a long run does not end in an error)."""
    if path.is_dir():
        raise PathProblem(f"{flag}={path} is a folder; give a file name")
    _check_creatable(path.parent, flag)
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as e:
        why = "no such folder can be made there" if e.errno == errno.ENOENT else e.strerror
        raise PathProblem(f"{flag}={path}: cannot be written ({why})") from None
    if not existed:
        path.unlink()
